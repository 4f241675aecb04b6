"""``python -m extractor work``: a consumer-group member that turns entries into enriched documents.

The loop (one decision point per record, at-least-once):

1. poll for the first record, then take whatever else is already fetched, up to ``batch_size``;
2. decode + validate each value (``extractor.messages.decode_entry``) — poison goes to the DLQ;
3. run ``chain.extract_many`` on the batch's texts (batched NER);
4. produce each resolved/partial document to processed-entries (key = entry id) and each unresolved entry to
   the DLQ (original bytes, headers with reason/stage/versions/source coordinates);
5. flush the producer and check that EVERY delivery report of the batch succeeded — only then commit the
   batch's offsets synchronously. A failed delivery rewinds the consumer to the batch start instead (the
   documents are idempotent by ``_id``, so the redo is harmless).

SIGTERM/SIGINT only set a stop flag: the current batch finishes, is flushed and committed, then the consumer
closes (leaving the group at once). Partitions being revoked get their finished offsets committed first.
Entry text is never logged at INFO or above.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import signal
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import extractor
from extractor import messages as m
from extractor import metrics
from extractor.config import Settings, load_settings

log = logging.getLogger(__name__)

# commit errors after which the partitions belong to someone else: drop, the new owner redoes the work
_COMMIT_GIVE_UP = {"REBALANCE_IN_PROGRESS", "ILLEGAL_GENERATION", "UNKNOWN_MEMBER_ID", "_ASSIGNMENT_LOST",
                   "FENCED_INSTANCE_ID", "_STATE", "STALE_MEMBER_EPOCH", "UNKNOWN_TOPIC_OR_PART"}


# --- pieces shared by the worker, the sink and the DLQ replay ---------------------------------------------


class StopFlag:
    """Set by SIGTERM/SIGINT (or by code); the loops check it between batches."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self.signal: int | None = None

    def install(self) -> StopFlag:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                signal.signal(sig, self._handler)
        return self

    def _handler(self, signum: int, _frame: Any) -> None:
        self.signal = signum
        self._event.set()

    def set(self) -> None:
        self._event.set()

    def __bool__(self) -> bool:
        return self._event.is_set()

    def wait(self, seconds: float) -> bool:
        return self._event.wait(seconds)


@dataclass
class DeliveryTracker:
    """Counts delivery reports; a batch may be committed only when ``failed == 0`` after a full flush."""

    component: str
    ok: int = 0
    failed: int = 0
    last_error: str | None = None

    def reset(self) -> None:
        self.ok = self.failed = 0
        self.last_error = None

    def __call__(self, err: Any, msg: Any) -> None:
        if err is None:
            self.ok += 1
        else:
            self.failed += 1
            self.last_error = str(err)
            metrics.DELIVERY_ERRORS.labels(self.component).inc()


def produce(producer: Any, topic: str, value: bytes | None, key: bytes | str | None,
            headers: Sequence[tuple[str, bytes]] | None, on_delivery: Callable[[Any, Any], None]) -> None:
    while True:
        try:
            producer.produce(topic, value=value, key=key, headers=list(headers or ()), on_delivery=on_delivery)
            return
        except BufferError:
            producer.poll(0.05)


def flush_all(producer: Any, stop_log_s: float = 10.0) -> None:
    """Flush until nothing is in flight. librdkafka retries until ``message.timeout.ms`` and then reports an
    error, so this returns once every message has a delivery report — success or failure."""
    t0 = time.monotonic()
    warned = False
    while producer.flush(1.0) > 0:
        if not warned and time.monotonic() - t0 > stop_log_s:
            log.warning("producer flush still waiting after %.0fs (broker unreachable?)", stop_log_s)
            warned = True


class _Rebalancing:
    """Truthy result of :func:`commit_offsets` when the group generation moved on under the commit."""

    def __bool__(self) -> bool:
        return True

    def __repr__(self) -> str:
        return "REBALANCING"


REBALANCING = _Rebalancing()


