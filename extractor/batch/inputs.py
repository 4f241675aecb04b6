"""The backfill's input: the producer's CSV files, JSON lines and Parquet (or a directory of them) as one DataFrame.

Each file format keeps the streaming path's parsing, so a row gets the same entry id and the same dead-letter
reason as if it had been produced to Kafka and consumed by a worker:

* CSV (``.csv``): parsed by the producer's own :func:`extractor.stream.producer.iter_rows` (quoted newlines make
  byte-range splits unsafe: with fewer files than cores, each task reads a whole file and keeps its blocks of rows,
  :func:`work_units`);
* JSON lines (``.jsonl``, ``.ndjson``, ``.json``): split into raw lines (bytes, so an undecodable line is
  dead-lettered as the stream does), each decoded on the executors as a Kafka message value
  (:func:`extractor.stream.messages.decode_entry`);
* Parquet (``.parquet``): the CSV's columns (settings ``csv_*_column``), validated like CSV fields.

Records are read in the task that extracts them; what crosses between the JVM and Python is Arrow batches
(``mapInArrow``), never pickled Python rows.
Paths must be readable from every executor (local files in local mode; a shared or object-store path on a
cluster, where the Parquet and JSON readers take any Hadoop URL).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

_DATE_DIR = re.compile(r"/date=(\d{4}-\d{2}-\d{2})$")

CSV_SUFFIXES = (".csv",)
# a file cut into shards (fewer files than cores) is dealt out in blocks of this many consecutive rows, not row by
# row: an export or a topic is in time order, so each task sees runs of the same dates and writes one output file
# per date it sees. Row by row, every task saw every date: 2 x 1,047 files for 200,000 rows of three years on two
# cores (bench backfill), about 1 ms of the task's CPU each and twice as many small files in the output. A block
# is small against a task's share, so the tasks' loads stay even (within one block)
SHARD_BLOCK_ROWS = 1024
JSONL_SUFFIXES = (".jsonl", ".ndjson", ".json")
PARQUET_SUFFIXES = (".parquet",)


def discover(path: str | Path) -> dict[str, list[str]]:
    """Input files by format (``csv``, ``jsonl``, ``parquet``); a directory is walked (hidden and ``_`` files
    skipped, as Spark does). Raises ``ValueError`` for an unknown suffix or nothing found."""
    p = Path(path)
    if not p.exists():
        raise ValueError(f"no such input: {p}")
    files = [p] if p.is_file() else sorted(
        f for f in p.rglob("*") if f.is_file() and not any(part.startswith((".", "_")) for part in
                                                             f.relative_to(p).parts))
    found: dict[str, list[str]] = {"csv": [], "jsonl": [], "parquet": []}
    for f in files:
        suffix = f.suffix.lower()
        if suffix in CSV_SUFFIXES:
            found["csv"].append(str(f))
        elif suffix in JSONL_SUFFIXES:
            found["jsonl"].append(str(f))
        elif suffix in PARQUET_SUFFIXES or (p.is_dir() and f.name.startswith("part-") and ".parquet" in f.name):
            found["parquet"].append(str(f))
        elif p.is_file():
            raise ValueError(f"{f}: unknown input format (use .csv, .jsonl/.ndjson/.json or .parquet)")
    if not any(found.values()):
        raise ValueError(f"{p}: no .csv, .jsonl, .ndjson, .json or .parquet files")
    return found


def is_archive(path: str | Path) -> bool:
    """A URL (``gs://``, ``s3://``, ``file://``) names an archive written by ``python -m extractor archive``."""
    return "://" in str(path)


def archive_objects(url: str, settings: Any, topic: str, since: str | None = None, until: str | None = None
                    ) -> list[str]:
    """URLs of the archive's objects of ``topic`` whose date folder is in [``since``, ``until``) (YYYY-MM-DD):
    only the date folders in range are listed (partition pruning on the path). Raises ``ValueError`` when the
    archive cannot be read or holds nothing in range."""
    from extractor.storage import StorageError, filesystem

    try:
        fs, root = filesystem(url, settings)
        base = root if root.rstrip("/").endswith("/raw") else f"{root}/raw"
        dates = fs.glob(f"{base}/topic={topic}/date=*")
    except (StorageError, OSError) as exc:
        raise ValueError(f"cannot read the archive {url}: {exc}") from None
    scheme = url.split("://", 1)[0]
    out = []
    for d in sorted(dates):
        m = _DATE_DIR.search(d.rstrip("/"))
        if m is None or (since and m.group(1) < since) or (until and m.group(1) >= until):
            continue
        out += [f"{scheme}://{p.lstrip('/') if scheme != 'file' else p}"
                for p in sorted(fs.glob(f"{d.rstrip('/')}/partition=*/offsets-*.parquet"))]
    if not out:
        raise ValueError(f"no archived objects of topic {topic!r} under {url} between {since or 'the start'} and "
                         f"{until or 'now'}")
    return out


def archive_records(url: str, settings: Any, shard: int = 0, shards: int = 1) -> Iterator[tuple]:
    """Records of one archived object: each Kafka value, as a worker would have decoded it (``source_row`` is
    the Kafka offset, ``source_file`` the object's name); with ``shards`` > 1 only the records of shard
    ``shard`` (:func:`in_shard`, by position in the object)."""
    import pyarrow.parquet as pq

    from extractor.storage import filesystem

    fs, path = filesystem(url, settings)
    with fs.open(path, "rb") as fh:
        table = pq.read_table(fh, columns=["value", "offset"])
    name = path.rsplit("/", 1)[-1]
    if shards > 1:
        table = table.take([i for i in range(table.num_rows) if in_shard(i, shard, shards)])
    for value, offset in zip(table.column("value").to_pylist(), table.column("offset").to_pylist(), strict=True):
        yield ("message", name, offset, value if value is not None else b"", None)


def in_shard(n: int, shard: int, shards: int, block: int | None = None) -> bool:
    """Whether record number ``n`` (rows, lines or offsets, counted from any start) belongs to shard ``shard`` of
    ``shards``: blocks of ``block`` consecutive numbers dealt out in turn (:data:`SHARD_BLOCK_ROWS`)."""
    return shards <= 1 or (n // (block or SHARD_BLOCK_ROWS)) % shards == shard


def csv_records(path: str, columns: tuple[str, str, str], header: bool = True, shard: int = 0,
                shards: int = 1) -> Iterator[tuple]:
    """Records of one CSV file, parsed exactly as ``python -m extractor produce`` parses it (blank rows skipped,
    as the producer skips them); with ``shards`` > 1 only the rows of shard ``shard`` (:func:`in_shard`; the
    others are split off, not validated)."""
    from extractor.stream.producer import iter_rows

    name = Path(path).name
    keep = None if shards <= 1 else (lambda n: in_shard(n, shard, shards))
    with open(path, "rb") as fh:
        for row in iter_rows(fh, name, patient_id_column=columns[0], text_column=columns[1],
                             timestamp_column=columns[2], header=header, keep=keep):
            if row.blank:
                continue
            if row.entry is not None:
                e = row.entry
                yield ("entry", name, row.row, row.raw, (e.entry_id, e.text, e.patient_id, e.timestamp, e.source))
            else:
                err = row.error
                yield ("poison", name, row.row, row.raw, (err.reason, err.stage, err.error_class, err.detail))


def jsonl_records(path: str, shard: int = 0, shards: int = 1) -> Iterator[tuple]:
    """Records of one JSON-lines file: each non-blank line is a Kafka message value (the line break removed), as
    a producer would publish it and a worker would decode it; with ``shards`` > 1 only the lines of shard ``shard``
    (:func:`in_shard`)."""
    name = Path(path).name
    with open(path, "rb") as fh:
        for i, line in enumerate(fh):
            if shards > 1 and not in_shard(i, shard, shards):
                continue
            line = line.rstrip(b"\r\n")
            if line.strip():  # skip blank lines, as a Kafka producer would never send an empty line
                yield ("message", name, None, line, None)


def work_units(files: dict[str, list[str]], partitions: int) -> list[tuple[str, str, int, int]]:
    """The tasks of a backfill over CSV, JSON-lines and archive files: ``(format, path, shard, shards)``. A file
    is one task; when there are fewer files than ``partitions``, each file is cut into shards (blocks of rows
    dealt out in turn: :func:`in_shard`), so that every core has a task without a shuffle of the records."""
    listed = [(fmt, f) for fmt in ("csv", "jsonl", "archive") for f in files.get(fmt, [])]
    if not listed:
        return []
    shards = max(1, -(-max(partitions, 1) // len(listed)))  # ceil
    return [(fmt, f, k, shards) for fmt, f in listed for k in range(shards)]


def unit_records(fmt: str, path: str, shard: int, shards: int, columns: tuple[str, str, str], header: bool,
                 settings: Any) -> Iterator[tuple]:
    """The records of one work unit (:func:`work_units`)."""
    if fmt == "csv":
        return csv_records(path, columns, header, shard, shards)
    if fmt == "archive":
        return archive_records(path, settings, shard, shards)
    return jsonl_records(path, shard, shards)


def _units_to_output(batches: Iterator[Any], units: list[tuple[str, str, int, int]], columns: tuple[str, str, str],
                     header: bool, payload: dict[str, Any], staging: str, factory: str | None) -> Iterator[Any]:
    """``mapInArrow`` body: Arrow batches of unit numbers (``id``, indexes into ``units``) -> the staged output rows
    of their records (parse, the chain, documents and dead letters written under ``staging``:
    :func:`extractor.batch.records.stage_records`)."""
    import uuid

    from extractor.batch import records as rec

    settings = rec.settings_from_payload(payload)

    def records() -> Iterator[tuple]:
        for batch in batches:
            for i in batch.column("id").to_pylist():
                fmt, path, shard, shards = units[i]
                yield from unit_records(fmt, path, shard, shards, columns, header, settings)

    yield from rec.stage_records(records(), payload, staging, uuid.uuid4().hex[:12], factory)


def _records_to_output(batches: Iterator[Any], payload: dict[str, Any], staging: str,
                       factory: str | None) -> Iterator[Any]:
    """``mapInArrow`` body for records Spark read (Parquet input): Arrow batches of :data:`RECORD_FIELDS` -> the
    staged output rows."""
    import uuid

    from extractor.batch import records as rec

    def records() -> Iterator[tuple]:
        for batch in batches:
            cols = batch.to_pydict()
            yield from (rec.record_from_columns(*v) for v in zip(*(cols[f] for f in rec.RECORD_FIELDS), strict=True))

    yield from rec.stage_records(records(), payload, staging, uuid.uuid4().hex[:12], factory)


def staged_output(spark: Any, files: dict[str, list[str]], columns: tuple[str, str, str], partitions: int,
                  staging: str, header: bool = True, payload: dict[str, Any] | None = None,
                  factory: str | None = None) -> Any:
    """One DataFrame of the tasks' tallies (:data:`extractor.batch.records.TALLY_FIELDS`: records by kind, reason
    and file, and the documents' id digests), the documents and dead letters written under ``staging`` by the
    Python workers. CSV, JSON lines and archive
    objects are read, parsed and extracted in the same task (:func:`work_units`: no shuffle of the records);
    Parquet is read by Spark's reader and handed over as Arrow batches."""
    from pyspark.sql import functions as F

    from extractor.batch import records as rec

    payload = payload or {}
    schema = _spark_schema(rec.tally_arrow_schema())
    parts = []
    units = work_units(files, partitions)
    if units:
        # one unit per partition (a repartition's round robin may put two units in one task and leave a core idle):
        # unit i is row i of a range, looked up in the task (a range is planned in the JVM alone: no DataFrame made
        # from Python rows, whose schema parsing and conversion cost the driver a second)
        df = spark.range(0, len(units), 1, len(units))
        parts.append(df.mapInArrow(lambda it, u=units, c=columns, h=header, p=payload, s=staging, f=factory:
                                   _units_to_output(it, u, c, h, p, s, f), schema))
    if files.get("parquet"):
        df = spark.read.parquet(*files["parquet"])
        for c in columns:
            if c not in df.columns:
                raise ValueError(f"Parquet input has no column {c!r}; columns are {df.columns}")
        none = F.lit(None).cast("string")
        records = df.select(
            F.lit("fields").alias("kind"), F.element_at(F.split(F.input_file_name(), "/"), -1).alias("source_file"),
            F.lit(None).cast("long").alias("source_row"), F.lit(None).cast("binary").alias("raw"),
            *[F.col(c).cast("string").alias(f"p{i}") for i, c in enumerate(columns)],
            none.alias("p3"), none.alias("p4"))
        parts.append(records.mapInArrow(lambda it, p=payload, s=staging, f=factory:
                                        _records_to_output(it, p, s, f), schema))
    out = parts[0]
    for df in parts[1:]:
        out = out.unionByName(df)
    return out


def _spark_schema(arrow_schema: Any) -> Any:
    """The Spark schema of an Arrow schema of strings, int64, binary and string maps."""
    import pyarrow as pa
    from pyspark.sql import types as T

    def spark_type(t: Any) -> Any:
        if pa.types.is_int64(t):
            return T.LongType()
        if pa.types.is_binary(t):
            return T.BinaryType()
        if pa.types.is_map(t):
            return T.MapType(T.StringType(), T.StringType())
        return T.StringType()

    return T.StructType([T.StructField(f.name, spark_type(f.type), True) for f in arrow_schema])
