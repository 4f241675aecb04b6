"""Patient wording (lexicons/patient_wording.tsv): complaints in a patient's own words become clinical illnesses."""

from __future__ import annotations

from pathlib import Path

import pytest

from extractor.chain import Chain
from extractor.chain.model import Entity
from extractor.chain.patient_wording import (
    FILE,
    MATCH,
    PatientWording,
    PatientWordingError,
    load_rows,
)
from extractor.config import load_settings

LEXICONS = Path(__file__).resolve().parents[2] / "lexicons"


@pytest.fixture(scope="module")
def wording() -> PatientWording:
    w = PatientWording.from_dir(LEXICONS)
    assert w is not None
    return w


@pytest.mark.parametrize(
    ("text", "surface", "canonical"),
    [
        # a part and a complaint, in each of the four places
        ("my knees ache", "knees ache", "knee pain"),
        ("my chest feels tight", "chest feels tight", "chest tightness"),
        ("My stomach is killing me", "stomach is killing me", "abdominal pain"),
        ("my ankles are so swollen", "ankles are so swollen", "ankle swelling"),
        ("I had stomach cramps", "stomach cramps", "abdominal cramps"),
        ("I get pain in my legs", "pain in my legs", "leg pain"),
        ("numbness in both hands since I started it", "numbness in both hands", "hand numbness"),
        ("I woke up with swollen ankles", "swollen ankles", "ankle swelling"),
        ("my head hurts", "head hurts", "headache"),  # a name row renames a built name
        ("my hair started falling out", "hair started falling out", "alopecia"),
        ("my heart is racing", "heart is racing", "palpitations"),
        # a state after a verb of feeling
        ("I feel anxious all the time", "anxious", "anxiety"),
        ("it made me nauseous", "nauseous", "nausea"),
        ("I’m so exhausted", "exhausted", "fatigue"),
        # an inability
        ("I can't sleep at night", "can't sleep", "insomnia"),
        ("I can’t sleep", "can’t sleep", "insomnia"),
        ("I have trouble swallowing", "trouble swallowing", "dysphagia"),
        ("I could hardly walk", "could hardly walk", "difficulty walking"),
        # a fixed phrase
        ("now I have ringing in my ears", "ringing in my ears", "tinnitus"),
        ("I gained 20 pounds", "gained 20 pounds", "weight gain"),
    ],
)
def test_a_patients_words_become_an_illness(wording: PatientWording, text: str, surface: str, canonical: str
                                             ) -> None:
    (e,) = wording.add(text, [])
    assert (e.label, text[e.start : e.end], e.surface, e.canonical) == ("ILLNESS", surface, surface, canonical)
    assert e.method == "lexicon" and e.details["match"] == MATCH and e.source.startswith(f"{FILE}:")


@pytest.mark.parametrize(
    "text",
    [
        "Back pain was reported by 12% of patients.",  # an abstract: no first person
        "Patients who feel anxious were excluded.",  # a criterion
        "Type I diabetes with stomach cramps",  # a Roman numeral is not a person
        "Ketorolac 30 mg IM given for back pain",  # IM is intramuscular, not "I'm"
        "I went back to work",  # "back" with no complaint
    ],
)
def test_nothing_outside_a_patients_own_words(wording: PatientWording, text: str) -> None:
    assert [e for e in wording.add(text, []) if e.details.get("match") == MATCH] == []


def test_a_shorter_illness_inside_is_replaced_and_a_medicine_is_left_alone(wording: PatientWording) -> None:
    text = "I have pain in my legs"
    pain = Entity("pain", text.index("pain"), text.index("pain") + 4, "ILLNESS", "ner", "m", 0.8)  # type: ignore[arg-type]
    (e,) = wording.add(text, [pain])
    assert e.canonical == "leg pain" and e.surface == "pain in my legs"
    text = "my back hurts from Advil"
    med = Entity("back", 3, 7, "MEDICINE", "lexicon", "x", 0.9)  # type: ignore[arg-type]
    assert wording.add(text, [med]) == [med]


def test_codes_come_from_the_lexicons_through_the_chain() -> None:
    chain = Chain.from_settings(load_settings())
    res = chain.extract("Lipitor gave me leg cramps and I can't sleep. I don't feel dizzy any more.")
    by_surface = {e.surface: e for e in res.illnesses}
    assert by_surface["can't sleep"].canonical.lower() == "insomnia" and by_surface["can't sleep"].code
    assert by_surface["dizzy"].negated  # the patient's own negation ("don't feel") applies as to any entity
    assert not by_surface["can't sleep"].negated  # "can't" is part of the complaint, not a negation of it
    assert [m.surface for m in res.medicines] == ["Lipitor"]
    res = chain.extract("Gained 20 pounds and my hair started falling out")
    assert sorted(e.canonical.lower() for e in res.illnesses) == ["alopecia", "weight gain"]  # not "falling"


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ("knee\tbone\tknee", "kind must be one of"),
        ("knee\tpart\t", "term and canonical are required"),
        ("gained # pounds\tstate\tweight gain", "'#' \\(a number\\) is allowed only in a phrase"),
        ("stomach\tpart\tabdominal", "duplicate part 'stomach'"),
    ],
)
def test_bad_rows_name_file_and_line(tmp_path: Path, row: str, message: str) -> None:
    path = tmp_path / FILE
    path.write_text(f"# comment\nterm\tkind\tcanonical\tnote\nstomach\tpart\tabdominal\n{row}\n", encoding="utf-8")
    with pytest.raises(PatientWordingError, match=rf"{FILE}:4: {message}"):
        load_rows(path)


def test_the_shipped_file_loads_and_every_kind_is_used() -> None:
    rows = load_rows(LEXICONS / FILE)
    assert {r.kind for r in rows} == {"part", "complaint", "state", "inability", "phrase", "name"}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("My feet are numb and tingly", [("feet are numb", "foot numbness"), ("tingly", "foot tingling")]),
        ("my knees ache and are swollen", [("knees ache", "knee pain"), ("swollen", "knee swelling")]),
        ("My legs feel heavy and weak", [("legs feel heavy", "leg heaviness"), ("weak", "leg weakness")]),
        ("It makes my mouth really dry", [("mouth really dry", "dry mouth")]),
    ],
)
def test_two_complaints_of_one_part(wording: PatientWording, text: str, expected: list[tuple[str, str]]) -> None:
    assert [(e.surface, e.canonical) for e in wording.add(text, [])] == expected


@pytest.mark.parametrize(
    ("text", "first"),
    [
        ("Been on Zoloft for 3 months, still can't sleep.", True),
        ("Took Crestor for 6 months. Could barely walk up stairs.", True),
        ("Arthrotec caused stomach cramps. Stopped it after a week.", True),
        ("Taking into account the results, the drug is safe.", False),  # an abstract's phrase
        ("Patients with type I diabetes were enrolled.", False),
    ],
)
def test_a_post_that_drops_the_i_is_first_person(text: str, first: bool) -> None:
    assert PatientWording.first_person(text) is first