def commit_offsets(consumer: Any, offsets: dict[tuple[str, int], int], component: str,
                   attempts: int = 6) -> bool | _Rebalancing:
    """Synchronous commit of explicit offsets (next offset to read). True when committed, False if still
    failing, :data:`REBALANCING` (truthy) when the commit was refused because the group is rebalancing.

    REBALANCING does not mean the partitions are gone: with cooperative-sticky assignment a member usually
    keeps them across the rebalance (a SIGKILLed peer, a new member), and nobody else will commit those
    offsets. Callers that keep pending offsets should keep the ones of partitions still assigned and commit
    them again later (:func:`still_assigned`); revoked / lost partitions are dropped by the callbacks."""
    if not offsets:
        return True
    from confluent_kafka import KafkaException, TopicPartition

    tps = [TopicPartition(t, p, o) for (t, p), o in offsets.items()]
    delay = 0.2
    for attempt in range(attempts):
        try:
            result = consumer.commit(offsets=tps, asynchronous=False)
            bad = [tp for tp in (result or []) if tp.error is not None]
            if not bad:
                metrics.COMMITS.labels(component, "ok").inc()
                return True
            raise KafkaException(bad[0].error)
        except KafkaException as exc:
            err = exc.args[0] if exc.args else None
            name = err.name() if hasattr(err, "name") else str(err)
            if name in _COMMIT_GIVE_UP:
                metrics.COMMITS.labels(component, "lost").inc()
                log.warning("commit refused (%s): group rebalancing; offsets of partitions still assigned are "
                            "committed again after it", name)
                return REBALANCING
            log.warning("commit failed (%s), attempt %d/%d", name, attempt + 1, attempts)
            time.sleep(delay)
            delay = min(delay * 2, 5.0)
    metrics.COMMITS.labels(component, "failed").inc()
    return False


def still_assigned(consumer: Any, offsets: dict[tuple[str, int], int]) -> dict[tuple[str, int], int]:
    """The part of ``offsets`` whose partitions the consumer still holds (all of them if it cannot tell)."""
    try:
        mine = {(tp.topic, tp.partition) for tp in consumer.assignment()}
    except Exception as exc:  # closed consumer / fake without assignment(): keep everything, retried later
        log.debug("assignment() failed: %s", exc)
        return dict(offsets)
    return {k: o for k, o in offsets.items() if k in mine}


def consumer_config(settings: Settings, group_id: str, **extra: Any) -> dict[str, Any]:
    conf = {
        **settings.kafka_common(),
        "group.id": group_id,
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "auto.offset.reset": "earliest",
        "session.timeout.ms": 10_000,
        "heartbeat.interval.ms": 1_000,
        "max.poll.interval.ms": 300_000,
        "fetch.wait.max.ms": 50,
        "partition.assignment.strategy": "cooperative-sticky",
    }
    conf.update(extra)
    return conf


def poll_batch(consumer: Any, batch_size: int, timeout: float) -> list[Any]:
    """Wait up to ``timeout`` for the first record, then take what is already fetched (no extra wait), so a
    quiet topic has low latency and a busy one gets full batches."""
    first = consumer.consume(num_messages=1, timeout=timeout)
    if not first:
        return []
    if batch_size > 1:
        first.extend(consumer.consume(num_messages=batch_size - 1, timeout=0.005))
    return first


def batch_offsets(msgs: Iterable[Any]) -> tuple[dict[tuple[str, int], int], dict[tuple[str, int], int]]:
    """(first offset, next offset) per partition of a batch."""
    first: dict[tuple[str, int], int] = {}
    nxt: dict[tuple[str, int], int] = {}
    for msg in msgs:
        if msg.error() is not None:
            continue
        k = (msg.topic(), msg.partition())
        o = msg.offset()
        if k not in first or o < first[k]:
            first[k] = o
        if o + 1 > nxt.get(k, -1):
            nxt[k] = o + 1
    return first, nxt


def seek_back(consumer: Any, first: dict[tuple[str, int], int]) -> None:
    from confluent_kafka import TopicPartition

    for (t, p), o in first.items():
        try:
            consumer.seek(TopicPartition(t, p, o))
        except Exception as exc:  # partition no longer ours: its new owner starts from the committed offset
            log.warning("seek %s[%d] to %d failed: %s", t, p, o, exc)


def load_chain(settings: Settings, factory: str | None = None) -> Any:
    """The extraction chain: ``extractor.chain.Chain.from_settings`` or ``module:callable(settings)``."""
    if factory:
        mod, _, attr = factory.partition(":")
        return getattr(importlib.import_module(mod), attr)(settings)
    from extractor.chain import Chain

    return Chain.from_settings(settings)


