"""Confidence calibration: turn each stage's raw evidence into a probability that the entity is correct.

spaCy's transition-based NER gives no probability, and a regex prior or a fuzzy ratio is not one either. So the
chain uses *per-feature calibration* (histogram binning): every entity falls in a bucket keyed by its method,
label and the evidence behind it (the regex rule and whether the capture is in a lexicon; the lexicon match type
and fuzzy-score band; for NER whether the span is in a lexicon and its length). A bucket's calibrated confidence
is its observed precision on held-out labelled data, smoothed towards the broader bucket with a Beta prior, so a
bucket seen a handful of times is not trusted blindly. Among entities with confidence >= c, about a fraction c are
correct, per method; ``python -m evaluation`` prints the reliability table and the expected calibration error.

The table is fitted by ``python scripts/calibrate.py`` (held-out halves of the dev splits) and shipped as
``models/calibration.json``. Without it, each stage's provisional confidence passes through unchanged.

Two tables, same buckets: ``counts`` calibrates each stage's raw evidence, and the chain uses those confidences
to choose between overlapping entities and to drop weak ones (``min_confidence``). ``reported`` is fitted on
what the whole chain returns (after overlaps, context, tests moved to substances), every corpus weighing the same,
and sets the confidence the result reports. It never feeds back into a choice, so fitting it cannot change what
is found; the raw-evidence table alone overstated the final precision on case reports by about 0.1 and on
criteria by 0.04, and understated it on typed notes.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from extractor.chain.first_chars import guarded
from extractor.chain.model import Entity
from extractor.config import REPO_ROOT

DEFAULT_PATH = REPO_ROOT / "models" / "calibration.json"
PRIOR_WEIGHT = 4.0  # pseudo-counts of the parent bucket's precision


def _band(score: float | None) -> str:
    if score is None:
        return "na"
    if score >= 0.999:
        return "100"
    if score >= 0.95:
        return "95"
    if score >= 0.9:
        return "90"
    return "lt90"


def _ner_band(score: float | None) -> str:
    """Bands of the NER stage's action-probability score (extractor/chain/ner.py); precision rises steeply near 1."""
    if score is None:
        return "na"
    if score >= 0.99:
        return "99"
    if score >= 0.9:
        return "90"
    if score >= 0.5:
        return "50"
    return "lt50"


def length_band(text: str, genre: str = "") -> str:
    """Shape of the sentence or line an entity is in (:class:`~extractor.chain.segments.Segments`; a short entry
    is one): length in words (short "s" <= 12, medium "m" <= 25, long "l") and whether it ends like a
    sentence ("." or "-"); ``genre`` ("n" for a narrative patient report, :func:`narrative`) is appended. The
    same evidence is right more or less often depending on the kind of text (a one-word lexicon match in a PubMed
    sentence vs in a problem list vs in a case report), so buckets are split by it too."""
    n = len(text.split())
    size = "s" if n <= 12 else ("m" if n <= 25 else "l")
    # list-like lines (problem lists, criteria) rarely end like a sentence; prose and typed notes do
    end = "." if text.rstrip().endswith((".", "!", "?")) else "-"
    return size + end + genre


