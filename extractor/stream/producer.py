"""``python -m extractor produce FILE.csv``: publish a CSV of clinical entries to the input topic.

Each valid row becomes one JSON message (``schemas/entry.schema.json``) keyed by patient id, with headers
``schema_version``, ``source_file``, ``source_row`` and ``produced_at`` (epoch ms). The entry id is a hash of
(patient id, normalised timestamp, text), so producing the same file twice yields the same documents downstream.

Invalid rows (blank text or patient id, bad timestamp, wrong column count, bytes that are not UTF-8, rows the
csv module rejects) go to the dead-letter topic with a ``reason`` header and the row's raw bytes as value.

No row can stop the run. A row whose message would exceed what the broker accepts (the topic's
``max.message.bytes``, read at start) or ``max_message_bytes`` is dead-lettered as ``too_large`` with its source
(file, row), size and SHA-256 but WITHOUT its bytes (the value is a small JSON of the same facts); so is one the
broker refuses later as too large. Any other per-row refusal by the client becomes ``produce_failed``. The summary
reconciles ``rows = sent + dead_lettered + skipped_blank``. Only a failure of the whole run stops it: no broker
answering within ``producer_unreachable_timeout_s`` (exit 3), an unreadable file (exit 2), or deliveries that
still fail after librdkafka's retries (exit 1).

The producer is idempotent (``enable.idempotence``, ``acks=all``) and batches (``linger.ms``); every delivery
report is checked.
"""

from __future__ import annotations

import argparse
import csv
import functools
import hashlib
import json
import logging
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from extractor.config import Settings, load_settings
from extractor.stream import messages as m
from extractor.stream.kafka import producer_config

log = logging.getLogger(__name__)

R_MALFORMED = "malformed_row"


@dataclass
class ProduceSummary:
    file: str
    rows: int = 0
    sent: int = 0
    dead_lettered: int = 0
    skipped_blank: int = 0
    delivered: int = 0
    delivery_errors: int = 0
    seconds: float = 0.0
    dlq_reasons: dict[str, int] = field(default_factory=dict)
    entry_ids: list[str] | None = None  # only when asked (tests, demo)

    def reconciles(self) -> bool:
        return self.rows == self.sent + self.dead_lettered + self.skipped_blank

    @property
    def rate(self) -> float:
        return self.sent / self.seconds if self.seconds > 0 else 0.0

    def line(self) -> str:
        reasons = ", ".join(f"{k}={v}" for k, v in sorted(self.dlq_reasons.items())) or "none"
        return (f"produced {self.file}: rows={self.rows} sent={self.sent} dead_lettered={self.dead_lettered} "
                f"({reasons}) skipped_blank={self.skipped_blank} delivery_errors={self.delivery_errors} "
                f"seconds={self.seconds:.2f} rate={self.rate:.0f}/s "
                f"reconciled={'yes' if self.reconciles() else 'NO'}")


class BrokerUnreachable(RuntimeError):
    """No broker answered: the whole run cannot proceed."""


# per-message framing the size check adds to key + value + headers (record and batch headers, varints)
RECORD_OVERHEAD = 512


def check_reachable(settings: Settings, timeout_s: float, admin: Any = None) -> Any:
    """An admin client that reached a broker; BrokerUnreachable when none answers within ``timeout_s``."""
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient

    admin = admin or AdminClient(settings.kafka_common())
    try:
        admin.list_topics(timeout=timeout_s)
    except KafkaException as exc:
        raise BrokerUnreachable(f"no Kafka broker answered at {settings.bootstrap_servers} within "
                                f"{timeout_s:.0f}s ({exc.args[0] if exc.args else exc})") from None
    return admin


def broker_message_limit(settings: Settings, topic: str, timeout_s: float) -> int | None:
    """The topic's ``max.message.bytes`` (the broker's limit for it); raises BrokerUnreachable if nobody answers,
    None when the broker does not say."""
    from confluent_kafka.admin import ConfigResource

    admin = check_reachable(settings, timeout_s)
    try:
        res = admin.describe_configs([ConfigResource(ConfigResource.Type.TOPIC, topic)])
        entries = next(iter(res.values())).result(timeout=timeout_s)
        return int(entries["max.message.bytes"].value)
    except Exception as exc:  # noqa: BLE001 - an unknown limit falls back to max_message_bytes
        log.warning("could not read max.message.bytes of %s (%s); using max_message_bytes", topic,
                    type(exc).__name__)
        return None


