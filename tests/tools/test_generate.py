"""`python -m extractor generate`: determinism, columns, gold strings in the text, misspellings, negations."""

from __future__ import annotations

import csv
import io
import re
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pytest

from extractor.tools.generate import COLUMNS, ILLNESSES, MEDICINES, EntryGenerator, generate


@pytest.fixture(scope="module")
def rows() -> list[dict[str, str]]:
    return generate(5000, seed=7)


def test_deterministic_for_a_seed() -> None:
    assert generate(300, seed=3) == generate(300, seed=3)
    assert generate(300, seed=3) != generate(300, seed=4)


def test_columns_and_formats(rows) -> None:
    assert set(rows[0]) == set(COLUMNS)
    assert {"patient_id", "medical_entry", "timestamp", "illnesses", "medicines", "entry_id"} <= set(COLUMNS)
    ids = [r["entry_id"] for r in rows]
    assert len(set(ids)) == len(ids)
    last = None
    for r in rows:
        assert re.fullmatch(r"P\d{6}", r["patient_id"])
        ts = datetime.fromisoformat(r["timestamp"])
        assert ts.tzinfo is not None
        assert last is None or ts >= last
        last = ts
        assert r["medical_entry"].strip() == r["medical_entry"] and "  " not in r["medical_entry"]
    assert len({r["patient_id"] for r in rows}) < len(rows)  # patients come back


def test_gold_strings_present_in_text(rows) -> None:
    for r in rows:
        for col in ("illnesses", "medicines", "negated_illnesses", "negated_medicines"):
            for s in filter(None, r[col].split("|")):
                assert s in r["medical_entry"], (col, s, r["medical_entry"])
        gold = set(filter(None, (r["illnesses"] + "|" + r["medicines"]).split("|")))
        negated = set(filter(None, (r["negated_illnesses"] + "|" + r["negated_medicines"]).split("|")))
        assert not gold & negated


def test_variety(rows) -> None:
    text = "\n".join(r["medical_entry"] for r in rows)
    golds = {s for r in rows for s in (r["illnesses"] + "|" + r["medicines"]).split("|") if s}
    # misspellings and abbreviations are gold as written
    assert {"ibuprofin", "pnuemonia", "diabetis"} & golds
    assert len({"HTN", "DM2", "CHF", "COPD", "UTI", "ASA"} & golds) >= 5
    # negations are present and not gold
    assert sum(bool(r["negated_illnesses"]) for r in rows) > 500
    assert sum(bool(r["negated_medicines"]) for r in rows) > 100
    assert re.search(r"No signs of \w+", text) and "Denies " in text
    # doses, routes, frequencies
    assert re.search(r"\d+ mg", text) and " by mouth" in text and re.search(r"\b(BID|TID|daily)\b", text)
    # several entities in one entry, and entries with neither
    assert sum("|" in r["illnesses"] for r in rows) > 300
    assert sum("|" in r["medicines"] for r in rows) > 100
    assert sum(not r["illnesses"] and not r["medicines"] for r in rows) > 100
    # the vocabulary is used broadly and the big ones are frequent
    names = {s.lower() for s in golds}
    assert len(names) > 150
    counts = {n: sum(n in r["illnesses"].split("|") for r in rows) for n in ("hypertension", "glaucoma")}
    assert counts["hypertension"] > counts["glaucoma"]


def test_vocabulary_size() -> None:
    assert len(ILLNESSES) >= 80 and len(MEDICINES) >= 80
    assert len({i[0] for i in ILLNESSES}) == len(ILLNESSES)
    assert len({m[0] for m in MEDICINES}) == len(MEDICINES)


def test_no_related_terms_in_one_entry() -> None:
    gen = EntryGenerator(11)
    for _ in range(2000):
        _, ills, meds, nills, nmeds = gen.entry()
        names = [s.lower() for s in ills + nills]
        for i, a in enumerate(names):
            for b in names[i + 1 :]:
                assert a != b


def test_cli_writes_csv(tmp_path: Path) -> None:
    out = tmp_path / "g.csv"
    proc = subprocess.run(
        [sys.executable, "-m", "extractor", "generate", "--rows", "50", "--seed", "5", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    with out.open(newline="", encoding="utf-8") as fh:
        got = list(csv.DictReader(fh))
    assert got == generate(50, seed=5)
    proc = subprocess.run(
        [sys.executable, "-m", "extractor", "generate", "--rows", "5", "--seed", "5"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert list(csv.DictReader(io.StringIO(proc.stdout))) == generate(5, seed=5)


def test_generated_csv_is_valid_evaluation_input(tmp_path: Path) -> None:
    from evaluation.data import read_labelled
    from extractor.tools.generate import write_csv

    p = tmp_path / "g.csv"
    with p.open("w", newline="", encoding="utf-8") as fh:
        write_csv(EntryGenerator(2).rows(100), fh)
    ds = read_labelled(p)
    assert len(ds) == 100 and ds.examples[0].entry_id == "E0000001"


def test_sample_file_matches_seed_7() -> None:
    sample = Path(__file__).resolve().parents[2] / "data" / "sample_entries.csv"
    if not sample.exists():
        pytest.skip("data/sample_entries.csv not generated")
    with sample.open(newline="", encoding="utf-8") as fh:
        got = list(csv.DictReader(fh))
    assert len(got) == 3000
    assert got == generate(3000, seed=7)
