"""``python -m extractor archive``: raw Kafka records to Parquet objects in cloud storage, exactly once.

The reference design's last future item: the raw entries kept for backup and for batch work after Kafka's
retention has dropped them (a re-extraction after a lexicon or model change, :mod:`extractor.batch.backfill`).

A consumer group (``archive_group_id``) reads ``archive_topics`` (``medical-entries`` by default; add
``dlq-topic`` to keep the dead letters too) and buffers each partition's records. When the buffered bytes reach
``archive_flush_bytes`` or the oldest record is ``archive_flush_s`` old, each partition's buffer becomes Parquet
(pyarrow, zstd) objects::

    <archive_url>/raw/topic=T/date=YYYY-MM-DD/partition=P/offsets-<first>-<last>.parquet

with the key, the value bytes, the headers, the timestamp (and its type), the topic, the partition and the offset
of every record exactly as Kafka holds them, malformed records included. An object holds a run of consecutive
offsets of one partition and one UTC date (of the record timestamps; a run is cut where the date changes) of at
most ``archive_max_object_bytes`` (a single larger record gets an object of its own).

Metrics (``--metrics-port``): ``extractor_archive_objects_total``, ``_records_total``, ``_bytes_total``,
``_upload_failures_total``, ``extractor_archive_buffered_records`` and the lag, ``extractor_consumer_lag
{component="archiver"}``: records in Kafka not yet in an object.

Exactly once: offsets are committed only after every upload of the flush is confirmed (the object's size read
back), uploads go in offset order, and the objects, not the committed offsets, are the truth. Before a flush
uploads a partition's objects it writes the partition's progress marker,
``raw/topic=T/_progress/partition=P.json``: the offsets and the names of the objects it is about to write. When a
partition is assigned, the archiver reads that marker and checks only those objects (the earlier flushes all
completed before it was written): it starts after the last offset they hold, so a crash between an upload and its
commit neither loses nor repeats a record, and an assignment costs a few requests, not a listing of every object
the topic ever had (one a minute per partition: half a million a year). An archive without markers (written
before them) is listed once, as before. A failed upload is retried with backoff (capped at 30 s) for as
long as it takes; nothing is committed meanwhile, and nothing is dropped.
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import json
import logging
import re
import sys
import time
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import Counter, Gauge

from extractor.config import Settings, load_settings
from extractor.storage import StorageError, check_writable, filesystem
from extractor.stream import metrics
from extractor.stream.kafka import (
    FatalConsumerError,
    OffsetCommitter,
    StopFlag,
    add_common_args,
    consumer_config,
    poll_batch,
    with_commit_callback,
)

log = logging.getLogger(__name__)

COMPONENT = "archiver"
OBJECTS = Counter("extractor_archive_objects_total", "Parquet objects uploaded", ["topic"])
RECORDS = Counter("extractor_archive_records_total", "records archived", ["topic"])
BYTES = Counter("extractor_archive_bytes_total", "bytes of Parquet uploaded", ["topic"])
FAILURES = Counter("extractor_archive_upload_failures_total", "uploads that failed (retried)", ["error_class"])
BUFFERED = Gauge("extractor_archive_buffered_records", "records waiting for the next upload")

_OBJECT = re.compile(r"offsets-(\d+)-(\d+)\.parquet$")
MAX_BACKOFF_S = 30.0
JOIN_GRACE_S = 30.0  # --max-idle-s: extra wait for a first assignment


def arrow_schema() -> Any:
    import pyarrow as pa

    header = pa.struct([pa.field("key", pa.string()), pa.field("value", pa.binary())])
    return pa.schema([
        pa.field("key", pa.binary()), pa.field("value", pa.binary()), pa.field("headers", pa.list_(header)),
        pa.field("timestamp_ms", pa.int64()), pa.field("timestamp_type", pa.int8()), pa.field("topic", pa.string()),
        pa.field("partition", pa.int32()), pa.field("offset", pa.int64()),
    ])


@dataclass(slots=True)
class Raw:
    """One Kafka record as archived."""

    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes | None]]
    timestamp_ms: int
    timestamp_type: int
    topic: str
    partition: int
    offset: int

    @classmethod
    def of(cls, msg: Any) -> Raw:
        ts_type, ts = msg.timestamp()
        headers = [(k, v) for k, v in (msg.headers() or [])]
        return cls(msg.key(), msg.value(), headers, int(ts if ts is not None and ts >= 0 else 0), int(ts_type),
                   msg.topic(), msg.partition(), msg.offset())

    @property
    def size(self) -> int:
        return len(self.value or b"") + len(self.key or b"") + sum(len(k) + len(v or b"") for k, v in self.headers)

    @property
    def date(self) -> str:
        return dt.datetime.fromtimestamp(self.timestamp_ms / 1000, tz=dt.UTC).strftime("%Y-%m-%d")


def object_path(root: str, topic: str, date: str, partition: int, first: int, last: int) -> str:
    return f"{root}/raw/topic={topic}/date={date}/partition={partition}/offsets-{first:020d}-{last:020d}.parquet"


def runs(records: list[Raw], max_bytes: int) -> list[list[Raw]]:
    """Consecutive records of one partition cut into objects: a new one where the date changes or the size
    would pass ``max_bytes`` (a record larger than that alone)."""
    out: list[list[Raw]] = []
    size = 0
    for r in records:
        if not out or r.date != out[-1][-1].date or (size + r.size > max_bytes and out[-1]):
            out.append([])
            size = 0
        out[-1].append(r)
        size += r.size
    return out


ROW_GROUP = 8192  # records per Parquet row group: each is converted to Arrow and written on its own


def _batch(records: list[Raw], schema: Any) -> Any:
    """Arrow record batch of ``records``; the headers as flat arrays (no Python dict per header)."""
    import pyarrow as pa

    offsets = [0]
    keys: list[str] = []
    values: list[bytes | None] = []
    for r in records:
        for k, v in r.headers:
            keys.append(k)
            values.append(v)
        offsets.append(len(keys))
    header_type = schema.field("headers").type.value_type
    headers = pa.ListArray.from_arrays(pa.array(offsets, pa.int32()), pa.StructArray.from_arrays(
        [pa.array(keys, pa.string()), pa.array(values, pa.binary())], fields=list(header_type)))
    return pa.RecordBatch.from_arrays([
        pa.array([r.key for r in records], pa.binary()), pa.array([r.value for r in records], pa.binary()), headers,
        pa.array([r.timestamp_ms for r in records], pa.int64()),
        pa.array([r.timestamp_type for r in records], pa.int8()),
        pa.array([r.topic for r in records], pa.string()), pa.array([r.partition for r in records], pa.int32()),
        pa.array([r.offset for r in records], pa.int64()),
    ], schema=schema)


def to_parquet(records: list[Raw]) -> bytes:
    """One Parquet object (zstd) of ``records``, converted and written one row group at a time: converting a
    whole flush at once took about five times its size in memory."""
    import pyarrow.parquet as pq

    schema = arrow_schema()
    buf = io.BytesIO()
    # no dictionary for the values (unique: its hash table only costs memory); the topic repeats
    with pq.ParquetWriter(buf, schema, compression="zstd", use_dictionary=["topic"]) as writer:
        for i in range(0, len(records), ROW_GROUP):
            writer.write_batch(_batch(records[i : i + ROW_GROUP], schema))
    return buf.getvalue()


def progress_path(root: str, topic: str, partition: int) -> str:
    """The partition's progress marker: what its latest flush set out to upload."""
    return f"{root}/raw/topic={topic}/_progress/partition={partition}.json"


