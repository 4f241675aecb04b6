"""`python -m evaluation`: readers, malformed input, JSON schema, plots, --errors, --compare (fake chain)."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

from evaluation.cli import main
from evaluation.data import DataError, read_labelled
from evaluation.fake_chain import DEFAULT_STAGES, FakeChain

ROWS = [
    ("e1", "Patient shows signs of flu. Prescribed ibuprofen.", "flu", "ibuprofen"),
    (
        "e2",
        "Pt c/o chest pain, hx of HTN. Started on lisinopril 10 mg daily.",
        "chest pain|HTN",
        "lisinopril",
    ),
    ("e3", "No signs of pneumonia. Continue amoxicillin 500 mg TID by mouth.", "", "amoxicillin"),
    ("e4", "Routine visit, no complaints.", "", ""),
    ("e5", "Cough and fever for 3 days.", "cough|fever", ""),
]


def write_csv(path: Path, rows=ROWS, text_col: str = "medical_entry") -> Path:
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["entry_id", "patient_id", text_col, "illnesses", "medicines"])
        for eid, text, ill, med in rows:
            w.writerow([eid, "P000001", text, ill, med])
    return path


def fake_factory(settings) -> FakeChain:
    names = tuple(settings.stages)
    lexdir = Path(settings.lexicon_dir)
    stages = {k: list(v) for k, v in DEFAULT_STAGES.items()}
    if (lexdir / "more").exists():  # the "B" lexicon knows fever
        stages["lexicon"].append(("fever", "ILLNESS", 0.75))
    if (lexdir / "less").exists():
        stages["lexicon"] = [t for t in stages["lexicon"] if t[0] != "flu"]
    return FakeChain(stages, names)


def run(argv: list[str]) -> int:
    return main(["--no-progress", *argv], chain_factory=fake_factory)


# ---------------------------------------------------------------------------------------------- readers
def test_read_csv_text_or_medical_entry(tmp_path: Path) -> None:
    for col in ("text", "medical_entry"):
        ds = read_labelled(write_csv(tmp_path / f"{col}.csv", text_col=col))
        assert len(ds) == 5 and ds.format == "csv"
        assert ds.examples[1].gold == {"illness": ("chest pain", "HTN"), "medicine": ("lisinopril",)}
        assert ds.examples[3].gold == {"illness": (), "medicine": ()}
        assert ds.examples[0].entry_id == "e1" and ds.examples[0].line == 2


def test_read_csv_multiline_text_keeps_line_numbers(tmp_path: Path) -> None:
    p = tmp_path / "m.csv"
    p.write_text('text,illnesses,medicines\n"line one\nline two",flu,\n"x",,\n', encoding="utf-8")
    ds = read_labelled(p)
    assert [e.line for e in ds.examples] == [2, 4]
    assert [e.entry_id for e in ds.examples] == ["row-1", "row-2"]


def test_read_jsonl(tmp_path: Path) -> None:
    p = tmp_path / "d.jsonl"
    rows = [
        {
            "entry_id": "a",
            "text": "lithium toxicity",
            "spans": [
                {"start": 0, "end": 7, "label": "MEDICINE"},
                {"start": 8, "end": 16, "label": "ILLNESS"},
            ],
        },
        {"text": "nothing", "spans": []},
    ]
    p.write_text("\n".join(json.dumps(r) for r in rows) + "\n\n", encoding="utf-8")
    ds = read_labelled(p)
    assert ds.format == "jsonl" and ds.has_spans
    assert ds.examples[0].gold == {"illness": ("toxicity",), "medicine": ("lithium",)}
    assert ds.examples[1].entry_id == "line-2"


@pytest.mark.parametrize(
    ("content", "suffix", "line", "needle"),
    [
        ("text,illnesses\nflu,flu\n", ".csv", 1, "missing column(s) medicines"),
        ("entry_id,illnesses,medicines\n1,,\n", ".csv", 1, "text (or medical_entry)"),
        ("text,illnesses,medicines\nflu,flu,\nbad row,only two\n", ".csv", 3, "2 field(s)"),
        ('text,illnesses,medicines\nok,,\n"unterminated,,\n', ".csv", 3, "malformed CSV"),
        ("", ".csv", 1, "empty file"),
        ('{"text": "a", "spans": []}\n{not json}\n', ".jsonl", 2, "invalid JSON"),
        (
            '{"text": "abc", "spans": [{"start": 1, "end": 9, "label": "ILLNESS"}]}\n',
            ".jsonl",
            1,
            "bad offsets",
        ),
        (
            '{"text": "abc", "spans": [{"start": 0, "end": 1, "label": "GENE"}]}\n',
            ".jsonl",
            1,
            "label 'GENE'",
        ),
        ('{"spans": []}\n', ".jsonl", 1, '"text"'),
        ('\n\n{"text": "abc"}\n', ".jsonl", 3, '"spans"'),
    ],
)
def test_malformed_input_names_file_and_line(
    tmp_path: Path, content: str, suffix: str, line: int, needle: str
) -> None:
    p = tmp_path / f"bad{suffix}"
    p.write_text(content, encoding="utf-8")
    with pytest.raises(DataError) as err:
        read_labelled(p)
    assert err.value.line == line
    assert str(err.value).startswith(f"{p}:{line}: ") and needle in str(err.value)


def test_non_utf8_line(tmp_path: Path) -> None:
    p = tmp_path / "latin.csv"
    p.write_bytes(b"text,illnesses,medicines\nok,,\ncaf\xe9,,\n")
    with pytest.raises(DataError, match=r"latin.csv:3: not valid UTF-8"):
        read_labelled(p)


def test_cli_malformed_exit_2_no_traceback(tmp_path: Path, capsys) -> None:
    p = tmp_path / "bad.csv"
    p.write_text("text,illnesses\nflu,flu\n", encoding="utf-8")
    assert run([str(p)]) == 2
    err = capsys.readouterr().err
    assert f"{p}:1: missing column(s) medicines" in err and "Traceback" not in err
    assert run([str(tmp_path / "absent.csv")]) == 2
    assert "file not found" in capsys.readouterr().err


def test_cli_subprocess_exit_2(tmp_path: Path) -> None:
    p = tmp_path / "bad.jsonl"
    p.write_text('{"text": "a", "spans": []}\n[1, 2\n', encoding="utf-8")
    proc = subprocess.run(
        [sys.executable, "-m", "evaluation", str(p)], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 2
    assert f"{p}:2: invalid JSON" in proc.stderr and "Traceback" not in proc.stderr


def test_cli_help_and_bad_option(capsys) -> None:
    assert main(["--help"]) == 0
    assert "--compare" in capsys.readouterr().out
    assert main(["x.csv", "--thresholds", "2"]) == 2


# ---------------------------------------------------------------------------------------------- report
SCHEMA_TOP = {
    "schema_version",
    "input",
    "chain",
    "options",
    "n_entries",
    "n_gold",
    "n_entities",
    "n_excluded_negated",
    "seconds",
    "extract_seconds",
    "entries_per_second",
    "fields",
    "spans",
    "by_method",
    "by_stage",
    "calibration",
    "errors",
}


def test_cli_json_schema(tmp_path: Path, capsys) -> None:
    data = write_csv(tmp_path / "d.csv")
    out = tmp_path / "out" / "report.json"
    assert run([str(data), "--json", str(out), "--thresholds", "0.5,0.8", "--errors", "2"]) == 0
    text = capsys.readouterr().out
    assert "strict" in text and "By method" in text and "By chain prefix" in text
    assert "Entries with errors" in text and "- e3 (line 4): No signs of pneumonia" in text
    rep = json.loads(out.read_text())
    assert SCHEMA_TOP <= set(rep)
    assert rep["n_entries"] == 5 and rep["spans"] is None
    for f in ("illness", "medicine", "micro"):
        for m in ("strict", "lenient"):
            assert set(rep["fields"][f][m]) == {"precision", "recall", "f1", "tp", "fp", "fn"}
    assert set(rep["by_method"]) >= {"regex", "lexicon", "ner"}
    assert set(rep["by_method"]["ner"]["micro"]["strict"]) == {
        "predictions",
        "tp",
        "fp",
        "precision",
        "recall_share",
    }
    assert [s["name"] for s in rep["by_stage"]] == ["regex", "regex+lexicon", "regex+lexicon+ner"]
    cal = rep["calibration"]["strict"]
    assert {"n", "ece", "bins", "thresholds", "by_field", "by_method"} <= set(cal)
    assert [t["threshold"] for t in cal["thresholds"]] == [0.5, 0.8]
    assert set(rep["errors"]["illness"]) == {"false_positives", "false_negatives"}
    # e3's pneumonia is negated and not counted; fever is missed
    assert rep["n_excluded_negated"] == 1
    assert {"surface": "fever", "count": 1} in rep["errors"]["illness"]["false_negatives"]


def test_cli_count_negated(tmp_path: Path, capsys) -> None:
    data = write_csv(tmp_path / "d.csv")
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    assert run([str(data), "--json", str(a), "--no-by-stage"]) == 0
    assert run([str(data), "--json", str(b), "--no-by-stage", "--count-negated"]) == 0
    fa, fb = json.loads(a.read_text()), json.loads(b.read_text())
    assert fb["fields"]["illness"]["strict"]["fp"] == fa["fields"]["illness"]["strict"]["fp"] + 1
    assert fa["by_stage"] == []


def test_cli_jsonl_has_spans_and_plots(tmp_path: Path, capsys) -> None:
    p = tmp_path / "d.jsonl"
    text = "Patient shows signs of flu. Prescribed ibuprofen."
    p.write_text(
        json.dumps(
            {
                "entry_id": "x",
                "text": text,
                "spans": [
                    {"start": text.index("flu"), "end": text.index("flu") + 3, "label": "ILLNESS"},
                    {
                        "start": text.index("ibuprofen"),
                        "end": text.index("ibuprofen") + 9,
                        "label": "MEDICINE",
                    },
                ],
            }
        )
        + "\n",
        encoding="utf-8",
    )
    out = tmp_path / "r.json"
    plots = tmp_path / "plots"
    assert run([str(p), "--json", str(out), "--plot", str(plots)]) == 0
    rep = json.loads(out.read_text())
    assert rep["spans"]["micro"] == {"precision": 1.0, "recall": 1.0, "f1": 1.0, "tp": 2, "fp": 0, "fn": 0}
    assert "exact spans" in capsys.readouterr().out
    pngs = sorted(x.name for x in plots.iterdir())
    assert {"reliability.png", "precision_recall_threshold.png"} <= set(pngs)
    assert all((plots / n).read_bytes()[:4] == b"\x89PNG" for n in pngs)


def test_cli_chain_unavailable_exit_1(tmp_path: Path, capsys) -> None:
    def broken(settings):
        raise ImportError("no module named extractor.chain")

    data = write_csv(tmp_path / "d.csv")
    assert main(["--no-progress", str(data)], chain_factory=broken) == 1
    assert "cannot build the extraction chain" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------- compare
def test_cli_compare(tmp_path: Path, capsys) -> None:
    data = write_csv(tmp_path / "d.csv")
    a, b = tmp_path / "lexA", tmp_path / "lexB"
    a.mkdir()
    b.mkdir()
    (b / "more").touch()
    out = tmp_path / "cmp.json"
    assert run([str(data), "--compare", str(a), str(b), "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "fields.illness.strict.recall" in text and "Entries whose extraction changed: 1 of 5" in text
    assert "e5" in text and "+ illness: 'fever'" in text
    rep = json.loads(out.read_text())
    d = rep["delta"]["fields.illness.strict.tp"]
    assert d == {"a": 4, "b": 5, "delta": 1}
    assert rep["delta"]["fields.medicine.strict.f1"]["delta"] == 0
    assert rep["delta"]["by_method.lexicon.micro.strict.tp"]["delta"] == 1
    assert rep["n_changed"] == 1 and rep["changed"][0]["entry_id"] == "e5"
    assert rep["changed"][0]["added"][0]["surface"] == "fever" and rep["changed"][0]["removed"] == []
    assert rep["a"]["report"]["chain"]["lexicon_dir"] == str(a)


def test_cli_compare_config_files_and_stages(tmp_path: Path, capsys) -> None:
    data = write_csv(tmp_path / "d.csv")
    lex = tmp_path / "lex"
    lex.mkdir()
    (lex / "less").touch()
    ca, cb = tmp_path / "a.toml", tmp_path / "b.json"
    ca.write_text(f'lexicon_dir = "{tmp_path}"\nstages = ["regex"]\n', encoding="utf-8")
    cb.write_text(json.dumps({"lexicon_dir": str(lex), "stages": ["regex", "lexicon"]}), encoding="utf-8")
    out = tmp_path / "cmp.json"
    assert run([str(data), "--compare", str(ca), str(cb), "--json", str(out)]) == 0
    rep = json.loads(out.read_text())
    assert rep["a"]["report"]["chain"]["stages"] == ["regex"]
    assert rep["b"]["report"]["chain"]["stages"] == ["regex", "lexicon"]
    assert rep["delta"]["fields.micro.strict.tp"]["delta"] == 2  # chest pain, lisinopril (flu dropped in B)
    assert run([str(data), "--compare", str(ca), str(tmp_path / "nope")]) == 2
    assert "not a lexicon directory" in capsys.readouterr().err