class _RawLines:
    """Feeds decoded lines to csv.reader while remembering the raw bytes of the record being read.

    csv.reader pulls exactly the lines of one record before yielding it (quoted newlines included), so
    the bytes collected between two rows are that row's bytes. Undecodable bytes are kept as surrogates
    (``surrogateescape``) so that one bad row does not stop the file.
    """

    def __init__(self, fh: BinaryIO):
        self._fh = fh
        self._buf: list[bytes] = []
        self._first = True
        self.bytes_read = 0

    def __iter__(self) -> Iterator[str]:
        for raw in self._fh:
            if self._first:
                self._first = False
                if raw.startswith(b"\xef\xbb\xbf"):
                    raw = raw[3:]
            self._buf.append(raw)
            self.bytes_read += len(raw)
            yield raw.decode("utf-8", "surrogateescape")

    def take(self) -> bytes:
        raw = b"".join(self._buf)
        self._buf.clear()
        return raw


@dataclass
class Row:
    row: int  # 1-based record number in the file, header = 1
    raw: bytes
    entry: m.Entry | None = None
    error: m.PoisonMessage | None = None
    blank: bool = False


def iter_rows(fh: BinaryIO, source_file: str, *, patient_id_column: str, text_column: str,
              timestamp_column: str, header: bool = True,
              keep: Callable[[int], bool] | None = None) -> Iterator[Row]:
    """Parse a CSV byte stream into :class:`Row` objects (valid entry or poison). Raises ``ValueError`` if
    the header lacks a configured column. ``keep(row_number)``, when given, selects the rows returned: the
    others are only split off the stream, never validated (a backfill task takes its share of a file)."""
    lines = _RawLines(fh)
    reader = csv.reader(lines)
    names = [patient_id_column, text_column, timestamp_column]
    n_cols = 3
    idx = (0, 1, 2)  # headerless files use the reference order patient_id,medical_entry,timestamp
    rownum = 0
    if header:
        try:
            head = next(reader)
        except StopIteration:
            return
        lines.take()
        rownum = 1
        head = [h.strip() for h in head]
        missing = [c for c in names if c not in head]
        if missing:
            raise ValueError(f"{source_file}: header has no column(s) {missing}; header is {head}")
        idx = tuple(head.index(c) for c in names)
        n_cols = len(head)
    while True:
        try:
            fields = next(reader)
        except StopIteration:
            leftover = lines.take()
            if leftover.strip():  # unterminated quote at EOF in lenient mode
                rownum += 1
                if keep is not None and not keep(rownum):
                    return
                yield Row(rownum, leftover, error=m.PoisonMessage(R_MALFORMED, m.STAGE_PRODUCE, "csv: EOF"))
            return
        except csv.Error as exc:
            rownum += 1
            if keep is not None and not keep(rownum):
                lines.take()
                continue
            yield Row(rownum, lines.take(), error=m.PoisonMessage(R_MALFORMED, m.STAGE_PRODUCE, f"csv: {exc}",
                                                                  "csv.Error"))
            continue
        rownum += 1
        raw = lines.take()
        if keep is not None and not keep(rownum):
            continue
        if not fields or (len(fields) == 1 and not fields[0].strip()):
            yield Row(rownum, raw, blank=True)
            continue
        if len(fields) != n_cols:
            yield Row(rownum, raw, error=m.PoisonMessage(m.R_COLUMN_COUNT, m.STAGE_PRODUCE,
                                                         f"{len(fields)} columns, expected {n_cols}"))
            continue
        try:
            "".join(fields).encode("utf-8")
        except UnicodeEncodeError:
            yield Row(rownum, raw, error=m.PoisonMessage(m.R_UNDECODABLE, m.STAGE_PRODUCE, "not UTF-8",
                                                         "UnicodeDecodeError"))
            continue
        try:
            entry = m.build_entry(fields[idx[0]], fields[idx[1]], fields[idx[2]], source_file, rownum)
        except m.PoisonMessage as exc:
            yield Row(rownum, raw, error=exc)
            continue
        yield Row(rownum, raw, entry=entry)


def _ensure_topics(settings: Settings) -> None:
    try:
        from extractor.stream.topics import ensure_topics
    except ImportError:  # topics module not present: rely on broker auto-creation
        log.warning("extractor.stream.topics not available; not creating topics")
        return
    ensure_topics(settings)