_NO_MARKER = object()


def archived_through_marker(fs: Any, root: str, topic: str, partition: int) -> Any:
    """The last offset archived for ``topic``/``partition`` according to its progress marker: the last object of
    the marker's flush that exists (they are uploaded in order, so those that exist come first), or the offset
    before the flush's first when none does (every earlier flush had completed); None when nothing is archived.
    ``_NO_MARKER`` when there is no readable marker (an archive written before markers): list it instead."""
    try:
        marker = json.loads(fs.cat_file(progress_path(root, topic, partition)))
        first, names = int(marker["first"]), [str(n) for n in marker["objects"]]
    except FileNotFoundError:
        return _NO_MARKER
    except (ValueError, KeyError, TypeError) as exc:
        log.warning("progress marker of %s[%d] unreadable (%s): listing the archive", topic, partition, exc)
        return _NO_MARKER
    last = first - 1
    for name in names:
        m = _OBJECT.search(name)
        if m is None or not fs.exists(f"{root}/{name}"):
            break
        last = int(m.group(2))
    return last if last >= 0 else None


def archived_through(fs: Any, root: str, topic: str, partition: int) -> int | None:
    """The last offset the objects of ``topic``/``partition`` hold, or None when there are none."""
    return archived_through_all(fs, root, topic).get(partition)


