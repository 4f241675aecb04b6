"""Worker and sink decision logic with in-memory Kafka/Mongo fakes: routing, commit-after-flush, redo on
delivery failure, retry while MongoDB is down. (Named test_producer_* to sit with the pipeline unit tests.)"""

from __future__ import annotations

import json
import time

import pytest

from extractor.chain.model import Entity, ExtractionResult
from extractor.config import Settings
from extractor.stream import messages as m
from extractor.stream.sink import Sink
from extractor.stream.worker import StopFlag, Worker


class Msg:
    def __init__(self, value, offset, partition=0, topic="in", key=None, headers=None):
        self._v, self._o, self._p, self._t, self._k, self._h = value, offset, partition, topic, key, headers

    def value(self):
        return self._v

    def offset(self):
        return self._o

    def partition(self):
        return self._p

    def topic(self):
        return self._t

    def key(self):
        return self._k

    def headers(self):
        return self._h

    def error(self):
        return None

    def timestamp(self):  # (TIMESTAMP_CREATE_TIME, ms) as confluent_kafka.Message gives it
        return 1, int(time.time() * 1000)


class FakeConsumer:
    """As librdkafka does it: an asynchronous commit's result reaches ``on_commit`` from the next consume()."""

    on_commit = None

    def __init__(self, msgs):
        self.msgs = list(msgs)
        self.commits = []
        self.seeks = []
        self.results = []  # commit results not yet served

    def subscribe(self, topics, **kw):
        self.topics = topics

    def consume(self, num_messages=1, timeout=0):
        results, self.results = self.results, []
        for offsets in results:
            self.on_commit(None, offsets)
        out, self.msgs = self.msgs[:num_messages], self.msgs[num_messages:]
        return out

    def commit(self, offsets=None, asynchronous=True):
        self.commits.append({(tp.topic, tp.partition): tp.offset for tp in offsets})
        if asynchronous and self.on_commit is not None:
            self.results.append(offsets)
            return None
        return offsets

    def seek(self, tp):
        self.seeks.append((tp.topic, tp.partition, tp.offset))

    def assignment(self):
        return []

    def close(self):
        pass


class FakeProducer:
    def __init__(self, fail_first_flush=False):
        self.sent, self.pending, self.fail = [], [], fail_first_flush
        self.log = []

    def produce(self, topic, value=None, key=None, headers=None, on_delivery=None):
        self.pending.append(({"topic": topic, "value": value, "key": key, "headers": m.headers_dict(headers)},
                             on_delivery))
        self.log.append("produce")

    def poll(self, _t=0):
        return 0

    def flush(self, _t=None):
        for rec, cb in self.pending:
            if self.fail:
                cb("broker down", None)
            else:
                self.sent.append(rec)
                cb(None, None)
        self.pending.clear()
        self.fail = False
        self.log.append("flush")
        return 0


class FakeChain:
    version = "fake+lex-1"
    lexicon_version = "lex-1"

    def __init__(self):
        self.reloads = 0

    def extract_many(self, texts):
        out = []
        for t in texts:
            if "BOOM" in t:
                raise RuntimeError("chain broke")
            ill = [Entity("flu", t.index("flu"), t.index("flu") + 3, "ILLNESS", "regex", "r1", 0.9,
                          canonical="influenza", code="J11.1", code_system="ICD-10-CM")] if "flu" in t else []
            out.append(ExtractionResult(ill, [], "partial" if ill else "unresolved",
                                        None if ill else "nothing found", ("regex",)))
        return out

    def reload_if_changed(self):
        self.reloads += 1
        return False


def entry_bytes(pid, text):
    return m.encode_entry(m.build_entry(pid, text, "2024-01-01", "f.csv", 2))


def make_worker(msgs, **pkw):
    s = Settings(input_topic="in", processed_topic="out", dlq_topic="dlq", batch_size=10, lexicon_reload_s=0)
    consumer, producer = FakeConsumer(msgs), FakeProducer(**pkw)
    return Worker(s, FakeChain(), consumer=consumer, producer=producer), consumer, producer