def chain_versions(chain: Any) -> tuple[str, str]:
    """(extractor_version, lexicon_version) of a chain; ``chain.version`` covers both when no finer field."""
    version = str(getattr(chain, "version", "") or "")
    extractor_version = str(getattr(chain, "extractor_version", None) or extractor.__version__)
    lexicon_version = str(getattr(chain, "lexicon_version", None) or version or "unknown")
    return extractor_version, lexicon_version


def extract_isolating(chain: Any, texts: list[str]) -> list[Any]:
    """``chain.extract_many``; if the batch call raises, retry one by one so that only the entry that breaks
    the chain is dead-lettered (its slot holds the exception)."""
    try:
        results = chain.extract_many(texts)
        if len(results) != len(texts):
            raise RuntimeError(f"chain returned {len(results)} results for {len(texts)} texts")
        return list(results)
    except Exception as exc:
        log.warning("batch extraction failed (%s); isolating per entry", type(exc).__name__)
    out: list[Any] = []
    for t in texts:
        try:
            out.append(chain.extract_many([t])[0])
        except Exception as exc:  # noqa: BLE001 - the exception becomes the DLQ record's error_class
            out.append(exc)
    return out


# --- the worker -------------------------------------------------------------------------------------------


@dataclass
class WorkerStats:
    consumed: int = 0
    processed: int = 0
    dead_lettered: int = 0
    batches: int = 0
    redone_batches: int = 0
    reasons: dict[str, int] = field(default_factory=dict)


