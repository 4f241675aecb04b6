"""The wire format: the entry envelope, deterministic entry ids, JSON Schema validation, DLQ headers.

Nothing here talks to Kafka or MongoDB; the producer, worker, sink and DLQ tools all build and read their
messages through these functions so that there is exactly one definition of each format:

* ``schemas/entry.schema.json``      — a message on the input topic (medical-entries)
* ``schemas/processed.schema.json``  — the enriched document (processed-entries and MongoDB)
* ``schemas/dlq-headers.md``         — the headers every dead-letter record carries

Poison input never raises anything but :class:`PoisonMessage`, whose ``reason`` is a short, closed
vocabulary (``REASONS``) that is safe to log and to use as a metric label. Error details never contain the
entry text (jsonschema's own messages quote the offending value, so we do not use them).
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from typing import Any

import orjson

from extractor.config import REPO_ROOT

SCHEMA_VERSION = 1
ENTRY_ID_HEX_CHARS = 32  # 128 bits of sha256: collisions are not a practical concern
SCHEMA_DIR = REPO_ROOT / "schemas"

# --- the closed vocabulary of dead-letter reasons ----------------------------------------------------
# produce stage (rows of the CSV that never became a message)
R_MISSING_TEXT = "missing_text"
R_MISSING_PATIENT_ID = "missing_patient_id"
R_BAD_TIMESTAMP = "bad_timestamp"
R_COLUMN_COUNT = "column_count"
R_UNDECODABLE = "undecodable"  # also used by the worker for values that are not UTF-8
R_TOO_LARGE = "too_large"  # the message would exceed what the broker (or max_message_bytes) accepts
R_PRODUCE_FAILED = "produce_failed"  # any other per-row failure to produce (the client refused the row)
# decode / validate stage (poison messages)
R_NOT_JSON = "not_json"
R_SCHEMA = "schema_invalid"
R_EMPTY_TEXT = "empty_text"
R_TOO_LONG = "text_too_long"
# extract stage (well-formed entries the chain could not resolve) — the only replayable ones
R_UNRESOLVED = "unresolved"
R_EXTRACT_ERROR = "extract_error"
# sink stage
R_BAD_DOCUMENT = "bad_document"

REASONS = (
    R_MISSING_TEXT, R_MISSING_PATIENT_ID, R_BAD_TIMESTAMP, R_COLUMN_COUNT, R_UNDECODABLE, R_TOO_LARGE,
    R_PRODUCE_FAILED, R_NOT_JSON,
    R_SCHEMA, R_EMPTY_TEXT, R_TOO_LONG, R_UNRESOLVED, R_EXTRACT_ERROR, R_BAD_DOCUMENT,
)
STAGE_PRODUCE, STAGE_DECODE, STAGE_VALIDATE, STAGE_EXTRACT, STAGE_SINK = (
    "produce", "decode", "validate", "extract", "sink",
)
REPLAYABLE_STAGES = frozenset({STAGE_EXTRACT})

# header names (see schemas/dlq-headers.md)
H_SCHEMA_VERSION = "schema_version"
H_SOURCE_FILE = "source_file"
H_SOURCE_ROW = "source_row"
H_REASON = "reason"
H_STAGE = "stage"
H_ERROR_CLASS = "error_class"
H_ERROR = "error"
H_ENTRY_ID = "entry_id"
H_SRC_TOPIC = "source_topic"
H_SRC_PARTITION = "source_partition"
H_SRC_OFFSET = "source_offset"
H_EXTRACTOR_VERSION = "extractor_version"
H_LEXICON_VERSION = "lexicon_version"
H_REPLAY_COUNT = "replay_count"
H_REPLAY_OF = "replay_of"
H_FAILED_AT = "failed_at"
H_PRODUCED_AT = "produced_at"  # input messages: wall-clock ms when produced (latency measurement)
H_SIZE = "size"  # too_large: bytes of the row (the row itself is not in the record)
H_SHA256 = "sha256"  # too_large: SHA-256 of the row's raw bytes, to find it in the source file
DLQ_HEADER_NAMES = frozenset({
    H_REASON, H_STAGE, H_ERROR_CLASS, H_ERROR, H_ENTRY_ID, H_SRC_TOPIC, H_SRC_PARTITION, H_SRC_OFFSET,
    H_EXTRACTOR_VERSION, H_LEXICON_VERSION, H_REPLAY_COUNT, H_REPLAY_OF, H_FAILED_AT, H_SIZE, H_SHA256,
})


class PoisonMessage(ValueError):
    """A message or row that can never be processed as it is. ``detail`` never contains entry text."""

    def __init__(self, reason: str, stage: str, detail: str = "", error_class: str | None = None):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.stage = stage
        self.detail = detail
        self.error_class = error_class or type(self).__name__


# --- ids and timestamps ---------------------------------------------------------------------------------


def compute_entry_id(patient_id: str | None, timestamp: str | None, text: str) -> str:
    """Deterministic id of an entry: the same (patient, time, text) always maps to the same id, so
    producing a file twice, or replaying, overwrites the same MongoDB document instead of adding one."""
    if patient_id is None and timestamp is None:
        material = "text|" + text
    else:
        material = f"{patient_id or ''}|{timestamp or ''}|{text}"
    return hashlib.sha256(material.encode("utf-8")).hexdigest()[:ENTRY_ID_HEX_CHARS]


_EXTRA_TS_FORMATS = ("%Y/%m/%d %H:%M:%S", "%Y/%m/%d %H:%M", "%Y/%m/%d", "%Y%m%dT%H%M%S")


def normalize_timestamp(raw: str) -> str:
    """ISO-8601 in UTC with a trailing ``Z``. Naive timestamps are taken as UTC (documented in the schema).

    Raises ``ValueError`` (without echoing the value) when the string is not a timestamp.
    """
    s = raw.strip()
    if not s:
        raise ValueError("empty timestamp")
    dt: datetime | None = None
    try:
        dt = datetime.fromisoformat(s[:-1] + "+00:00" if s[-1:] in ("Z", "z") else s)
    except ValueError:
        for fmt in _EXTRA_TS_FORMATS:
            try:
                dt = datetime.strptime(s, fmt)
                break
            except ValueError:
                continue
    if dt is None:
        raise ValueError("unparseable timestamp")
    if dt.tzinfo is not None:  # to UTC, then naive (a naive time is taken as UTC already)
        dt = dt.astimezone(UTC).replace(tzinfo=None)
    if dt.year < 1000:  # isoformat pads the year to 4 digits, strftime's %Y does not: kept as it was
        return dt.strftime("%Y-%m-%dT%H:%M:%S") + (f".{dt.microsecond:06d}" if dt.microsecond else "") + "Z"
    # the same string as strftime("%Y-%m-%dT%H:%M:%S") + (".ffffff" when there are microseconds), in C
    return dt.isoformat() + "Z"


_second: tuple[int, str] = (-1, "")  # the last whole second formatted, and its text (one tuple: thread-safe)


def utc_now_iso() -> str:
    """Now, UTC, to the millisecond: ``2024-01-01T12:00:00.123Z``. Every document gets one: the seconds' text is
    formatted once per second (0.6 µs a call instead of strftime's 2.5)."""
    global _second
    frac, seconds = math.modf(time.time())  # rounded to the microsecond as datetime.now rounds it
    whole, micros = int(seconds), round(frac * 1e6)
    if micros >= 1_000_000:
        whole, micros = whole + 1, micros - 1_000_000
    cached = _second
    if cached[0] != whole:
        cached = _second = (whole, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole)))
    return f"{cached[1]}.{micros // 1000:03d}Z"


