from __future__ import annotations

import pytest

from extractor.chain.attributes import add_medicine_attributes
from extractor.chain.model import Entity


@pytest.mark.parametrize(
    ("text", "med", "dose", "route", "frequency"),
    [
        ("metformin 500 mg twice daily by mouth", "metformin", "500 mg", "by mouth", "twice daily"),
        ("Started lisinopril 10 mg PO daily.", "lisinopril", "10 mg", "PO", "daily"),
        ("ibuprofen 400 mg q6h PRN for pain", "ibuprofen", "400 mg", None, "q6h"),
        ("Ceftriaxone 1 g IV every 24 hours.", "Ceftriaxone", "1 g", "IV", "every 24 hours"),
        ("Prescribed ibuprofen. Pain 5 mg", "ibuprofen", None, None, None),  # the sentence ends first
        ("albuterol 2 puffs inhaled QID", "albuterol", "2 puffs", "inhaled", "QID"),
    ],
)
def test_attributes(text: str, med: str, dose: str | None, route: str | None, frequency: str | None) -> None:
    start = text.index(med)
    e = Entity(med, start, start + len(med), "MEDICINE", "regex", "t", 0.9)
    (out,) = add_medicine_attributes(text, [e])
    assert (out.dose, out.route, out.frequency) == (dose, route, frequency)
