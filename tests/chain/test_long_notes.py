"""Long notes on the real chain: a note made of independent parts gives exactly the parts' results, shifted.

Splitting a note into segments for NER and the cascade gate must change nothing it should not: every field of
every entity (span, method, source, code, calibrated confidence, assertion, attributes, details) found in a
note equals what the chain finds in the part on its own, with offsets moved by where the part starts. Parts are
"independent" when nothing in one refers to another: no abbreviation defined in one and used in the next, no
section header left open over the next (an inline header "PMH: ..." closes at its sentence end).
"""

from __future__ import annotations

import random
from typing import Any

import pytest

from extractor.chain import Chain
from extractor.chain.model import Entity
from extractor.chain.segments import segment_spans
from extractor.config import load_settings
from extractor.tools.generate import generate

HANDWRITTEN = [
    "Pt c/o chest pain, hx of HTN. Started lisinopril 10 mg daily.",
    "Lipitor gave me leg cramps, so I stopped it.",
    "FH: mother had breast cancer. Denies fever or chills.",
    "Allergies: penicillin (rash).",
    "Patient was given haloperidol and developed tardive dyskinesia.",
    "No evidence of pneumonia on CXR. Continue azithromycin 250 mg PO daily for 4 more days.",
    "Rule out DVT; started heparin drip. If pain worsens, consider CT angiography for pulmonary embolism.",
    "Hx of asthma, well controlled on albuterol inhaler as needed.",
    "Famotidine-associated delirium in a patient with renal failure.",
    "Seizures after bupropion overdose were treated with lorazepam 2 mg IV.",
]


@pytest.fixture(scope="module")
def chain() -> Chain:
    return Chain.from_settings(load_settings())


def _fields(e: Entity, shift: int = 0) -> dict[str, Any]:
    d = {f: getattr(e, f) for f in e.__dataclass_fields__}
    d["start"] -= shift
    d["end"] -= shift
    return d


def _parts(seed: int, n: int) -> list[str]:
    rows = [r["medical_entry"] for r in generate(n, seed=seed)]
    rng = random.Random(seed)
    parts = rows + HANDWRITTEN
    rng.shuffle(parts)
    return parts


def _assert_note_equals_parts(chain: Chain, parts: list[str], sep: str) -> int:
    note = sep.join(parts)
    whole = chain.extract(note)
    expected: list[dict[str, Any]] = []
    offset = 0
    for part in parts:
        res = chain.extract(part)
        expected += [_fields(e) | {"start": e.start + offset, "end": e.end + offset} for e in res.entities]
        offset += len(part) + len(sep)
    got = [_fields(e) for e in whole.entities]
    key = lambda d: (d["start"], d["end"], d["label"])  # noqa: E731
    assert sorted(got, key=key) == sorted(expected, key=key)
    assert got, "the note found nothing: the comparison would be empty"
    return len(note)


@pytest.mark.parametrize("seed", [3, 11, 29])
def test_long_note_equals_its_parts_joined_by_lines(chain: Chain, seed: int) -> None:
    parts = _parts(seed, 160)
    length = _assert_note_equals_parts(chain, parts, "\n")
    assert 5_000 < length <= chain.max_chars  # a real long note, within what the service accepts


def test_long_note_equals_its_parts_joined_as_prose(chain: Chain) -> None:
    """Parts run together on one line: the sentence split alone must find where each part ends."""
    parts = [p for p in _parts(5, 120) if p.endswith(".") and p[0].isupper()]
    _assert_note_equals_parts(chain, parts, " ")


def test_merge_mode_long_note_equals_its_parts() -> None:
    chain = Chain.from_settings(load_settings(chain_mode="merge"))
    _assert_note_equals_parts(chain, _parts(17, 40), "\n")


def test_ner_sees_segments_not_the_note(chain: Chain) -> None:
    """The NER stage gets sentences (bounded in length), never a whole 19,000-character note."""
    ner = next(s for s in chain.stages if s.method == "ner")
    seen: list[str] = []
    original = ner.extract_many

    def spy(texts):  # type: ignore[no-untyped-def]
        seen.extend(texts)
        return original(texts)

    ner.extract_many = spy  # type: ignore[method-assign]
    try:
        note = "\n".join(_parts(23, 200))[:19_000]
        chain.extract(note)
    finally:
        del ner.extract_many
    assert seen and max(map(len, seen)) <= 1_000
    spans = {note[s:e] for s, e in segment_spans(note)}
    assert set(seen) <= spans
    assert len(seen) < len(spans)  # the gate let only part of the note through


@pytest.mark.parametrize(
    "note",
    [
        "x" * 19_999,  # one enormous token: cut into bounded segments
        "\n" * 19_990 + "flu.",  # nothing but line breaks
        "Dr. " * 4_990,  # abbreviations that never end a sentence
        "Asthma. " * 2_490,  # 2,490 one-word sentences
        "no " * 6_660,  # a trigger at every word
        "PMH:\n" * 3_990,  # a section header on every line
    ],
    ids=["one-token", "line-breaks", "abbreviations", "tiny-sentences", "triggers", "headers"],
)
def test_pathological_long_notes_give_a_result(chain: Chain, note: str) -> None:
    res = chain.extract(note)
    assert res.status in ("resolved", "partial", "unresolved")
    for e in res.entities:
        assert note[e.start : e.end] == e.surface
