"""A class-data-sharing archive for the local Spark driver's JVM (Java's AppCDS): Spark starts faster.

A local backfill spends seconds of JVM CPU loading and verifying Spark's classes, at the session's start and again
for its first query (measured: a session in 4.2-5.0 s, 2.3-2.6 s with the archive; the first query about 1 s
less). Java 17 dumps the classes a JVM loaded into an archive when it exits (``-XX:ArchiveClassesAtExit``) and
maps that archive at a later start (``-XX:SharedArchiveFile``).

* ``python -m extractor.batch.class_archive`` writes the archive (``make venv`` runs it; about 20 s, once): a
  small local session with Spark's readers, writers and Arrow path, whose JVM dumps its classes at exit into a
  file of its own, renamed into place once the JVM is gone. A session never writes it itself: dumping makes a
  JVM start twice as slowly.
* The archive is keyed by what it depends on: the PySpark version, its jars (their folder, names and sizes) and
  the ``java`` binary. Another Spark, Java or virtual environment looks for another archive; without one, sessions
  start as before. The JVM also checks the class path itself and ignores an archive that does not match it
  (``-Xshare:auto``, never an error). Writing one deletes those of installs that are gone (:func:`prune`).
* ``EXTRACTOR_SPARK_CDS_DIR`` says where (default ``$XDG_CACHE_HOME/clinical-extractor/spark-cds``, about 140 MB);
  ``EXTRACTOR_SPARK_CDS_DIR=off`` turns it off. Only the local driver's JVM uses it: on a cluster, the image
  decides its executors' options.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import time
from pathlib import Path

log = logging.getLogger(__name__)

ENV = "EXTRACTOR_SPARK_CDS_DIR"
SETTLE_S = 60.0  # an archive written at a JVM's exit is taken once unchanged this long, its process gone
OFF = {"off", "false", "0", "no", "none"}


def archive_dir() -> Path | None:
    """Where archives are kept, or None when turned off."""
    value = os.environ.get(ENV, "").strip()
    if value.lower() in OFF:
        return None
    if value:
        return Path(value)
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "clinical-extractor" / "spark-cds"


def archive_key() -> str:
    """What an archive depends on: PySpark's version and jars, and the ``java`` that runs them."""
    import pyspark

    h = hashlib.sha256(pyspark.__version__.encode())
    java_home = os.environ.get("JAVA_HOME")
    java = str(Path(java_home) / "bin" / "java") if java_home else shutil.which("java") or "java"
    java = os.path.realpath(java)
    h.update(java.encode())
    try:
        st = os.stat(java)
        h.update(f"{st.st_size}:{int(st.st_mtime)}".encode())
    except OSError:
        pass
    jars = _jars_dir()
    # the JVM checks the class path itself, paths included: another install of the same PySpark (another
    # virtual environment, a fresh clone) needs its own archive
    h.update(str(jars).encode())
    if jars.is_dir():
        for jar in sorted(jars.iterdir()):
            h.update(f"{jar.name}:{jar.stat().st_size}".encode())
    return h.hexdigest()[:16]


def _jars_dir() -> Path:
    import pyspark

    return Path(os.path.realpath(Path(pyspark.__file__).parent / "jars"))


def prune(directory: Path) -> int:
    """Delete the archives of PySpark installs that are gone (a removed virtual environment or clone: each
    archive's ``.json`` names its jars folder); returns how many."""
    gone = 0
    for meta in directory.glob("spark-*.json"):
        try:
            jars = json.loads(meta.read_text()).get("jars", "")
        except (OSError, ValueError):
            continue
        if jars and not Path(jars).is_dir():
            meta.with_suffix(".jsa").unlink(missing_ok=True)
            meta.unlink(missing_ok=True)
            gone += 1
    return gone


def archive_path(directory: Path | None = None) -> Path | None:
    """This Spark's and Java's archive (it may not exist yet), or None when turned off."""
    directory = directory if directory is not None else archive_dir()
    return None if directory is None else directory / f"spark-{archive_key()}.jsa"