def test_worker_routes_and_commits_after_flush():
    msgs = [
        Msg(entry_bytes("p1", "signs of flu"), 0, headers=[("produced_at", b"1700000000000")]),
        Msg(entry_bytes("p2", "nothing here"), 1),
        Msg(b"\xff\xfe", 2),
        Msg(b'{"broken', 3),
        Msg(b"1,plain signs of flu,2024-01-01 12:00", 4),
        Msg(entry_bytes("p3", "BOOM flu"), 5),
    ]
    w, consumer, producer = make_worker(msgs)
    w.run(max_messages=6)
    out = [r for r in producer.sent if r["topic"] == "out"]
    dlq = [r for r in producer.sent if r["topic"] == "dlq"]
    assert len(out) == 2
    doc = json.loads(out[0]["value"])
    assert doc["_id"] == doc["entry_id"] == out[0]["key"]
    assert doc["illness"] == "influenza" and doc["lexicon_version"] == "lex-1"
    assert doc["produced_at_ms"] == 1700000000000 and doc["kafka"] == {"topic": "in", "partition": 0, "offset": 0}
    assert json.loads(out[1]["value"])["input_format"] == "text"
    reasons = {r["headers"]["source_offset"]: r["headers"]["reason"] for r in dlq}
    assert reasons == {"1": "unresolved", "2": "undecodable", "3": "not_json", "5": "extract_error"}
    by_off = {r["headers"]["source_offset"]: r for r in dlq}
    assert by_off["2"]["value"] == b"\xff\xfe"  # original bytes unchanged
    assert by_off["1"]["headers"]["stage"] == "extract" and by_off["1"]["headers"]["lexicon_version"] == "lex-1"
    assert by_off["5"]["headers"]["error_class"] == "RuntimeError"
    assert by_off["1"]["key"] == by_off["1"]["headers"]["entry_id"]
    # committed exactly once per batch, after the flush
    assert consumer.commits[-1] == {("in", 0): 6}
    assert producer.log.index("flush") < len(producer.log)
    assert w.stats.processed == 2 and w.stats.dead_lettered == 4


def test_worker_redoes_batch_when_a_delivery_fails():
    msgs = [Msg(entry_bytes("p1", "signs of flu"), 10), Msg(entry_bytes("p2", "flu again"), 11, partition=1)]
    w, consumer, producer = make_worker(msgs, fail_first_flush=True)
    w.stop.wait = lambda s: False  # no sleeping in tests
    assert w.process(list(msgs)) is False
    assert consumer.commits == [] and sorted(consumer.seeks) == [("in", 0, 10), ("in", 1, 11)]
    assert w.process(list(msgs)) is True
    assert consumer.commits == [{("in", 0): 11, ("in", 1): 12}]
    assert w.stats.processed == 2


class FakeCollection:
    def __init__(self, failures=0, exc=None):
        self.docs, self.failures, self.calls, self.exc = {}, failures, 0, exc

    def _maybe_fail(self):
        from pymongo.errors import AutoReconnect

        self.calls += 1
        if self.failures:
            self.failures -= 1
            raise self.exc or AutoReconnect("down")

    def bulk_write(self, ops, ordered=True):
        self._maybe_fail()
        for op in ops:
            self.docs[op._filter["_id"]] = op._doc

    def insert_many(self, docs, ordered=True):
        """As MongoDB does it, unordered: every new _id is inserted, each existing one is a duplicate-key error."""
        from pymongo.errors import BulkWriteError

        self._maybe_fail()
        self.inserts = getattr(self, "inserts", 0) + 1
        errors = []
        for i, d in enumerate(docs):
            if d["_id"] in self.docs or d.get("bad"):
                errors.append({"index": i, "code": 2 if d.get("bad") else 11000, "errmsg": "refused"})
            else:
                self.docs[d["_id"]] = d
        if errors:
            raise BulkWriteError({"writeErrors": errors, "nInserted": len(docs) - len(errors)})

    def create_indexes(self, models):
        self.indexes = [m.document["name"] for m in models]
        return self.indexes

    def index_information(self):
        return {"_id_": {}, **{name: {} for name in getattr(self, "indexes", [])}}