# Cues of a narrative report about one patient (case reports, discharge summaries, admission notes): an age
# ("a 45-year-old man"), presentation and admission verbs, "the patient", third-person clinical past tense.
# They are rare in abstracts, criteria and problem lists (under 5 % of BC5CDR / NCBI / Chia dev sentences, over
# 90 % of MACCROBAT passages), and the same evidence is right less often there: a case report annotates the
# finding ("mass") where the chain returns the longer phrase, and names far more tests, sites and procedures.
_NARRATIVE = guarded(re.compile(
    r"\b\d+[- ](?:year|yr|month|week|day)s?[- ]old\b|\b(?:presented|was admitted|was referred|was diagnosed"
    r"|was treated|was started|on (?:physical )?examination|on admission|the patient|our patient"
    r"|(?:he|she) (?:was|had|has|is|developed|underwent|received|complained|denied|reported)|his|her"
    r"|underwent|was discharged|physical examination|(?:hospital|postoperative) day|on day \d+|was transferred"
    r"|was readmitted|at presentation|past medical history|chief complaint)\b"
    # what an examination, an image or a specimen showed; a figure cited in a report; the patient's age at an
    # event; a laboratory value's reference range. Each turns up in under 0.2 % of abstract and criteria lines.
    r"|\b(?:CT|MRI|MR|PET|x-ray|radiograph\w*|ultrasound|ultrasonography|sonography|echocardiogra\w+|echo|biopsy"
    r"|examination|auscultation|palpation|scan|imaging|endoscopy|gastroscopy|colonoscopy|bronchoscopy|angiography"
    r"|ECG|EKG|electrocardiogram|TEE|TTE|histology|pathology|cytology|smear|culture)\b[^.;]{0,60}?"
    r"\b(?:showed|revealed|demonstrated|disclosed|documented|confirmed)\b"
    r"|\((?:see )?fig(?:ure|\.)?\s*\.?\s*\d|\bat (?:the )?age of \d+|\bat age \d+"
    r"|\bin (?:his|her) (?:early |late |mid-?)?\d0s\b"
    r"|\((?:normal|reference)(?: range| value)?s?\s*[:,]?\s*[<>≤≥]?\s*\d",
    re.IGNORECASE,
))  # guarded: the same matches, tried only where a cue's first character is (extractor.chain.first_chars)


def narrative(text: str) -> bool:
    """True when ``text`` reads like a narrative about one patient: two cues of ``_NARRATIVE`` or more (one is
    too little: "her" or "a 45-year-old woman" alone turns up in abstracts that are not about one patient)."""
    m = _NARRATIVE.search(text)
    return m is not None and _NARRATIVE.search(text, m.end()) is not None


def bucket_keys(e: Entity, band: str | None = None) -> list[str]:
    """Keys from the most specific to the most general; the first one present in the table wins. With ``band``
    (:func:`length_band` of the entry), each evidence key is preceded by the same key split by entry length."""
    keys = _evidence_keys(e)
    if band is None:
        return keys
    out: list[str] = []
    for k in keys[:-2]:  # not for the label / method fallbacks
        if band.endswith("n"):  # a narrative report's own bucket, then the same shape in any text
            out += [f"{k}|w{band}", f"{k}|w{band[:-1]}", k]
        else:
            out += [f"{k}|w{band}", k]
    return out + keys[-2:]


def _signature(e: Entity, band: str | None) -> tuple[object, ...]:
    """Everything :func:`bucket_keys` reads from an entity: equal signatures give equal keys."""
    d = e.details
    agreed = d.get("agreed")
    common = (e.method, e.label, bool(e.code), tuple(agreed) if agreed else None, band)
    if e.method == "regex":
        return (*common, d.get("rule", "?"))
    words = len(e.surface.split())
    if e.method == "lexicon":
        return (*common, str(d.get("match", "exact")), _band(e.score), words <= 1)
    return (*common, int(d.get("n_tokens", words)), _ner_band(e.score))


def _evidence_keys(e: Entity) -> list[str]:
    linked = "linked" if e.code else "unlinked"
    base = f"{e.method}|{e.label}"
    agreed = e.details.get("agreed")
    agree_keys = []
    if agreed:  # merge mode: several methods found this span; their agreement is its own evidence
        methods = "+".join(agreed)
        agree_keys = [f"agree|{e.label}|{methods}|{linked}", f"agree|{e.label}|{methods}"]
    if e.method == "regex":
        specific = [f"{base}|{e.details.get('rule', '?')}|{linked}", f"{base}|{linked}"]
    elif e.method == "lexicon":
        match = str(e.details.get("match", "exact"))
        size = "1" if len(e.surface.split()) <= 1 else "2+"
        specific = [f"{base}|{match}|{_band(e.score)}|{size}", f"{base}|{match}|{_band(e.score)}", f"{base}|{match}"]
    else:
        n_tokens = int(e.details.get("n_tokens", len(e.surface.split())))
        size = "1" if n_tokens <= 1 else ("2-3" if n_tokens <= 3 else "4+")
        band = _ner_band(e.score)
        specific = [f"{base}|{linked}|{band}|{size}", f"{base}|{linked}|{band}", f"{base}|{linked}"]
    return [*agree_keys, *specific, base, e.method]