def jvm_option(directory: Path | None = None) -> str:
    """``-XX:SharedArchiveFile=...`` when this Spark's and Java's archive exists, else ``""``."""
    try:
        path = archive_path(directory)
        return f"-XX:SharedArchiveFile={path}" if path is not None and path.is_file() else ""
    except OSError as exc:
        log.debug("no Spark class archive: %s", exc)
        return ""


def build(directory: Path | None = None, *, force: bool = False) -> Path | None:
    """Write the archive (a no-op when it exists, unless ``force``); returns its path, None when turned off."""
    path = archive_path(directory)
    if path is None or (path.is_file() and not force):
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    tmp.unlink(missing_ok=True)
    from extractor.batch.backfill import spark_session

    spark = spark_session("local[2]", app_name="class-archive", conf={
        "spark.ui.enabled": "false",
        # the dump warns about each class it cannot keep (hundreds of lines): errors only
        "spark.driver.extraJavaOptions": (f"-XX:TieredStopAtLevel=1 -XX:ArchiveClassesAtExit={tmp} "
                                          "-Xlog:disable -Xlog:all=error:stderr"),
        "spark.python.daemon.module": "pyspark.daemon"})  # no chain: only the JVM's classes matter here
    gateway = spark.sparkContext._gateway
    try:
        _exercise(spark, path.parent)
    finally:
        spark.stop()
        # the JVM dumps its classes when it exits: close the gateway (pyspark's JVM ends when its stdin closes)
        proc = getattr(gateway, "proc", None)
        gateway.shutdown()
        if proc is not None:
            if proc.stdin:
                proc.stdin.close()
            proc.wait(timeout=300)
    if not tmp.is_file() or tmp.stat().st_size == 0:
        raise RuntimeError(f"the JVM wrote no class archive at {tmp}")
    os.replace(tmp, path)
    path.with_suffix(".json").write_text(json.dumps({"jars": str(_jars_dir()), "written": time.time()}))
    prune(path.parent)
    return path


def _exercise(spark: object, scratch: Path) -> None:
    """What a backfill makes the JVM load: a range, mapInArrow, a Parquet write and read, a grouped count."""
    import tempfile

    from pyspark.sql import functions as F

    def same(batches: object) -> object:
        yield from batches  # type: ignore[misc]

    with tempfile.TemporaryDirectory(dir=scratch) as tmp:
        df = spark.range(0, 1000, 1, 2).mapInArrow(same, "id long")  # type: ignore[attr-defined]
        df.toArrow()
        df.withColumn("d", (F.col("id") % 3).cast("string")).write.partitionBy("d").parquet(f"{tmp}/p")
        back = spark.read.parquet(f"{tmp}/p")  # type: ignore[attr-defined]
        back.groupBy("d").count().collect()
        back.select("id").join(back.select("id"), "id", "left_semi").count()


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m extractor.batch.class_archive", description=(
        "Write the class-data-sharing archive that makes the local Spark driver's JVM start faster (backfill, "
        "bench backfill, the tests). Kept under $EXTRACTOR_SPARK_CDS_DIR (default "
        "$XDG_CACHE_HOME/clinical-extractor/spark-cds), keyed by the PySpark and Java in use."))
    parser.add_argument("--force", action="store_true", help="write it again even if it exists")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if archive_dir() is None:
        print(f"class archive: turned off ({ENV}=off)")
        return 0
    t0 = time.monotonic()
    try:
        existed = (p := archive_path()) is not None and p.is_file() and not args.force
        path = build(force=args.force)
    except Exception as exc:  # noqa: BLE001 - an optimisation: say why, never break an install
        print(f"class archive: not written ({type(exc).__name__}: {exc}); Spark starts without it")
        return 0
    print(f"class archive: {path} ({'already there' if existed else f'written in {time.monotonic() - t0:.0f} s'})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
