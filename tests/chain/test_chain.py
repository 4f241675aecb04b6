"""The real chain (shipped lexicons, rules, NER model and calibration) on plain strings: no Kafka, no MongoDB."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from extractor.chain import Chain
from extractor.config import load_settings

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def chain() -> Chain:
    return Chain.from_settings(load_settings())


@pytest.mark.parametrize(
    ("text", "illnesses", "medicines"),
    [
        ("Patient shows signs of flu. Prescribed ibuprofen.", ["flu"], ["ibuprofen"]),
        ("Pt c/o chest pain, hx of HTN. Started on lisinopril 10 mg daily.", ["chest pain", "HTN"], ["lisinopril"]),
        ("Diagnosed with pnuemonia. Prescribed amoxicilin 500 mg TID.", ["pnuemonia"], ["amoxicilin"]),
        ("Patient was given haloperidol and developed tardive dyskinesia.", ["tardive dyskinesia"], ["haloperidol"]),
    ],
)
def test_finds_entities(chain: Chain, text: str, illnesses: list[str], medicines: list[str]) -> None:
    res = chain.extract(text)
    assert [e.surface for e in res.illnesses] == illnesses
    assert [e.surface for e in res.medicines] == medicines
    for e in res.entities:
        assert text[e.start : e.end] == e.surface
        assert e.method in ("regex", "lexicon", "ner") and e.source
        assert 0.0 <= e.confidence <= 1.0


def test_codes_doses_and_negation(chain: Chain) -> None:
    res = chain.extract("No signs of pneumonia. Started metformin 500 mg twice daily by mouth for type 2 diabetes.")
    pneumonia, diabetes = res.illnesses
    assert pneumonia.negated and not diabetes.negated
    assert res.illness == diabetes.name  # a negated illness is never the primary one
    (metformin,) = res.medicines
    assert metformin.code and metformin.code_system in ("DrugBank", "MeSH", "UNII", "MedlinePlus")
    assert (metformin.dose, metformin.route, metformin.frequency) == ("500 mg", "by mouth", "twice daily")
    assert res.status == "resolved"


def test_fuzzy_misspelling_links_to_canonical(chain: Chain) -> None:
    (med,) = chain.extract("Prescribed ibuprofin.").medicines
    assert med.canonical is not None and med.canonical.lower() == "ibuprofen"


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "empty text"),
        ("x" * 1_000_000, "text too long"),
        ("\x00\x01\x02\x03\x04\x05\x06", "binary or control characters"),
        (bytes(range(256)).decode("latin-1") * 4, "binary or control characters"),
        ("Der Patient hat heute gut geschlafen.", "no illness or medicine found"),
        ("signs of " + "a" * 15_000 + "!", "no illness or medicine found"),
    ],
)
def test_bad_input(chain: Chain, text: str, reason: str) -> None:
    t0 = time.perf_counter()
    res = chain.extract(text)
    assert time.perf_counter() - t0 < 10
    assert res.status == "unresolved" and (res.reason or "").startswith(reason)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.text(max_size=300))
def test_random_text_never_breaks_the_chain(chain: Chain, text: str) -> None:
    res = chain.extract(text)
    for e in res.entities:
        assert text[e.start : e.end] == e.surface
        assert 0.0 <= e.confidence <= 1.0


def test_extract_many_equals_extract(chain: Chain) -> None:
    texts = ["Prescribed ibuprofen.", "", "Hx of asthma; albuterol 2 puffs PRN.", "Sodium valproate-induced hepatitis."]
    assert [r.to_dict() for r in chain.extract_many(texts)] == [chain.extract(t).to_dict() for t in texts]


def test_prefix_shares_resources(chain: Chain) -> None:
    p = chain.prefix(2)
    assert p.stage_names == ("regex", "lexicon") and p.stages[1] is chain.stages[1]


def test_hot_reload_picks_up_a_new_term(tmp_path: Path) -> None:
    lex = tmp_path / "lexicons"
    shutil.copytree(REPO / "lexicons", lex, ignore=shutil.ignore_patterns(".cache"))
    c = Chain.from_settings(load_settings(lexicon_dir=lex, stages=("regex", "lexicon")))
    before = c.extract("Zorblatitis flared up.")
    assert not before.illnesses
    with (lex / "curated_terms.tsv").open("a", encoding="utf-8") as fh:
        fh.write("zorblatitis\tILLNESS\tzorblatitis\t\t\ttest term\n")
    assert c.reload_if_changed()
    assert [e.surface for e in c.extract("Zorblatitis flared up.").illnesses] == ["Zorblatitis"]
    # a broken edit keeps the running chain
    with (lex / "rules.tsv").open("a", encoding="utf-8") as fh:
        fh.write("bad\tILLNESS\t(unclosed\t0.5\tx\n")
    assert not c.reload_if_changed()
    assert c.extract("Zorblatitis flared up.").illnesses


def test_extract_cli(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "extractor", "extract", "Patient shows signs of flu. Prescribed ibuprofen."],
        capture_output=True, text=True, check=True, cwd=REPO,
    )
    doc = json.loads(out.stdout)
    assert (doc["illness"], doc["medicine"], doc["status"]) == ("influenza", "Ibuprofen", "resolved")
    csv_out = tmp_path / "out.jsonl"
    subprocess.run(
        [sys.executable, "-m", "extractor", "extract", "--csv", str(REPO / "data" / "sample_entries.csv"),
         "--out", str(csv_out)],
        capture_output=True, text=True, check=True, cwd=REPO,
    )
    assert len(csv_out.read_text(encoding="utf-8").splitlines()) == 3000


def test_evaluation_on_sample_with_the_real_chain(tmp_path: Path) -> None:
    from evaluation.cli import main

    report = tmp_path / "eval.json"
    assert main([str(REPO / "data" / "sample_entries.csv"), "--json", str(report), "--no-progress"]) == 0
    data = json.loads(report.read_text(encoding="utf-8"))
    assert data["n_entries"] == 3000
    assert data["fields"]["micro"]["strict"]["f1"] > 0.9
    assert [s["name"] for s in data["by_stage"]] == ["regex", "regex+lexicon", "regex+lexicon+ner"]


def test_lexicon_check_reports_a_bad_rule(tmp_path: Path) -> None:
    lex = tmp_path / "lexicons"
    shutil.copytree(REPO / "lexicons", lex, ignore=shutil.ignore_patterns(".cache"))
    with (lex / "rules.tsv").open("a", encoding="utf-8") as fh:
        fh.write("bad\tILLNESS\t(unclosed\t0.5\tx\n")
    out = subprocess.run(
        [sys.executable, "-m", "extractor", "lexicon", "check", "--dir", str(lex)],
        capture_output=True, text=True, cwd=REPO,
    )
    assert out.returncode == 1
    assert "rules.tsv:" in out.stdout and "invalid RE2 pattern" in out.stdout
