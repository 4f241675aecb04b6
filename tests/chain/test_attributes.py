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
        ("Given IV furosemide 40 mg.", "furosemide", "40 mg", "IV", None),  # a route right before the name
    ],
)
def test_attributes(text: str, med: str, dose: str | None, route: str | None, frequency: str | None) -> None:
    start = text.index(med)
    e = Entity(med, start, start + len(med), "MEDICINE", "regex", "t", 0.9)
    (out,) = add_medicine_attributes(text, [e])
    assert (out.dose, out.route, out.frequency) == (dose, route, frequency)


def _med(text: str, surface: str) -> Entity:
    start = text.index(surface)
    return Entity(surface, start, start + len(surface), "MEDICINE", "regex", "t", 0.9)


@pytest.mark.parametrize(
    ("text", "med", "grown"),
    [
        ("metoprolol succinate 50 mg daily", "metoprolol", "metoprolol succinate"),
        ("warfarin sodium 5 mg", "warfarin", "warfarin sodium"),
        ("adefovir dipivoxil was started", "adefovir", "adefovir dipivoxil"),
        ("hydrocortisone sodium succinate IV", "hydrocortisone", "hydrocortisone sodium succinate"),
        ("metoprolol and sodium restriction", "metoprolol", "metoprolol"),  # not right after it
    ],
)
def test_a_salt_after_a_medicine_is_part_of_it(text: str, med: str, grown: str) -> None:
    (out,) = add_medicine_attributes(text, [_med(text, med)])
    assert out.surface == grown and text[out.start : out.end] == grown


def test_a_salt_found_on_its_own_merges_into_the_name_before_it() -> None:
    text = "metoprolol succinate 50 mg daily"
    (out,) = add_medicine_attributes(text, [_med(text, "metoprolol"), _med(text, "succinate")])
    assert out.surface == "metoprolol succinate" and out.dose == "50 mg"


def test_the_chain_prefers_the_lexicons_full_name_to_a_rules_one_word() -> None:
    from extractor.chain import Chain
    from extractor.config import load_settings

    res = Chain.from_settings(load_settings()).extract("Potassium chloride 20 mEq was given.")
    assert [m.surface for m in res.medicines] == ["Potassium chloride"]


@pytest.mark.parametrize(
    ("text", "med", "route"),
    [
        ("She was started on IV vancomycin.", "vancomycin", "IV"),  # the rule's two words took the route
        ("Started PO amoxicillin.", "amoxicillin", "PO"),
        ("on oral contraceptives", "oral contraceptives", None),  # a spelled-out route names the product
        ("treated with intravenous immunoglobulin", "intravenous immunoglobulin", None),
    ],
)
def test_a_route_abbreviation_is_never_part_of_the_medicine(text: str, med: str, route: str | None) -> None:
    from extractor.chain import Chain
    from extractor.config import load_settings

    (e,) = Chain.from_settings(load_settings()).extract(text).medicines
    assert (e.surface, text[e.start : e.end], e.route) == (med, med, route)
