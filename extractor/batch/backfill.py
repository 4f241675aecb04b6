"""``python -m extractor backfill INPUT --output DIR``: the extraction chain over files of entries, on Apache Spark.

The batch counterpart of the stream, for years of existing notes or a re-extraction after a lexicon or model
change. Each Spark task reads its share of the input (a file, or blocks of rows of one: no shuffle of the
records), and its Python worker runs the whole path: parse, the chain (loaded once per process, ``extract_many``
on batches of ``batch_size``) and the Parquet of documents and dead letters, written by pyarrow into a staging
folder laid out like the output (:mod:`extractor.batch.staging`). The JVM gets back one small Arrow row per record
(kind, id, reason, file), summed in one job, so it never carries, shuffles or encodes a document. Output:

* ``DIR/documents/date=YYYY-MM-DD/*.parquet`` — the stream's enriched documents (same ``_id`` = entry id, same
  fields and versions; the full document as JSON in ``document``, its main fields as columns, ``content_hash``);
* ``DIR/dead_letter/*.parquet`` — this run's unresolved and malformed entries, with the dlq-topic's reasons,
  stages and headers and the original bytes in ``value``;
* with ``--mongo``, the same documents upserted by ``_id`` with the sink's writer (``store.upsert_documents``).

A first run (or one of new dates only, without duplicates) moves the files its tasks reported into place. Otherwise
Spark merges: the same entry twice keeps its later row's document, and each touched date folder is rewritten as
its previous documents + this run's (one file per date).
Idempotent: a document is keyed by its ``_id`` in the Parquet output (the date partitions a run touches are
rewritten as previous documents + this run's, through a staging folder) and in MongoDB (upserts), so a rerun
changes nothing but ``processed_at``. ``--only-changed`` compares each new document's ``content_hash`` (what was
extracted, without times and versions) with the previous output's and writes only new or changed documents.
Progress: Spark's UI (its address is logged) and console progress bar, then one summary line,
``read = written + unchanged + duplicates + dead_lettered``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import threading
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from extractor.batch import class_archive, inputs, staging
from extractor.batch import records as rec
from extractor.config import REPO_ROOT, Settings, load_settings
from extractor.storage import StorageError

log = logging.getLogger(__name__)

DOCUMENTS, DEAD_LETTER, STAGING = "documents", "dead_letter", "_staging"
DOC_COLUMNS = (*rec.DOCUMENT_COLUMNS, "date")


@dataclass
class BackfillSummary:
    input: str
    read: int = 0
    written: int = 0
    unchanged: int = 0
    duplicates: int = 0
    dead_lettered: int = 0
    reasons: dict[str, int] = field(default_factory=dict)
    mongo_upserted: int = 0
    output_documents: int = 0  # this run's documents found in the output after writing (read back)
    seconds: float = 0.0
    master: str = ""

    @property
    def reconciled(self) -> bool:
        return (self.read == self.written + self.unchanged + self.duplicates + self.dead_lettered
                and self.output_documents == self.written + self.unchanged)

    def line(self) -> str:
        reasons = ", ".join(f"{k}={v}" for k, v in sorted(self.reasons.items())) or "none"
        rate = self.read / self.seconds if self.seconds else 0.0
        return (f"backfill {self.input}: read={self.read} = written={self.written} + unchanged={self.unchanged} "
                f"+ duplicates={self.duplicates} + dead_lettered={self.dead_lettered} ({reasons}) "
                f"[{'reconciled' if self.reconciled else 'NOT RECONCILED'}] mongo_upserted={self.mongo_upserted} "
                f"seconds={self.seconds:.1f} rate={rate:.0f}/s master={self.master}")


def spark_session(master: str = "local[*]", app_name: str = "clinical-extractor-backfill",
                  conf: dict[str, str] | None = None) -> Any:
    """A Spark session for the backfill. In local mode the Python workers run this interpreter and import this
    checkout's ``extractor`` package; on a cluster the image provides both (deploy/)."""
    from pyspark.sql import SparkSession

    b = SparkSession.builder.master(master).appName(app_name)
    settings = {
        "spark.sql.session.timeZone": "UTC",
        "spark.python.worker.reuse": "true",  # the chain stays loaded in each Python worker between tasks
        "spark.ui.showConsoleProgress": "true",
        "spark.sql.sources.partitionOverwriteMode": "static",
        # rows per Arrow batch handed to a Python worker (mapInArrow): bounded memory per task
        "spark.sql.execution.arrow.maxRecordsPerBatch": "2000",
        # the Python daemon loads the chain once and forks the workers with it (extractor.batch.daemon): one load
        # per executor instead of one per core, its memory shared
        "spark.python.daemon.module": "extractor.batch.daemon",
        "spark.sql.execution.pyspark.udf.simplifiedTraceback.enabled": "false",
    }
    if master.startswith("local"):
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
        path = os.pathsep.join(p for p in (str(REPO_ROOT), os.environ.get("PYTHONPATH", "")) if p)
        settings["spark.executorEnv.PYTHONPATH"] = path
        settings["spark.sql.shuffle.partitions"] = str(max(2, os.cpu_count() or 2))
        # local mode runs the executors inside the driver's JVM: Spark's 1 GB default ran out of heap writing
        # 200,000 documents (bench backfill); --conf spark.driver.memory=... overrides it
        settings["spark.driver.memory"] = "3g"
        # the JVM's part of a backfill is light (the Python workers parse, extract and write the documents): its
        # C2 JIT compiler spent 6 of the JVM's 14 CPU seconds of a 200,000-row run on the cores the Python
        # workers need; C1 alone spent 0.8 (bench backfill). --conf spark.driver.extraJavaOptions= overrides it
        # and the classes Spark loads at start come mapped from an archive the first local session wrote
        # (extractor.batch.class_archive: a session starts in about half the time)
        settings["spark.driver.extraJavaOptions"] = " ".join(
            o for o in ("-XX:TieredStopAtLevel=1", class_archive.jvm_option()) if o)
        # list the date partitions on the driver: a Spark job of one task per folder (the default past 32
        # folders, made for object stores) costs minutes for years of dates on a local disk
        settings["spark.sql.sources.parallelPartitionDiscovery.threshold"] = "1000000"
    settings.update(conf or {})
    for k, v in settings.items():
        b = b.config(k, v)
    spark = b.getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    return spark