def test_sink_retries_then_commits_and_dedupes():
    docs = [{"_id": "a", "v": 1}, {"_id": "b", "v": 1}, {"_id": "a", "v": 2}]
    msgs = [Msg(json.dumps(d).encode(), i, topic="out") for i, d in enumerate(docs)]
    consumer, coll = FakeConsumer(msgs), FakeCollection(failures=3)
    s = Settings(processed_topic="out", batch_size=10, sink_max_backoff_s=0.01)
    sink = Sink(s, consumer=consumer, collection=coll, producer=FakeProducer())
    assert sink.process(list(msgs))
    assert coll.calls == 4 and coll.docs["a"]["v"] == 2 and len(coll.docs) == 2
    assert consumer.commits == [{("out", 0): 3}]
    # the same records again (redelivery): the insert finds the id taken, the document is replaced, nothing
    # duplicated
    msgs2 = [Msg(json.dumps({"_id": "a", "v": 3}).encode(), 3, topic="out"),
             Msg(json.dumps({"_id": "c", "v": 1}).encode(), 4, topic="out")]
    assert sink.process(msgs2)
    assert coll.docs["a"]["v"] == 3 and coll.docs["c"]["v"] == 1 and len(coll.docs) == 3


def test_sink_does_not_commit_when_stopped_while_down():
    msgs = [Msg(b'{"_id": "a"}', 0, topic="out")]
    consumer, coll = FakeConsumer(msgs), FakeCollection(failures=10**6)
    stop = StopFlag()
    s = Settings(processed_topic="out", sink_max_backoff_s=0.01)
    sink = Sink(s, consumer=consumer, collection=coll, producer=FakeProducer(), stop=stop)
    stop.set()
    assert sink.process(list(msgs)) is False
    assert consumer.commits == []


def test_sink_dead_letters_bad_records_and_bisects_bad_documents():
    from pymongo.errors import OperationFailure

    class PickyCollection(FakeCollection):
        def bulk_write(self, ops, ordered=True):
            if any(op._doc.get("bad") for op in ops):
                raise OperationFailure("bad value", code=2)
            super().bulk_write(ops, ordered)

    msgs = [Msg(b"not json", 0, topic="out"), Msg(b'{"_id": "x", "bad": 1}', 1, topic="out"),
            Msg(b'{"_id": "y"}', 2, topic="out")]
    consumer, coll, prod = FakeConsumer(msgs), PickyCollection(), FakeProducer()
    sink = Sink(Settings(processed_topic="out", dlq_topic="dlq", sink_max_backoff_s=0.01), consumer=consumer,
                collection=coll, producer=prod)
    assert sink.process(list(msgs))
    assert set(coll.docs) == {"y"}
    assert sorted(r["headers"]["source_offset"] for r in prod.sent) == ["0", "1"]
    assert all(r["headers"]["reason"] == "bad_document" for r in prod.sent)
    assert consumer.commits == [{("out", 0): 3}]


