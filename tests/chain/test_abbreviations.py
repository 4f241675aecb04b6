from __future__ import annotations

import pytest

from extractor.chain.abbreviations import add_defined_abbreviations
from extractor.chain.model import Entity


def _ent(text: str, surface: str, label: str = "ILLNESS") -> Entity:
    i = text.index(surface)
    return Entity(
        surface, i, i + len(surface), label, "lexicon", "t", 0.9,  # type: ignore[arg-type]
        canonical=surface, code="X1",
    )


@pytest.mark.parametrize(
    ("text", "long", "expected"),
    [
        ("Neuroleptic malignant syndrome (NMS): NMS kills.", "Neuroleptic malignant syndrome", ["NMS", "NMS"]),
        ("Glyceryl trinitrate (GTN) was given.", "Glyceryl trinitrate", ["GTN"]),
        ("Heart failure (see below) was seen.", "Heart failure", []),  # not an abbreviation
        ("Asthma (AB) flares.", "Asthma", []),  # letters do not fit the long form
    ],
)
def test_defined_abbreviations(text: str, long: str, expected: list[str]) -> None:
    out = add_defined_abbreviations(text, [_ent(text, long)])
    extra = [e for e in out if e.surface != long]
    assert [e.surface for e in extra] == expected
    for e in extra:
        assert text[e.start : e.end] == e.surface
        assert e.code == "X1" and e.details["abbreviation_of"] == long


def test_a_definition_that_is_not_an_entity_overrules_other_senses() -> None:
    text = "Tests by her primary care physician (PCP) were normal; the PCP then stopped it."
    i = text.index("PCP", 50)
    pcp = Entity("PCP", i, i + 3, "ILLNESS", "ner", "model", 0.8)  # Pneumocystis pneumonia: not in this text
    assert add_defined_abbreviations(text, [pcp]) == []


def test_a_long_form_the_lexicon_knows_keeps_the_short_form() -> None:
    text = "Patients with torsade de pointes (TdP) were seen."
    i = text.index("TdP")
    tdp = Entity("TdP", i, i + 3, "ILLNESS", "ner", "model", 0.8)
    assert add_defined_abbreviations(text, [tdp], known=lambda t: t.lower() == "torsade de pointes") == [tdp]
    assert add_defined_abbreviations(text, [tdp]) == []  # without the lexicon the text says it is something else


def test_an_entity_that_heads_the_long_form_keeps_its_label() -> None:
    text = "Heparin-induced thrombocytopenia (HIT) is rare; HIT needs argatroban."
    ill = _ent(text, "thrombocytopenia")
    i = text.index("HIT", 40)
    hit = Entity("HIT", i, i + 3, "ILLNESS", "ner", "model", 0.8)
    drug = Entity("HIT", i, i + 3, "MEDICINE", "lexicon", "t", 0.8)  # another sense of the letters
    out = add_defined_abbreviations(text, [ill, hit, drug])
    assert hit in out and drug not in out


def test_a_name_in_parentheses_is_not_an_abbreviation() -> None:
    text = "The maximum tolerated dose of paclitaxel (Taxol) was given."
    i = text.index("Taxol")
    taxol = Entity("Taxol", i, i + 5, "MEDICINE", "ner", "model", 0.8)
    assert add_defined_abbreviations(text, [taxol]) == [taxol]


def test_an_organ_change_abbreviates_only_the_organ() -> None:
    text = "Echo showed a dilated left ventricle (LV); the LV was hypokinetic."
    change = Entity("dilated left ventricle", 14, 36, "ILLNESS", "lexicon", "organ_changes.tsv", 0.6,
                    details={"match": "organ change"})
    i = text.index("LV", 45)
    lv = Entity("LV", i, i + 2, "ILLNESS", "lexicon", "abbreviations.tsv:1", 0.6)  # a lexicon sense of "LV"
    assert add_defined_abbreviations(text, [change, lv]) == [change]