@dataclass
class Calibrator:
    """Bucket -> (correct, total) counts; turns counts into smoothed precisions."""

    counts: dict[str, tuple[float, float]] = field(default_factory=dict)  # (correct, total), maybe weighted
    fitted_on: str = ""

    @classmethod
    def load(cls, path: Path, section: str = "counts") -> Calibrator | None:
        """The table in ``section`` of the file: ``counts`` (stage evidence, used to choose between entities) or
        ``reported`` (the confidence the result reports); None when the file has no such section."""
        data = json.loads(path.read_text(encoding="utf-8"))
        if section != "counts":
            data = data.get(section)
            if not data:
                return None
        return cls({k: (float(v[0]), float(v[1])) for k, v in data["counts"].items()}, data.get("fitted_on", ""))

    @classmethod
    def load_default(cls, section: str = "counts") -> Calibrator | None:
        return cls.load(DEFAULT_PATH, section) if DEFAULT_PATH.is_file() else None

    def to_json(self) -> dict[str, object]:
        def num(x: float) -> float | int:
            return int(x) if float(x).is_integer() else round(x, 4)

        return {"fitted_on": self.fitted_on, "prior_weight": PRIOR_WEIGHT,
                "counts": {k: [num(v[0]), num(v[1])] for k, v in sorted(self.counts.items())}}

    def save(self, path: Path, reported: Calibrator | None = None) -> None:
        data = self.to_json()
        if reported is not None:
            data["reported"] = reported.to_json()
        path.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")

    def add(self, e: Entity, correct: bool, *, only_agreement: bool = False, band: str | None = None,
            weight: float = 1.0) -> None:
        """Count ``e`` (right or wrong) in its buckets; ``weight`` < 1 lets a large corpus count as much as a small
        one (the reported table weighs each corpus the same)."""
        self.__dict__.pop("_memo", None)
        keys = bucket_keys(e, band)
        if band and band.endswith("n"):
            # a narrative report's evidence fits only its own buckets: the general ones stay what they were
            # for abstracts, criteria and notes, and serve as the narrative buckets' prior
            keys = [k for k in keys if k.endswith("n") and "|w" in k]
        if only_agreement:
            keys = [k for k in keys if k.startswith("agree|")]
        for key in keys:
            c, n = self.counts.get(key, (0.0, 0.0))
            self.counts[key] = (c + weight * int(correct), n + weight)

    def probability(self, e: Entity, band: str | None = None) -> float | None:
        """The smoothed precision of ``e``'s buckets; memoised by what the bucket keys are made of (a worker asks
        for the same few hundred shapes millions of times)."""
        sig = _signature(e, band)
        memo = self.__dict__.setdefault("_memo", {})
        try:
            return memo[sig]  # type: ignore[no-any-return]
        except KeyError:
            pass
        p = self._probability(e, band)
        if len(memo) > 100_000:
            memo.clear()
        memo[sig] = p
        return p

    def _probability(self, e: Entity, band: str | None = None) -> float | None:
        keys = [k for k in bucket_keys(e, band) if k in self.counts]
        if not keys:
            return None
        # walk from the most general bucket to the most specific, each one's precision the next one's prior
        p: float | None = None
        for key in reversed(keys):
            c, n = self.counts[key]
            if n == 0:
                continue
            p = c / n if p is None else (c + PRIOR_WEIGHT * p) / (n + PRIOR_WEIGHT)
        return p

    def calibrate(self, e: Entity, band: str | None = None) -> Entity:
        p = self.probability(e, band)
        if p is None:
            return e
        p = round(min(max(p, 0.0), 1.0), 4)
        return e if p == e.confidence else e.with_(confidence=p)