def produce_file(settings: Settings, path: str | Path, *, rate: float | None = None, progress: bool | None = None,
                 header: bool = True, keep_ids: bool = False, limit: int | None = None,
                 producer: Any = None, flush_timeout_s: float = 120.0) -> ProduceSummary:
    """Publish every row of ``path``; returns the summary after a final flush. ``producer`` may be injected."""
    from confluent_kafka import KafkaError, KafkaException, Producer

    path = Path(path)
    source_file = path.name
    summary = ProduceSummary(file=str(path), entry_ids=[] if keep_ids else None)
    own_producer = producer is None
    limit_bytes = settings.max_message_bytes
    if producer is None:
        broker_limit = broker_message_limit(settings, settings.input_topic, settings.producer_unreachable_timeout_s)
        limit_bytes = min(limit_bytes, broker_limit or limit_bytes)
        # the client's own cap stays above ours, so that our check (not a client exception) decides
        producer = Producer(producer_config(settings, **{"message.max.bytes": max(limit_bytes * 2, 1_000_000)}))

    def dead_letter(reason: str, error_class: str, detail: str, common: list[tuple[str, bytes]], raw: bytes,
                    value: bytes | None = None, digest: str | None = None) -> None:
        """A DLQ record for one row, its raw bytes as value; a row too large for that becomes ``too_large``
        (facts only). ``value``/``digest`` given: the too_large record itself."""
        if value is None and len(raw) + RECORD_OVERHEAD > limit_bytes:
            too_large(common, raw, f"{reason}: row of {len(raw)} bytes > limit {limit_bytes}",
                      hashlib.sha256(raw).hexdigest())
            return
        headers = m.dlq_headers(reason=reason, stage=m.STAGE_PRODUCE, error_class=error_class, error=detail,
                                original=common, size=len(raw) if digest else None, sha256=digest)
        send(settings.dlq_topic, raw if value is None else value, None, headers, on_delivery)
        summary.dead_lettered += 1
        summary.dlq_reasons[reason] = summary.dlq_reasons.get(reason, 0) + 1

    def too_large(common: list[tuple[str, bytes]], raw: bytes, detail: str, digest: str) -> None:
        facts = {"reason": m.R_TOO_LARGE, "source_file": source_file,
                 "source_row": int(dict(common)[m.H_SOURCE_ROW]), "size": len(raw), "sha256": digest}
        dead_letter(m.R_TOO_LARGE, "MessageSizeTooLarge", detail, common, raw,
                    value=json.dumps(facts).encode(), digest=digest)

    def on_delivery(err: Any, msg: Any) -> None:
        if err is not None:
            summary.delivery_errors += 1
            if summary.delivery_errors <= 10:
                log.error("delivery failed topic=%s error=%s", msg.topic(), err)
        else:
            summary.delivered += 1

    refused: list[tuple[list[tuple[str, bytes]], bytes, Any, int]] = []  # filled by delivery callbacks

    def on_entry_delivery(common: list[tuple[str, bytes]], raw: bytes, attempt: int, err: Any, msg: Any) -> None:
        """The broker refused an entry as too large (its limit is below ours). The refusal covers the whole batch
        the entry travelled in, so each refused entry is sent once more on its own; refused again, its row is
        dead-lettered. Both happen after the callback returns (a callback must not produce or poll)."""
        if err is not None and getattr(err, "code", lambda: None)() == KafkaError.MSG_SIZE_TOO_LARGE:
            summary.sent -= 1
            refused.append((common, raw, msg, attempt))
            return
        on_delivery(err, msg)

    def dead_letter_refused() -> None:
        while refused:
            common, raw, msg, attempt = refused.pop()
            if attempt == 0:  # alone this time: a batch of one
                send(msg.topic(), msg.value(), msg.key(), msg.headers(),
                     functools.partial(on_entry_delivery, common, raw, 1))
                summary.sent += 1
                producer.flush(flush_timeout_s)
            else:
                too_large(common, raw, f"broker refused {len(msg.value() or b'')} bytes",
                          hashlib.sha256(raw).hexdigest())

    def send(topic: str, value: bytes, key: bytes | None, headers: list[tuple[str, bytes]],
             callback: Any) -> None:
        while True:
            try:
                producer.produce(topic, value=value, key=key, headers=headers, on_delivery=callback)
                break
            except BufferError:  # local queue full: let deliveries drain
                producer.poll(0.05)
        producer.poll(0)

    bar = None
    if progress is not False:
        from tqdm import tqdm

        bar = tqdm(unit="row", desc=f"produce {source_file}", disable=None if progress is None else False,
                   mininterval=0.5, file=sys.stderr)
    t0 = time.monotonic()
    try:
        with path.open("rb") as fh:
            for row in iter_rows(fh, source_file, patient_id_column=settings.csv_patient_id_column,
                                 text_column=settings.csv_text_column,
                                 timestamp_column=settings.csv_timestamp_column, header=header):
                if limit is not None and summary.rows >= limit:
                    break
                summary.rows += 1
                if row.blank:
                    summary.skipped_blank += 1
                    continue
                common = [(m.H_SCHEMA_VERSION, str(m.SCHEMA_VERSION).encode()),
                          (m.H_SOURCE_FILE, source_file.encode("utf-8", "replace")),
                          (m.H_SOURCE_ROW, str(row.row).encode())]
                if row.entry is not None:
                    e = row.entry
                    headers = [*common, (m.H_PRODUCED_AT, str(int(time.time() * 1000)).encode())]
                    value, key = m.encode_entry(e), (e.patient_id or "").encode("utf-8")
                    size = len(value) + len(key) + sum(len(k) + len(v) for k, v in headers) + RECORD_OVERHEAD
                    if size > limit_bytes:
                        too_large(common, row.raw, f"{size} bytes > limit {limit_bytes}",
                                  hashlib.sha256(row.raw).hexdigest())
                        log.debug("row %d dead-lettered reason=%s", row.row, m.R_TOO_LARGE)
                    else:
                        try:
                            send(settings.input_topic, value, key, headers,
                                 functools.partial(on_entry_delivery, common, row.raw, 0))
                        except KafkaException as exc:  # the client refused this one row
                            kerr = exc.args[0] if exc.args else None
                            name = kerr.name() if hasattr(kerr, "name") else type(exc).__name__
                            if hasattr(kerr, "code") and kerr.code() == KafkaError.MSG_SIZE_TOO_LARGE:
                                too_large(common, row.raw, name, hashlib.sha256(row.raw).hexdigest())
                            else:
                                dead_letter(m.R_PRODUCE_FAILED, name, name, common, row.raw)
                        else:
                            summary.sent += 1
                            if summary.entry_ids is not None:
                                summary.entry_ids.append(e.entry_id)
                else:
                    err = row.error
                    assert err is not None
                    dead_letter(err.reason, err.error_class, err.detail, common, row.raw)
                    log.debug("row %d dead-lettered reason=%s", row.row, err.reason)
                dead_letter_refused()
                if bar is not None:
                    bar.update(1)
                if rate:
                    ahead = t0 + (summary.sent + summary.dead_lettered) / rate - time.monotonic()
                    if ahead > 0:
                        time.sleep(ahead)
        remaining = producer.flush(flush_timeout_s)
        while refused and not remaining:
            dead_letter_refused()
            remaining = producer.flush(flush_timeout_s)
        if remaining:
            summary.delivery_errors += remaining
            log.error("%d messages still undelivered after %.0fs flush", remaining, flush_timeout_s)
    finally:
        if bar is not None:
            bar.close()
        summary.seconds = time.monotonic() - t0
        if own_producer:
            producer.flush(1)
    return summary


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", type=Path, help="CSV file with a header row")
    parser.add_argument("--topic", default=None, help="input topic (default: settings.input_topic)")
    parser.add_argument("--dlq-topic", default=None, help="dead-letter topic (default: settings.dlq_topic)")
    parser.add_argument("--rate", type=float, default=None, help="at most N messages per second")
    parser.add_argument("--limit", type=int, default=None, help="only the first N rows")
    parser.add_argument("--patient-id-column", default=None)
    parser.add_argument("--text-column", default=None)
    parser.add_argument("--timestamp-column", default=None)
    parser.add_argument("--no-header", action="store_true",
                        help="file has no header: columns are patient_id,text,timestamp")
    parser.add_argument("--no-progress", action="store_true")
    parser.add_argument("--no-create-topics", action="store_true")
    parser.add_argument("--json", dest="json_path", default=None, help="also write the summary as JSON here")