class Worker:
    component = "worker"

    def __init__(self, settings: Settings, chain: Any, *, consumer: Any = None, producer: Any = None,
                 stop: StopFlag | None = None, clock: Callable[[], float] = time.monotonic):
        self.settings = settings
        self.chain = chain
        self.stop = stop if stop is not None else StopFlag()
        self.stats = WorkerStats()
        self.clock = clock
        self.tracker = DeliveryTracker(self.component)
        self._pending: dict[tuple[str, int], int] = {}  # processed + flushed, commit not yet acknowledged
        self._batch_dlq: dict[tuple[str, str], int] = {}
        self.extractor_version, self.lexicon_version = chain_versions(chain)
        self.chain_version = str(getattr(chain, "version", "") or self.lexicon_version)
        if consumer is None:
            from confluent_kafka import Consumer

            consumer = Consumer(consumer_config(settings, settings.group_id))
        if producer is None:
            from confluent_kafka import Producer

            from extractor.producer import producer_config

            producer = Producer(producer_config(settings, **{"linger.ms": min(5, settings.producer_linger_ms)}))
        self.consumer = consumer
        self.producer = producer

    # rebalance callbacks (run inside consume(), i.e. between batches)
    def _on_assign(self, consumer: Any, partitions: list[Any]) -> None:
        log.info("assigned %s", [f"{tp.topic}[{tp.partition}]" for tp in partitions])

    def _on_revoke(self, consumer: Any, partitions: list[Any]) -> None:
        keys = {(tp.topic, tp.partition) for tp in partitions}
        mine = {k: o for k, o in self._pending.items() if k in keys}
        log.info("revoked %s; committing %d finished partition offsets",
                 [f"{tp.topic}[{tp.partition}]" for tp in partitions], len(mine))
        if mine:
            flush_all(self.producer)
            commit_offsets(consumer, mine, self.component, attempts=3)
        for k in keys:
            self._pending.pop(k, None)

    def _on_lost(self, consumer: Any, partitions: list[Any]) -> None:
        log.warning("lost %s (not committing)", [f"{tp.topic}[{tp.partition}]" for tp in partitions])
        for tp in partitions:
            self._pending.pop((tp.topic, tp.partition), None)

    def subscribe(self) -> None:
        self.consumer.subscribe([self.settings.input_topic], on_assign=self._on_assign,
                                on_revoke=self._on_revoke, on_lost=self._on_lost)

    def _dead_letter(self, msg: Any, err: m.PoisonMessage | None, *, reason: str, stage: str,
                     error_class: str, detail: str, entry_id: str | None) -> None:
        headers = m.dlq_headers(
            reason=reason, stage=stage, error_class=error_class, error=detail, original=msg.headers(),
            entry_id=entry_id, source_topic=msg.topic(), source_partition=msg.partition(),
            source_offset=msg.offset(), extractor_version=self.extractor_version,
            lexicon_version=self.lexicon_version,
        )
        produce(self.producer, self.settings.dlq_topic, msg.value(), entry_id or msg.key(), headers, self.tracker)
        self._batch_dlq[(stage, reason)] = self._batch_dlq.get((stage, reason), 0) + 1
        log.debug("dead-lettered %s[%d]@%d reason=%s entry_id=%s", msg.topic(), msg.partition(), msg.offset(),
                  reason, entry_id)

    def process(self, msgs: list[Any]) -> bool:
        """Process one batch end to end, commit included. False when the batch had to be redone."""
        t0 = time.perf_counter()
        self.tracker.reset()
        self._batch_dlq = {}
        good: list[tuple[Any, m.Entry]] = []
        real = [msg for msg in msgs if msg.error() is None]
        for msg in msgs:
            if msg.error() is not None:
                log.warning("consumer error: %s", msg.error())
        for msg in real:
            try:
                good.append((msg, m.decode_entry(msg.value(), max_text_chars=self.settings.max_text_chars)))
            except m.PoisonMessage as exc:
                self._dead_letter(msg, exc, reason=exc.reason, stage=exc.stage, error_class=exc.error_class,
                                  detail=exc.detail, entry_id=None)
        results = extract_isolating(self.chain, [e.text for _, e in good]) if good else []
        ok_results = []
        n_processed = 0
        for (msg, entry), result in zip(good, results, strict=True):
            if isinstance(result, Exception):
                self._dead_letter(msg, None, reason=m.R_EXTRACT_ERROR, stage=m.STAGE_EXTRACT,
                                  error_class=type(result).__name__, detail="", entry_id=entry.entry_id)
                continue
            ok_results.append(result)
            if result.status == "unresolved":
                self._dead_letter(msg, None, reason=m.R_UNRESOLVED, stage=m.STAGE_EXTRACT,
                                  error_class="Unresolved", detail=str(result.reason or "")[:100],
                                  entry_id=entry.entry_id)
                continue
            doc = m.build_processed(
                entry, result.to_dict(), extractor_version=self.extractor_version,
                lexicon_version=self.lexicon_version, chain_version=self.chain_version,
                kafka={"topic": msg.topic(), "partition": msg.partition(), "offset": msg.offset()},
            )
            produced_at = _header(msg, m.H_PRODUCED_AT)
            if produced_at and produced_at.isdigit():
                doc["produced_at_ms"] = int(produced_at)
            produce(self.producer, self.settings.processed_topic, m.encode_json(doc), entry.entry_id,
                    None, self.tracker)
            n_processed += 1
        first, nxt = batch_offsets(real)
        flush_all(self.producer)
        self.stats.batches += 1
        if self.tracker.failed:
            # never commit past a record whose output is not durable: redo the whole batch
            log.error("%d of %d deliveries failed (%s); rewinding %d partitions to redo the batch",
                      self.tracker.failed, self.tracker.failed + self.tracker.ok, self.tracker.last_error,
                      len(first))
            self.stats.redone_batches += 1
            seek_back(self.consumer, first)
            self.stop.wait(1.0)
            return False
        # the batch's output is durable: count it
        self.stats.consumed += len(real)
        self.stats.processed += n_processed
        metrics.ENTRIES.labels(self.component).inc(n_processed)
        metrics.count_entities(ok_results)
        for (stage, reason), n in self._batch_dlq.items():
            self.stats.dead_lettered += n
            self.stats.reasons[reason] = self.stats.reasons.get(reason, 0) + n
            metrics.DEAD_LETTERED.labels(self.component, stage, reason).inc(n)
        for k, o in nxt.items():
            self._pending[k] = max(o, self._pending.get(k, 0))
        self._commit_pending()
        metrics.BATCH_SECONDS.labels(self.component).observe(time.perf_counter() - t0)
        metrics.BATCH_SIZE.labels(self.component).observe(len(real))
        log.debug("batch of %d done in %.3fs offsets=%s", len(real), time.perf_counter() - t0, nxt)
        return True

    def _commit_pending(self) -> None:
        res = commit_offsets(self.consumer, self._pending, self.component)
        if res is REBALANCING:  # keep what is still ours: committed by the next batch or idle poll
            self._pending = still_assigned(self.consumer, self._pending)
        elif res:
            self._pending.clear()

    def maybe_reload(self) -> None:
        reload = getattr(self.chain, "reload_if_changed", None)
        if reload is None:
            return
        try:
            if reload():
                self.extractor_version, self.lexicon_version = chain_versions(self.chain)
                self.chain_version = str(getattr(self.chain, "version", "") or self.lexicon_version)
                metrics.LEXICON_RELOADS.inc()
                metrics.set_chain_info(self.extractor_version, self.lexicon_version)
                log.info("lexicons reloaded: lexicon_version=%s", self.lexicon_version)
        except Exception as exc:  # a broken lexicon edit must not stop the worker: keep the old chain
            log.error("lexicon reload failed, keeping the current chain: %s", exc)

    def run(self, *, max_idle_s: float | None = None, max_messages: int | None = None) -> WorkerStats:
        self.subscribe()
        metrics.set_chain_info(self.extractor_version, self.lexicon_version)
        last_msg = last_reload = last_report = self.clock()
        reported = 0
        try:
            while not self.stop:
                msgs = poll_batch(self.consumer, self.settings.batch_size, self.settings.poll_timeout_s)
                now = self.clock()
                if msgs:
                    last_msg = now
                    self.process(msgs)
                elif self._pending:
                    self._commit_pending()
                if self.settings.lexicon_reload_s and now - last_reload >= self.settings.lexicon_reload_s:
                    last_reload = now
                    self.maybe_reload()
                if now - last_report >= 10:
                    lags = metrics.update_lag(self.consumer, self.component)
                    log.info("progress consumed=%d processed=%d dead_lettered=%d (+%d) lag=%d",
                             self.stats.consumed, self.stats.processed, self.stats.dead_lettered,
                             self.stats.consumed - reported, sum(lags.values()))
                    reported = self.stats.consumed
                    last_report = now
                if max_idle_s is not None and now - last_msg >= max_idle_s:
                    log.info("idle for %.1fs, stopping", max_idle_s)
                    break
                if max_messages is not None and self.stats.consumed >= max_messages:
                    break
        finally:
            self.close()
        return self.stats

    def close(self) -> None:
        flush_all(self.producer)
        if self._pending:
            commit_offsets(self.consumer, self._pending, self.component, attempts=10)
            self._pending.clear()
        try:
            self.consumer.close()
        except Exception as exc:  # already closed
            log.debug("consumer close: %s", exc)
        log.info("worker stopped consumed=%d processed=%d dead_lettered=%d reasons=%s redone_batches=%d",
                 self.stats.consumed, self.stats.processed, self.stats.dead_lettered,
                 json.dumps(self.stats.reasons, sort_keys=True), self.stats.redone_batches)