# --- the entry --------------------------------------------------------------------------------------------


@dataclass(slots=True)
class Entry:
    """A decoded, validated input entry."""

    entry_id: str
    text: str
    patient_id: str | None = None
    timestamp: str | None = None
    source: dict[str, Any] | None = None
    schema_version: int = SCHEMA_VERSION
    input_format: str = "json"  # "json" | "text"
    extra: dict[str, Any] = field(default_factory=dict)

    def to_message(self) -> dict[str, Any]:
        msg: dict[str, Any] = {
            "entry_id": self.entry_id,
            "patient_id": self.patient_id,
            "text": self.text,
            "timestamp": self.timestamp,
            "schema_version": self.schema_version,
        }
        if self.source is not None:  # the schema's `source` is an object when present, never null
            msg["source"] = self.source
        return msg


def build_entry(patient_id: str, text: str, timestamp_raw: str, source_file: str | None = None,
                source_row: int | None = None) -> Entry:
    """An entry from CSV fields; raises :class:`PoisonMessage` (stage ``produce``) for invalid fields."""
    pid = (patient_id or "").strip()
    body = (text or "").strip()
    if not body:
        raise PoisonMessage(R_MISSING_TEXT, STAGE_PRODUCE, "text column is empty")
    if not pid:
        raise PoisonMessage(R_MISSING_PATIENT_ID, STAGE_PRODUCE, "patient id column is empty")
    try:
        ts = normalize_timestamp(timestamp_raw or "")
    except ValueError as exc:
        raise PoisonMessage(R_BAD_TIMESTAMP, STAGE_PRODUCE, str(exc), "ValueError") from None
    source = {"file": source_file, "row": source_row} if source_file is not None else None
    return Entry(compute_entry_id(pid, ts, body), body, pid, ts, source)


