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