def test_long_notes_run_in_chunks_keep_membership_and_shrink_the_next_poll():
    """Notes of 20,000 characters: the chain sees chunks of at most max_batch_chars, the consumer polls with its
    partitions paused between chunks (never a record taken), and the next poll asks for fewer records."""
    calls: list[int] = []
    events: list[str] = []

    class SlowChain(FakeChain):
        def extract_many(self, texts):
            calls.append(sum(map(len, texts)))
            return super().extract_many(texts)

    class TrackingConsumer(FakeConsumer):
        def assignment(self):
            return ["tp"]

        def pause(self, tps):
            events.append("pause")

        def resume(self, tps):
            events.append("resume")

        def poll(self, timeout):
            events.append("poll")
            return None

    long = "signs of flu " + "x" * 19_987
    msgs = [Msg(entry_bytes(f"p{i}", long), i) for i in range(10)]
    s = Settings(input_topic="in", processed_topic="out", dlq_topic="dlq", batch_size=500, lexicon_reload_s=0,
                 max_batch_chars=50_000, max_poll_interval_ms=10_000)
    ticks = iter(range(0, 10_000, 5))  # every clock read is 5 s later: keep-alive due after every chunk
    w = Worker(s, SlowChain(), consumer=TrackingConsumer(msgs), producer=FakeProducer(), clock=lambda: next(ticks))
    assert w.process(msgs)
    assert all(c <= 50_000 for c in calls) and len(calls) == 5  # 2 notes (40,000 characters) a chunk
    assert events.count("poll") == 4 and events[:3] == ["pause", "poll", "resume"]
    assert w.poll_size == 10  # 4 * 50,000 / 20,000 characters
    assert len([r for r in w.producer.sent if r["topic"] == "out"]) == 10


def test_a_fatal_consumer_error_stops_the_worker_instead_of_idling_for_ever():
    """A fenced static member gets a fatal error and never another record: the worker must exit (non-zero from
    the command) for its supervisor to start a fresh one, not poll an empty consumer for ever."""
    from confluent_kafka import KafkaError

    from extractor.stream.kafka import FatalConsumerError

    class FatalMsg(Msg):
        def error(self):
            return KafkaError(KafkaError._FENCED, "fenced", fatal=True)

    w, consumer, _producer = make_worker([Msg(entry_bytes("p1", "signs of flu"), 0), FatalMsg(None, 1)])
    with pytest.raises(FatalConsumerError, match="fenced"):
        w.run(max_messages=10)


def test_a_fenced_worker_takes_a_fresh_consumer_and_goes_on():
    """After a broker restart librdkafka may fence a static member with an error event of code _FATAL whose own
    fatal() is False: the worker notices it by the code, makes a fresh consumer (same settings) and goes on with
    the records it had not committed, without exiting."""
    from confluent_kafka import KafkaError

    class FencedMsg(Msg):
        def error(self):
            return KafkaError(KafkaError._FATAL, "Static consumer fenced by other consumer", fatal=False)

    class Recording(FakeConsumer):
        closed = False

        def close(self):
            self.closed = True

    first = Recording([Msg(entry_bytes("p1", "signs of flu"), 0), FencedMsg(None, 1)])
    second = Recording([Msg(entry_bytes("p2", "signs of flu"), 1)])
    made = iter([first, second])
    s = Settings(input_topic="in", processed_topic="out", dlq_topic="dlq", batch_size=1, lexicon_reload_s=0)
    w = Worker(s, FakeChain(), producer=FakeProducer(), consumer_factory=lambda: next(made))
    w.run(max_messages=2, max_idle_s=0.5)
    assert first.closed and second.topics == ["in"]
    assert [json.loads(r["value"])["patient_id"] for r in w.producer.sent if r["topic"] == "out"] == ["p1", "p2"]


def test_a_fenced_sink_takes_a_fresh_consumer_and_goes_on():
    """The sink is a static member too (a broker restart used to leave it waiting out its old member's session
    while the workers were back at once): fenced, it makes a fresh consumer and writes what comes next."""
    from confluent_kafka import KafkaError

    class FencedMsg(Msg):
        def error(self):
            return KafkaError(KafkaError._FATAL, "Static consumer fenced by other consumer", fatal=False)

    class Recording(FakeConsumer):
        closed = False

        def close(self):
            self.closed = True

    first = Recording([Msg(json.dumps({"_id": "a"}).encode(), 0, topic="out"), FencedMsg(None, 1)])
    second = Recording([Msg(json.dumps({"_id": "b"}).encode(), 1, topic="out")])
    made = iter([first, second])
    coll = FakeCollection()
    sink = Sink(Settings(processed_topic="out", batch_size=1), collection=coll, producer=FakeProducer(),
                consumer_factory=lambda: next(made))
    sink.run(max_idle_s=0.5)
    assert first.closed and second.topics == ["out"]
    assert sorted(coll.docs) == ["a", "b"] and second.commits == [{("out", 0): 2}]