def _header(msg: Any, name: str) -> str | None:
    for k, v in msg.headers() or ():
        if k == name:
            return v.decode("utf-8", "replace") if isinstance(v, bytes) else v
    return None


def add_common_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--metrics-port", type=int, default=None, help="Prometheus port (0 = off)")
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--max-idle-s", type=float, default=None,
                        help="exit after this many seconds without records (demo/bench); default: run forever")
    parser.add_argument("--max-messages", type=int, default=None, help=argparse.SUPPRESS)


def configure_parser(parser: argparse.ArgumentParser) -> None:
    add_common_args(parser)
    parser.add_argument("--group-id", default=None)
    parser.add_argument("--input-topic", default=None)
    parser.add_argument("--processed-topic", default=None)
    parser.add_argument("--dlq-topic", default=None)
    parser.add_argument("--chain-factory", default=None, help=argparse.SUPPRESS)


def run(args: argparse.Namespace) -> int:
    settings = load_settings(args.config, metrics_port=args.metrics_port, batch_size=args.batch_size,
                             group_id=args.group_id, input_topic=args.input_topic,
                             processed_topic=args.processed_topic, dlq_topic=args.dlq_topic)
    log.info("worker settings %s", json.dumps(settings.redacted(), sort_keys=True))
    stop = StopFlag().install()
    metrics.serve(settings.metrics_port)
    t0 = time.monotonic()
    chain = load_chain(settings, args.chain_factory)
    ev, lv = chain_versions(chain)
    log.info("chain loaded in %.1fs extractor_version=%s lexicon_version=%s", time.monotonic() - t0, ev, lv)
    worker = Worker(settings, chain, stop=stop)
    worker.run(max_idle_s=args.max_idle_s, max_messages=args.max_messages)
    return 0
