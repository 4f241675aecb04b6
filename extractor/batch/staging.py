"""The backfill's documents and dead letters, written by the Python workers themselves, then moved into place by
the driver.

A Spark task that runs the chain also writes its documents and dead letters as Parquet (pyarrow) into a flat
staging folder, each file named after its place in the output (``date=YYYY-MM-DD/part-TAG-FLUSH.parquet``,
``dead_letter/part-TAG-FLUSH.parquet``) and stored as ``date=YYYY-MM-DD~part-TAG-FLUSH.parquet``
(:func:`staged_path`), and hands the JVM back a tally: records by kind, reason and file, and the documents' id
digests (:func:`extractor.batch.records.tally_rows`). The JVM never carries, shuffles or encodes a document or a
dead letter: the driver deletes what failed task attempts left, then moves the files into the output (on a first
run, or a run of new dates only; otherwise Spark merges the documents). Everything here goes through fsspec
(the storage layer of :mod:`extractor.storage` for ``gs://`` and ``s3://`` URLs, the local filesystem for paths),
so it runs in a Spark Python worker, on the driver or in a test.
"""

from __future__ import annotations

import logging
from typing import Any

from extractor.batch.records import (
    DEAD_LETTER_COLUMNS,
    DOCUMENT_COLUMNS,
    KIND_DOCUMENT,
    NULL_DATE,
    OUTPUT_FIELDS,
    STAGE_MAX_BYTES,
    dead_letter_arrow_schema,
    to_arrow,
)
from extractor.config import Settings

log = logging.getLogger(__name__)


def staging_filesystem(root: str, settings: Settings) -> tuple[Any, str]:
    """(fsspec filesystem, path) of a folder: a local path, or a URL of the storage layer."""
    if "://" in root and not root.startswith("file://"):
        from extractor.storage import filesystem

        return filesystem(root, settings)
    import fsspec

    return fsspec.filesystem("file"), root.removeprefix("file://").rstrip("/")


DEAD_LETTER_DIR = "dead_letter"  # the staging folder's dead letters: dead_letter/part-TAG-FLUSH.parquet
# A staged file's name says where it goes (``date=YYYY-MM-DD/part-TAG-FLUSH.parquet``), but the staging folder is
# flat: the file is ``date=YYYY-MM-DD~part-TAG-FLUSH.parquet``. A task of 1,047 dates spent 0.5 s of its 1.5 s
# flush creating (or finding) the date folders (bench backfill); the output's are made once, by the driver.
FLAT_SEP = "~"


def staged_path(base: str, name: str) -> str:
    """Where the staged file ``name`` (its path in the output: ``date=.../part-...``) lies under ``base``."""
    return f"{base}/{name.replace('/', FLAT_SEP)}"


