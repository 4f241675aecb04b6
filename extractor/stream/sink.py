"""``python -m extractor sink``: write processed-entries into MongoDB, idempotently, losing nothing.

Each consumed batch becomes one ``bulk_write`` of ``ReplaceOne({"_id": doc["_id"]}, doc, upsert=True)``
(de-duplicated by ``_id`` within the batch, last record wins). Offsets are committed only after the write
succeeded. While MongoDB is unreachable the whole batch is retried with exponential backoff (capped at
``sink_max_backoff_s``) — FerretDB reports a failed multi-statement update as one command error, so the unit of
retry is the batch, which is safe because every write is an idempotent upsert.

A write error that persists after a few attempts while the server is reachable is bisected document by
document; the documents that alone keep failing go to the DLQ (``stage=sink``, ``reason=bad_document``).

The Kafka Connect MongoDB sink (connectors/mongo-sink.json) writes the very same documents with the same
``_id``, so both may run side by side; whichever writes last wins with identical content except
``written_at_ms``.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from extractor.config import Settings, load_settings
from extractor.stream import messages as m
from extractor.stream import metrics, store
from extractor.stream.kafka import (
    ConsumerRenewer,
    DeliveryTracker,
    FatalConsumerError,
    OffsetCommitter,
    StopFlag,
    add_common_args,
    batch_offsets,
    commit_offsets_nowait,
    consumer_config,
    flush_all,
    poll_batch,
    produce,
    producer_config,
    raise_if_fatal,
    seek_back,
    static_member,
    with_commit_callback,
)
from extractor.stream.store import mongo_client

log = logging.getLogger(__name__)

_PERMANENT_AFTER = 4  # attempts with a reachable server before bisecting for a bad document
WRITE_CHUNK = store.WRITE_CHUNK


def _is_transient(exc: Exception) -> bool:
    from pymongo.errors import (
        AutoReconnect,
        BulkWriteError,
        ConnectionFailure,
        DuplicateKeyError,
        NetworkTimeout,
        ServerSelectionTimeoutError,
        WriteConcernError,
    )

    if isinstance(exc, (AutoReconnect, ConnectionFailure, NetworkTimeout, ServerSelectionTimeoutError,
                        WriteConcernError, DuplicateKeyError)):
        return True
    if isinstance(exc, BulkWriteError):
        errs = exc.details.get("writeErrors", [])
        # duplicate key = a concurrent non-atomic upsert (FerretDB, or Kafka Connect racing us): retry
        return bool(errs) and all(e.get("code") == 11000 for e in errs)
    return getattr(exc, "code", None) in (11000, 6, 7, 89, 91, 189, 9001, 10107, 11600, 11602, 13435, 13436)


@dataclass
class SinkStats:
    consumed: int = 0
    written: int = 0
    retries: int = 0
    dead_lettered: int = 0
    batches: int = 0


class Sink:
    component = "sink"

    def __init__(self, settings: Settings, *, consumer: Any = None, collection: Any = None,
                 producer: Any = None, stop: StopFlag | None = None, topic: str | None = None,
                 consumer_factory: Callable[[], Any] | None = None):
        self.settings = settings
        self.stop = stop if stop is not None else StopFlag()
        self.stats = SinkStats()
        self.topic = topic or settings.processed_topic
        # static membership (EXTRACTOR_GROUP_INSTANCE_ID) as for the workers: after a broker restart the sink
        # takes its partitions back at once instead of waiting out its old member's session in a rebalance
        self.commits = OffsetCommitter(self.component)  # written to MongoDB, commit not yet acknowledged
        new_consumer = consumer_factory
        if consumer is None and consumer_factory is None:
            from confluent_kafka import Consumer

            config = consumer_config(settings, settings.sink_group_id, on_commit=self.commits.on_commit,
                                     **static_member(settings))
            new_consumer = lambda: Consumer(config)  # noqa: E731
        self.renewer = ConsumerRenewer(new_consumer, self.component)
        if consumer is None:
            assert new_consumer is not None
            consumer = new_consumer()
        if collection is None:
            collection = store.collection(settings, mongo_client(settings, appname="clinical-extractor-sink"))
        self.consumer = with_commit_callback(consumer, self.commits)
        self.collection = collection
        self._producer = producer
        self.tracker = DeliveryTracker(self.component)

    @property
    def producer(self) -> Any:  # only needed for the rare bad document
        if self._producer is None:
            from confluent_kafka import Producer


            self._producer = Producer(producer_config(self.settings))
        return self._producer

    def ensure_indexes(self) -> None:
        delay = 0.2
        while not self.stop:
            try:
                names = store.ensure_indexes(self.settings, self.collection)
                log.info("indexes present: %s", ", ".join(names))
                return
            except Exception as exc:
                if not _is_transient(exc):
                    raise
                log.warning("MongoDB not reachable for create_index (%s); retrying in %.1fs",
                            type(exc).__name__, delay)
                self.stop.wait(delay)
                delay = min(delay * 2, self.settings.sink_max_backoff_s)

    def _write(self, docs: list[dict[str, Any]]) -> None:
        """Upsert ``docs`` by ``_id`` (insert, then ReplaceOne for those already there), unordered: idempotent, so
        a redelivery is harmless."""
        store.upsert_documents(self.collection, docs, WRITE_CHUNK, insert_first=True)

    def write_with_retry(self, docs: list[dict[str, Any]]) -> tuple[bool, list[dict[str, Any]]]:
        """(written, bad documents). ``written`` False only when stopping while MongoDB is still failing."""
        delay = 0.1
        permanent = 0
        while True:
            try:
                self._write(docs)
                return True, []
            except Exception as exc:
                self.stats.retries += 1
                metrics.SINK_RETRIES.labels(type(exc).__name__).inc()
                if not _is_transient(exc):
                    permanent += 1
                    if permanent >= _PERMANENT_AFTER:
                        return True, self._bisect(docs)
                log.warning("MongoDB write of %d documents failed (%s: %s); retrying in %.1fs", len(docs),
                            type(exc).__name__, str(exc)[:200], delay)
                if self.stop.wait(delay):
                    log.warning("stopping with MongoDB still failing; offsets not committed (redelivered later)")
                    return False, []
                delay = min(delay * 2, self.settings.sink_max_backoff_s)

    def _bisect(self, docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        bad = []
        for d in docs:
            try:
                self._write([d])
            except Exception as exc:
                if _is_transient(exc):
                    raise
                log.error("document _id=%s rejected by MongoDB: %s", d.get("_id"), type(exc).__name__)
                bad.append(d)
        return bad

    def process(self, msgs: list[Any]) -> bool:
        t0 = time.perf_counter()
        raise_if_fatal(msgs)
        real = [msg for msg in msgs if msg.error() is None]
        for msg in msgs:
            if msg.error() is not None:
                log.warning("consumer error: %s", msg.error())
        by_id: dict[Any, dict[str, Any]] = {}
        src: dict[Any, Any] = {}
        bad_msgs: list[tuple[Any, str]] = []
        for msg in real:
            try:
                doc = m.decode_json(msg.value())
                if not isinstance(doc, dict) or "_id" not in doc:
                    raise ValueError("not an object with _id")
            except (ValueError, TypeError) as exc:
                bad_msgs.append((msg, type(exc).__name__))
                continue
            by_id[doc["_id"]] = doc
            src[doc["_id"]] = msg
        docs = list(by_id.values())
        if docs:
            written, rejected = self.write_with_retry(docs)
            if not written:
                return False
            bad_msgs.extend((src[d["_id"]], "InvalidDocument") for d in rejected)
            self.stats.written += len(docs) - len(rejected)
            metrics.DOCS_WRITTEN.inc(len(docs) - len(rejected))
        first, nxt = batch_offsets(real)
        if bad_msgs:
            self.tracker.reset()
            for msg, cls in bad_msgs:
                headers = m.dlq_headers(reason=m.R_BAD_DOCUMENT, stage=m.STAGE_SINK, error_class=cls,
                                        original=msg.headers(), source_topic=msg.topic(),
                                        source_partition=msg.partition(), source_offset=msg.offset())
                produce(self.producer, self.settings.dlq_topic, msg.value(), msg.key(), headers, self.tracker)
                metrics.DEAD_LETTERED.labels(self.component, m.STAGE_SINK, m.R_BAD_DOCUMENT).inc()
            flush_all(self.producer)
            if self.tracker.failed:
                log.error("dead-lettering bad documents failed; redoing the batch")
                seek_back(self.consumer, first)
                return False
            self.stats.dead_lettered += len(bad_msgs)
        # never blocks the poll loop: what is not acknowledged stays pending (the documents are written; a
        # redelivery is idempotent) and is sent again after the next batch or poll (OffsetCommitter)
        self.commits.done(nxt)
        self.commits.commit(self.consumer)
        self.stats.consumed += len(real)
        self.stats.batches += 1
        metrics.BATCH_SECONDS.labels(self.component).observe(time.perf_counter() - t0)
        metrics.BATCH_SIZE.labels(self.component).observe(len(real))
        return True

    def _on_revoke(self, consumer: Any, partitions: list[Any]) -> None:
        mine = self.commits.drop((tp.topic, tp.partition) for tp in partitions)
        if mine:
            commit_offsets_nowait(consumer, mine, self.component)

    def _on_lost(self, consumer: Any, partitions: list[Any]) -> None:
        self.commits.drop((tp.topic, tp.partition) for tp in partitions)

    def subscribe(self) -> None:
        self.consumer.subscribe([self.topic], on_assign=lambda c, p: log.info(
            "assigned %s", [f"{tp.topic}[{tp.partition}]" for tp in p]), on_revoke=self._on_revoke,
            on_lost=self._on_lost)

    def _renew_consumer(self, exc: FatalConsumerError) -> None:
        """A fresh consumer after a fatal error (see :class:`ConsumerRenewer`); the documents of offsets not
        committed yet are written again (idempotent upserts)."""
        self.consumer = with_commit_callback(self.renewer.renew(self.consumer, exc), self.commits)
        self.commits.clear()
        self.subscribe()

    def run(self, *, max_idle_s: float | None = None) -> SinkStats:
        self.ensure_indexes()
        self.subscribe()
        last_msg = last_report = time.monotonic()
        last_lag = float("-inf")
        lags: dict[tuple[str, int], int] = {}
        try:
            while not self.stop:
                try:  # a fatal error surfaces as an event, from a commit or from a rebalance callback
                    msgs = poll_batch(self.consumer, self.settings.batch_size, self.settings.poll_timeout_s)
                    now = time.monotonic()
                    if msgs:
                        last_msg = now
                        if not self.process(msgs):
                            break  # stopping while MongoDB is down: exit without committing
                    else:  # idle: a commit not acknowledged yet is sent again
                        self.commits.commit(self.consumer)
                except FatalConsumerError as exc:
                    self._renew_consumer(exc)
                    continue
                if now - last_lag >= metrics.LAG_EVERY_S:  # the lag gauge: fresh for every scrape
                    lags = metrics.update_lag(self.consumer, self.component)
                    last_lag = now
                if now - last_report >= 10:
                    log.info("progress consumed=%d written=%d retries=%d lag=%d", self.stats.consumed,
                             self.stats.written, self.stats.retries, sum(lags.values()))
                    last_report = now
                if max_idle_s is not None and now - last_msg >= max_idle_s:
                    log.info("idle for %.1fs, stopping", max_idle_s)
                    break
        finally:
            self.commits.flush(self.consumer)
            try:
                self.consumer.close()
            except Exception as exc:
                log.debug("consumer close: %s", exc)
            if self._producer is not None:
                flush_all(self._producer)
            log.info("sink stopped consumed=%d written=%d retries=%d dead_lettered=%d", self.stats.consumed,
                     self.stats.written, self.stats.retries, self.stats.dead_lettered)
        return self.stats


def configure_parser(parser: argparse.ArgumentParser) -> None:
    add_common_args(parser)
    parser.add_argument("--group-id", default=None, help="consumer group (default: settings.sink_group_id)")
    parser.add_argument("--topic", default=None, help="topic to read (default: settings.processed_topic)")
    parser.add_argument("--database", default=None)
    parser.add_argument("--collection", default=None)


def run(args: argparse.Namespace) -> int:
    settings = load_settings(args.config, metrics_port=args.metrics_port, batch_size=args.batch_size,
                             sink_group_id=args.group_id, processed_topic=args.topic,
                             mongo_database=args.database, mongo_collection=args.collection)
    log.info("sink settings %s", json.dumps(settings.redacted(), sort_keys=True))
    stop = StopFlag().install()
    metrics.serve(settings.metrics_port)
    try:
        Sink(settings, stop=stop).run(max_idle_s=args.max_idle_s)
    except FatalConsumerError as exc:
        log.error("fatal consumer error, exiting for a restart: %s", exc)
        return 3
    return 0
