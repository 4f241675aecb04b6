"""``python -m extractor work``: a consumer-group member that turns entries into enriched documents.

The loop (one decision point per record, at-least-once):

1. poll for the first record, then take whatever else is already fetched, up to ``batch_size`` (fewer when the
   last batch held long notes: about ``4 * max_batch_chars`` characters a poll);
2. decode + validate each value (``extractor.stream.messages.decode_entry``) — poison goes to the DLQ;
3. run ``chain.extract_many`` on the batch's texts in chunks of at most ``max_batch_chars`` characters; between
   chunks of a long batch the consumer polls with its partitions paused, so it never exceeds
   ``max.poll.interval.ms`` and the group does not rebalance under it;
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
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from extractor.config import Settings, load_settings
from extractor.stream import messages as m
from extractor.stream import metrics
from extractor.stream.extraction import chain_versions, extract_isolating, load_chain
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
    keep_membership,
    poll_batch,
    produce,
    producer_config,
    raise_if_fatal,
    seek_back,
    static_member,
    with_commit_callback,
)

log = logging.getLogger(__name__)
REJOIN_AFTER_LOSS_S = 30.0  # partitions lost and none assigned again this long: a new consumer


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
                 stop: StopFlag | None = None, clock: Callable[[], float] = time.monotonic,
                 consumer_factory: Callable[[], Any] | None = None):
        self.settings = settings
        self.chain = chain
        self.stop = stop if stop is not None else StopFlag()
        self.stats = WorkerStats()
        self.clock = clock
        self.tracker = DeliveryTracker(self.component)
        self.commits = OffsetCommitter(self.component)  # processed + flushed, commit not yet acknowledged
        self._batch_dlq: dict[tuple[str, str], int] = {}
        self.extractor_version, self.lexicon_version = chain_versions(chain)
        self.chain_version = str(getattr(chain, "version", "") or self.lexicon_version)
        self.poll_size = settings.batch_size  # shrinks for long notes (see _extract_in_chunks)
        self.keepalive_s = min(10.0, settings.max_poll_interval_ms / 1000 / 6)
        # how a fresh consumer is made after a fatal error (None: only the consumer given, e.g. a test's fake)
        self._new_consumer: Callable[[], Any] | None = consumer_factory
        # the review console's published lexicon edits (extractor/stream/lexicon_updates.py); real Kafka only
        self._follow = settings.follow_lexicon_updates and consumer is None and consumer_factory is None
        self.follower: Any = None
        if consumer is None and consumer_factory is None:
            from confluent_kafka import Consumer

            config = consumer_config(settings, settings.group_id, on_commit=self.commits.on_commit,
                                     **static_member(settings))
            self._new_consumer = lambda: Consumer(config)
        self.renewer = ConsumerRenewer(self._new_consumer, self.component)
        if consumer is None:
            assert self._new_consumer is not None
            consumer = self._new_consumer()
        if producer is None:
            from confluent_kafka import Producer

            producer = Producer(producer_config(settings, **{"linger.ms": min(5, settings.producer_linger_ms)}))
        self.consumer = with_commit_callback(consumer, self.commits)
        self.producer = producer
        self._lost_at: float | None = None  # when the partitions were lost, until the group assigns again

    # rebalance callbacks (run inside consume(), i.e. between batches)
    def _on_assign(self, consumer: Any, partitions: list[Any]) -> None:
        self._lost_at = None
        log.info("assigned %s", [f"{tp.topic}[{tp.partition}]" for tp in partitions])

    def _on_revoke(self, consumer: Any, partitions: list[Any]) -> None:
        mine = self.commits.drop((tp.topic, tp.partition) for tp in partitions)
        log.info("revoked %s; committing %d finished partition offsets",
                 [f"{tp.topic}[{tp.partition}]" for tp in partitions], len(mine))
        if mine:
            flush_all(self.producer)
            commit_offsets_nowait(consumer, mine, self.component)

    def _on_lost(self, consumer: Any, partitions: list[Any]) -> None:
        log.warning("lost %s (not committing)", [f"{tp.topic}[{tp.partition}]" for tp in partitions])
        self.commits.drop((tp.topic, tp.partition) for tp in partitions)
        self._lost_at = self.clock()

    def _stranded(self, now: float) -> bool:
        """Partitions lost (a session that timed out while the broker restarted) and none assigned again for
        :data:`REJOIN_AFTER_LOSS_S`: librdkafka 2.16 sometimes never finds the group coordinator again after a
        broker restart and the worker polls an empty assignment for ever (tests/integration/test_faults.py, once
        in a few runs). True once per loss: the caller replaces the consumer."""
        if self._lost_at is None or now - self._lost_at < REJOIN_AFTER_LOSS_S:
            return False
        self._lost_at = None
        try:
            return not self.consumer.assignment()
        except Exception:  # noqa: BLE001 - a consumer that cannot say is no better off
            return True

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
        raise_if_fatal(msgs)
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
        results = self._extract_in_chunks([e.text for _, e in good]) if good else []
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
        self.commits.done(nxt)
        self.commits.commit(self.consumer)
        metrics.BATCH_SECONDS.labels(self.component).observe(time.perf_counter() - t0)
        now_ms = time.time() * 1000
        latency = metrics.ENTRY_LATENCY.labels(self.component)
        for msg in real:
            ts_type, ts = msg.timestamp()
            if ts_type and ts > 0:
                latency.observe(max(0.0, (now_ms - ts) / 1000))
        metrics.BATCH_SIZE.labels(self.component).observe(len(real))
        log.debug("batch of %d done in %.3fs offsets=%s", len(real), time.perf_counter() - t0, nxt)
        return True

    def _extract_in_chunks(self, texts: list[str]) -> list[Any]:
        """``extract_many`` over chunks of at most ``max_batch_chars`` characters (one entry at least), keeping
        the group membership alive between chunks; sizes the next poll from this batch's note length."""
        limit = self.settings.max_batch_chars
        results: list[Any] = []
        start = 0
        last_poll = self.clock()
        while start < len(texts):
            end, chars = start, 0
            while end < len(texts) and (end == start or chars + len(texts[end]) <= limit):
                chars += len(texts[end])
                end += 1
            results.extend(extract_isolating(self.chain, texts[start:end]))
            start = end
            if start < len(texts) and self.clock() - last_poll >= self.keepalive_s:
                keep_membership(self.consumer)
                last_poll = self.clock()
        avg = max(1.0, sum(map(len, texts)) / len(texts))
        self.poll_size = max(1, min(self.settings.batch_size, int(4 * limit / avg)))
        return results

    def maybe_reload(self) -> None:
        reload = getattr(self.chain, "reload_if_changed", None)
        if reload is None:
            return
        failures = getattr(self.chain, "reload_failures", 0)
        if self._follow:
            try:
                if self.follower is None:
                    from extractor.stream.lexicon_updates import LexiconFollower

                    self.follower = LexiconFollower(self.settings)
                self.follower.poll(0.0)
            except Exception as exc:  # noqa: BLE001 - the topic's trouble must not stop the worker
                log.warning("lexicon updates not followed this time: %s", exc)
        try:
            if reload():
                self.extractor_version, self.lexicon_version = chain_versions(self.chain)
                self.chain_version = str(getattr(self.chain, "version", "") or self.lexicon_version)
                metrics.LEXICON_RELOADS.inc()
                self._set_info()
                log.info("lexicons reloaded: lexicon_version=%s", self.lexicon_version)
        except Exception as exc:  # a broken lexicon edit must not stop the worker: keep the old chain
            log.error("lexicon reload failed, keeping the current chain: %s", exc)
            metrics.LEXICON_RELOAD_FAILURES.inc()
        if getattr(self.chain, "reload_failures", 0) > failures:
            metrics.LEXICON_RELOAD_FAILURES.inc(getattr(self.chain, "reload_failures", 0) - failures)

    def _set_info(self) -> None:
        metrics.set_chain_info(self.extractor_version, self.lexicon_version,
                               str(getattr(self.chain, "model_name", "none") or "none"))
        metrics.set_calibration_baseline(getattr(self.chain, "calibrator", None))

    def run(self, *, max_idle_s: float | None = None, max_messages: int | None = None) -> WorkerStats:
        self.subscribe()
        self._set_info()
        last_msg = last_reload = last_report = self.clock()
        last_lag = float("-inf")
        lags: dict[tuple[str, int], int] = {}
        reported = 0
        try:
            while not self.stop:
                try:  # a fatal error surfaces as an event, from a commit or from a rebalance callback
                    msgs = poll_batch(self.consumer, self.poll_size, self.settings.poll_timeout_s)
                    now = self.clock()
                    if msgs:
                        last_msg = now
                        self.process(msgs)
                    else:  # idle: a commit not acknowledged yet is sent again (see OffsetCommitter)
                        self.commits.commit(self.consumer)
                except FatalConsumerError as exc:
                    self._renew_consumer(exc)
                    continue
                if self._stranded(now):
                    self._renew_consumer(FatalConsumerError(
                        f"no partitions {REJOIN_AFTER_LOSS_S:.0f}s after losing them (group coordinator not found "
                        "again?)"))
                    continue
                if self.settings.lexicon_reload_s and now - last_reload >= self.settings.lexicon_reload_s:
                    last_reload = now
                    self.maybe_reload()
                if now - last_lag >= metrics.LAG_EVERY_S:  # the lag gauge: fresh for every scrape
                    lags = metrics.update_lag(self.consumer, self.component)
                    last_lag = now
                if now - last_report >= 10:
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

    def _renew_consumer(self, exc: FatalConsumerError) -> None:
        """A fresh consumer after a fatal error (see :class:`ConsumerRenewer`), without reloading the chain."""
        self.consumer = with_commit_callback(self.renewer.renew(self.consumer, exc), self.commits)
        self.commits.clear()
        self.subscribe()

    def close(self) -> None:
        flush_all(self.producer)
        self.commits.flush(self.consumer)
        try:
            self.consumer.close()
        except Exception as exc:  # already closed
            log.debug("consumer close: %s", exc)
        if self.follower is not None:
            self.follower.close()
            self.follower = None
        log.info("worker stopped consumed=%d processed=%d dead_lettered=%d reasons=%s redone_batches=%d",
                 self.stats.consumed, self.stats.processed, self.stats.dead_lettered,
                 json.dumps(self.stats.reasons, sort_keys=True), self.stats.redone_batches)


def _header(msg: Any, name: str) -> str | None:
    for k, v in msg.headers() or ():
        if k == name:
            return v.decode("utf-8", "replace") if isinstance(v, bytes) else v
    return None


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
    try:
        worker.run(max_idle_s=args.max_idle_s, max_messages=args.max_messages)
    except FatalConsumerError as exc:
        log.error("fatal consumer error, exiting for a restart: %s", exc)
        return 3
    return 0