class OutputStager:
    """Writes one task's documents and dead letters as Parquet, one file per date (documents) and one file of dead
    letters per flush, named ``date=YYYY-MM-DD/part-TAG-FLUSH.parquet`` (the documents' output layout) and
    ``dead_letter/part-TAG-FLUSH.parquet``, stored flat under ``ROOT`` (:func:`staged_path`).

    ``TAG`` is unique per task attempt: a failed attempt's files are never among the files its successful
    retry reports (each row names its file), and :func:`keep_only` deletes them. Rows are buffered as Arrow until
    about ``max_bytes`` of document text, then written, documents sorted by date."""

    def __init__(self, root: str, settings: Settings, tag: str, max_bytes: int = STAGE_MAX_BYTES) -> None:
        self.tag, self.max_bytes = tag, max_bytes
        self.fs, self.base = staging_filesystem(root, settings)
        # local files through pyarrow's own filesystem (fsspec's, wrapped, cost 0.15 ms more per file)
        self._write_fs = None if getattr(self.fs, "protocol", None) in ("file", ("file", "local")) else self.fs
        self.flushes = 0
        self._made = False
        self.files: list[str] = []  # their names in the output (date=.../part-...); staged_path() says where
        self._by_date: dict[str, list[tuple]] = {}  # documents buffered, by date (DOCUMENT_COLUMNS)
        self._dead: list[tuple] = []
        self._bytes = 0
        self._idx = [OUTPUT_FIELDS.index(c) for c in DOCUMENT_COLUMNS]
        self._dead_idx = [OUTPUT_FIELDS.index("_id" if c == "entry_id" else c) for c in DEAD_LETTER_COLUMNS]
        self._date, self._doc = OUTPUT_FIELDS.index("date"), OUTPUT_FIELDS.index("document")
        self._id, self._reason = OUTPUT_FIELDS.index("_id"), OUTPUT_FIELDS.index("reason")
        self._schema, self._dead_schema = staged_schema(), dead_letter_arrow_schema()

    def take(self, rows: list[tuple]) -> list[tuple]:
        """Output rows (``OUTPUT_FIELDS``) -> rows of ``STAGED_OUTPUT_FIELDS`` (kind, id, reason, the file it will
        be in): each document and dead letter buffered for writing."""
        out: list[tuple] = []
        idx, date_i, doc_i, id_i, by_date = self._idx, self._date, self._doc, self._id, self._by_date
        dead_file = f"{DEAD_LETTER_DIR}/part-{self.tag}-{self.flushes:04d}.parquet"
        part = f"part-{self.tag}-{self.flushes:04d}.parquet"
        for row in rows:
            if row[0] != KIND_DOCUMENT:
                self._dead.append(tuple(row[i] for i in self._dead_idx))
                out.append((row[0], row[id_i], row[self._reason], dead_file))
                continue
            date = row[date_i] or NULL_DATE
            docs = by_date.get(date)
            if docs is None:
                docs = by_date[date] = []
            docs.append(tuple(row[i] for i in idx))
            self._bytes += len(row[doc_i] or "")
            out.append((KIND_DOCUMENT, row[id_i], None, f"date={date}/{part}"))
        if self._bytes >= self.max_bytes:
            self.flush()
        return out

    def flush(self) -> None:
        """Write the buffered documents, one file per date, and the buffered dead letters, one file."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        if not self._made:
            self.fs.makedirs(self.base, exist_ok=True)
            self._made = True
        if self._dead:
            name = f"{DEAD_LETTER_DIR}/part-{self.tag}-{self.flushes:04d}.parquet"
            pq.write_table(pa.Table.from_batches([to_arrow(self._dead, self._dead_schema)]),
                           staged_path(self.base, name), filesystem=self._write_fs)
            self.files.append(name)
        for date in sorted(self._by_date):  # one file per date: its rows become Arrow only here
            name = f"date={date}/part-{self.tag}-{self.flushes:04d}.parquet"
            pq.write_table(pa.Table.from_batches([to_arrow(self._by_date[date], self._schema)]),
                           staged_path(self.base, name), filesystem=self._write_fs)
            self.files.append(name)
        if self._dead or self._by_date:
            self.flushes += 1
        self._by_date, self._dead, self._bytes = {}, [], 0


def staged_schema() -> Any:
    """A staged document file's columns (its date is the folder's name)."""
    import pyarrow as pa

    return pa.schema([pa.field(c, pa.string()) for c in DOCUMENT_COLUMNS])


def keep_only(root: str, files: list[str], settings: Settings) -> int:
    """Delete every file under ``root`` that is not in ``files`` (paths relative to ``root``): what a failed or
    speculative task attempt left behind. Returns how many were deleted."""
    fs, base = staging_filesystem(root, settings)
    if not fs.exists(base):
        return 0
    keep = {f.replace("/", FLAT_SEP) for f in files}
    stray = [p for p in fs.find(base) if _relative(p, base) not in keep]
    if stray:
        fs.rm(stray)
        log.info("deleted %d files of failed task attempts", len(stray))
    return len(stray)


def move_files(src: str, dst: str, files: list[str], settings: Settings) -> list[str]:
    """Move exactly ``files`` (relative paths, ``date=.../part-...parquet``) from ``src`` to ``dst``, whose date
    folders must not exist yet (a first run, or new dates); returns them. Only the files the run's successful
    tasks reported move: whatever else is in ``src`` (a failed or speculative attempt's) stays behind."""
    fs, s = staging_filesystem(src, settings)
    _, d = staging_filesystem(dst, settings)
    folders = sorted({f.split("/", 1)[0] for f in files})
    for name in folders:
        if fs.exists(f"{d}/{name}"):
            raise FileExistsError(f"{d}/{name} exists: the run's documents must be merged, not moved")
    for name in folders:
        fs.makedirs(f"{d}/{name}", exist_ok=True)
    for f in files:
        fs.mv(staged_path(s, f), f"{d}/{f}")
    return list(files)


def replace_dead_letters(src: str, dst: str, files: list[str], settings: Settings) -> int:
    """This run's dead-letter files (``dead_letter/part-...parquet`` under ``src``) become the folder ``dst``: what
    an earlier run left there is deleted first (each run's dead letters replace the last). With no dead letters,
    ``dst`` holds one empty file with the schema, so a reader still finds the columns. Returns the rows moved."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    fs, s = staging_filesystem(src, settings)
    _, d = staging_filesystem(dst, settings)
    if fs.exists(d):
        fs.rm(d, recursive=True)
    fs.makedirs(d, exist_ok=True)
    for f in files:
        fs.mv(staged_path(s, f), f"{d}/{f.rsplit('/', 1)[-1]}")
    if not files:
        pq.write_table(pa.Table.from_batches([], schema=dead_letter_arrow_schema()), f"{d}/part-empty.parquet",
                       filesystem=fs)
    return count_rows(d, [f.rsplit("/", 1)[-1] for f in files], settings)


def date_folders(root: str, settings: Settings) -> set[str]:
    """Names of the ``date=*`` folders of ``root`` (none when it does not exist)."""
    fs, base = staging_filesystem(root, settings)
    if not fs.exists(base):
        return set()
    names = (p.rstrip("/").rsplit("/", 1)[-1] for p in fs.ls(base, detail=False))
    return {n for n in names if n.startswith("date=")}


def count_rows(root: str, files: list[str], settings: Settings) -> int:
    """Rows in these Parquet files (relative to ``root``), read back from their footers."""
    import pyarrow.parquet as pq

    fs, base = staging_filesystem(root, settings)
    total = 0
    for f in files:
        with fs.open(f"{base}/{f}", "rb") as fh:
            total += pq.ParquetFile(fh).metadata.num_rows
    return total


def _relative(path: str, base: str) -> str:
    return path[len(base.rstrip("/")) + 1 :] if path.startswith(base.rstrip("/") + "/") else path
