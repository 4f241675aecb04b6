"""Executor side of the backfill: input records -> the stream's enriched documents and dead-letter records.

Nothing here imports Spark, so the same code runs in a Spark Python worker, in a test, or in one process. The
chain is loaded once per Python process (:func:`chain_for`) and kept for every later task that process runs
(Spark reuses its Python workers), never pickled with a task. Documents are built exactly as the worker builds
them (:func:`extractor.stream.messages.build_processed` with the chain's versions), without the Kafka coordinates
a batch job does not have; dead-letter records carry the dlq-topic's headers, reasons and stages.

An input record is a plain tuple ``(kind, source_file, source_row, raw, payload)``:

* ``entry``   — a CSV row the producer's parser accepted; payload ``(entry_id, text, patient_id, timestamp, source)``
* ``poison``  — a CSV row it rejected; payload ``(reason, stage, error_class, detail)`` (the producer's reasons)
* ``message`` — a JSON line (or plain-text line), decoded like a Kafka message value by the worker
* ``fields``  — a Parquet row; payload ``(patient_id, text, timestamp)``, validated like a CSV row
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from collections.abc import Iterable, Iterator
from typing import Any

from extractor.config import Settings
from extractor.stream import messages as m
from extractor.stream.extraction import chain_versions, extract_isolating, load_chain

log = logging.getLogger(__name__)

KIND_DOCUMENT, KIND_DEAD_LETTER = "document", "dead_letter"
# fields that say when or through which transport a document was made, not what was extracted: left out of the
# content hash (and of the backfill-vs-worker comparison, with the Kafka coordinates a batch job has none of)
VOLATILE_FIELDS = frozenset({"processed_at", "written_at_ms", "produced_at_ms", "kafka"})
VERSION_FIELDS = frozenset({"extractor_version", "lexicon_version", "chain_version"})

# one output row per input record; the order of OUTPUT_FIELDS is the Spark schema's (extractor.batch.backfill)
OUTPUT_FIELDS = (
    "kind", "_id", "date", "patient_id", "timestamp", "status", "illness", "medicine", "extractor_version",
    "lexicon_version", "chain_version", "content_hash", "document", "reason", "stage", "error_class", "error",
    "source_file", "source_row", "value", "headers",
)

# a staged document file's columns (the documents' Parquet output; ``date`` is the folder, date=YYYY-MM-DD)
DOCUMENT_COLUMNS = ("_id", "patient_id", "timestamp", "status", "illness", "medicine", "extractor_version",
                    "lexicon_version", "chain_version", "content_hash", "document")
# the columns of the dead-letter Parquet (the dlq-topic's reasons, stages and headers, the original bytes in value)
DEAD_LETTER_COLUMNS = ("entry_id", "reason", "stage", "error_class", "error", "source_file", "source_row", "value",
                       "headers")
# a staged record: its kind, id (documents), reason (dead letters) and the file it was staged in (its columns are
# in that file), one per record (:meth:`extractor.batch.staging.OutputStager.take`)
STAGED_OUTPUT_FIELDS = ("kind", "_id", "reason", "staged_file")
# what a staging task hands back to Spark (:func:`stage_records`): its records counted by (kind, reason, file),
# ``ids`` None; then its documents' ids, as ``ID_DIGEST_BYTES``-byte digests packed into ``ids`` (``n`` of them
# per row, kind/reason/file None), from which the driver finds the entries seen twice (:func:`duplicate_ids`).
# A few rows per task instead of one per record: the JVM plans, converts and aggregates almost nothing
TALLY_FIELDS = ("kind", "reason", "staged_file", "n", "ids")
ID_DIGEST_BYTES = 16  # blake2b: two different ids share a digest with probability 2**-128
IDS_PER_ROW = 1 << 20  # digests per ``ids`` value (16 MB): bounded Arrow values
NULL_DATE = "__HIVE_DEFAULT_PARTITION__"  # Spark's folder name for a null partition value
# document JSON buffered per task before it is written out (bounded memory: about 1.3x this in Arrow at the peak).
# Each flush writes one file per date in the buffer, about 0.8 ms each: at 128 MB a 100,000-row task of 1,047
# dates flushed twice (bench backfill), 2 of its 37 s
STAGE_MAX_BYTES = 256 * 1024 * 1024

# the input records as columns, for Spark DataFrames and Arrow batches (extractor.batch.inputs): a record's
# payload spread over p0..p4 (strings; an entry's ``source`` as JSON), see :func:`record_columns`
RECORD_FIELDS = ("kind", "source_file", "source_row", "raw", "p0", "p1", "p2", "p3", "p4")
ARROW_BATCH_ROWS = 4096  # rows per Arrow batch made here (input chunks): bounded memory per Python task

_lock = threading.Lock()
_chains: dict[str, Any] = {}


def settings_payload(settings: Settings) -> dict[str, Any]:
    """What executors need to rebuild the settings (secrets included: it travels inside the job, never logged)."""
    d = settings.model_dump(mode="json")
    d["mongo_uri"] = settings.mongo_uri.get_secret_value()
    d["sasl_password"] = settings.sasl_password.get_secret_value() if settings.sasl_password else None
    d.pop("mongo_uri_file", None)
    d.pop("sasl_password_file", None)
    return d


def settings_from_payload(payload: dict[str, Any]) -> Settings:
    return Settings(**payload)


def chain_for(payload: dict[str, Any], factory: str | None = None) -> Any:
    """The chain for these settings, loaded on the first call in this process and reused afterwards (reloaded
    when the lexicon files changed since, as a running stream worker does)."""
    key = json.dumps({k: payload.get(k) for k in ("lexicon_dir", "ner_model", "stages", "chain_mode",
                                                  "ner_batch_size", "max_text_chars", "min_confidence")},
                     sort_keys=True) + (factory or "")
    with _lock:
        chain = _chains.get(key)
        if chain is None:
            chain = load_chain(settings_from_payload(payload), factory)
            _chains[key] = chain
            log.info("chain loaded in this executor process: %s", chain_versions(chain))
        else:
            # a reused Python worker may outlive a lexicon edit: the worker's own hot reload (a cheap stat check)
            reload = getattr(chain, "reload_if_changed", None)
            if reload is not None:
                reload()
        return chain


def loaded_chains() -> int:
    """How many chains this process has loaded (tests: once per executor process)."""
    return len(_chains)


def _core(doc: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in doc.items() if k not in VOLATILE_FIELDS and k not in VERSION_FIELDS}


def content_hash(doc: dict[str, Any], core_json: str | None = None) -> str:
    """Hash of what was extracted for the entry (text, ids, entities, status...), without times and versions.
    Key order is the document builder's own, so no sorting is needed (documents always come from
    ``build_processed``)."""
    data = m.encode_json(_core(doc)) if core_json is None else core_json.encode("utf-8")  # orjson, json's bytes
    return hashlib.sha256(data).hexdigest()[:32]


def document_json(doc: dict[str, Any]) -> tuple[bytes, str]:
    """(the document's JSON, UTF-8 bytes as ``encode_json`` writes them, its :func:`content_hash`) from one encoding:
    ``build_processed`` puts the versions and times after everything it extracted, so the hashed part's JSON is
    the document's JSON cut before its top-level ``"extractor_version"`` key (a quote inside a JSON string is
    always escaped, so that key's bytes cannot come from a value; the last one is the top level's when only
    versions and times follow it). A document shaped otherwise is encoded twice, as before. Bytes, not text: the
    staged Parquet's string column takes them as they are (checked as UTF-8), where a ``str`` cost a decode here
    and an encode in Arrow (0.46 -> 0.18 s per 100,000 documents of 1 KB)."""
    full = m.encode_json(doc)
    keys = list(doc)
    try:
        first = keys.index("extractor_version")
    except ValueError:
        first = 0
    if first and all(k in _TAIL_FIELDS for k in keys[first:]):
        cut = full.rfind(b',"extractor_version":')
        if cut > 0:
            return full, hashlib.sha256(full[:cut] + b"}").hexdigest()[:32]
    return full, content_hash(doc)


_TAIL_FIELDS = VOLATILE_FIELDS | VERSION_FIELDS


def _to_entry(rec: tuple, max_text_chars: int) -> m.Entry:
    """The entry a record holds, or :class:`PoisonMessage` with the stream's reason and stage.

    A CSV or Parquet row gets the worker's checks on the message the producer would publish for it."""
    kind, file, row, raw, payload = rec
    if kind == "message":
        return m.decode_entry(raw, max_text_chars=max_text_chars)
    if kind == "poison":
        reason, stage, error_class, detail = payload
        raise m.PoisonMessage(reason, stage, detail, error_class)
    if kind == "entry":
        entry_id, text, patient_id, timestamp, source = payload
        entry = m.Entry(entry_id, text, patient_id, timestamp, source)
    elif kind == "fields":
        pid, text, ts = payload
        entry = m.build_entry("" if pid is None else str(pid), text if isinstance(text, str) else "",
                              "" if ts is None else str(ts))
        if file is not None:  # a Parquet row has a file but no row number
            entry.source = {"file": file} if row is None else {"file": file, "row": row}
    else:
        raise ValueError(f"unknown record kind {kind!r}")
    return validated(entry, max_text_chars)


