"""Reading the chain's small editable TSV files: a header row, ``#`` comments and blank lines skipped (they still
count for line numbers), every error naming ``file:line``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path


def tsv_rows(path: Path, columns: tuple[str, ...], error: type[Exception], min_fields: int = 2
             ) -> Iterator[tuple[str, list[str]]]:
    """``("file:line", fields)`` per data row, fields stripped and padded to ``len(columns)`` with ""; the header
    must be ``columns`` (or its first ``min_fields``). Raises ``error`` on a bad header or field count."""
    header = False
    with path.open(encoding="utf-8", newline="") as fh:
        for lineno, raw in enumerate(fh, start=1):
            line = raw.rstrip("\r\n")
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            fields = [f.strip() for f in line.split("\t")]
            where = f"{path}:{lineno}"
            if not header:
                if tuple(fields) not in (columns, columns[:min_fields]):
                    raise error(f"{where}: header must be {' | '.join(columns)}, got {fields}")
                header = True
                continue
            if len(fields) < min_fields or len(fields) > len(columns):
                raise error(f"{where}: expected {min_fields} to {len(columns)} tab-separated fields, got {len(fields)}")
            yield where, fields + [""] * (len(columns) - len(fields))
    if not header:
        raise error(f"{path}: no header line ({' | '.join(columns)})")