def encode_entry(entry: Entry) -> bytes:
    return encode_json(entry.to_message())


# --- schemas --------------------------------------------------------------------------------------------


@cache
def load_schema(name: str) -> dict[str, Any]:
    path = SCHEMA_DIR / name
    with path.open(encoding="utf-8") as fh:
        return json.load(fh)


@cache
def _validator(name: str) -> Any:
    from jsonschema import Draft202012Validator

    schema = load_schema(name)
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


@cache
def _fast_validator(name: str) -> Any:
    import fastjsonschema

    return fastjsonschema.compile(load_schema(name))


def schema_errors(instance: Any, schema_name: str = "entry.schema.json") -> list[str]:
    """Validation errors as ``validator at /path`` strings — never the offending value (may be patient text).

    fastjsonschema (the schema compiled to Python, ~2 µs an entry) answers valid/invalid on the hot path; only an
    invalid instance pays for jsonschema's error walk, whose messages we can keep free of patient text.
    """
    import fastjsonschema

    try:
        _fast_validator(schema_name)(instance)
        return []
    except fastjsonschema.JsonSchemaException:
        pass
    out = []
    for err in _validator(schema_name).iter_errors(instance):
        path = "/" + "/".join(str(p) for p in err.absolute_path)
        extra = ""
        if err.validator == "required":
            # "'text' is a required property": the missing key's name is safe
            missing = [k for k in err.validator_value if isinstance(instance, Mapping) and k not in instance]
            extra = f" {','.join(missing)}"
        out.append(f"{err.validator}{extra} at {path}")
    return sorted(out)


# "1,Patient shows signs of flu. Prescribed ibuprofen.,2024-01-01 12:00" — the reference producer's value
_REFERENCE_ROW = re.compile(r"^\s*([^,\s]{1,128}),(.+),\s*(\d{4}-\d{2}-\d{2}[T ][0-9:.]+(?:Z|[+-]\d{2}:?\d{2})?)\s*$",
                            re.DOTALL)


def decode_entry(value: bytes | None, *, max_text_chars: int = 20_000) -> Entry:
    """An :class:`Entry` from a message value, or :class:`PoisonMessage`.

    JSON objects (anything starting with ``{``) must satisfy ``entry.schema.json``. Anything else is a
    plain-text entry as in the reference design: if it looks like the reference producer's
    ``patient_id,text,timestamp`` row those fields are used (so the entry id is the same as for the JSON
    form), otherwise the whole value is the text and the id is derived from the text alone.
    """
    if value is None:
        raise PoisonMessage(R_EMPTY_TEXT, STAGE_DECODE, "null value (tombstone)")
    try:
        s = value.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PoisonMessage(R_UNDECODABLE, STAGE_DECODE, f"not UTF-8 at byte {exc.start}",
                            "UnicodeDecodeError") from None
    stripped = s.strip()
    if stripped.startswith("{"):
        try:
            obj = _loads(stripped)
        except json.JSONDecodeError as exc:
            raise PoisonMessage(R_NOT_JSON, STAGE_DECODE, f"{exc.msg} at char {exc.pos}",
                                "JSONDecodeError") from None
        if not isinstance(obj, dict):  # pragma: no cover - '{' guarantees an object
            raise PoisonMessage(R_SCHEMA, STAGE_VALIDATE, "not an object")
        if isinstance(obj.get("text"), str) and not obj["text"].strip():
            raise PoisonMessage(R_EMPTY_TEXT, STAGE_VALIDATE, "text is blank")
        errors = schema_errors(obj)
        if errors:
            raise PoisonMessage(R_SCHEMA, STAGE_VALIDATE, "; ".join(errors[:5]), "ValidationError")
        text = obj["text"]
        if len(text) > max_text_chars:
            raise PoisonMessage(R_TOO_LONG, STAGE_VALIDATE, f"{len(text)} > {max_text_chars} chars")
        known = {"entry_id", "patient_id", "text", "timestamp", "source", "schema_version"}
        return Entry(obj["entry_id"], text, obj["patient_id"], obj["timestamp"], obj.get("source"),
                     obj["schema_version"], "json", {k: v for k, v in obj.items() if k not in known})
    if not stripped:
        raise PoisonMessage(R_EMPTY_TEXT, STAGE_VALIDATE, "blank value")
    if len(stripped) > max_text_chars:
        raise PoisonMessage(R_TOO_LONG, STAGE_VALIDATE, f"{len(stripped)} > {max_text_chars} chars")
    m = _REFERENCE_ROW.match(stripped)
    if m:
        try:
            ts = normalize_timestamp(m.group(3))
            pid, text = m.group(1), m.group(2).strip().strip('"').strip()
            if text:
                return Entry(compute_entry_id(pid, ts, text), text, pid, ts, None, SCHEMA_VERSION, "text")
        except ValueError:
            pass
    return Entry(compute_entry_id(None, None, stripped), stripped, None, None, None, SCHEMA_VERSION, "text")


