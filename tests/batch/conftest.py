"""Small input files for the batch tests: the sample entries plus one row for every reason a row or an entry is
dead-lettered (the Spark session is the session fixture ``spark`` of tests/conftest.py)."""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path

import pytest

from extractor.config import REPO_ROOT

SAMPLE = REPO_ROOT / "data" / "sample_entries.csv"
GOOD_ROWS = 40


def sample_rows(n: int = GOOD_ROWS) -> list[tuple[str, str, str]]:
    with SAMPLE.open(encoding="utf-8", newline="") as fh:
        reader = csv.DictReader(fh)
        return [(r["patient_id"], r["medical_entry"], r["timestamp"]) for _, r in zip(range(n), reader, strict=False)]


# (row bytes, the reason the stream gives it); rows of the CSV below, after the good ones
BAD_ROWS: list[tuple[bytes, str]] = [
    (b"P900001,,2024-02-01T00:00:00Z\n", "missing_text"),
    (b",Patient shows signs of flu.,2024-02-01T00:00:00Z\n", "missing_patient_id"),
    (b"P900002,Patient shows signs of flu.,yesterday\n", "bad_timestamp"),
    (b"P900003,Diagnosed with flu,extra,2024-02-01T00:00:00Z\n", "column_count"),
    (b"P900004,Signs of flu \xff\xfe prescribed ibuprofen,2024-02-01T00:00:00Z\n", "undecodable"),
    (b"P900005,The weather was lovely on the walk today.,2024-02-01T00:00:00Z\n", "unresolved"),
    (b"P900006," + b"a" * 25_000 + b",2024-02-01T00:00:00Z\n", "text_too_long"),
    (b"P" + b"9" * 200 + b",Prescribed ibuprofen for flu.,2024-02-01T00:00:00Z\n", "schema_invalid"),
]


def write_csv(path: Path, rows: list[tuple[str, str, str]], bad: bool = True, duplicate: bool = True) -> Path:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["patient_id", "medical_entry", "timestamp"])
    w.writerows(rows)
    if duplicate:
        w.writerow(rows[1])  # the same entry twice: one document
    data = buf.getvalue().encode("utf-8")
    if bad:
        data += b"\n" + b"".join(r for r, _ in BAD_ROWS)
        # an unterminated quote swallows the rest of the file: csv gives one short row, as in the producer
        data += b'P900007,"an unterminated quote, Prescribed ibuprofen.,2024-02-01T00:00:00Z\n'
    path.write_bytes(data)
    return path


EXPECTED_BAD = {**{reason: 1 for _, reason in BAD_ROWS}, "column_count": 2}


@pytest.fixture
def input_csv(tmp_path: Path) -> Path:
    return write_csv(tmp_path / "entries.csv", sample_rows())


@pytest.fixture
def lexicon_copy(tmp_path: Path) -> Path:
    """A lexicon folder that can be edited: links to the shipped files (and their compiled cache), copies of the
    small editable ones."""
    src = REPO_ROOT / "lexicons"
    dst = tmp_path / "lexicons"
    dst.mkdir()
    for p in src.iterdir():
        if p.name in ("context.tsv", "rules.tsv"):
            (dst / p.name).write_bytes(p.read_bytes())
        else:
            os.symlink(p, dst / p.name)
    return dst