def warm_up_workers(spark: Any) -> threading.Thread:
    """Start the executors' Python side now, in the background: a job of one empty task per core makes Spark
    start its Python daemon (which loads the chain, :mod:`extractor.batch.daemon`) and fork the workers, while
    the driver lists the input and the JVM plans the backfill's first query (about 2 s of its CPU at the start of
    a session). The workers stay up for the backfill's tasks (``spark.python.worker.reuse``). Returns the thread;
    a failure is only logged: the backfill's own job starts the workers then."""

    def run() -> None:
        try:
            n = max(1, spark.sparkContext.defaultParallelism)
            spark.sparkContext.parallelize(range(n), n).foreach(_nothing)
        except Exception as exc:  # noqa: BLE001 - an optimisation only
            log.debug("Python workers not warmed up: %s", exc)

    t = threading.Thread(target=run, name="warm-up-python-workers", daemon=True)
    t.start()
    return t


def _nothing(_: Any) -> None:
    return None


def _fs(spark: Any, path: str) -> tuple[Any, Any]:
    jvm = spark.sparkContext._jvm
    p = jvm.org.apache.hadoop.fs.Path(path)
    return p.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration()), p


def _exists(spark: Any, path: str) -> bool:
    fs, p = _fs(spark, path)
    return bool(fs.exists(p))


def _swap_partitions(spark: Any, staging: str, target: str) -> int:
    """Move each ``date=*`` folder of ``staging`` over the same folder of ``target`` (Hadoop FileSystem API, so
    any filesystem Spark writes to works); returns how many. Not atomic between delete and rename: a crash
    there loses that date's folder until the backfill is run again (it is idempotent)."""
    jvm = spark.sparkContext._jvm
    fs, src = _fs(spark, staging)
    _, dst = _fs(spark, target)
    fs.mkdirs(dst)
    moved = 0
    for status in fs.listStatus(src):
        name = status.getPath().getName()
        if not name.startswith("date="):
            continue
        final = jvm.org.apache.hadoop.fs.Path(dst, name)
        if fs.exists(final):
            fs.delete(final, True)
        if not fs.rename(status.getPath(), final):
            raise RuntimeError(f"could not move {status.getPath()} to {final}")
        moved += 1
    fs.delete(src, True)
    return moved


def _mongo_writer(payload: dict[str, Any]) -> Any:
    def write(rows: Any) -> None:
        from extractor.batch.mongo import upsert_rows

        upsert_rows(rows, payload)

    return write


