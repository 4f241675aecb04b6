"""`python -m evaluation suite`: one table over several corpora, held-out ECE, --json, --compare (fake chain)."""

from __future__ import annotations

import json
from pathlib import Path

from evaluation.cli import main
from evaluation.splits import calibration_half, document_key
from tests.evaluation.test_cli import ROWS, fake_factory, write_csv


def _data(tmp_path: Path) -> Path:
    d = tmp_path / "train"
    d.mkdir()
    write_csv(d / "a_dev.csv")
    write_csv(d / "b_dev.csv", rows=ROWS[:2])
    write_csv(d / "a_train.csv")  # never read
    return d


def test_suite_table_and_json(tmp_path: Path, capsys) -> None:
    d = _data(tmp_path)
    out = tmp_path / "suite.json"
    rc = main(["suite", "--data", str(d), "--extra", "--json", str(out)], chain_factory=fake_factory)
    assert rc == 0
    text = capsys.readouterr().out
    assert "a_dev" in text and "b_dev" in text and "a_train" not in text
    rep = json.loads(out.read_text())
    assert set(rep["corpora"]) == {"a_dev", "b_dev"}
    a = rep["corpora"]["a_dev"]
    assert a["n_entries"] == 5 and a["n_gold"]["illness"] == 5
    assert 0.0 <= a["fields"]["micro"]["strict"]["f1"] <= 1.0
    assert a["n_heldout"] == sum(not calibration_half(r[0]) for r in ROWS)


def test_suite_compare(tmp_path: Path, capsys) -> None:
    d = _data(tmp_path)
    a, b = tmp_path / "lexA", tmp_path / "lexB"
    a.mkdir()
    b.mkdir()
    (b / "more").write_text("")
    rc = main(["suite", "--data", str(d), "--extra", "--compare", str(a), str(b)], chain_factory=fake_factory)
    assert rc == 0
    text = capsys.readouterr().out
    assert "B - A" in text
    lines = text.splitlines()
    delta_line = next(line for line in lines[lines.index("B - A") :] if line.startswith("a_dev"))
    assert "*" in delta_line  # B knows "fever": the illness score changed


def test_suite_missing_dir(tmp_path: Path, capsys) -> None:
    assert main(["suite", "--data", str(tmp_path / "nope")], chain_factory=fake_factory) == 2
    assert "not a directory" in capsys.readouterr().err


def test_document_key_keeps_documents_together() -> None:
    assert document_key("bc5cdr-dev-6794356-s00") == document_key("bc5cdr-dev-6794356-s07") == "6794356"
    assert document_key("chia-dev-NCT02227992-exc-L001") == "NCT02227992"
    assert document_key("row-3") == "row-3"
    assert calibration_half("chia-dev-NCT1-inc-L001") == calibration_half("chia-dev-NCT1-exc-L009")
