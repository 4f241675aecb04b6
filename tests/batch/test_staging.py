"""Documents written by the Python workers (extractor.batch.staging) and the work units that spread a file over the
cores without a shuffle (extractor.batch.inputs), without Spark."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from extractor.batch import inputs, staging
from extractor.batch import records as rec
from extractor.config import load_settings
from tests.batch.conftest import sample_rows, write_csv

COLUMNS = ("patient_id", "medical_entry", "timestamp")


def _doc_row(i: int, date: str | None) -> tuple:
    doc = {"_id": f"id{i}", "text": "x" * 50}
    values = {"kind": rec.KIND_DOCUMENT, "_id": f"id{i}", "date": date, "patient_id": f"P{i}",
              "timestamp": f"{date}T00:00:00Z" if date else None, "status": "resolved", "content_hash": f"h{i}",
              "document": json.dumps(doc)}
    return tuple(values.get(f) for f in rec.OUTPUT_FIELDS)


def _dead_row(i: int) -> tuple:
    values = {"kind": rec.KIND_DEAD_LETTER, "_id": None, "reason": "not_json", "stage": "decode",
              "source_file": "f.jsonl", "source_row": i, "value": b"{", "headers": {"reason": "not_json"}}
    return tuple(values.get(f) for f in rec.OUTPUT_FIELDS)


def test_stager_writes_each_document_into_the_file_its_row_names(tmp_path: Path) -> None:
    settings = load_settings()
    # a tiny buffer: a flush after every batch, so documents of one date land in several files
    stager = staging.OutputStager(str(tmp_path), settings, "t1", max_bytes=1)
    dates = ["2024-01-02", "2024-01-01", None, "2024-01-02"]
    out = stager.take([_doc_row(i, d) for i, d in enumerate(dates)] + [_dead_row(9)])
    out += stager.take([_doc_row(10, "2024-01-01")])
    stager.flush()
    assert len(out) == 6 and all(len(r) == len(rec.STAGED_OUTPUT_FIELDS) for r in out)
    rows = [dict(zip(rec.STAGED_OUTPUT_FIELDS, r, strict=True)) for r in out]
    dead = [r for r in rows if r["kind"] == rec.KIND_DEAD_LETTER]
    assert dead == [{"kind": rec.KIND_DEAD_LETTER, "_id": None, "reason": "not_json",
                     "staged_file": "dead_letter/part-t1-0000.parquet"}]
    files = sorted(stager.files)
    assert files == sorted({r["staged_file"] for r in rows})
    assert files == ["date=2024-01-01/part-t1-0000.parquet", "date=2024-01-01/part-t1-0001.parquet",
                     "date=2024-01-02/part-t1-0000.parquet", f"date={rec.NULL_DATE}/part-t1-0000.parquet",
                     "dead_letter/part-t1-0000.parquet"]
    for r in rows:
        table = pq.read_table(staging.staged_path(str(tmp_path), r["staged_file"]))
        if r["kind"] == rec.KIND_DOCUMENT:  # in the named file, with the output's columns (date: the folder)
            assert table.column_names == list(rec.DOCUMENT_COLUMNS)
            assert r["_id"] in table.column("_id").to_pylist()
        else:  # the dead letter whole: the original bytes, the headers, the row it came from
            assert table.column_names == list(rec.DEAD_LETTER_COLUMNS)
            assert table.to_pylist() == [{
                "entry_id": None, "reason": "not_json", "stage": "decode", "error_class": None, "error": None,
                "source_file": "f.jsonl", "source_row": 9, "value": b"{", "headers": [("reason", "not_json")]}]


def test_dead_letters_replace_the_last_runs(tmp_path: Path) -> None:
    settings = load_settings()
    stager = staging.OutputStager(str(tmp_path / "stage"), settings, "t1")
    stager.take([_dead_row(1), _dead_row(2), _doc_row(3, "2024-01-01")])
    stager.flush()
    dead = [f for f in stager.files if f.startswith("dead_letter/")]
    out = tmp_path / "out" / "dead_letter"
    out.mkdir(parents=True)
    (out / "part-old.parquet").write_bytes(b"an earlier run's")
    assert staging.replace_dead_letters(str(tmp_path / "stage"), str(out), dead, settings) == 2
    assert [p.name for p in out.iterdir()] == ["part-t1-0000.parquet"]
    # a run without dead letters leaves an empty file with the columns, so readers still find them
    assert staging.replace_dead_letters(str(tmp_path / "stage"), str(out), [], settings) == 0
    table = pq.read_table(out)
    assert table.num_rows == 0 and table.column_names == list(rec.DEAD_LETTER_COLUMNS)


def test_keep_only_deletes_what_failed_attempts_left(tmp_path: Path) -> None:
    settings = load_settings()
    good = staging.OutputStager(str(tmp_path), settings, "good")
    good.take([_doc_row(1, "2024-01-01")])
    good.flush()
    failed = staging.OutputStager(str(tmp_path), settings, "failed")  # an attempt whose rows never arrived
    failed.take([_doc_row(1, "2024-01-01"), _doc_row(2, "2024-01-03")])
    failed.flush()
    assert staging.keep_only(str(tmp_path), good.files, settings) == 2
    assert sorted(p.name for p in tmp_path.rglob("*.parquet")) == [f.replace("/", staging.FLAT_SEP)
                                                                    for f in good.files]
    out = tmp_path.parent / "out"
    moved = staging.move_files(str(tmp_path), str(out), good.files, settings)
    assert moved == good.files and staging.count_rows(str(out), moved, settings) == 1
    assert staging.date_folders(str(out), settings) == {"date=2024-01-01"}
    again = staging.OutputStager(str(tmp_path), settings, "again")
    again.take([_doc_row(3, "2024-01-01")])
    again.flush()
    with pytest.raises(FileExistsError):  # an existing date folder is merged by Spark, never replaced here
        staging.move_files(str(tmp_path), str(out), again.files, settings)


def test_only_the_reported_files_move(tmp_path: Path) -> None:
    """A file of an attempt that was still writing after the clean-up (speculation) never reaches the output."""
    settings = load_settings()
    good = staging.OutputStager(str(tmp_path / "stage"), settings, "good")
    good.take([_doc_row(1, "2024-01-01")])
    good.flush()
    late = staging.OutputStager(str(tmp_path / "stage"), settings, "late")
    late.take([_doc_row(1, "2024-01-01")])
    late.flush()
    out = tmp_path / "out"
    assert staging.move_files(str(tmp_path / "stage"), str(out), good.files, settings) == good.files
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*.parquet")) == good.files


@pytest.mark.parametrize("shards", [1, 2, 3])
@pytest.mark.parametrize("block", [1, 4, 1024])
def test_csv_shards_take_every_row_once(tmp_path: Path, shards: int, block: int,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """Every row, bad ones included (a blank line, a broken quote that swallows the end), in exactly one shard,
    with the record it gets from the whole file."""
    monkeypatch.setattr(inputs, "SHARD_BLOCK_ROWS", block)
    path = write_csv(tmp_path / "e.csv", sample_rows(12))
    whole = list(inputs.csv_records(str(path), COLUMNS))
    parts = [list(inputs.csv_records(str(path), COLUMNS, True, k, shards)) for k in range(shards)]
    assert sorted(r[2] for p in parts for r in p) == sorted(r[2] for r in whole)
    assert sorted((r for p in parts for r in p), key=lambda r: r[2]) == whole
    assert {r[0] for r in whole} == {"entry", "poison"}


def test_shards_deal_out_blocks_of_consecutive_rows() -> None:
    """A time-ordered file's shards each get runs of consecutive rows (so each task sees fewer dates), evenly."""
    shards = [[n for n in range(10_000) if inputs.in_shard(n, k, 2, 1024)] for k in range(2)]
    assert shards[0][:3] == [0, 1, 2] and shards[0][1023:1026] == [1023, 2048, 2049]
    assert shards[1][0] == 1024
    assert sorted(shards[0] + shards[1]) == list(range(10_000))
    assert abs(len(shards[0]) - len(shards[1])) <= 1024
    assert all(inputs.in_shard(n, 0, 1) for n in range(5))


def test_jsonl_and_archive_shards_take_every_line_once(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(inputs, "SHARD_BLOCK_ROWS", 2)
    path = tmp_path / "e.jsonl"
    path.write_bytes(b"".join(b'{"n": %d}\n' % i for i in range(7)) + b"\n")
    whole = list(inputs.jsonl_records(str(path)))
    parts = [r for k in range(3) for r in inputs.jsonl_records(str(path), k, 3)]
    assert sorted(parts) == sorted(whole) and len(whole) == 7


def test_work_units_give_every_core_a_task() -> None:
    assert inputs.work_units({"csv": ["a.csv"]}, 2) == [("csv", "a.csv", 0, 2), ("csv", "a.csv", 1, 2)]
    assert inputs.work_units({"csv": ["a.csv"], "jsonl": ["b.jsonl"]}, 2) == [
        ("csv", "a.csv", 0, 1), ("jsonl", "b.jsonl", 0, 1)]
    assert len(inputs.work_units({"archive": [f"gs://b/{i}" for i in range(5)]}, 4)) == 5
    assert inputs.work_units({"parquet": ["p.parquet"]}, 4) == []