def validated(entry: m.Entry, max_text_chars: int) -> m.Entry:
    """The worker's checks on the message the producer would publish for ``entry`` (``decode_entry`` on
    ``encode_entry(entry)``: the entry schema, then the length), without the JSON round trip, which changes
    nothing in an entry made of strings (tested against ``decode_entry``)."""
    errors = m.schema_errors(entry.to_message())
    if errors:
        raise m.PoisonMessage(m.R_SCHEMA, m.STAGE_VALIDATE, "; ".join(errors[:5]), "ValidationError")
    if len(entry.text) > max_text_chars:
        raise m.PoisonMessage(m.R_TOO_LONG, m.STAGE_VALIDATE, f"{len(entry.text)} > {max_text_chars} chars")
    return entry


def _dead_letter(rec: tuple, *, reason: str, stage: str, error_class: str, detail: str, entry_id: str | None,
                 versions: tuple[str, str]) -> tuple:
    _, file, row, raw, _ = rec
    original = []
    if file is not None:
        original = [(m.H_SCHEMA_VERSION, str(m.SCHEMA_VERSION).encode()),
                    (m.H_SOURCE_FILE, str(file).encode("utf-8", "replace"))]
        if row is not None:
            original.append((m.H_SOURCE_ROW, str(row).encode()))
    headers = m.headers_dict(m.dlq_headers(
        reason=reason, stage=stage, error_class=error_class, error=detail, original=original, entry_id=entry_id,
        # like the stream: the producer's records carry no chain versions, the worker's do
        extractor_version=None if stage == m.STAGE_PRODUCE else versions[0],
        lexicon_version=None if stage == m.STAGE_PRODUCE else versions[1]))
    values = {"kind": KIND_DEAD_LETTER, "_id": entry_id, "reason": reason, "stage": stage,
              "error_class": error_class, "error": detail[:300], "source_file": file, "source_row": row,
              "value": raw, "headers": headers}
    return tuple(values.get(f) for f in OUTPUT_FIELDS)