_PARTITION = re.compile(r"/partition=(\d+)/offsets-(\d+)-(\d+)\.parquet$")


def archived_through_all(fs: Any, root: str, topic: str) -> dict[int, int]:
    """The last offset the objects of each partition of ``topic`` hold, from one listing of the topic's prefix
    (an assignment of several partitions lists once, not once per partition)."""
    last: dict[int, int] = {}
    base = f"{root}/raw/topic={topic}"
    try:
        paths = fs.find(base)
    except FileNotFoundError:
        return last
    for path in paths:
        m = _PARTITION.search(path)
        if m and "/date=" in path:
            p, end = int(m.group(1)), int(m.group(3))
            if end > last.get(p, -1):
                last[p] = end
    return last


@dataclass
class ArchiveStats:
    records: int = 0
    objects: int = 0
    bytes: int = 0
    skipped: int = 0  # records already in an object (read again after a crash before the commit)
    failures: int = 0
    per_partition: dict[str, int] = field(default_factory=dict)


class Archiver:
    def __init__(self, settings: Settings, *, consumer: Any = None, fs: Any = None, root: str | None = None,
                 stop: StopFlag | None = None) -> None:
        self.settings = settings
        self.topics = [t.strip() for t in settings.archive_topics.split(",") if t.strip()]
        if fs is None:
            fs, root = filesystem(settings.archive_url, settings)
        self.fs, self.root = fs, (root or "").rstrip("/")
        protocols = fs.protocol if isinstance(fs.protocol, tuple) else (fs.protocol,)
        self.local = "file" in protocols or "local" in protocols
        self.stop = stop or StopFlag()
        # commits never block the poll loop: a synchronous one can wait for ever after a broker restart (it held
        # a sink so); the objects, not the offsets, are the truth, so an unacknowledged commit only means records
        # read again and skipped (archived_through)
        self.commits = OffsetCommitter(COMPONENT)
        if consumer is None:
            from confluent_kafka import Consumer

            # librdkafka prefetches up to 64 MB per consumer by default: an eighth keeps the archiver's memory
            # bounded (bench archive: peak RSS 375 -> 288 MB with 16 MB flushes) and still archives ~50,000 entries/s
            consumer = Consumer(consumer_config(settings, settings.archive_group_id, on_commit=self.commits.on_commit,
                                                **{"queued.max.messages.kbytes": 8_192}))
        self.consumer = with_commit_callback(consumer, self.commits)
        self.buffers: dict[tuple[str, int], list[Raw]] = {}
        self.buffered_bytes = 0
        self.oldest: float | None = None
        self.resume: dict[tuple[str, int], int] = {}  # first offset not yet archived, per assigned partition
        self.skipped_next: dict[tuple[str, int], int] = {}  # partitions whose skipped records still need a commit
        self.stats = ArchiveStats()
        self.assigned_at = 0.0

    # rebalance callbacks
    def _on_assign(self, consumer: Any, partitions: list[Any]) -> None:
        self.assigned_at = time.monotonic()  # idle time counts from here: a rejoin can take a session timeout
        listed: dict[str, dict[int, int]] = {}  # topics without markers: listed once each
        for tp in partitions:
            last = archived_through_marker(self.fs, self.root, tp.topic, tp.partition)
            if last is _NO_MARKER:
                if tp.topic not in listed:
                    listed[tp.topic] = archived_through_all(self.fs, self.root, tp.topic)
                last = listed[tp.topic].get(tp.partition)
            if last is not None:
                self.resume[(tp.topic, tp.partition)] = last + 1
        log.info("assigned %s; archived through %s", [f"{tp.topic}[{tp.partition}]" for tp in partitions],
                 {f"{t}[{p}]": o - 1 for (t, p), o in self.resume.items()})

    def _on_revoke(self, consumer: Any, partitions: list[Any]) -> None:
        # what is buffered for them is dropped, never committed: the next owner reads it again
        for tp in partitions:
            k = (tp.topic, tp.partition)
            self.buffered_bytes -= sum(r.size for r in self.buffers.pop(k, []))
            self.resume.pop(k, None)
            self.skipped_next.pop(k, None)
        self.commits.drop((tp.topic, tp.partition) for tp in partitions)
        BUFFERED.set(sum(len(b) for b in self.buffers.values()))

    def add(self, msg: Any) -> None:
        r = Raw.of(msg)
        k = (r.topic, r.partition)
        if r.offset < self.resume.get(k, -1):
            self.stats.skipped += 1  # already in an object: uploaded before a crash, not committed
            self.skipped_next[k] = r.offset + 1  # committed with the next flush
            return
        self.buffers.setdefault(k, []).append(r)
        self.buffered_bytes += r.size
        if self.oldest is None:
            self.oldest = time.monotonic()

    def due(self) -> bool:
        if not self.buffers:
            return bool(self.skipped_next)
        age = time.monotonic() - (self.oldest or time.monotonic())
        return self.buffered_bytes >= self.settings.archive_flush_bytes or age >= self.settings.archive_flush_s

    def _upload(self, path: str, data: bytes) -> None:
        """Write ``data`` to ``path`` and read its size back; retried with backoff until it holds (or stop)."""
        delay = 0.5
        while True:
            try:
                if self.local:  # object stores have no folders; a local disk needs them
                    self.fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
                self.fs.pipe_file(path, data)
                size = self.fs.info(path)["size"]
                if size != len(data):
                    raise OSError(f"uploaded {size} bytes, expected {len(data)}")
                return
            except Exception as exc:  # noqa: BLE001 - emulator or bucket unreachable, throttled, a short write
                FAILURES.labels(type(exc).__name__).inc()
                self.stats.failures += 1
                log.warning("upload of %s failed (%s: %s); retrying in %.1fs, nothing committed", path,
                            type(exc).__name__, exc, delay)
                if self.stop:
                    raise
                time.sleep(delay)
                delay = min(delay * 2, MAX_BACKOFF_S)

    def flush(self) -> None:
        """Upload every buffer in offset order, then send their offsets' commit (asynchronous, one in flight)."""
        offsets: dict[tuple[str, int], int] = dict(self.skipped_next)
        self.skipped_next = {}
        for (topic, partition), records in sorted(self.buffers.items()):
            cut = runs(records, self.settings.archive_max_object_bytes)
            paths = [object_path(self.root, topic, run[0].date, partition, run[0].offset, run[-1].offset)
                     for run in cut]
            # the marker first: a restart checks these objects only (archived_through_marker)
            self._upload(progress_path(self.root, topic, partition), json.dumps({
                "first": records[0].offset, "last": records[-1].offset,
                "objects": [p[len(self.root) + 1:] for p in paths]}).encode())
            for run, path in zip(cut, paths, strict=True):
                data = to_parquet(run)
                self._upload(path, data)
                OBJECTS.labels(topic).inc()
                RECORDS.labels(topic).inc(len(run))
                BYTES.labels(topic).inc(len(data))
                self.stats.objects += 1
                self.stats.records += len(run)
                self.stats.bytes += len(data)
                key = f"{topic}[{partition}]"
                self.stats.per_partition[key] = self.stats.per_partition.get(key, 0) + len(run)
                self.resume[(topic, partition)] = run[-1].offset + 1
            offsets[(topic, partition)] = records[-1].offset + 1
        self.buffers.clear()
        self.buffered_bytes = 0
        self.oldest = None
        BUFFERED.set(0)
        # a failed commit loses nothing: the objects say where to start (archived_through)
        self.commits.done(offsets)
        self.commits.commit(self.consumer)

    def update_lag(self) -> dict[tuple[str, int], int]:
        """``extractor_consumer_lag{component="archiver"}``: records in Kafka not yet in an object (the high
        watermark minus the first offset not archived; buffered records count as lag until uploaded)."""
        lags: dict[tuple[str, int], int] = {}
        try:
            for tp in self.consumer.assignment():
                low, high = self.consumer.get_watermark_offsets(tp, cached=True)
                if high < 0:
                    continue
                done = self.resume.get((tp.topic, tp.partition), low)
                lags[(tp.topic, tp.partition)] = lag = max(0, high - done)
                metrics.CONSUMER_LAG.labels(COMPONENT, tp.topic, str(tp.partition)).set(lag)
        except Exception as exc:  # noqa: BLE001 - a metric never stops the archiver
            log.debug("lag not updated: %s", exc)
        return lags

    def run(self, *, max_idle_s: float | None = None) -> ArchiveStats:
        check_writable(self.fs, self.root)
        self.consumer.subscribe(self.topics, on_assign=self._on_assign, on_revoke=self._on_revoke,
                                on_lost=self._on_revoke)
        last_msg = time.monotonic()
        last_lag = float("-inf")
        try:
            while not self.stop:
                msgs = poll_batch(self.consumer, self.settings.batch_size, self.settings.poll_timeout_s)
                now = time.monotonic()
                for msg in msgs:
                    err = msg.error()
                    if err is None:
                        self.add(msg)
                    elif err.fatal():
                        raise FatalConsumerError(str(err))
                    else:
                        log.warning("consumer error: %s", err)
                if msgs:
                    last_msg = now
                BUFFERED.set(sum(len(b) for b in self.buffers.values()))
                if now - last_lag >= metrics.LAG_EVERY_S:
                    self.update_lag()
                    last_lag = now
                # before the first assignment the group may wait out a dead member's session: allow for it
                wait = max_idle_s if self.assigned_at else (max_idle_s or 0) + JOIN_GRACE_S
                idle = max_idle_s is not None and now - max(last_msg, self.assigned_at) >= wait
                if self.due() or (idle and self.buffers):
                    self.flush()
                else:
                    self.commits.commit(self.consumer)  # one that was refused or is still waiting its turn
                if idle and not self.buffers:
                    break
            if self.buffers:  # stopping: upload what is buffered; if storage is down, exit without committing
                try:
                    self.flush()
                except Exception as exc:  # noqa: BLE001 - the next start reads those records again
                    log.warning("final upload failed (%s); nothing committed for it", type(exc).__name__)
            self.commits.flush(self.consumer)  # bounded: an unacknowledged commit only means records skipped again
        finally:
            self.consumer.close()
        return self.stats


