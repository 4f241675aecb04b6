"""The backfill's input: the producer's CSV files, JSON lines and Parquet (or a directory of them) as one DataFrame.

Each file format keeps the streaming path's parsing, so a row gets the same entry id and the same dead-letter
reason as if it had been produced to Kafka and consumed by a worker:

* CSV (``.csv``): parsed by the producer's own :func:`extractor.stream.producer.iter_rows` (one task per file:
  quoted newlines make byte-range splits unsafe), then spread over the cluster by a repartition;
* JSON lines (``.jsonl``, ``.ndjson``, ``.json``): split into raw lines (bytes, so an undecodable line is
  dead-lettered as the stream does), each decoded on the executors as a Kafka message value
  (:func:`extractor.stream.messages.decode_entry`);
* Parquet (``.parquet``): the CSV's columns (settings ``csv_*_column``), validated like CSV fields.

Records travel as Arrow batches (``mapInArrow``), never as pickled Python rows.
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


def archive_records(url: str, settings: Any) -> Iterator[tuple]:
    """Records of one archived object: each Kafka value, as a worker would have decoded it (``source_row`` is
    the Kafka offset, ``source_file`` the object's name)."""
    import pyarrow.parquet as pq

    from extractor.storage import filesystem

    fs, path = filesystem(url, settings)
    with fs.open(path, "rb") as fh:
        table = pq.read_table(fh, columns=["value", "offset"])
    name = path.rsplit("/", 1)[-1]
    for value, offset in zip(table.column("value").to_pylist(), table.column("offset").to_pylist(), strict=True):
        yield ("message", name, offset, value if value is not None else b"", None)


def csv_records(path: str, columns: tuple[str, str, str], header: bool = True) -> Iterator[tuple]:
    """Records of one CSV file, parsed exactly as ``python -m extractor produce`` parses it (blank rows skipped,
    as the producer skips them)."""
    from extractor.stream.producer import iter_rows

    name = Path(path).name
    with open(path, "rb") as fh:
        for row in iter_rows(fh, name, patient_id_column=columns[0], text_column=columns[1],
                             timestamp_column=columns[2], header=header):
            if row.blank:
                continue
            if row.entry is not None:
                e = row.entry
                yield ("entry", name, row.row, row.raw, (e.entry_id, e.text, e.patient_id, e.timestamp, e.source))
            else:
                err = row.error
                yield ("poison", name, row.row, row.raw, (err.reason, err.stage, err.error_class, err.detail))


def jsonl_records(path: str) -> Iterator[tuple]:
    """Records of one JSON-lines file: each non-blank line is a Kafka message value (the line break removed), as
    a producer would publish it and a worker would decode it."""
    name = Path(path).name
    with open(path, "rb") as fh:
        for line in fh:
            line = line.rstrip(b"\r\n")
            if line.strip():  # skip blank lines, as a Kafka producer would never send an empty line
                yield ("message", name, None, line, None)


def _files_to_arrow(batches: Iterator[Any], fmt: str, columns: tuple[str, str, str], header: bool,
                    payload: dict[str, Any] | None = None) -> Iterator[Any]:
    """``mapInArrow`` body: batches of file paths -> Arrow batches of their records (one file at a time)."""
    from extractor.batch import records as rec

    schema = rec.record_arrow_schema()
    settings = rec.settings_from_payload(payload) if payload is not None else None
    for batch in batches:
        for path in batch.column(0).to_pylist():
            if fmt == "csv":
                records = csv_records(path, columns, header)
            elif fmt == "archive":
                records = archive_records(path, settings)
            else:
                records = jsonl_records(path)
            yield from rec.arrow_chunks((rec.record_columns(r) for r in records), schema)


def record_schema() -> Any:
    """The Spark schema of the input records (:data:`extractor.batch.records.RECORD_FIELDS`)."""
    from pyspark.sql import types as T

    from extractor.batch import records as rec

    types = {"source_row": T.LongType(), "raw": T.BinaryType()}
    return T.StructType([T.StructField(f, types.get(f, T.StringType()), True) for f in rec.RECORD_FIELDS])


def read_records(spark: Any, files: dict[str, list[str]], columns: tuple[str, str, str], partitions: int,
                 header: bool = True, payload: dict[str, Any] | None = None) -> Any:
    """One DataFrame of input records (:func:`record_schema`) over all the files, in about ``partitions``
    partitions. CSV and JSON lines are parsed in Python by the stream's own parsers, one task per file, and
    handed to Spark as Arrow batches (``mapInArrow``); Parquet is read by Spark's reader."""
    from pyspark.sql import functions as F

    schema = record_schema()
    parts = []
    for fmt in ("csv", "jsonl", "archive"):
        if files.get(fmt):
            n = len(files[fmt]) if fmt != "archive" else min(len(files[fmt]), max(partitions, 1) * 4)
            paths = spark.createDataFrame([(f,) for f in files[fmt]], "path string").repartition(n)
            df = paths.mapInArrow(
                lambda it, f=fmt, c=columns, h=header, p=payload: _files_to_arrow(it, f, c, h, p), schema)
            parts.append(df.repartition(partitions) if len(files[fmt]) < partitions else df)
    if files.get("parquet"):
        df = spark.read.parquet(*files["parquet"])
        for c in columns:
            if c not in df.columns:
                raise ValueError(f"Parquet input has no column {c!r}; columns are {df.columns}")
        none = F.lit(None).cast("string")
        parts.append(df.select(
            F.lit("fields").alias("kind"), F.element_at(F.split(F.input_file_name(), "/"), -1).alias("source_file"),
            F.lit(None).cast("long").alias("source_row"), F.lit(None).cast("binary").alias("raw"),
            *[F.col(c).cast("string").alias(f"p{i}") for i, c in enumerate(columns)],
            none.alias("p3"), none.alias("p4")))
    out = parts[0]
    for df in parts[1:]:
        out = out.unionByName(df)
    return out