# --- the enriched document ------------------------------------------------------------------------------


_PLAIN = frozenset({str, int, bool, type(None)})


def _clean(value: Any) -> Any:
    """FerretDB-safe: no '.'/'$'-leading keys, no NaN/Infinity, no nested arrays (flattened to strings).

    A flat dict that is safe already (an entity's ``details``, nearly always) is returned as it is, not copied."""
    if isinstance(value, dict):
        for k, v in value.items():
            if type(k) is not str or "." in k or k[:1] == "$" or (
                    type(v) not in _PLAIN and not (type(v) is float and math.isfinite(v))):
                break
        else:
            return value
        return {_clean_key(str(k)): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json.dumps(v) if isinstance(v, (list, tuple)) else _clean(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _clean_entity(e: Mapping[str, Any]) -> Any:
    """An entity dict with FerretDB-safe ``details`` (a copy only when they had to change)."""
    details = e.get("details")
    if not details:
        return e
    clean = _clean(details)
    return e if clean is details else {**e, "details": clean}


def _clean_key(k: str) -> str:
    k = k.replace(".", "_")
    return "_" + k[1:] if k.startswith("$") else k


def build_processed(entry: Entry, result: Mapping[str, Any], *, extractor_version: str, lexicon_version: str,
                    chain_version: str, kafka: Mapping[str, Any] | None = None,
                    processed_at: str | None = None) -> dict[str, Any]:
    """The enriched document: the input fields + the extraction result + provenance. ``_id`` = entry_id."""
    doc: dict[str, Any] = {
        "_id": entry.entry_id,
        "entry_id": entry.entry_id,
        "patient_id": entry.patient_id,
        "text": entry.text,
        "timestamp": entry.timestamp,
        "source": entry.source,
        "schema_version": entry.schema_version,
        "input_format": entry.input_format,
    }
    for key in ("illness", "medicine", "status", "reason"):
        doc[key] = result.get(key)
    for key in ("illnesses", "medicines"):
        # an entity's own fields are typed scalars (extractor.chain.model.Entity.to_dict); only its free-form
        # `details` can hold keys or values FerretDB refuses
        doc[key] = [_clean_entity(e) for e in result.get(key, [])]
    if "substances" in result:  # lab analytes / body substances (not medicines); absent from older results
        doc["substances"] = [_clean_entity(e) for e in result["substances"]]
    # one flat, indexed list of the codes found ("illness:I10", "medicine:DB00722"): one multikey index serves
    # the code queries of both kinds (two indexes on illnesses.code / medicines.code cost PostgreSQL ~0.06 ms of
    # CPU per document each, measured with bench pipeline)
    doc["codes"] = entity_codes(doc["illnesses"], doc["medicines"])
    doc["stages_run"] = list(result.get("stages_run", []))
    doc["extractor_version"] = extractor_version
    doc["lexicon_version"] = lexicon_version
    doc["chain_version"] = chain_version
    doc["processed_at"] = processed_at or utc_now_iso()
    if kafka is not None:
        doc["kafka"] = dict(kafka)
    for k, v in entry.extra.items():
        doc.setdefault(_clean_key(k), _clean(v))
    # floats in entities (confidence/score) must be finite for FerretDB
    for ent in (*doc["illnesses"], *doc["medicines"], *doc.get("substances", ())):
        for k in ("confidence", "score"):
            v = ent.get(k)
            if isinstance(v, float) and not math.isfinite(v):
                ent[k] = None
    return doc


def entity_codes(illnesses: Sequence[Mapping[str, Any]], medicines: Sequence[Mapping[str, Any]]) -> list[str]:
    """``kind:code`` of every coded entity (negated ones too, as the entity lists hold them), sorted, unique."""
    out = {f"illness:{e['code']}" for e in illnesses if e.get("code")}
    out |= {f"medicine:{e['code']}" for e in medicines if e.get("code")}
    return sorted(out)


def encode_json(doc: Mapping[str, Any]) -> bytes:
    """Compact UTF-8 JSON, as ``json.dumps(doc, ensure_ascii=False, separators=(",", ":"), allow_nan=False)``
    writes it, through orjson (several times faster); what orjson refuses (an integer beyond 64 bits, a
    non-string key) goes through json. No NaN reaches here: decoding refuses it and build_processed replaces a
    non-finite confidence by null."""
    try:
        return orjson.dumps(doc)
    except (TypeError, orjson.JSONEncodeError):
        pass
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode("utf-8")


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _loads(s: str) -> Any:
    """JSON through orjson; what orjson refuses gets json's verdict (it reads integers beyond 64 bits), and NaN or
    Infinity, which neither is valid JSON nor fits a document, is a JSONDecodeError."""
    try:
        return orjson.loads(s)
    except orjson.JSONDecodeError:
        pass
    try:
        return json.loads(s, parse_constant=_no_constant)
    except json.JSONDecodeError:
        raise
    except ValueError as exc:
        raise json.JSONDecodeError(str(exc), s, 0) from None


def decode_json(value: bytes | str) -> Any:
    """A processed document from its JSON (the sink's decode): ValueError for bad JSON or bytes that are not
    UTF-8, TypeError for no value at all."""
    if value is None:
        raise TypeError("no value")
    return _loads(value if isinstance(value, str) else value.decode("utf-8"))


# --- headers ------------------------------------------------------------------------------------------------


def _b(v: Any) -> bytes:
    return v if isinstance(v, bytes) else str(v).encode("utf-8")


def headers_dict(headers: Sequence[tuple[str, bytes | None]] | None) -> dict[str, str]:
    """Kafka headers as ``{name: str}``; the last value of a repeated name wins."""
    out: dict[str, str] = {}
    for k, v in headers or ():
        out[k] = v.decode("utf-8", "replace") if isinstance(v, bytes) else ("" if v is None else str(v))
    return out


def dlq_headers(*, reason: str, stage: str, error_class: str, error: str = "",
                original: Iterable[tuple[str, bytes | None]] | None = None, entry_id: str | None = None,
                source_topic: str | None = None, source_partition: int | None = None,
                source_offset: int | None = None, extractor_version: str | None = None,
                lexicon_version: str | None = None, replay_count: int = 0,
                replay_of: str | None = None, failed_at: str | None = None, size: int | None = None,
                sha256: str | None = None) -> list[tuple[str, bytes]]:
    """Headers of a dead-letter record: the original record's headers (minus old DLQ headers) + ours."""
    out: list[tuple[str, bytes]] = [
        (k, v if v is not None else b"") for k, v in (original or ()) if k not in DLQ_HEADER_NAMES
    ]
    fields: list[tuple[str, Any]] = [
        (H_REASON, reason), (H_STAGE, stage), (H_ERROR_CLASS, error_class), (H_ERROR, error[:300]),
        (H_ENTRY_ID, entry_id), (H_SRC_TOPIC, source_topic), (H_SRC_PARTITION, source_partition),
        (H_SRC_OFFSET, source_offset), (H_EXTRACTOR_VERSION, extractor_version),
        (H_LEXICON_VERSION, lexicon_version), (H_REPLAY_COUNT, replay_count), (H_REPLAY_OF, replay_of),
        (H_FAILED_AT, failed_at or utc_now_iso()), (H_SIZE, size), (H_SHA256, sha256),
    ]
    out.extend((k, _b(v)) for k, v in fields if v is not None)
    return out
