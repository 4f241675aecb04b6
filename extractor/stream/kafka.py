"""Kafka plumbing shared by the worker, the sink and the DLQ replay: client configs, stop flag, delivery
tracking, batched polls and offset commits that survive rebalances.

Nothing here knows what an entry or a document is; the loops in :mod:`extractor.stream.worker`,
:mod:`extractor.stream.sink` and :mod:`extractor.stream.dlq` put these pieces together.
"""

from __future__ import annotations

import argparse
import logging
import signal
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from extractor.config import Settings
from extractor.stream import metrics

log = logging.getLogger(__name__)

# commit errors after which the partitions belong to someone else: drop, the new owner redoes the work
_COMMIT_GIVE_UP = {"REBALANCE_IN_PROGRESS", "ILLEGAL_GENERATION", "UNKNOWN_MEMBER_ID", "_ASSIGNMENT_LOST",
                   "FENCED_INSTANCE_ID", "_STATE", "STALE_MEMBER_EPOCH", "UNKNOWN_TOPIC_OR_PART"}



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


METADATA_REFRESH_S = 5.0  # while a flush waits past stop_log_s: ask for the cluster's metadata this often


def flush_all(producer: Any, stop_log_s: float = 10.0) -> None:
    """Flush until nothing is in flight. librdkafka retries until ``message.timeout.ms`` and then reports an
    error, so this returns once every message has a delivery report — success or failure.

    While it waits past ``stop_log_s`` it also asks for the cluster's metadata every :data:`METADATA_REFRESH_S`:
    after a broker restart librdkafka (2.16) sometimes keeps partitions whose leader it saw as -1 during the
    controlled shutdown ("new leader-1 not found in cache") and never looks again, so a worker's batch waited out
    the whole ``message.timeout.ms`` (300 s) with the broker back after 4 s (tests/integration/test_faults.py,
    static members, once in about a dozen runs). A metadata request names the leaders again."""
    t0 = time.monotonic()
    warned = False
    next_refresh = t0 + stop_log_s
    while producer.flush(1.0) > 0:
        now = time.monotonic()
        if not warned and now - t0 > stop_log_s:
            log.warning("producer flush still waiting after %.0fs (broker unreachable?)", stop_log_s)
            warned = True
        if now >= next_refresh:
            next_refresh = now + METADATA_REFRESH_S
            try:
                producer.list_topics(timeout=2.0)
            except Exception as exc:  # noqa: BLE001 - the broker may still be down: the flush goes on waiting
                log.debug("metadata refresh during a flush failed: %s", exc)


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
            if name == "_FATAL" or (hasattr(err, "fatal") and err.fatal()):
                metrics.COMMITS.labels(component, "lost").inc()
                raise FatalConsumerError(str(err)) from None  # retrying a fatal consumer only wastes time
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