def backfill(settings: Settings, input_path: str | Path, output: str | Path, *, spark: Any = None,
             master: str = "local[*]", mongo: bool = False, only_changed: bool = False,
             partitions: int | None = None, header: bool = True, chain_factory: str | None = None,
             since: str | None = None, until: str | None = None, topic: str | None = None) -> BackfillSummary:
    """Run the backfill; returns its summary (``summary.reconciled`` says whether every record is accounted for)."""
    from pyspark.sql import functions as F

    t0 = time.monotonic()
    own = spark is None
    spark = spark or spark_session(master)
    warm = warm_up_workers(spark)
    if inputs.is_archive(input_path):  # objects of `python -m extractor archive`, pruned by date folder
        files = {"archive": inputs.archive_objects(str(input_path), settings, topic or settings.input_topic,
                                                   since, until)}
        log.info("archive: %d objects of %s between %s and %s", len(files["archive"]),
                 topic or settings.input_topic, since or "the start", until or "now")
    else:
        files = inputs.discover(input_path)
    summary = BackfillSummary(input=str(input_path), master=spark.sparkContext.master)
    if spark.sparkContext.uiWebUrl:
        log.info("Spark UI: %s", spark.sparkContext.uiWebUrl)
    out_dir = str(output).rstrip("/")
    if "://" not in out_dir:  # the Python workers write there too: the same folder whatever their cwd
        out_dir = str(Path(out_dir).resolve())
    docs_dir, dlq_dir = f"{out_dir}/{DOCUMENTS}", f"{out_dir}/{DEAD_LETTER}"
    run_id = uuid.uuid4().hex[:8]
    merged_dir = f"{out_dir}/{STAGING}-{run_id}"  # Spark's write of merged date folders
    pystage = f"{out_dir}/{STAGING}-{run_id}-documents"  # the Python workers' documents
    n_parts = partitions or max(2, spark.sparkContext.defaultParallelism)
    payload = rec.settings_payload(settings)
    columns = (settings.csv_patient_id_column, settings.csv_text_column, settings.csv_timestamp_column)
    try:
        # one pass over the input: parse, the chain and the Parquet of documents and dead letters in the Python
        # workers; what comes back to the JVM is a small row per record, summed in the same job (no cache)
        out = inputs.staged_output(spark, files, columns, n_parts, pystage, header=header, payload=payload,
                                   factory=chain_factory)
        counts = _tally(out)  # runs the chain, once per record
        summary.read = sum(counts.kinds.values())
        summary.dead_lettered = counts.kinds.get(rec.KIND_DEAD_LETTER, 0)
        summary.reasons = dict(counts.reasons)
        summary.duplicates = counts.duplicates
        n_docs = counts.kinds.get(rec.KIND_DOCUMENT, 0)
        n_unique = n_docs - summary.duplicates
        log.info("extracted %d records in %.1fs", summary.read, time.monotonic() - t0)
        # only the files this run's successful tasks report: a failed task attempt's files are left out
        staged_files, dead_files = counts.document_files, counts.dead_letter_files
        staging.keep_only(pystage, staged_files + dead_files, settings)

        previous = None
        if _exists(spark, docs_dir):  # partition discovery reads date=YYYY-MM-DD as a date: back to our string
            previous = spark.read.parquet(docs_dir).withColumn("date", F.col("date").cast("string"))
        run_dates = {f.split("/", 1)[0] for f in staged_files}
        touched = run_dates & staging.date_folders(docs_dir, settings) if previous is not None else set()
        written_ids = None  # None: every document of this run was written
        if not summary.duplicates and not touched and not (only_changed and previous is not None):
            # nothing to merge: the staged date folders are the output (a first run, or only new dates)
            summary.written = n_docs
            moved = staging.move_files(pystage, docs_dir, staged_files, settings)
            summary.output_documents = staging.count_rows(docs_dir, moved, settings)  # read back
            log.info("documents: %d date partitions moved under %s (%.1fs)", len(run_dates), docs_dir,
                     time.monotonic() - t0)
        else:
            written_ids = _merge(spark, pystage, staged_files, previous, only_changed, n_parts, merged_dir, docs_dir,
                                 summary, t0)
            run_ids = _staged(spark, pystage, staged_files).select("_id").distinct()
            summary.output_documents = (spark.read.parquet(docs_dir).select("_id")
                                        .join(run_ids, "_id", "left_semi").count())
        summary.unchanged = n_unique - summary.written
        moved_dead = staging.replace_dead_letters(pystage, dlq_dir, dead_files, settings)
        if moved_dead != summary.dead_lettered:
            raise RuntimeError(f"{moved_dead} dead letters in {dlq_dir}, {summary.dead_lettered} counted")
        log.info("dead letters written (%.1fs)", time.monotonic() - t0)

        if mongo and summary.written:
            from extractor.stream.store import ensure_indexes

            ensure_indexes(settings)
            acc = spark.sparkContext.accumulator(0)
            writer = _mongo_writer(payload)

            def write_counting(rows: Any, w: Any = writer, a: Any = acc) -> None:
                rows = list(rows)
                w(iter(rows))
                a.add(len(rows))

            docs = spark.read.parquet(docs_dir)
            if written_ids is None:  # the moved files: exactly this run's documents
                docs = spark.read.parquet(*[f"{docs_dir}/{f}" for f in staged_files])
            else:
                docs = docs.join(written_ids, "_id", "left_semi")
            docs.select("document").foreachPartition(write_counting)
            summary.mongo_upserted = acc.value
    finally:
        warm.join()
        for path in (merged_dir, pystage):
            if _exists(spark, path):
                _fs(spark, path)[0].delete(_fs(spark, path)[1], True)
        if own:
            spark.stop()
    summary.seconds = time.monotonic() - t0
    return summary