def _document(doc: dict[str, Any]) -> tuple:
    """The output row of a document (:data:`OUTPUT_FIELDS`); ``document`` holds exactly the JSON the worker
    publishes for it (UTF-8 bytes: :func:`document_json`)."""
    ts = doc.get("timestamp")
    source = doc.get("source") or {}
    get = doc.get
    text, digest = document_json(doc)
    return (KIND_DOCUMENT, get("_id"), ts[:10] if isinstance(ts, str) and len(ts) >= 10 else None,
            get("patient_id"), ts, get("status"), get("illness"), get("medicine"), get("extractor_version"),
            get("lexicon_version"), get("chain_version"), digest, text,
            get("reason"), get("stage"), get("error_class"), get("error"), source.get("file"), source.get("row"),
            get("value"), get("headers"))


def process_batch(chain: Any, records: list[tuple], max_text_chars: int) -> list[tuple]:
    """One batch of records -> output rows (documents and dead letters), the worker's decisions one for one."""
    extractor_version, lexicon_version = chain_versions(chain)
    chain_version = str(getattr(chain, "version", "") or lexicon_version)
    versions = (extractor_version, lexicon_version)
    out: list[tuple] = []
    good: list[tuple[tuple, m.Entry]] = []
    for rec in records:
        try:
            good.append((rec, _to_entry(rec, max_text_chars)))
        except m.PoisonMessage as exc:
            out.append(_dead_letter(rec, reason=exc.reason, stage=exc.stage, error_class=exc.error_class,
                                    detail=exc.detail, entry_id=None, versions=versions))
    results = extract_isolating(chain, [e.text for _, e in good]) if good else []
    processed_at = m.utc_now_iso()
    for (rec, entry), result in zip(good, results, strict=True):
        if isinstance(result, Exception):
            out.append(_dead_letter(rec, reason=m.R_EXTRACT_ERROR, stage=m.STAGE_EXTRACT,
                                    error_class=type(result).__name__, detail="", entry_id=entry.entry_id,
                                    versions=versions))
        elif result.status == "unresolved":
            out.append(_dead_letter(rec, reason=m.R_UNRESOLVED, stage=m.STAGE_EXTRACT, error_class="Unresolved",
                                    detail=str(result.reason or "")[:100], entry_id=entry.entry_id,
                                    versions=versions))
        else:
            doc = m.build_processed(entry, result.to_dict(), extractor_version=extractor_version,
                                    lexicon_version=lexicon_version, chain_version=chain_version,
                                    processed_at=processed_at)
            out.append(_document(doc))
    return out


