"""Findings of a narrative report (lexicons/findings.tsv): illnesses in a case report, nothing in an abstract."""

from __future__ import annotations

from pathlib import Path

import pytest

from extractor.chain import Chain
from extractor.chain.findings import FINDINGS_FILE, Findings, FindingsError, load_findings
from extractor.chain.model import Entity
from extractor.config import load_settings

LEXICONS = Path(__file__).resolve().parents[2] / "lexicons"
REPORT = "A 54-year-old man presented with cough. On examination he had {}."


@pytest.fixture(scope="module")
def findings() -> Findings:
    f = Findings.from_dir(LEXICONS)
    assert f is not None
    return f


@pytest.mark.parametrize(
    ("finding", "canonical", "code"),
    [
        ("a 3-cm mass in the left lung", "mass", None),
        ("multiple pulmonary nodules", "Pulmonary nodule", "HP:0033608"),
        ("bilateral crackles", "Crackles", "HP:0030830"),
        ("lesions in the liver", "lesion", None),
    ],
)
def test_a_reports_findings_are_illnesses(findings: Findings, finding: str, canonical: str, code: str | None) -> None:
    text = REPORT.format(finding)
    (e,) = findings.add(text, [])
    assert e.label == "ILLNESS" and e.canonical == canonical and e.code == code
    assert e.source.startswith(f"{FINDINGS_FILE}:") and e.details["match"] == "finding"
    assert text[e.start : e.end].lower() in finding


@pytest.mark.parametrize(
    "text",
    [
        "Lesions were induced in rats by a single injection.",  # an abstract: not about one patient
        "Presence of a mass lesion on imaging",  # a criterion
    ],
)
def test_outside_a_report_nothing_is_added(findings: Findings, text: str) -> None:
    assert findings.add(text, []) == []


def test_blocking_phrases_and_covered_words(findings: Findings) -> None:
    text = REPORT.format("a body mass index of 31 and a mass in the liver")
    (e,) = findings.add(text, [])
    assert text[e.start : e.end] == "mass" and e.start > text.index("index")
    covered = Entity("liver mass", 0, 1, "ILLNESS", "lexicon", "x", 0.9)  # type: ignore[arg-type]
    covered = covered.with_(start=e.start - 6, end=e.end)
    assert findings.add(text, [covered]) == [covered]


def test_the_chain_reports_findings_with_their_assertion() -> None:
    chain = Chain.from_settings(load_settings())
    res = chain.extract("A 60-year-old woman was admitted. CT showed a mass in the pancreas and no lymph node "
                        "metastasis.")
    by = {e.surface: e for e in res.illnesses}
    assert "mass" in by and not by["mass"].negated
    assert by["lymph node metastasis"].negated
    assert 0.0 < by["mass"].confidence < 1.0


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ("mass\t\t\t\t", "term and canonical are required"),
        ("mass\tmass\tHP:1\t\t", "code and code_system go together"),
        ("mass\tmass\tX1\tSNOMED\t", "not one of"),
        ("mass\tmass\nmass\tmass", "duplicate term"),
    ],
)
def test_bad_rows_name_the_line(tmp_path: Path, row: str, message: str) -> None:
    path = tmp_path / FINDINGS_FILE
    path.write_text("term\tcanonical\tcode\tcode_system\tnote\n" + row + "\n", encoding="utf-8")
    with pytest.raises(FindingsError, match=message) as err:
        load_findings(path)
    assert f"{FINDINGS_FILE}:" in str(err.value)


@pytest.mark.parametrize(
    ("finding", "surface", "canonical"),
    [
        ("a dilated left ventricle with a low ejection fraction", "dilated left ventricle", "dilated left ventricle"),
        ("an enlarged left inguinal lymph node", "enlarged left inguinal lymph node", "enlarged lymph node"),
        ("a dilated and hypertrophied LV", "dilated and hypertrophied LV", "dilated LV"),
    ],
)
def test_an_organ_change_is_a_finding(findings: Findings, finding: str, surface: str, canonical: str) -> None:
    text = REPORT.format(finding)
    (e,) = findings.add(text, [])
    assert (e.surface, e.canonical, e.details["match"]) == (surface, canonical, "organ change")


def test_an_organ_change_said_after_the_organ() -> None:
    text = "A 70-year-old man presented with dyspnea. The left atrium (LA) was mildly dilated."
    f = Findings.from_dir(LEXICONS)
    assert f is not None
    (e,) = f.add(text, [])
    assert e.surface == "left atrium (LA) was mildly dilated" and e.canonical == "dilated left atrium"
    assert f.add("The left atrium was not dilated in 12 of 40 rats.", []) == []  # not a report


def test_organ_change_rows_are_validated(tmp_path: Path) -> None:
    from extractor.chain.findings import ORGAN_CHANGES_FILE, load_organ_changes

    path = tmp_path / ORGAN_CHANGES_FILE
    path.write_text("term\tkind\tnote\ndilated\tchange\nliver\tbody part\n", encoding="utf-8")
    with pytest.raises(FindingsError, match=rf"{ORGAN_CHANGES_FILE}:3: kind must be"):
        load_organ_changes(path)
