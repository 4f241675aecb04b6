"""Chain policy on fake stages: cascade skips what is resolved, merge keeps the best supported entity."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from extractor.chain.context import ContextAnnotator
from extractor.chain.engine import Chain, merge_entities, prepare_text
from extractor.chain.model import Entity, ExtractionError
from extractor.chain.rules import RegexStage

LEXICONS = Path(__file__).resolve().parents[2] / "lexicons"


class FakeNer:
    """Finds every occurrence of fixed words; counts the texts it was shown."""

    method = "ner"

    def __init__(self, words: dict[str, str]) -> None:
        self.words = words
        self.seen: list[str] = []

    def extract(self, text: str) -> list[Entity]:
        return self.extract_many([text])[0]

    def extract_many(self, texts: Sequence[str]) -> list[list[Entity]]:
        out = []
        for t in texts:
            self.seen.append(t)
            ents = []
            for w, label in self.words.items():
                i = t.find(w)
                if i >= 0:
                    ents.append(Entity(w, i, i + len(w), label, "ner", "fake", 0.6))  # type: ignore[arg-type]
            out.append(ents)
        return out


def _chain(ner: FakeNer, mode: str = "cascade", common: frozenset[str] = frozenset()) -> Chain:
    return Chain(
        stages=[RegexStage.from_dir(LEXICONS), ner],
        context=ContextAnnotator.from_dir(LEXICONS),
        mode=mode,
        common_words=common,
    )


def test_cascade_skips_ner_when_regex_resolved_the_entry() -> None:
    ner = FakeNer({"flu": "ILLNESS"})
    chain = _chain(ner, common=frozenset({"patient", "shows", "signs", "prescribed"}))
    res = chain.extract("Patient shows signs of flu. Prescribed ibuprofen.")
    assert res.status == "resolved"
    assert ner.seen == []
    assert res.stages_run == ("regex",)
    assert (res.illness, res.medicine) == ("flu", "ibuprofen")


def test_cascade_runs_ner_on_unresolved_entries_and_keeps_earlier_spans() -> None:
    ner = FakeNer({"asthma": "ILLNESS", "ibuprofen": "MEDICINE"})
    res = _chain(ner).extract("Prescribed ibuprofen for asthma.")
    assert ner.seen == ["Prescribed ibuprofen for asthma."]
    assert [(e.surface, e.method) for e in res.entities] == [("ibuprofen", "regex"), ("asthma", "ner")]


def test_cascade_gate_runs_ner_on_unexplained_rare_words() -> None:
    ner = FakeNer({})
    chain = _chain(ner, common=frozenset({"patient", "shows", "signs", "prescribed"}))
    chain.extract("Patient shows signs of flu. Prescribed ibuprofen. Hepatotoxicity.")
    assert ner.seen == ["Hepatotoxicity."]  # the gate is per sentence: NER sees only the one left unexplained


def test_cascade_ner_runs_per_segment_with_offsets_of_the_whole_text() -> None:
    ner = FakeNer({"asthma": "ILLNESS"})
    chain = _chain(ner, common=frozenset({"patient", "shows", "signs", "prescribed", "known"}))
    text = "Patient shows signs of flu.\nPrescribed ibuprofen.\nKnown asthma, nebulizer at home."
    res = chain.extract(text)
    assert ner.seen == ["Known asthma, nebulizer at home."]
    (asthma,) = [e for e in res.illnesses if e.method == "ner"]
    assert text[asthma.start : asthma.end] == "asthma" == asthma.surface
    assert res.stages_run == ("regex", "ner")


def test_merge_runs_every_stage_and_agreement_raises_confidence() -> None:
    ner = FakeNer({"flu": "ILLNESS"})
    res = _chain(ner, mode="merge").extract("Patient shows signs of flu. Prescribed ibuprofen.")
    assert ner.seen == ["Patient shows signs of flu.", "Prescribed ibuprofen."]  # every sentence
    (flu,) = res.illnesses
    assert flu.details["agreed"] == ["ner", "regex"]
    assert flu.confidence > 0.85


def test_merge_entities_keeps_one_per_overlap() -> None:
    a = Entity("heart failure", 0, 13, "ILLNESS", "ner", "m", 0.5)
    b = Entity("heart failure", 0, 13, "ILLNESS", "lexicon", "l", 0.9, code="I50.9")
    c = Entity("heart", 0, 5, "MEDICINE", "ner", "m", 0.3)
    (m,) = merge_entities([a, b, c])
    assert m.method == "lexicon" and m.code == "I50.9" and m.confidence > 0.9


def test_negated_entity_is_kept_but_not_primary() -> None:
    res = _chain(FakeNer({})).extract("No signs of flu. Diagnosed with asthma. Prescribed salbutamol.")
    assert [e.surface for e in res.illnesses] == ["flu", "asthma"]
    assert res.illnesses[0].negated
    assert res.illness == "asthma"


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "empty text"),
        ("   \n\t ", "empty text"),
        ("x" * 30_000, "text too long"),
        ("\x00\x01\x02\x03\x04 abc", "binary or control characters"),
        ("Le patient présente une grippe.", "no illness or medicine found"),
    ],
)
def test_bad_input_is_unresolved_with_reason(text: str, reason: str) -> None:
    res = _chain(FakeNer({})).extract(text)
    assert res.status == "unresolved"
    assert res.reason is not None and res.reason.startswith(reason)


def test_one_megabyte_is_refused_quickly() -> None:
    res = _chain(FakeNer({})).extract("signs of flu " * 80_000)
    assert res.status == "unresolved" and "too long" in (res.reason or "")


def test_non_string_is_a_typed_error() -> None:
    with pytest.raises(ExtractionError):
        prepare_text(b"bytes", 100)


def test_reference_design_fields_in_dict() -> None:
    d = _chain(FakeNer({})).extract("Patient shows signs of flu. Prescribed ibuprofen 400 mg.").to_dict()
    assert d["illness"] == "flu" and d["medicine"] == "ibuprofen"
    assert d["medicines"][0]["dose"] == "400 mg"
    assert d["status"] == "resolved"


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=400))
def test_any_text_gives_a_valid_result(text: str) -> None:
    res = _chain(FakeNer({"flu": "ILLNESS"})).extract(text)
    assert res.status in ("resolved", "partial", "unresolved")
    for e in res.entities:
        assert text[e.start : e.end] == e.surface
        assert 0.0 <= e.confidence <= 1.0


def test_merge_widens_illnesses_to_an_agreeing_wider_span() -> None:
    lex = Entity("rigidity", 7, 15, "ILLNESS", "lexicon", "l", 0.85, code="R1")
    ner = Entity("muscle rigidity", 0, 15, "ILLNESS", "ner", "m", 0.75)
    (m,) = merge_entities([lex, ner])
    assert (m.surface, m.start, m.code) == ("muscle rigidity", 0, "R1")
    # medicines keep the best-supported span
    lex_m = Entity("lithium", 0, 7, "MEDICINE", "lexicon", "l", 0.9, code="D1")
    ner_m = Entity("lithium carbonate", 0, 17, "MEDICINE", "ner", "m", 0.8)
    (mm,) = merge_entities([lex_m, ner_m])
    assert mm.surface == "lithium"
    # a much less confident wider span does not win
    weak = Entity("muscle rigidity", 0, 15, "ILLNESS", "ner", "m", 0.3)
    (w,) = merge_entities([lex, weak])
    assert w.surface == "rigidity"


@pytest.mark.parametrize(
    ("capture", "inner", "replaced"),
    [
        ("progressive DOE", "DOE", True),  # a course word is not part of the name
        ("uncontrolled hypertension", "hypertension", True),
        ("malignancy including leukemia", "leukemia", True),  # two items in one capture
        ("left-sided heart disease", "heart disease", False),  # anatomy stays in the name
        ("posterior circulation ischemic stroke", "ischemic stroke", False),
    ],
)
def test_a_coded_illness_ending_an_uncoded_capture_replaces_it_only_after_course_words(
    capture: str, inner: str, replaced: bool
) -> None:
    from extractor.chain.engine import _names_an_uncoded_capture

    h = Entity(capture, 10, 10 + len(capture), "ILLNESS", "regex", "rules.tsv:1:x", 0.7)  # type: ignore[arg-type]
    start = h.end - len(inner)
    e = Entity(inner, start, h.end, "ILLNESS", "lexicon", "illnesses.tsv:1", 0.9, code="X1",  # type: ignore[arg-type]
               code_system="ICD-10-CM")
    assert _names_an_uncoded_capture(e, [h]) is replaced
    assert not _names_an_uncoded_capture(e.with_(code=None), [h])  # only a coded name replaces a capture
    assert not _names_an_uncoded_capture(e, [h.with_(code="Y")])  # a coded capture is a name already


def test_collector_paused_restores_the_collector_as_it_was() -> None:
    import gc

    from extractor.chain.engine import collector_paused

    assert gc.isenabled()
    with pytest.raises(RuntimeError), collector_paused():
        assert not gc.isenabled()
        raise RuntimeError("a load that fails")
    assert gc.isenabled()  # back on after a failed load too
    gc.disable()
    try:
        with collector_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()  # a caller that had it off keeps it off
    finally:
        gc.enable()


def test_a_chain_load_leaves_the_collector_on() -> None:
    import gc

    from extractor.config import load_settings

    Chain.from_settings(load_settings(stages=["regex"]))
    assert gc.isenabled()