class OffsetCommitter:
    """The offsets a loop has finished (its output durable) and their commits, which never block the poll loop.

    A synchronous commit can wait for ever: after a broker restart the session of a consumer blocked in
    ``commit`` expires, librdkafka needs the application's next poll to serve the revoke before it rejoins,
    and the commit waits for the group it cannot rejoin (a 4-minute soak's sink hung so with static
    membership). Here each batch's offsets are committed asynchronously and :meth:`on_commit` (the consumer's
    ``on_commit`` callback, served from ``consume()``) drops what the broker acknowledged.

    One commit at a time: the next is sent only when the last one's result came back. librdkafka retries a
    commit that meets a loading coordinator by itself, so two commits in flight can land in either order, and
    an older one landing last moves the group's offset back (seen in a broker-restart test: a worker done with
    every record, its group 500 records behind for ever). A commit with no result after ``stuck_s`` is
    counted as failed (the alert) and the next one is sent anyway: at worst the offset moves back and records
    are processed again, never skipped. A revoked or lost partition's offsets are dropped (:meth:`drop`); its
    next owner starts from the last commit. Nothing is lost either way: a commit only ever names records whose
    output is durable, and one that never lands means those records are processed again (writes are idempotent)."""

    def __init__(self, component: str, *, stuck_s: float = 60.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.component = component
        self.stuck_s = stuck_s
        self.clock = clock
        self.pending: dict[tuple[str, int], int] = {}  # finished, commit not acknowledged yet
        self._inflight: dict[tuple[str, int], int] | None = None  # the commit sent, its result not back yet
        self._sent_at = float("-inf")
        self._fatal: Any = None

    @property
    def in_flight(self) -> bool:
        return self._inflight is not None

    def done(self, offsets: dict[tuple[str, int], int]) -> None:
        """Offsets (next offset to read) whose records' output is durable."""
        for k, o in offsets.items():
            if o > self.pending.get(k, -1):
                self.pending[k] = o

    def drop(self, keys: Iterable[tuple[str, int]]) -> dict[tuple[str, int], int]:
        """Forget the partitions ``keys`` (revoked or lost); returns their pending offsets."""
        return {k: o for k in keys if (o := self.pending.pop(k, None)) is not None}

    def clear(self) -> None:
        """A new consumer: nothing pending, nothing in flight (the old consumer's results never come)."""
        self.pending.clear()
        self._inflight = None

    def commit(self, consumer: Any) -> None:
        """Send the pending offsets unless a commit is in flight. Raises :class:`FatalConsumerError` once a fatal
        commit result came back."""
        if self._fatal is not None:
            err, self._fatal = self._fatal, None
            raise FatalConsumerError(str(err))
        if not self.pending:
            return
        now = self.clock()
        if self._inflight is not None:
            if now - self._sent_at < self.stuck_s:
                return
            metrics.COMMITS.labels(self.component, "failed").inc()
            log.warning("offset commit without a result for %.0fs; sending the next one", now - self._sent_at)
        from confluent_kafka import KafkaException, TopicPartition

        offsets = dict(self.pending)
        try:
            consumer.commit(offsets=[TopicPartition(t, p, o) for (t, p), o in offsets.items()], asynchronous=True)
        except KafkaException as exc:
            err = exc.args[0] if exc.args else None
            if hasattr(err, "fatal") and (err.fatal() or err.code() == FATAL_CODE):
                raise FatalConsumerError(str(err)) from None
            log.debug("commit not queued (%s): sent again later", exc)
            return
        except RuntimeError as exc:  # consumer closed
            log.debug("commit not queued (%s)", exc)
            return
        self._inflight = offsets
        self._sent_at = now

    def on_commit(self, err: Any, partitions: list[Any]) -> None:
        """The consumer's ``on_commit`` callback (also called for commits sent elsewhere: a revoke's)."""
        got = {(tp.topic, tp.partition): tp.offset for tp in partitions or ()}
        if self._inflight is not None and got == self._inflight:
            self._inflight = None
        if err is not None:
            name = err.name() if hasattr(err, "name") else str(err)
            if err.code() == FATAL_CODE or (hasattr(err, "fatal") and err.fatal()):
                self._fatal = err
                metrics.COMMITS.labels(self.component, "lost").inc()
            elif name in _COMMIT_GIVE_UP:  # the group is rebalancing: partitions kept are sent again
                metrics.COMMITS.labels(self.component, "lost").inc()
                log.info("commit refused (%s): group rebalancing; offsets of partitions kept are sent again",
                         name)
            elif name != "_NO_OFFSET":
                metrics.COMMITS.labels(self.component, "retried").inc()
                log.info("commit failed (%s): sent again", name)
            return
        acked = False
        for tp in partitions or ():
            if tp.error is not None:
                continue
            k = (tp.topic, tp.partition)
            acked = True
            if k in self.pending and self.pending[k] <= tp.offset:
                del self.pending[k]
        if acked:
            metrics.COMMITS.labels(self.component, "ok").inc()

    def flush(self, consumer: Any, timeout_s: float = 10.0) -> None:
        """The last commit, when stopping: the callbacks are served (every partition paused, so that no record
        comes) until the pending offsets are acknowledged or ``timeout_s`` passed. Offsets not acknowledged then
        are processed again by the partitions' next owner: nothing is lost, and stopping never hangs."""
        if not self.pending:
            return
        deadline = self.clock() + timeout_s
        try:
            consumer.pause(consumer.assignment())
        except Exception as exc:  # noqa: BLE001 - a fake, or a consumer already unusable
            log.debug("pausing before the final commit: %s", exc)
        try:
            while self.pending and self.clock() < deadline:
                self.commit(consumer)  # sent once the commit in flight (if any) has its result
                consumer.poll(0.1)
        except FatalConsumerError as exc:  # not committed: processed again by whoever takes the partitions
            log.warning("final commit impossible: %s", exc)
        except Exception as exc:  # noqa: BLE001 - a consumer that cannot serve callbacks any more
            log.debug("serving the final commit's result: %s", exc)
        if self.pending:
            log.warning("stopping with the final commit of %d partitions not acknowledged: their last records are "
                        "processed again by the next owner", len(self.pending))
        self.clear()


def with_commit_callback(consumer: Any, committer: OffsetCommitter) -> Any:
    """``consumer`` with ``committer.on_commit`` as its commit callback. The loops' own consumers get it in their
    config (``consumer_config(..., on_commit=...)``); a consumer made elsewhere (a test's fake) gets it as its
    ``on_commit`` attribute. A confluent-kafka ``Consumer`` passed in must be configured with it: without it the
    commits are still sent, every ``resend_s``, but never counted as acknowledged."""
    from confluent_kafka import Consumer

    if not isinstance(consumer, Consumer) and getattr(consumer, "on_commit", None) is None:
        consumer.on_commit = committer.on_commit
    return consumer


def commit_offsets_nowait(consumer: Any, offsets: dict[tuple[str, int], int], component: str) -> bool:
    """Asynchronous commit for a rebalance callback: it never blocks. A synchronous commit there can wait for
    minutes on a group coordinator that is not there (a broker restarting when a session expires). If this one
    fails, the next owner of the partition reads the uncommitted records again: the writes are idempotent
    (document ids, content hashes), so at worst the work is repeated and nothing is lost. True when queued."""
    if not offsets:
        return True
    from confluent_kafka import KafkaException, TopicPartition

    try:
        consumer.commit(offsets=[TopicPartition(t, p, o) for (t, p), o in offsets.items()], asynchronous=True)
    except (KafkaException, RuntimeError) as exc:  # no coordinator yet / consumer closing
        metrics.COMMITS.labels(component, "failed").inc()
        log.warning("revoke-time commit not queued (%s): the next owner repeats those records", exc)
        return False
    metrics.COMMITS.labels(component, "queued").inc()
    return True


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
        # longer than a broker restart (about 6 s here): the members' sessions outlive it, so the reloaded group
        # goes on with the same members and assignment, no rebalance. 6 s (the broker's minimum) expired every
        # session during a restart and the rejoin added seconds of backlog (10-minute soak: 49 s to recover, with
        # the sink lagging last). Nothing blocks on the restarting coordinator: per-batch commits are asynchronous
        # (OffsetCommitter) and the revoke callbacks' too. A SIGKILLed static member restarts well within it
        # (about 4 s, model load included); a dynamic member that dies leaves its partitions idle this long.
        "session.timeout.ms": 10_000,
        "heartbeat.interval.ms": 1_000,
        "max.poll.interval.ms": settings.max_poll_interval_ms,
        "fetch.wait.max.ms": 50,
        "partition.assignment.strategy": "cooperative-sticky",
    }
    conf.update(extra)
    return conf


