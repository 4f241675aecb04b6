"""The backfill's documents, written by the Python workers themselves, then moved into place by the driver.

A Spark task that runs the chain also writes its documents as Parquet (pyarrow) into a staging folder laid out
like the output, ``date=YYYY-MM-DD/part-TAG-FLUSH.parquet``, and hands the JVM back one small row per record
(which file holds the document). The JVM never carries, shuffles or encodes a document's JSON: on a first run
(or a run of new dates only) the driver deletes what failed task attempts left, then moves the date folders into
the output. Everything here goes through fsspec (the storage layer of :mod:`extractor.storage` for ``gs://`` and
``s3://`` URLs, the local filesystem for paths), so it runs in a Spark Python worker, on the driver or in a test.
"""

from __future__ import annotations

import logging
from typing import Any

from extractor.batch.records import (
    DOCUMENT_COLUMNS,
    KIND_DOCUMENT,
    NULL_DATE,
    OUTPUT_FIELDS,
    STAGE_MAX_BYTES,
    STAGED_OUTPUT_FIELDS,
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


class DocumentStager:
    """Writes one task's documents as Parquet, one file per date folder per flush:
    ``ROOT/date=YYYY-MM-DD/part-TAG-FLUSH.parquet``, the documents' output layout.

    ``TAG`` is unique per task attempt: a failed attempt's files are never among the files its successful
    retry reports (each document row names its file), and :func:`keep_only` deletes them. Documents are
    buffered as Arrow until about ``max_bytes`` of document text, then written sorted by date."""

    def __init__(self, root: str, settings: Settings, tag: str, max_bytes: int = STAGE_MAX_BYTES) -> None:
        self.tag, self.max_bytes = tag, max_bytes
        self.fs, self.base = staging_filesystem(root, settings)
        self.flushes = 0
        self.files: list[str] = []
        self._chunks: list[Any] = []
        self._bytes = 0
        self._idx = [OUTPUT_FIELDS.index(c) for c in DOCUMENT_COLUMNS]
        self._date, self._doc = OUTPUT_FIELDS.index("date"), OUTPUT_FIELDS.index("document")
        # what goes back to Spark of a record (STAGED_OUTPUT_FIELDS; a document's other columns are in its file)
        self._back = [OUTPUT_FIELDS.index(c) for c in STAGED_OUTPUT_FIELDS[:-1]]
        self._id = OUTPUT_FIELDS.index("_id")

    def take(self, rows: list[tuple]) -> list[tuple]:
        """Output rows (``OUTPUT_FIELDS``) -> rows of ``STAGED_OUTPUT_FIELDS``: each document buffered for
        writing and returned without its big columns, naming the file it will be in; dead letters as they are."""
        docs: list[tuple] = []
        out: list[tuple] = []
        for row in rows:
            if row[0] != KIND_DOCUMENT:
                out.append((*(row[i] for i in self._back), None))
                continue
            date = row[self._date] or NULL_DATE
            docs.append((*(row[i] for i in self._idx), date))
            self._bytes += len(row[self._doc] or "")
            file = f"date={date}/part-{self.tag}-{self.flushes:04d}.parquet"
            out.append((KIND_DOCUMENT, row[self._id], row[self._date], *(None,) * 8, file))
        if docs:
            self._chunks.append(to_arrow(docs, staged_schema()))
        if self._bytes >= self.max_bytes:
            self.flush()
        return out

    def flush(self) -> None:
        """Write the buffered documents, one file per date."""
        import pyarrow as pa
        import pyarrow.compute as pc
        import pyarrow.parquet as pq

        if not self._chunks:
            return
        table = pa.Table.from_batches(self._chunks)
        table = table.take(pc.sort_indices(table, sort_keys=[("date", "ascending")]))
        dates = table.column("date").to_pylist()
        table = table.drop_columns(["date"])
        start = 0
        for i in range(1, len(dates) + 1):
            if i == len(dates) or dates[i] != dates[start]:
                name = f"date={dates[start]}/part-{self.tag}-{self.flushes:04d}.parquet"
                path = f"{self.base}/{name}"
                self.fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
                pq.write_table(table.slice(start, i - start), path, filesystem=self.fs)
                self.files.append(name)
                start = i
        self.flushes += 1
        self._chunks, self._bytes = [], 0


def staged_schema() -> Any:
    import pyarrow as pa

    return pa.schema([pa.field(c, pa.string()) for c in (*DOCUMENT_COLUMNS, "date")])


def keep_only(root: str, files: list[str], settings: Settings) -> int:
    """Delete every file under ``root`` that is not in ``files`` (paths relative to ``root``): what a failed or
    speculative task attempt left behind. Returns how many were deleted."""
    fs, base = staging_filesystem(root, settings)
    if not fs.exists(base):
        return 0
    keep = set(files)
    stray = [p for p in fs.find(base) if _relative(p, base) not in keep]
    if stray:
        fs.rm(stray)
        for folder in {p.rsplit("/", 1)[0] for p in stray}:  # a date only a failed attempt had: no folder
            if fs.exists(folder) and not fs.ls(folder, detail=False):
                fs.rm(folder, recursive=True)
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
        fs.mv(f"{s}/{f}", f"{d}/{f}")
    return list(files)


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
