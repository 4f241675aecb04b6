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

from collections.abc import Iterator
from pathlib import Path
from typing import Any

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


def _files_to_arrow(batches: Iterator[Any], fmt: str, columns: tuple[str, str, str], header: bool) -> Iterator[Any]:
    """``mapInArrow`` body: batches of file paths -> Arrow batches of their records (one file at a time)."""
    from extractor.batch import records as rec

    schema = rec.record_arrow_schema()
    for batch in batches:
        for path in batch.column(0).to_pylist():
            records = csv_records(path, columns, header) if fmt == "csv" else jsonl_records(path)
            yield from rec.arrow_chunks((rec.record_columns(r) for r in records), schema)


def record_schema() -> Any:
    """The Spark schema of the input records (:data:`extractor.batch.records.RECORD_FIELDS`)."""
    from pyspark.sql import types as T

    from extractor.batch import records as rec

    types = {"source_row": T.LongType(), "raw": T.BinaryType()}
    return T.StructType([T.StructField(f, types.get(f, T.StringType()), True) for f in rec.RECORD_FIELDS])


def read_records(spark: Any, files: dict[str, list[str]], columns: tuple[str, str, str], partitions: int,
                 header: bool = True) -> Any:
    """One DataFrame of input records (:func:`record_schema`) over all the files, in about ``partitions``
    partitions. CSV and JSON lines are parsed in Python by the stream's own parsers, one task per file, and
    handed to Spark as Arrow batches (``mapInArrow``); Parquet is read by Spark's reader."""
    from pyspark.sql import functions as F

    schema = record_schema()
    parts = []
    for fmt in ("csv", "jsonl"):
        if files[fmt]:
            paths = spark.createDataFrame([(f,) for f in files[fmt]], "path string").repartition(len(files[fmt]))
            df = paths.mapInArrow(lambda it, f=fmt, c=columns, h=header: _files_to_arrow(it, f, c, h), schema)
            parts.append(df.repartition(partitions) if len(files[fmt]) < partitions else df)
    if files["parquet"]:
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