def test_consumer_renewals_are_bounded():
    """More than three renewals in a minute is not a broker restart: the error goes up and the process exits."""
    from extractor.stream.kafka import ConsumerRenewer, FatalConsumerError

    now = [0.0]
    r = ConsumerRenewer(lambda: FakeConsumer([]), "sink", clock=lambda: now[0])
    exc = FatalConsumerError("fenced")
    for _ in range(3):
        assert isinstance(r.renew(FakeConsumer([]), exc), FakeConsumer)
    with pytest.raises(FatalConsumerError):
        r.renew(FakeConsumer([]), exc)
    now[0] = 61.0  # a minute later the count starts again
    assert isinstance(r.renew(FakeConsumer([]), exc), FakeConsumer)
    with pytest.raises(FatalConsumerError):  # no factory (a test's fixed consumer): nothing to renew with
        ConsumerRenewer(None, "sink").renew(FakeConsumer([]), exc)


def test_static_membership_gives_the_sink_an_instance_id_too():
    from extractor.stream.kafka import consumer_config, static_member

    s = Settings(group_instance_id="g-sink-1", sink_group_id="g")
    assert consumer_config(s, s.sink_group_id, **static_member(s))["group.instance.id"] == "g-sink-1"
    assert "group.instance.id" not in consumer_config(Settings(), "g", **static_member(Settings()))


def test_a_commit_on_a_fenced_consumer_is_fatal_at_once_not_retried():
    from confluent_kafka import KafkaError, KafkaException

    from extractor.stream.kafka import FatalConsumerError, commit_offsets

    class Fenced(FakeConsumer):
        calls = 0

        def commit(self, offsets=None, asynchronous=True):
            self.calls += 1
            raise KafkaException(KafkaError(KafkaError._FATAL, "Static consumer fenced"))

    c = Fenced([])
    t0 = time.monotonic()
    with pytest.raises(FatalConsumerError, match="fenced"):
        commit_offsets(c, {("in", 0): 5}, "worker")
    assert c.calls == 1 and time.monotonic() - t0 < 0.5


def test_revoke_callbacks_commit_without_blocking():
    """A synchronous commit inside a rebalance callback can wait minutes on a coordinator that is restarting; the
    worker and the sink queue an asynchronous commit there instead (a failed one only repeats idempotent work)."""

    class CoordinatorGone(FakeConsumer):
        def commit(self, offsets=None, asynchronous=True):
            if not asynchronous:
                time.sleep(60)  # what a synchronous commit did while the broker restarted
            self.commits.append({(tp.topic, tp.partition): tp.offset for tp in offsets})

    class TP:
        def __init__(self, topic, partition):
            self.topic, self.partition = topic, partition

    w, _, _ = make_worker([])
    consumer = CoordinatorGone([])
    w.commits.done({("in", 0): 7, ("in", 1): 3})
    t0 = time.monotonic()
    w._on_revoke(consumer, [TP("in", 0)])
    assert consumer.commits == [{("in", 0): 7}] and w.commits.pending == {("in", 1): 3}
    sink = Sink(Settings(processed_topic="out"), consumer=consumer, collection=FakeCollection(),
                producer=FakeProducer())
    sink.commits.done({("out", 2): 9})
    sink._on_revoke(consumer, [TP("out", 2)])
    assert consumer.commits[-1] == {("out", 2): 9} and sink.commits.pending == {}
    assert time.monotonic() - t0 < 5


class _NoCoordinator(FakeConsumer):
    """A consumer whose group coordinator is gone (a broker restarting): a synchronous commit would wait for
    ever, an asynchronous one is queued and its result never comes."""

    def commit(self, offsets=None, asynchronous=True):
        if not asynchronous:
            time.sleep(60)
        self.commits.append({(tp.topic, tp.partition): tp.offset for tp in offsets})


