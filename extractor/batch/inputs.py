"""The backfill's input: the producer's CSV files, JSON lines and Parquet (or a directory of them) as one RDD.

Each file format keeps the streaming path's parsing, so a row gets the same entry id and the same dead-letter
reason as if it had been produced to Kafka and consumed by a worker:

* CSV (``.csv``): parsed by the producer's own :func:`extractor.stream.producer.iter_rows` (one task per file:
  quoted newlines make byte-range splits unsafe), then spread over the cluster by a repartition;
* JSON lines (``.jsonl``, ``.ndjson``, ``.json``): split by Spark's text reader into raw lines, each decoded on
  the executors as a Kafka message value (:func:`extractor.stream.messages.decode_entry`);
* Parquet (``.parquet``): the CSV's columns (settings ``csv_*_column``), validated like CSV fields.

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


def _line_record(name: str) -> Any:
    def to_record(line: bytes) -> tuple:
        return ("message", name, None, line, None)

    return to_record


def _parquet_record(row: Any) -> tuple:
    import json

    pid, text, ts, file = row[0], row[1], row[2], row[3]
    name = Path(str(file)).name if file else None
    raw = json.dumps({"patient_id": pid, "text": text, "timestamp": None if ts is None else str(ts)},
                     ensure_ascii=False).encode("utf-8")
    return ("fields", name, None, raw, (pid, text, ts))


def read_records(spark: Any, files: dict[str, list[str]], columns: tuple[str, str, str], partitions: int,
                 header: bool = True) -> Any:
    """One RDD of input records over all the files, in about ``partitions`` partitions."""
    sc = spark.sparkContext
    parts = []
    if files["csv"]:
        rdd = sc.parallelize(files["csv"], len(files["csv"])).flatMap(
            lambda f, c=columns, h=header: csv_records(f, c, h))
        parts.append(rdd.repartition(partitions) if len(files["csv"]) < partitions else rdd)
    for f in files["jsonl"]:
        lines = sc.textFile(f, minPartitions=partitions, use_unicode=False)
        # skip blank lines, as a Kafka producer would never send an empty line
        parts.append(lines.filter(lambda b: b.strip() != b"").map(_line_record(Path(f).name)))
    if files["parquet"]:
        from pyspark.sql import functions as F

        df = spark.read.parquet(*files["parquet"])
        for c in columns:
            if c not in df.columns:
                raise ValueError(f"Parquet input has no column {c!r}; columns are {df.columns}")
        df = df.select(*[F.col(c).cast("string") for c in columns], F.input_file_name())
        parts.append(df.rdd.map(_parquet_record))
    rdd = parts[0] if len(parts) == 1 else sc.union(parts)
    return rdd