def configure_parser(parser: argparse.ArgumentParser) -> None:
    add_common_args(parser)
    parser.add_argument("--url", default=None, help="where to archive: gs://BUCKET/PREFIX, file:///DIR, s3://...")
    parser.add_argument("--topics", default=None, help="comma-separated topics (default: settings.archive_topics)")
    parser.add_argument("--group-id", default=None, help="consumer group (default: settings.archive_group_id)")
    parser.add_argument("--flush-bytes", type=int, default=None, help="buffered bytes that trigger an upload")
    parser.add_argument("--flush-s", type=float, default=None, help="oldest record's age that triggers an upload")
    parser.add_argument("--json", dest="json_path", default=None, help="write the run's figures here at the end")


def run(args: argparse.Namespace) -> int:
    settings = load_settings(args.config, metrics_port=args.metrics_port, batch_size=args.batch_size,
                             archive_url=args.url, archive_topics=args.topics, archive_group_id=args.group_id,
                             archive_flush_bytes=args.flush_bytes, archive_flush_s=args.flush_s)
    log.info("archive settings %s", json.dumps(settings.redacted(), sort_keys=True))
    stop = StopFlag().install()
    try:
        archiver = Archiver(settings, stop=stop)
        metrics.serve(settings.metrics_port)
        stats = archiver.run(max_idle_s=args.max_idle_s)
    except StorageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except FatalConsumerError as exc:
        log.error("fatal consumer error, exiting for a restart: %s", exc)
        return 3
    log.info("archived records=%d objects=%d bytes=%d skipped=%d upload_failures=%d", stats.records,
             stats.objects, stats.bytes, stats.skipped, stats.failures)
    if args.json_path:
        with open(args.json_path, "w", encoding="utf-8") as fh:
            json.dump(stats.__dict__, fh, indent=2)
    return 0