def keep_membership(consumer: Any) -> None:
    """Called between chunks of a long batch: poll with every assigned partition paused, so the consumer stays
    a live group member (``max.poll.interval.ms``) without taking new records. Rebalance callbacks may run."""
    try:
        assignment = consumer.assignment()
        consumer.pause(assignment)
        try:
            msg = consumer.poll(0)
            if msg is not None and msg.error() is None:  # cannot happen while paused; never drop one silently
                raise RuntimeError("a record arrived while every partition was paused")
        finally:
            consumer.resume(consumer.assignment())
    except RuntimeError:
        raise
    except Exception as exc:  # noqa: BLE001 - a fake or closed consumer: nothing to keep alive
        log.debug("keep_membership: %s", exc)


class FatalConsumerError(RuntimeError):
    """librdkafka reported a fatal error (a fenced static member, say): this consumer can do nothing more. The
    process exits non-zero so that its supervisor (Kubernetes, systemd, the harness) starts a fresh one."""


class ConsumerRenewer:
    """Replaces a consumer left unusable by a fatal error (a static member fenced after a broker restart: the
    broker let the same ``group.instance.id`` in twice). A fresh consumer with the same instance id takes the
    partitions back at once, without restarting the process (the worker's chain stays loaded); offsets not
    committed yet are consumed again (at least once: every write is idempotent). More than ``limit`` renewals
    within ``window_s``: the error is raised and the process exits for its supervisor to restart it."""

    def __init__(self, factory: Callable[[], Any] | None, component: str, *, limit: int = 3,
                 window_s: float = 60.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.factory = factory
        self.component = component
        self.limit = limit
        self.window_s = window_s
        self.clock = clock
        self._times: list[float] = []

    def renew(self, consumer: Any, exc: FatalConsumerError) -> Any:
        """A fresh consumer (not yet subscribed), or ``exc`` raised when renewing is not possible or too frequent."""
        now = self.clock()
        self._times = [t for t in self._times if now - t < self.window_s] + [now]
        if self.factory is None or len(self._times) > self.limit:
            raise exc
        log.warning("fatal consumer error, a new consumer takes over: %s", exc)
        metrics.CONSUMER_RENEWALS.labels(self.component).inc()
        try:
            consumer.close()
        except Exception as err:  # noqa: BLE001 - a fatal consumer may refuse to close cleanly
            log.debug("closing the fenced consumer: %s", err)
        return self.factory()


def static_member(settings: Settings) -> dict[str, Any]:
    """``group.instance.id`` when ``settings.group_instance_id`` is set (static membership, KIP-345)."""
    return {"group.instance.id": settings.group_instance_id} if settings.group_instance_id else {}


FATAL_CODE = -150  # librdkafka's RD_KAFKA_RESP_ERR__FATAL (confluent_kafka.KafkaError._FATAL)


def raise_if_fatal(msgs: Iterable[Any]) -> None:
    """Raise :class:`FatalConsumerError` for a fatal error among ``msgs``. librdkafka reports one as an error
    event whose code is ``_FATAL`` (a fenced static member after a broker restart, say), and that event's own
    ``fatal()`` can be False: the code decides too."""
    for msg in msgs:
        err = msg.error()
        if err is None:
            continue
        if getattr(err, "fatal", lambda: False)() or getattr(err, "code", lambda: None)() == FATAL_CODE:
            raise FatalConsumerError(str(err))


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


def producer_config(settings: Settings, **extra: Any) -> dict[str, Any]:
    conf = {
        **settings.kafka_common(),
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": settings.producer_linger_ms,
        "batch.num.messages": 10_000,
        "compression.type": settings.compression_type,
        "queue.buffering.max.messages": 200_000,
    }
    conf.update(extra)
    return conf


def add_common_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--metrics-port", type=int, default=None, help="Prometheus port (0 = off)")
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--max-idle-s", type=float, default=None,
                        help="exit after this many seconds without records (demo/bench); default: run forever")
    parser.add_argument("--max-messages", type=int, default=None, help=argparse.SUPPRESS)