def test_per_batch_commits_never_block_the_poll_loop():
    """A 4-minute soak's sink hung in a synchronous per-batch commit after a broker restart (its session expired
    and the rejoin needed the poll it was blocked from). The worker and the sink commit each batch
    asynchronously: with no coordinator, batches go on, the offsets stay pending, and are sent again."""
    consumer = _NoCoordinator([Msg(entry_bytes(f"p{i}", "signs of flu"), i) for i in range(3)])
    w = Worker(Settings(input_topic="in", processed_topic="out", dlq_topic="dlq", batch_size=1,
                        lexicon_reload_s=0), FakeChain(), consumer=consumer, producer=FakeProducer())
    t0 = time.monotonic()
    w.run(max_messages=3)
    assert time.monotonic() - t0 < 5 and w.stats.processed == 3
    # the first batch's commit never gets a result: one commit at a time, so nothing more is sent, and stopping
    # does not wait for it long
    assert [c[("in", 0)] for c in consumer.commits] == [1] and w.commits.pending == {}
    docs = [Msg(json.dumps({"_id": f"d{i}"}).encode(), i, topic="out") for i in range(3)]
    coll = FakeCollection()
    sink = Sink(Settings(processed_topic="out", batch_size=1), consumer=_NoCoordinator(docs), collection=coll,
                producer=FakeProducer())
    t0 = time.monotonic()
    sink.run(max_idle_s=0.3)
    assert time.monotonic() - t0 < 5 and len(coll.docs) == 3


def test_offset_committer_drops_only_what_the_broker_acknowledged():
    from confluent_kafka import KafkaError, TopicPartition

    from extractor.stream.kafka import FatalConsumerError, OffsetCommitter

    now = [0.0]
    c = OffsetCommitter("worker", stuck_s=60, clock=lambda: now[0])
    consumer = _NoCoordinator([])
    c.done({("in", 0): 10, ("in", 1): 4})
    c.commit(consumer)
    c.done({("in", 0): 12})
    c.commit(consumer)  # the first commit's result is not back: nothing sent
    assert consumer.commits == [{("in", 0): 10, ("in", 1): 4}] and c.in_flight
    c.on_commit(None, [TopicPartition("in", 0, 10), TopicPartition("in", 1, 4)])
    assert c.pending == {("in", 0): 12} and not c.in_flight  # 10 acknowledged, 12 not yet
    c.commit(consumer)
    assert consumer.commits[-1] == {("in", 0): 12}
    c.on_commit(KafkaError(KafkaError.COORDINATOR_LOAD_IN_PROGRESS), [TopicPartition("in", 0, 12)])
    c.commit(consumer)  # failed: sent again at once
    assert consumer.commits[-1] == {("in", 0): 12} and len(consumer.commits) == 3
    c.on_commit(None, [TopicPartition("in", 5, 1)])  # another commit's result (a revoke's): still in flight
    c.commit(consumer)
    assert len(consumer.commits) == 3
    now[0] = 61.0
    c.commit(consumer)  # no result for stuck_s: counted as failed, and the next one goes
    assert len(consumer.commits) == 4
    assert c.drop([("in", 0)]) == {("in", 0): 12} and c.pending == {}
    c.on_commit(KafkaError(KafkaError._FATAL, "fenced", fatal=True), [])
    with pytest.raises(FatalConsumerError):
        c.commit(consumer)


def test_an_older_commit_never_lands_after_a_newer_one():
    """librdkafka retries a commit that meets a loading coordinator by itself, so two commits in flight can land
    in either order; the older landing last moved a broker-restart test's group 500 records back for good. The
    committer keeps one commit in flight: the broker sees the offsets in the order they were finished."""
    from confluent_kafka import TopicPartition

    from extractor.stream.kafka import OffsetCommitter

    class Broker(FakeConsumer):
        """Holds every commit until told to answer, then applies them newest first."""

        def __init__(self):
            super().__init__([])
            self.held, self.committed = [], {}

        def commit(self, offsets=None, asynchronous=True):
            self.held.append({(tp.topic, tp.partition): tp.offset for tp in offsets})

        def answer_newest_first(self, c):
            for offsets in reversed(self.held):
                self.committed.update(offsets)
                c.on_commit(None, [TopicPartition(t, p, o) for (t, p), o in offsets.items()])
            self.held = []

    broker, c = Broker(), OffsetCommitter("sink")
    for end in (100, 200, 300):  # three batches finished before any result came back
        c.done({("out", 0): end})
        c.commit(broker)
    broker.answer_newest_first(c)
    c.commit(broker)  # the result came: the latest offsets go now
    broker.answer_newest_first(c)
    assert broker.committed == {("out", 0): 300} and c.pending == {}


