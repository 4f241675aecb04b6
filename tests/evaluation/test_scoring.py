"""Scoring, by-method/by-stage and calibration of the evaluation harness, with a fake chain."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from evaluation.calibration import at_thresholds, calibration_report, reliability
from evaluation.data import Dataset, Example, Span
from evaluation.fake_chain import FakeChain, ent, result
from evaluation.report import evaluate
from evaluation.scoring import Counts, Outcome, by_method, lenient_match, normalize, score, top_errors
from extractor.chain.model import ILLNESS, MEDICINE


def ex(
    text: str, ill: tuple[str, ...] = (), med: tuple[str, ...] = (), spans=None, eid: str = "e"
) -> Example:
    return Example(eid, text, {"illness": ill, "medicine": med}, spans, 1)


# ---------------------------------------------------------------------------------------------- normalisation
@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("Ibuprofen", "ibuprofen"),
        (" ibuprofen. ", "ibuprofen"),
        ("chest   pain", "chest pain"),
        ("chest\tpain\n", "chest pain"),
        ("(HTN)", "htn"),
        ('"flu",', "flu"),
        ("STRASSE", "strasse"),
        ("Straße", "strasse"),  # case-fold, not lower
        ("type 2 diabetes;", "type 2 diabetes"),
        ("--", ""),
    ],
)
def test_normalize_table(a: str, b: str) -> None:
    assert normalize(a) == b


@pytest.mark.parametrize(
    ("a", "b"),
    [("Non-Hodgkin's lymphoma", "non-hodgkin's lymphoma"), ("vitamin B12.", "vitamin b12"), ("5-FU", "5-fu")],
)
def test_normalize_keeps_inner_punctuation(a: str, b: str) -> None:
    assert normalize(a) == b


@pytest.mark.parametrize(
    ("pred", "gold", "ok"),
    [
        ("chest pain", "pain", True),
        ("pain", "chest pain", True),
        ("Famotidine-associated", "Famotidine", True),
        ("CHEST PAIN.", "chest pain", True),
        ("ca", "cancer", False),  # containment is by whole tokens
        ("heart failure", "renal failure", False),
        ("diabetes", "diabetes mellitus type 2", True),
        ("", "flu", False),
    ],
)
def test_lenient_match_table(pred: str, gold: str, ok: bool) -> None:
    assert lenient_match(pred, gold) is ok


def test_lenient_match_by_overlapping_spans() -> None:
    assert lenient_match("tricuspid valve", "valve regurgitation", [(0, 15)], [(10, 29)])
    assert not lenient_match("tricuspid valve", "regurgitation", [(0, 15)], [(16, 29)])


@given(st.text(max_size=30))
def test_normalize_idempotent(s: str) -> None:
    assert normalize(normalize(s)) == normalize(s)


# ---------------------------------------------------------------------------------------------- counting
def test_counts_rates() -> None:
    c = Counts(tp=3, fp=1, fn=2)
    assert c.precision == 0.75 and c.recall == 0.6
    assert math.isclose(c.f1, 2 * 0.75 * 0.6 / 1.35)
    assert Counts().precision == Counts().recall == Counts().f1 == 0.0
    assert (c + Counts(1, 1, 1)).to_dict()["tp"] == 4


def test_strict_sets_tp_fp_fn() -> None:
    t = "Flu and flu again, chest pain. Prescribed ibuprofen."
    e = ex(t, ill=("flu", "chest pain"), med=("ibuprofen", "aspirin"))
    r = result(
        ent(t, "Flu"),
        ent(t, "flu", occurrence=0),  # two mentions of one gold string = one item
        ent(t, "pain"),  # lenient only
        ent(t, "ibuprofen", MEDICINE),
        ent(t, "Prescribed", MEDICINE),  # spurious
    )
    s = score([e], [r])
    assert s.get("illness", "strict").to_dict() | {} == {**Counts(1, 1, 1).to_dict()}
    assert (
        s.get("medicine", "strict").tp,
        s.get("medicine", "strict").fp,
        s.get("medicine", "strict").fn,
    ) == (1, 1, 1)
    assert (s.get("micro", "strict").tp, s.get("micro", "strict").fp, s.get("micro", "strict").fn) == (
        2,
        2,
        2,
    )
    # lenient: "pain" matches "chest pain"
    assert (
        s.get("illness", "lenient").tp,
        s.get("illness", "lenient").fp,
        s.get("illness", "lenient").fn,
    ) == (2, 0, 0)
    assert s.n_gold == {"illness": 2, "medicine": 2}


def test_lenient_is_one_to_one() -> None:
    t = "chest pain and pain"
    e = ex(t, ill=("chest pain",))
    r = result(ent(t, "chest pain"), ent(t, "pain", occurrence=1))
    s = score([e], [r])
    c = s.get("illness", "lenient")
    assert (c.tp, c.fp, c.fn) == (1, 1, 0)  # the exact pair wins, "pain" cannot reuse the gold


def test_lenient_maximum_matching() -> None:
    # "heart" could match either gold; the matching must still pair both predictions
    t = "heart failure, heart disease"
    e = ex(t, ill=("heart failure", "heart disease"))
    r = result(ent(t, "heart"), ent(t, "heart disease"))
    c = score([e], [r]).get("illness", "lenient")
    assert (c.tp, c.fp, c.fn) == (2, 0, 0)


def test_gold_case_variants_dedupe() -> None:
    t = "Lithium and lithium"
    e = ex(t, med=("Lithium", "lithium"))
    r = result(ent(t, "lithium", MEDICINE))
    c = score([e], [r]).get("medicine", "strict")
    assert (c.tp, c.fp, c.fn) == (1, 0, 0)


def test_negated_and_hypothetical_excluded_unless_counted() -> None:
    t = "No signs of pneumonia. Possible flu."
    e = ex(t, ill=())
    r = result(ent(t, "pneumonia", negated=True), ent(t, "flu", hypothetical=True))
    s = score([e], [r])
    assert s.get("illness", "strict").fp == 0 and s.n_excluded == 2 and s.n_entities == 2
    s2 = score([e], [r], count_negated=True)
    assert s2.get("illness", "strict").fp == 2 and s2.n_excluded == 0


def test_span_level_exact_offsets() -> None:
    t = "lithium toxicity"
    spans = (Span(0, 7, MEDICINE), Span(8, 16, ILLNESS))
    e = ex(t, ill=("toxicity",), med=("lithium",), spans=spans)
    r = result(ent(t, "lithium", MEDICINE), ent(t, "lithium toxicity"))  # illness span wrong
    s = score([e], [r])
    assert s.spans_dict()["medicine"]["tp"] == 1
    assert (s.spans["illness"].tp, s.spans["illness"].fp, s.spans["illness"].fn) == (0, 1, 1)
    assert s.spans_dict()["micro"]["tp"] == 1
    # lenient string view: overlapping span / containment matches
    assert s.get("illness", "lenient").tp == 1
    assert score([ex(t, ill=("toxicity",))], [r]).spans is None


def test_by_method_attribution_uses_most_confident_entity() -> None:
    t = "flu, flu, cough"
    e = ex(t, ill=("flu",))
    r = result(
        ent(t, "flu", method="regex", conf=0.5),
        ent(t, "flu", method="ner", conf=0.9, occurrence=1),
        ent(t, "cough", method="lexicon", conf=0.7),
    )
    bm = by_method(score([e], [r]))
    assert bm["ner"]["illness"]["strict"] == {
        "predictions": 1,
        "tp": 1,
        "fp": 0,
        "precision": 1.0,
        "recall_share": 1.0,
    }
    assert bm["regex"]["micro"]["strict"]["predictions"] == 0
    assert (
        bm["lexicon"]["micro"]["strict"]["fp"] == 1 and bm["lexicon"]["micro"]["strict"]["precision"] == 0.0
    )


def test_top_errors() -> None:
    t = "cough. Cough"
    exs = [ex(t, ill=("flu",), eid="a"), ex(t, ill=("flu",), eid="b")]
    rs = [result(ent(t, "cough")), result(ent(t, "Cough"))]
    errs = top_errors(score(exs, rs), n=5)
    assert errs["illness"]["false_positives"] == [{"surface": "cough", "count": 2}]
    assert errs["illness"]["false_negatives"] == [{"surface": "flu", "count": 2}]
    assert errs["medicine"] == {"false_positives": [], "false_negatives": []}


# ---------------------------------------------------------------------------------------------- calibration
def _o(conf: float, ok: bool, method: str = "ner") -> Outcome:
    return Outcome(0, "illness", "strict", "x", "x", method, conf, ok)


def test_reliability_bins_and_ece() -> None:
    outs = [_o(0.95, True), _o(0.95, True), _o(0.95, False), _o(0.15, False), _o(1.0, True)]
    rel = reliability(outs, bins=10)
    assert rel["n"] == 5
    b9 = rel["bins"][9]
    assert b9["count"] == 4 and b9["tp"] == 3 and b9["precision"] == 0.75
    assert math.isclose(b9["mean_confidence"], (0.95 * 3 + 1.0) / 4)
    assert rel["bins"][1]["count"] == 1 and rel["bins"][1]["precision"] == 0.0
    assert rel["bins"][5]["count"] == 0 and rel["bins"][5]["precision"] is None
    expected = 4 / 5 * abs(0.75 - 0.9625) + 1 / 5 * abs(0.0 - 0.15)
    assert math.isclose(rel["ece"], expected, abs_tol=1e-6)
    assert reliability([], 10)["ece"] is None


def test_perfectly_calibrated_has_zero_ece() -> None:
    outs = [_o(0.75, i < 3) for i in range(4)] + [_o(0.25, i < 1) for i in range(4)]
    assert reliability(outs, 4)["ece"] == 0.0


def test_thresholds() -> None:
    outs = [_o(0.95, True), _o(0.8, True), _o(0.6, False), _o(0.3, True)]
    rows = at_thresholds(outs, n_gold=5, thresholds=[0.5, 0.7, 0.9])
    assert [r["predictions"] for r in rows] == [3, 2, 1]
    assert rows[0]["precision"] == round(2 / 3, 6) and rows[0]["recall"] == 0.4 and rows[0]["fn"] == 3
    assert rows[2]["precision"] == 1.0 and rows[2]["recall"] == 0.2


def test_calibration_report_shape() -> None:
    t = "flu and cough"
    s = score(
        [ex(t, ill=("flu",))], [result(ent(t, "flu", conf=0.9, method="ner"), ent(t, "cough", conf=0.2))]
    )
    cal = calibration_report(s, [0.5], 5)
    assert set(cal) >= {"strict", "lenient", "n_bins"}
    assert cal["strict"]["n"] == 2
    assert cal["strict"]["thresholds"][0]["tp"] == 1 and cal["strict"]["thresholds"][0]["predictions"] == 1
    assert cal["strict"]["by_method"]["ner"]["n"] == 1 and cal["strict"]["by_method"]["regex"]["ece"] is None
    assert set(cal["strict"]["by_field"]) == {"illness", "medicine"}


# ---------------------------------------------------------------------------------------------- by stage
def test_evaluate_by_stage_with_prefix() -> None:
    texts = [
        ("Patient shows signs of flu. Prescribed ibuprofen.", ("flu",), ("ibuprofen",)),
        (
            "Pt c/o chest pain, hx of HTN. Started on lisinopril 10 mg daily.",
            ("chest pain", "HTN"),
            ("lisinopril",),
        ),
        ("No signs of pneumonia. Continue amoxicillin 500 mg TID by mouth.", (), ("amoxicillin",)),
        ("Pneumonia with cough.", ("Pneumonia", "cough"), ()),
    ]
    ds = Dataset("mem.csv", "csv", [ex(t, i, m, eid=str(k)) for k, (t, i, m) in enumerate(texts)])
    rep, scores, results = evaluate(FakeChain(), ds, progress=False, batch_size=2)
    names = [s["name"] for s in rep["by_stage"]]
    assert names == ["regex", "regex+lexicon", "regex+lexicon+ner"]
    f1 = [s["fields"]["micro"]["strict"]["f1"] for s in rep["by_stage"]]
    assert f1[0] < f1[1] < f1[2]
    assert rep["by_stage"][-1]["fields"] == rep["fields"]
    regex_only = rep["by_stage"][0]["fields"]["micro"]["strict"]
    assert (regex_only["tp"], regex_only["fp"]) == (2, 0)  # ibuprofen, HTN
    # negated pneumonia excluded; "amoxicillin 500" is a strict FP but a lenient TP
    assert rep["fields"]["medicine"]["strict"]["fp"] == 1 and rep["fields"]["medicine"]["lenient"]["fp"] == 0
    assert rep["n_excluded_negated"] == 1
    assert rep["by_method"]["regex"]["micro"]["strict"]["tp"] == 2
    assert rep["by_method"]["ner"]["micro"]["strict"]["tp"] == 2  # Pneumonia, cough
    assert len(results) == 4


def test_evaluate_without_by_stage_runs_chain_once() -> None:
    chain = FakeChain()
    ds = Dataset("mem.csv", "csv", [ex("flu", ("flu",)) for _ in range(5)])
    rep, _, _ = evaluate(chain, ds, progress=False, by_stage=False, batch_size=2)
    assert rep["by_stage"] == [] and chain.calls == 3  # 3 batches