# --------------------------------------------------------------------------------------------- Arrow batches
def record_columns(record: tuple) -> tuple:
    """A record tuple as the values of :data:`RECORD_FIELDS`."""
    kind, file, row, raw, payload = record
    p: list[Any] = [None] * 5
    if kind == "entry":
        entry_id, text, patient_id, timestamp, source = payload
        p = [entry_id, text, patient_id, timestamp, json.dumps(source, ensure_ascii=False) if source else None]
    elif kind in ("poison", "fields"):
        p[: len(payload)] = list(payload)
    return (kind, file, row, raw, *p)


def record_from_columns(kind: str, file: str | None, row: int | None, raw: bytes | None, p0: Any, p1: Any,
                        p2: Any, p3: Any, p4: Any) -> tuple:
    """The record tuple back from its columns (inverse of :func:`record_columns`). A Parquet row's ``raw`` (its
    fields as the producer's JSON, kept for a dead letter) is made here, on the executor."""
    if kind == "entry":
        return (kind, file, row, raw, (p0, p1, p2, p3, json.loads(p4) if p4 else None))
    if kind == "poison":
        return (kind, file, row, raw, (p0, p1, p2, p3))
    if kind == "fields":
        if raw is None:
            raw = json.dumps({"patient_id": p0, "text": p1, "timestamp": p2}, ensure_ascii=False).encode("utf-8")
        return (kind, file, row, raw, (p0, p1, p2))
    return (kind, file, row, raw, None)


def record_arrow_schema() -> Any:
    import pyarrow as pa

    types = {"source_row": pa.int64(), "raw": pa.binary()}
    return pa.schema([pa.field(f, types.get(f, pa.string())) for f in RECORD_FIELDS])


def output_arrow_schema() -> Any:
    import pyarrow as pa

    types = {"source_row": pa.int64(), "value": pa.binary(), "headers": pa.map_(pa.string(), pa.string())}
    return pa.schema([pa.field(f, types.get(f, pa.string())) for f in OUTPUT_FIELDS])


def staged_output_arrow_schema() -> Any:
    import pyarrow as pa

    return pa.schema([pa.field(f, pa.string()) for f in STAGED_OUTPUT_FIELDS])


def tally_arrow_schema() -> Any:
    """The schema of what a staging task returns (:data:`TALLY_FIELDS`)."""
    import pyarrow as pa

    types = {"n": pa.int64(), "ids": pa.binary()}
    return pa.schema([pa.field(f, types.get(f, pa.string())) for f in TALLY_FIELDS])


def id_digest(entry_id: str) -> bytes:
    return hashlib.blake2b(entry_id.encode("utf-8"), digest_size=ID_DIGEST_BYTES).digest()