def test_a_long_flush_asks_for_the_metadata_again(monkeypatch) -> None:
    """A flush that waits past its warning asks for the cluster's metadata every few seconds (librdkafka can keep
    a leader it saw as -1 during a broker restart), and a refused request does not end the wait."""
    from extractor.stream import kafka as k

    clock = {"t": 0.0}
    monkeypatch.setattr(k.time, "monotonic", lambda: clock["t"])

    class Stuck:
        def __init__(self) -> None:
            self.flushes, self.metadata = 0, 0

        def flush(self, timeout: float) -> int:
            self.flushes += 1
            clock["t"] += timeout
            return 0 if self.flushes >= 30 else 5

        def list_topics(self, timeout: float = -1):
            self.metadata += 1
            if self.metadata == 1:
                raise RuntimeError("broker still down")
            return None

    p = Stuck()
    k.flush_all(p, stop_log_s=10.0)
    assert p.flushes == 30
    assert p.metadata == 4  # at about 10, 15, 20 and 25 s of waiting; the first refused


def test_a_quick_flush_asks_for_nothing() -> None:
    from extractor.stream import kafka as k

    class Quick:
        def flush(self, timeout: float) -> int:
            return 0

        def list_topics(self, timeout: float = -1):
            raise AssertionError("no metadata request for a flush that did not wait")

    k.flush_all(Quick())


def test_a_worker_left_without_partitions_after_a_loss_takes_a_fresh_consumer():
    """Partitions lost (the session timed out while the broker restarted) and none assigned again for 30 s: a new
    consumer rejoins the group (librdkafka sometimes never finds the coordinator again) and goes on."""
    from extractor.stream.worker import REJOIN_AFTER_LOSS_S

    class Lonely(FakeConsumer):
        closed = False

        def assignment(self):
            return []

        def close(self):
            self.closed = True

    first, second = Lonely([]), Lonely([Msg(entry_bytes("p2", "signs of flu"), 1)])
    made = iter([first, second])
    t = [0.0]

    def clock():
        t[0] += 1.0
        return t[0]

    s = Settings(input_topic="in", processed_topic="out", dlq_topic="dlq", batch_size=1, lexicon_reload_s=0)
    w = Worker(s, FakeChain(), producer=FakeProducer(), consumer_factory=lambda: next(made), clock=clock)
    w._on_lost(first, [])
    w.run(max_messages=1, max_idle_s=10 * REJOIN_AFTER_LOSS_S)
    assert first.closed and second.topics == ["in"]
    assert [json.loads(r["value"])["patient_id"] for r in w.producer.sent if r["topic"] == "out"] == ["p2"]


def test_an_assignment_after_a_loss_keeps_the_consumer():
    class Back(FakeConsumer):
        def assignment(self):
            raise AssertionError("not asked: the group assigned partitions again")

    t = [0.0]

    def clock():
        t[0] += 1.0
        return t[0]

    s = Settings(input_topic="in", processed_topic="out", dlq_topic="dlq", batch_size=1, lexicon_reload_s=0)
    c = Back([Msg(entry_bytes("p1", "signs of flu"), 0)])
    w = Worker(s, FakeChain(), producer=FakeProducer(), consumer=c, clock=clock)
    w._on_lost(c, [])
    w._on_assign(c, [])
    w.run(max_idle_s=60)
    assert w.stats.consumed == 1
