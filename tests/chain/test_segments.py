"""Segments (sentences, lines) and the span index: the pieces that keep the chain linear in note length."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from extractor.chain.model import Entity
from extractor.chain.segments import MAX_SEGMENT_CHARS, SpanIndex, segment_spans


def _texts(text: str) -> list[str]:
    return [text[s:e] for s, e in segment_spans(text)]


@pytest.mark.parametrize(
    ("text", "segments"),
    [
        ("Pt c/o chest pain, hx of HTN. Started lisinopril 10 mg daily.",
         ["Pt c/o chest pain, hx of HTN.", "Started lisinopril 10 mg daily."]),
        ("HPI:\n  cough x3d\n\n- albuterol PRN", ["HPI:", "cough x3d", "- albuterol PRN"]),
        ("Asthma! Worse at night? Uses inhaler.", ["Asthma!", "Worse at night?", "Uses inhaler."]),
        # no split before a lower-case word, after an initial, a number or a common abbreviation
        ("Given 5 mg i.v. heparin daily.", ["Given 5 mg i.v. heparin daily."]),
        ("Seen by Dr. W. Kniest today.", ["Seen by Dr. W. Kniest today."]),
        ("Problems: 1. HTN 2. DM", ["Problems: 1. HTN 2. DM"]),
        ("As in Fig. 2 and Smith et al. Results follow.", ["As in Fig. 2 and Smith et al. Results follow."]),
        ("BP 120/80. Denies pain.", ["BP 120/80.", "Denies pain."]),
        ("one sentence", ["one sentence"]),
        ("   ", []),
        ("", []),
    ],
)
def test_segments(text: str, segments: list[str]) -> None:
    assert _texts(text) == segments


def test_a_run_on_line_is_cut_at_white_space_below_the_limit() -> None:
    text = "word " * 1_000  # 5,000 characters, no sentence end
    spans = segment_spans(text)
    assert len(spans) > 1
    assert all(e - s <= MAX_SEGMENT_CHARS for s, e in spans)
    assert all(text[s:e].split() == text[s:e].split(" ") for s, e in spans)  # no word cut in two
    unbroken = "x" * 2_500  # one enormous token: cut anyway, NER input stays bounded
    assert [e - s for s, e in segment_spans(unbroken)] == [1_000, 1_000, 500]


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from("ab A.!?\n\t 1x"), max_size=3_000))
def test_segments_are_ordered_disjoint_trimmed_and_cover_every_non_space(text: str) -> None:
    spans = segment_spans(text, max_chars=50)
    covered = [False] * len(text)
    last = 0
    for s, e in spans:
        assert last <= s < e <= len(text) and e - s <= 50
        assert not text[s].isspace() and not text[e - 1].isspace()
        for i in range(s, e):
            covered[i] = True
        last = e
    assert all(covered[i] or ch.isspace() for i, ch in enumerate(text))


def _ent(start: int, end: int) -> Entity:
    return Entity("x" * (end - start), start, end, "ILLNESS", "lexicon", "t", 0.9)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 300), st.integers(1, 40)), max_size=60),
    st.lists(st.tuples(st.integers(0, 340), st.integers(1, 40)), max_size=30),
)
def test_span_index_answers_as_a_scan_of_all_pairs(spans: list[tuple[int, int]],
                                                   queries: list[tuple[int, int]]) -> None:
    ents = [_ent(s, s + n) for s, n in spans]
    index = SpanIndex(ents[: len(ents) // 2])
    for e in ents[len(ents) // 2 :]:
        index.add(e)
    assert sorted(index, key=id) == sorted(ents, key=id) and len(index) == len(ents)
    for s, n in queries:
        want = [e for e in ents if e.start < s + n and s < e.end]
        assert sorted(index.overlapping(s, s + n), key=id) == sorted(want, key=id)
        assert index.covers(s) == any(e.start <= s < e.end for e in ents)
