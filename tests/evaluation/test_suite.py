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
    assert document_key("maccrobat_15939911_p1") == document_key("maccrobat_15939911_p4") == "maccrobat_15939911"
    assert calibration_half("chia-dev-NCT1-inc-L001") == calibration_half("chia-dev-NCT1-exc-L009")


def test_suite_gold_policy_and_assertion(tmp_path: Path, capsys) -> None:
    """A corpus named in GOLD_POLICY counts negated entities; polarity marks in its span JSONL are scored."""
    from evaluation.suite import gold_policy_of

    assert gold_policy_of("maccrobat_dev") == "all" and gold_policy_of("sample_entries") == "asserted"
    d = tmp_path / "train"
    d.mkdir()
    rows = [
        ("m-1-p1", "No signs of flu. Has HTN."),
        ("m-2-p1", "Possible pneumonia, no cough."),
        ("m-3-p1", "Chest pain."),
    ]
    gold = {"m-1-p1": [("flu", "NEG"), ("HTN", None)], "m-2-p1": [("pneumonia", "UNCERTAIN"), ("cough", "NEG")],
            "m-3-p1": [("Chest pain", None)]}
    with (d / "maccrobat_dev.csv").open("w") as fh:
        fh.write("entry_id,text,illnesses,medicines\n")
        for eid, text in rows:
            fh.write(f'{eid},"{text}",{"|".join(t for t, _ in gold[eid])},\n')
    with (d / "maccrobat_dev.spans.jsonl").open("w") as fh:
        for eid, text in rows:
            spans = [{"start": text.index(t), "end": text.index(t) + len(t), "label": "ILLNESS", "polarity": p}
                     for t, p in gold[eid]]
            fh.write(json.dumps({"entry_id": eid, "text": text, "spans": spans}) + "\n")
    out = tmp_path / "suite.json"
    rc = main(["suite", "--data", str(d), "--extra", "--json", str(out)], chain_factory=fake_factory)
    assert rc == 0
    text = capsys.readouterr().out
    assert "assertion" in text and "maccrobat_dev" in text
    row = json.loads(out.read_text())["corpora"]["maccrobat_dev"]
    assert row["policy"] == "all"
    # the fake chain finds "flu" negated: under the "all" policy it is a true positive, not left out
    assert row["fields"]["illness"]["strict"]["fn"] < 5
    a = row["assertion"]
    assert a["n_gold"] == 5
    assert a["negation"]["tp"] == 2 and a["negation"]["fp"] == 0  # "No signs of flu", "no cough"
    # --baseline prints this run minus a saved one, assertion included
    rc = main(["suite", "--data", str(d), "--extra", "--baseline", str(out)], chain_factory=fake_factory)
    assert rc == 0
    text = capsys.readouterr().out
    assert "B - A, assertion:" in text
    assert main(["suite", "--data", str(d), "--extra", "--baseline", str(d / "maccrobat_dev.csv")],
                chain_factory=fake_factory) == 2
