"""Confidence calibration: bucket keys, the narrative-report genre band, the two tables (selection / reported)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from extractor.chain import Chain
from extractor.chain.calibration import DEFAULT_PATH, Calibrator, bucket_keys, length_band, narrative
from extractor.chain.model import Entity
from extractor.chain.segments import Segments
from extractor.config import load_settings


def _lex(surface: str = "asthma") -> Entity:
    return Entity(surface, 0, len(surface), "ILLNESS", "lexicon", "illnesses.tsv:1", 0.9,  # type: ignore[arg-type]
                  code="J45", score=100.0, details={"match": "exact"})


@pytest.mark.parametrize(
    "text",
    [
        "A 45-year-old man presented with chest pain and dyspnea.",
        "On admission, she was febrile and hypotensive.",
        "The patient underwent resection of the mass.",
        "He was treated with intravenous ceftriaxone. His fever resolved.",
        # what an image or a specimen showed, a figure cited, the age at an event, a reference range
        "Staging CT imaging showed a 12 cm pelvic mass (Figure 2).",
        "At the age of 4 days, muscle biopsy revealed decreased cytochrome c oxidase staining.",
        "Troponin was 0.07 (normal: <0.014). Chest X-ray revealed cardiomegaly.",
    ],
)
def test_narrative_reports_are_recognised(text: str) -> None:
    assert narrative(text)


@pytest.mark.parametrize(
    "text",
    [
        "Cisplatin-induced nephrotoxicity was studied in rats.",  # PubMed
        "History of myocardial infarction within 6 months",  # criteria
        "Pt c/o chest pain, hx of HTN. Started lisinopril 10 mg daily.",  # a typed note: not a narrative report
        "Lipitor gave me leg cramps",
        "Others were treated with heparin.",  # "treated" alone is not "was treated"; "Others" is not "her"
        # one cue is too little: abstracts mention a case or "her" in passing
        "A 45-year-old woman developed hepatitis after isoniazid.",
        "Her-2 positive tumours responded to trastuzumab.",
        "MRI showed lesions in all 12 patients.",  # one cue; a study's imaging, not one patient's
        "Mutations were found in all tumors, and lesions were observed in 5 of 8 cases.",
    ],
)
def test_other_text_is_not_narrative(text: str) -> None:
    assert not narrative(text)


def test_length_band_carries_the_genre() -> None:
    assert length_band("Fever and cough.") == "s."
    assert length_band("Fever and cough.", "n") == "s.n"
    seg = Segments("A 60-year-old woman had fever. Then cough")
    assert seg.band(0) == "s." and seg.band(32) == "s-"  # one cue: not a report
    seg = Segments("A 60-year-old woman was admitted with fever. Then cough")
    assert seg.band(0) == "s.n" and seg.band(46) == "s-n"  # the whole entry's genre, each sentence's shape


def test_narrative_keys_fall_back_to_the_same_shape_then_to_any_text() -> None:
    keys = bucket_keys(_lex(), "m.n")
    first = "lexicon|ILLNESS|exact|100|1"
    assert keys[:3] == [f"{first}|wm.n", f"{first}|wm.", first]
    assert keys[-2:] == ["lexicon|ILLNESS", "lexicon"]
    assert bucket_keys(_lex(), "m.")[:2] == [f"{first}|wm.", first]


def test_narrative_evidence_fits_only_narrative_buckets() -> None:
    cal = Calibrator()
    cal.add(_lex(), True, band="m.")
    cal.add(_lex(), False, band="m.n")
    first = "lexicon|ILLNESS|exact|100|1"
    assert cal.counts[first] == (1, 1)  # the general bucket did not see the report's miss
    assert cal.counts[f"{first}|wm.n"] == (0, 1)
    def report_key(k: str) -> bool:
        return "|w" in k and k.endswith("n")

    assert all(v == (1, 1) for k, v in cal.counts.items() if not report_key(k))  # none saw the miss
    assert all(v == (0, 1) for k, v in cal.counts.items() if report_key(k))


def test_smoothing_walks_from_general_to_specific() -> None:
    cal = Calibrator({"lexicon": (90, 100), "lexicon|ILLNESS": (80, 100), "lexicon|ILLNESS|exact|100|1|wm.n": (0, 4)})
    parent = (80 + 4 * 0.9) / (100 + 4)  # each bucket's precision is the next one's prior (weight 4)
    assert cal.probability(_lex(), "m.") == pytest.approx(parent)
    assert cal.probability(_lex(), "m.n") == pytest.approx((0 + 4 * parent) / (4 + 4))


def test_tables_load_by_section(tmp_path: Path) -> None:
    path = tmp_path / "cal.json"
    Calibrator({"lexicon": (1, 2)}, "a").save(path, Calibrator({"lexicon": (3, 4)}, "b"))
    sel, rep = Calibrator.load(path), Calibrator.load(path, "reported")
    assert sel is not None and sel.counts == {"lexicon": (1, 2)} and sel.fitted_on == "a"
    assert rep is not None and rep.counts == {"lexicon": (3, 4)} and rep.fitted_on == "b"
    Calibrator({"lexicon": (1, 2)}).save(path)
    assert Calibrator.load(path, "reported") is None


def test_shipped_table_reports_every_genre() -> None:
    data = json.loads(DEFAULT_PATH.read_text(encoding="utf-8"))
    assert data["reported"]["counts"], "models/calibration.json has no reported table"
    keys = data["reported"]["counts"]
    assert any(k.endswith("n") for k in keys) and any(k.endswith(("s.", "s-")) for k in keys)  # reports and notes
    assert "each corpus weighted the same" in data["reported"]["fitted_on"]  # scripts/calibrate.py
    assert any("|w" in k and k.endswith("n") for k in data["counts"])


def test_weighted_counts_round_trip(tmp_path: Path) -> None:
    cal = Calibrator()
    e = _lex()
    cal.add(e, True, weight=0.25)
    cal.add(e, False, weight=0.25)
    path = tmp_path / "w.json"
    cal.save(path)
    back = Calibrator.load(path)
    assert back is not None and back.counts == cal.counts
    assert back.probability(e) == 0.5


def test_reported_table_changes_confidence_never_what_is_found() -> None:
    chain = Chain.from_settings(load_settings())
    assert chain.reported is not None
    plain = dataclasses.replace(chain, reported=None)
    text = ("A 67-year-old man with a history of hypertension presented with chest pain. He was started on "
            "aspirin and metoprolol. Echocardiography showed a dilated left ventricle.")
    a, b = chain.extract(text), plain.extract(text)
    assert [(e.start, e.end, e.label) for e in a.entities] == [(e.start, e.end, e.label) for e in b.entities]
    assert a.entities and any(x.confidence != y.confidence for x, y in zip(a.entities, b.entities, strict=True))
    assert all(0.0 <= e.confidence <= 1.0 for e in a.entities)
    # a typed note too: same entities, the reported table's confidence
    note = "Pt c/o chest pain, hx of HTN. Started lisinopril 10 mg daily."
    a, b = chain.extract(note), plain.extract(note)
    assert [(e.start, e.end, e.label) for e in a.entities] == [(e.start, e.end, e.label) for e in b.entities]
