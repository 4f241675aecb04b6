"""lexicons/non_entities.tsv: validation with file:line, lookups by surface and canonical, and the case rule."""

from __future__ import annotations

from pathlib import Path

import pytest

from extractor.chain.lexicon import is_case_sensitive
from extractor.chain.non_entities import NonEntities, NonEntityError, normalise

LEXICONS = Path(__file__).resolve().parents[2] / "lexicons"


def test_shipped_table_loads() -> None:
    non = NonEntities.from_dir(LEXICONS)
    assert non.kind("MEDICINE", "Creatinine") == "substance"
    assert non.kind("MEDICINE", " HBsAg, ") == "substance"
    assert non.kind("MEDICINE", "HBsAg", canonical="Hepatitis B Surface Antigens") == "substance"
    assert non.kind("ILLNESS", "pregnancy") == "state"
    assert non.kind("MEDICINE", "study drugs") == "generic"
    assert non.kind("MEDICINE", "lisinopril") is None
    assert non.kind("ILLNESS", "creatinine") is None  # rows are per label
    assert non.kind("ILLNESS", "high cholesterol") is None


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ("glucose\tMEDICINE\tanalyte\t", r"non_entities.tsv:3: kind must be one of"),
        ("glucose\tDRUG\tsubstance\t", r"non_entities.tsv:3: label must be ILLNESS or MEDICINE"),
        ("pregnant\tILLNESS\tsubstance\t", r"non_entities.tsv:3: kind substance takes label MEDICINE"),
        ("Creatinine.\tMEDICINE\tsubstance\t", r"non_entities.tsv:3: duplicate term 'Creatinine.' \(first on line 2\)"),
    ],
)
def test_bad_rows_name_file_and_line(tmp_path: Path, row: str, message: str) -> None:
    p = tmp_path / "non_entities.tsv"
    p.write_text(f"term\tlabel\tkind\tnote\ncreatinine\tMEDICINE\tsubstance\tlab\n{row}\n", encoding="utf-8")
    with pytest.raises(NonEntityError, match=message):
        NonEntities.load(p)


def test_normalise_matches_the_evaluation() -> None:
    from evaluation.scoring import normalize

    for s in (" Ibuprofen. ", "HBsAg;", "non-hodgkin's  lymphoma", "(alcohol)"):
        assert normalise(s) == normalize(s)


@pytest.mark.parametrize(
    ("term", "sensitive"),
    [("HTN", True), ("ACh", True), ("mAb", True), ("IgE", True), ("5-FU", True), ("iron", False), ("Iron", False),
     ("aspirin", False), ("HIV+", True)],
)
def test_short_abbreviations_keep_their_casing(term: str, sensitive: bool) -> None:
    assert is_case_sensitive(term) is sensitive