def tally_rows(staged: Iterable[tuple]) -> list[tuple]:
    """Staged records (:data:`STAGED_OUTPUT_FIELDS`) -> :data:`TALLY_FIELDS` rows: one per (kind, reason, file)
    with its count, then the documents' id digests, packed."""
    counts: dict[tuple, int] = {}
    ids: list[bytes] = []
    for kind, entry_id, reason, staged_file in staged:
        key = (kind, reason, staged_file)
        counts[key] = counts.get(key, 0) + 1
        if kind == KIND_DOCUMENT:
            ids.append(id_digest(entry_id or ""))
    rows = [(k, r, f, n, None) for (k, r, f), n in counts.items()]
    for i in range(0, len(ids), IDS_PER_ROW):
        chunk = ids[i : i + IDS_PER_ROW]
        rows.append((None, None, None, len(chunk), b"".join(chunk)))
    return rows


def duplicate_ids(packed: Iterable[bytes]) -> int:
    """How many documents repeat an id seen before, over every task's packed digests (:func:`tally_rows`):
    ``n - distinct``. numpy sorts the digests as pairs of 64-bit words (16 bytes a document in the driver)."""
    import numpy as np

    parts = [np.frombuffer(p, dtype="<u8") for p in packed if p]
    if not parts:
        return 0
    words = np.concatenate(parts).reshape(-1, ID_DIGEST_BYTES // 8)
    order = np.lexsort(words.T[::-1])
    ordered = words[order]
    return int((ordered[1:] == ordered[:-1]).all(axis=1).sum())


def dead_letter_arrow_schema() -> Any:
    """The dead-letter Parquet's schema (:data:`DEAD_LETTER_COLUMNS`)."""
    import pyarrow as pa

    fields = {f.name: f for f in output_arrow_schema()}
    return pa.schema([fields["_id"].with_name("entry_id"), *(fields[c] for c in DEAD_LETTER_COLUMNS[1:])])


def to_arrow(rows: list[tuple], schema: Any) -> Any:
    """Rows (tuples in ``schema``'s field order) as one Arrow record batch."""
    import pyarrow as pa

    columns = list(zip(*rows, strict=True)) if rows else [()] * len(schema)
    return pa.RecordBatch.from_arrays(
        [pa.array(list(col), type=f.type) for col, f in zip(columns, schema, strict=True)], schema=schema)


def arrow_chunks(rows: Iterable[tuple], schema: Any, size: int = ARROW_BATCH_ROWS) -> Iterator[Any]:
    """``rows`` as Arrow record batches of at most ``size`` rows."""
    chunk: list[tuple] = []
    for r in rows:
        chunk.append(r)
        if len(chunk) >= size:
            yield to_arrow(chunk, schema)
            chunk = []
    if chunk:
        yield to_arrow(chunk, schema)


def stage_records(records: Iterable[tuple], payload: dict[str, Any], staging: str, tag: str,
                  factory: str | None = None) -> Iterator[Any]:
    """A task's records through ``chain.extract_many`` in batches of ``batch_size``: the documents and dead letters
    written under ``staging`` (:class:`OutputStager`), then one Arrow batch of :data:`TALLY_FIELDS` rows
    (:func:`tally_rows`), returned after every file is written, so a task that ends has staged all it reports."""
    chain = chain_for(payload, factory)
    size = max(1, int(payload.get("batch_size") or 500))
    max_chars = int(payload.get("max_text_chars") or 20_000)
    max_bytes = STAGE_MAX_BYTES
    from extractor.batch.staging import OutputStager

    stager = OutputStager(staging, settings_from_payload(payload), tag, max_bytes)
    batch: list[tuple] = []
    staged: list[tuple] = []
    for record in records:
        batch.append(record)
        if len(batch) >= size:
            staged += stager.take(process_batch(chain, batch, max_chars))
            batch = []
    if batch:
        staged += stager.take(process_batch(chain, batch, max_chars))
    stager.flush()
    rows = tally_rows(staged)
    if rows:
        yield to_arrow(rows, tally_arrow_schema())