def run(args: argparse.Namespace) -> int:
    settings = load_settings(
        args.config, input_topic=args.topic, dlq_topic=args.dlq_topic,
        csv_patient_id_column=args.patient_id_column, csv_text_column=args.text_column,
        csv_timestamp_column=args.timestamp_column,
    )
    log.info("producer settings %s", json.dumps(settings.redacted(), sort_keys=True))
    if not args.file.is_file():
        print(f"no such file: {args.file}", file=sys.stderr)
        return 2
    try:
        with args.file.open("rb"):
            pass
    except OSError as exc:
        print(f"cannot read {args.file}: {exc.strerror}", file=sys.stderr)
        return 2
    try:
        if not args.no_create_topics:
            check_reachable(settings, settings.producer_unreachable_timeout_s)
            _ensure_topics(settings)
        summary = produce_file(settings, args.file, rate=args.rate, progress=False if args.no_progress else None,
                               header=not args.no_header, limit=args.limit)
    except BrokerUnreachable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 3
    except OSError as exc:
        print(f"cannot read {args.file}: {exc}", file=sys.stderr)
        return 2
    except ValueError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    print(summary.line())
    if args.json_path:
        d = asdict(summary)
        d.pop("entry_ids", None)
        Path(args.json_path).write_text(json.dumps(d, indent=2))
    return 1 if summary.delivery_errors else 0