def _merge(spark: Any, pystage: str, staged_files: list[str], previous: Any, only_changed: bool, n_parts: int,
           merged_dir: str, docs_dir: str, summary: BackfillSummary, t0: float) -> Any:
    """The run's documents merged with the previous output: the same entry twice in the input keeps the later
    row's document; ``only_changed`` keeps only new or changed documents; each touched date folder is rewritten
    as its previous documents + this run's. Returns the ``_id`` of the documents written."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    run = (_staged(spark, pystage, staged_files).withColumn("date", F.col("date").cast("string"))
           .withColumn("source_file", F.get_json_object("document", "$.source.file"))
           .withColumn("source_row", F.get_json_object("document", "$.source.row").cast("long")))
    # the same entry twice in the input: one document, the later row's, as the stream's upserts leave it
    last = Window.partitionBy("_id").orderBy(F.col("source_file").desc_nulls_last(),
                                             F.col("source_row").desc_nulls_last())
    docs = run.withColumn("_n", F.row_number().over(last)).filter(F.col("_n") == 1).select(*DOC_COLUMNS)
    if only_changed and previous is not None:
        prev = previous.select("_id", F.col("content_hash").alias("_prev_hash"))
        joined = docs.join(prev, "_id", "left")
        docs = joined.filter(F.col("_prev_hash").isNull() | (F.col("_prev_hash") != F.col("content_hash"))
                             ).drop("_prev_hash")
    # cut the lineage: the previous output it was compared with is replaced below
    to_write = docs.localCheckpoint(eager=True)
    summary.written = to_write.count()
    log.info("%d documents to write (%.1fs)", summary.written, time.monotonic() - t0)
    if summary.written:
        dates = to_write.select("date").distinct()
        if previous is not None:
            kept = (previous.join(dates, previous["date"].eqNullSafe(dates["date"]), "left_semi")
                    .join(to_write.select("_id"), "_id", "left_anti"))
            merged = kept.select(*DOC_COLUMNS).unionByName(to_write.select(*DOC_COLUMNS))
        else:
            merged = to_write
        # one task per date: one file per date folder, not one per (input partition, date)
        merged.repartition(max(16, n_parts), "date").write.mode("overwrite").partitionBy("date").parquet(merged_dir)
        log.info("documents written to staging (%.1fs)", time.monotonic() - t0)
        moved = _swap_partitions(spark, merged_dir, docs_dir)
        log.info("documents: %d date partitions written under %s", moved, docs_dir)
    return to_write.select("_id")


@dataclass
class _Tally:
    kinds: dict[str, int] = field(default_factory=dict)
    reasons: dict[str, int] = field(default_factory=dict)
    duplicates: int = 0
    document_files: list[str] = field(default_factory=list)
    dead_letter_files: list[str] = field(default_factory=list)


def _tally(out: Any) -> _Tally:
    """Sum the tasks' tallies (:func:`extractor.batch.records.tally_rows`: a few rows per task, collected as
    Arrow) and count the documents whose id an earlier one had (the input's duplicates) from their digests. One
    Spark job, nothing cached: any second action on ``out`` would run the chain again."""
    t = _Tally()
    docs, dead = set(), set()
    packed: list[bytes] = []
    for r in out.toArrow().to_pylist():
        if r["ids"] is not None:
            packed.append(r["ids"])
            continue
        t.kinds[r["kind"]] = t.kinds.get(r["kind"], 0) + r["n"]
        if r["kind"] == rec.KIND_DEAD_LETTER:
            t.reasons[r["reason"]] = t.reasons.get(r["reason"], 0) + r["n"]
            dead.add(r["staged_file"])
        else:
            docs.add(r["staged_file"])
    t.duplicates = rec.duplicate_ids(packed)
    t.document_files, t.dead_letter_files = sorted(docs), sorted(dead)
    return t


def _staged(spark: Any, pystage: str, staged_files: list[str]) -> Any:
    """The documents of this run's staged files, with their ``date`` from the files' names (null for the folder
    of documents without a date, as Spark's partition discovery reads it)."""
    from pyspark.sql import functions as F

    paths = [staging.staged_path(pystage, f) for f in staged_files]
    if not paths:
        return spark.createDataFrame([], _doc_schema())
    date = F.regexp_extract(F.input_file_name(), rf"date=([^/{staging.FLAT_SEP}]*){staging.FLAT_SEP}", 1)
    return (spark.read.parquet(*paths)
            .withColumn("date", F.when(date == rec.NULL_DATE, F.lit(None)).otherwise(date).cast("string")))


def _doc_schema() -> Any:
    from pyspark.sql import types as T

    return T.StructType([T.StructField(c, T.StringType(), True) for c in DOC_COLUMNS])


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input", help="a CSV (the producer's format), JSON lines or Parquet file, a directory, or "
                        "the URL of an archive written by `archive` (gs://BUCKET/PREFIX, file:///DIR, s3://...)")
    parser.add_argument("--since", default=None, help="archive input: first date folder read (YYYY-MM-DD)")
    parser.add_argument("--until", default=None, help="archive input: date folder where reading stops (exclusive)")
    parser.add_argument("--topic", default=None, help="archive input: the topic whose records are read "
                        "(default: settings.input_topic)")
    parser.add_argument("--output", required=True, help="output folder: documents/ (by date) and dead_letter/")
    parser.add_argument("--mongo", action="store_true", help="also upsert the documents into MongoDB")
    parser.add_argument("--master", default=None,
                        help="Spark master URL (default: SPARK_MASTER or local[*]); any cluster's URL works")
    parser.add_argument("--only-changed", action="store_true",
                        help="write only documents whose extraction differs from the previous output's")
    parser.add_argument("--partitions", type=int, default=None, help="input partitions (default: Spark's parallelism)")
    parser.add_argument("--batch-size", type=int, default=None, help="entries per extract_many call")
    parser.add_argument("--database", default=None)
    parser.add_argument("--collection", default=None)
    parser.add_argument("--no-header", action="store_true", help="CSV files have no header row")
    parser.add_argument("--conf", action="append", default=[], metavar="KEY=VALUE", help="extra Spark settings")
    parser.add_argument("--json", dest="json_path", type=Path, default=None, help="also write the summary here")
    parser.add_argument("--chain-factory", default=None, help=argparse.SUPPRESS)


def run(args: argparse.Namespace) -> int:
    settings = load_settings(args.config, batch_size=args.batch_size, mongo_database=args.database,
                             mongo_collection=args.collection)
    log.info("backfill settings %s", json.dumps(settings.redacted(), sort_keys=True))
    master = args.master or os.environ.get("SPARK_MASTER") or "local[*]"
    conf = dict(kv.split("=", 1) for kv in args.conf)
    try:
        if inputs.is_archive(args.input):
            inputs.archive_objects(args.input, settings, args.topic or settings.input_topic, args.since, args.until)
        else:
            inputs.discover(args.input)
        staging.staging_filesystem(str(args.output), settings)  # the Python workers write the documents there
    except (ValueError, StorageError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    spark = spark_session(master, conf=conf)
    try:
        summary = backfill(settings, args.input, args.output, spark=spark, master=master, mongo=args.mongo,
                           only_changed=args.only_changed, partitions=args.partitions, header=not args.no_header,
                           chain_factory=args.chain_factory, since=args.since, until=args.until, topic=args.topic)
    finally:
        spark.stop()
    print(summary.line())
    if args.json_path:
        args.json_path.parent.mkdir(parents=True, exist_ok=True)
        args.json_path.write_text(json.dumps({**asdict(summary), "reconciled": summary.reconciled}, indent=2))
    return 0 if summary.reconciled else 1
