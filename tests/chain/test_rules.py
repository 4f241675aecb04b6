"""Regex stage: table of text -> expected spans, and validation errors naming file:line."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from extractor.chain.rules import RegexStage, RuleError, load_rules

LEXICONS = Path(__file__).resolve().parents[2] / "lexicons"


@pytest.fixture(scope="module")
def stage() -> RegexStage:
    return RegexStage.from_dir(LEXICONS)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Patient shows signs of flu. Prescribed ibuprofen.", [("ILLNESS", "flu"), ("MEDICINE", "ibuprofen")]),
        ("Diagnosed with type 2 diabetes mellitus and started on metformin 500 mg.",
         [("ILLNESS", "type 2 diabetes mellitus"), ("MEDICINE", "metformin")]),
        ("Hx of HTN. Started on lisinopril 10 mg daily.", [("ILLNESS", "HTN"), ("MEDICINE", "lisinopril")]),
        ("Prescribed a course of amoxicillin for otitis media.", [("MEDICINE", "amoxicillin")]),
        ("Suffering from migraine since Monday.", [("ILLNESS", "migraine")]),
        ("Rule out pneumonia.", [("ILLNESS", "pneumonia")]),
        ("started on the 3rd day", []),
        # a capture ends before a time, a cause or a qualifier
        ("History of stroke within 6 months.", [("ILLNESS", "stroke")]),
        ("History of delirium during the prior admission.", [("ILLNESS", "delirium")]),
        ("Diagnosed with pneumonia secondary to aspiration.", [("ILLNESS", "pneumonia")]),
        ("History of taking an alpha blocker.", [("MEDICINE", "alpha blocker")]),  # not the illness "taking ..."
        # a capture cut short by a comma among qualifiers is no term; a qualified term is one
        ("He presented with complaints of persistent, severe abdominal pain.", []),
        ("She presented with severe, intermittent headaches.", []),
        ("She presented with severe headaches.", [("ILLNESS", "severe headaches")]),
        ("Failure of medical treatment for at least 3 months.", []),
        ("No history of the following: asthma.", []),
        # an adjective left before a coordination with another adjective qualifies the term after both
        ("History of gastric or duodenal ulcers.", []),
        ("History of renal, hepatic or cardiac disease.", []),
        ("History of colic or reflux.", [("ILLNESS", "colic")]),
        # an illness cue before a procedure or a test: no illness
        ("History of kidney transplant.", []),
        ("History of gastrectomy.", []),
        ("Positive test for hepatitis B.", []),
        # the care given before a term and the course after it are no part of it
        ("Admitted for management of DKA.", [("ILLNESS", "DKA")]),
        ("Admitted for evaluation of syncope.", [("ILLNESS", "syncope")]),
        ("History of alcoholic cirrhosis complicated by ascites.", [("ILLNESS", "alcoholic cirrhosis")]),
        # a substance alone is a habit, not an illness; its use disorder is one
        ("He had no history of alcohol or tobacco use.", []),
        ("History of alcohol abuse.", [("ILLNESS", "alcohol abuse")]),
        ("", []),
    ],
)
def test_rule_table(stage: RegexStage, text: str, expected: list[tuple[str, str]]) -> None:
    got = stage.extract(text)
    assert [(e.label, e.surface) for e in got] == expected
    for e in got:
        assert text[e.start : e.end] == e.surface
        assert e.method == "regex"
        assert e.source.startswith("rules.tsv:")
        assert 0.0 < e.confidence <= 1.0


def test_reference_design_patterns_are_covered(stage: RegexStage) -> None:
    got = stage.extract("Patient shows signs of measles. Prescribed paracetamol.")
    assert {e.surface for e in got} == {"measles", "paracetamol"}


def _write(tmp_path: Path, body: str) -> Path:
    p = tmp_path / "rules.tsv"
    p.write_text("# comment\nid\tlabel\tpattern\tprior\tdescription\n" + body, encoding="utf-8")
    return p


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("r1\tILLNESS\t(?P<entity>\\w+\t0.5\tx\n", "rules.tsv:3: rule 'r1': invalid RE2 pattern"),
        ("r1\tILLNESS\tsigns of (\\w+)\t0.5\tx\n", "rules.tsv:3: rule 'r1': pattern needs a (?P<entity>"),
        ("r1\tDISEASE\t{TERM1}\t0.5\tx\n", "rules.tsv:3: label must be ILLNESS or MEDICINE"),
        ("r1\tILLNESS\t{TERM1}\t1.5\tx\n", "rules.tsv:3: prior must be in (0, 1]"),
        ("r1\tILLNESS\t{TERM1}\t0.5\n", "rules.tsv:3: expected 5 tab-separated fields"),
        ("r1\tILLNESS\t{TERM1}\t0.5\tx\nr1\tILLNESS\t{TERM2}\t0.5\tx\n", "rules.tsv:4: duplicate rule id 'r1'"),
        ("r1\tILLNESS\t(a)\\1(?P<entity>b)\t0.5\tx\n", "rules.tsv:3: rule 'r1': invalid RE2 pattern"),
    ],
)
def test_bad_rule_names_file_and_line(tmp_path: Path, body: str, message: str) -> None:
    with pytest.raises(RuleError) as err:
        load_rules(_write(tmp_path, body))
    assert message in str(err.value)


def test_backtracking_pattern_runs_in_linear_time(tmp_path: Path) -> None:
    """(a+)+b is exponential on a backtracking engine; RE2 answers at once."""
    rules = load_rules(_write(tmp_path, "evil\tILLNESS\t(?P<entity>(a+)+b)\t0.5\tx\n"))
    stage = RegexStage(rules)
    text = "a" * 200_000 + "!"
    t0 = time.perf_counter()
    assert stage.extract(text) == []
    assert time.perf_counter() - t0 < 5.0  # generous bound: a backtracking engine would never finish
