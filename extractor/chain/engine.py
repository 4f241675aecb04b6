"""The extraction chain: regex heuristics -> lexicon matching -> NER, then linking, context and calibration.

Runs on plain strings; knows nothing of Kafka or MongoDB::

    >>> chain = Chain.from_settings(load_settings())
    >>> chain.extract("Patient shows signs of flu. Prescribed ibuprofen.").to_dict()

Policies (``Settings.chain_mode``):

* ``cascade`` (default): each stage only sees what the earlier stages left unresolved. The regex and lexicon
  stages run on every entry (a lexicon match that overlaps a regex capture is dropped, unless it is a longer
  medicine name containing a one-word capture, which it replaces); NER runs only on the
  segments (sentences, lines: :mod:`extractor.chain.segments`) that still contain a word no earlier stage
  explained and that is not a common English word (a cheap gate: the word list is ``lexicons/common_words.txt``).
  There, NER's entities and the earlier ones are merged as in ``merge`` mode: the model has seen something the
  rules could not settle. A short entry is one segment; a long note gets NER only where it needs it.
* ``merge``: every stage runs on every entry; overlapping entities of the same label are merged, keeping the
  best supported one (highest calibrated confidence; agreement between methods raises it).

The README's "Chain policy" table gives the accuracy and speed of both, measured with
``python -m extractor bench chain`` and ``python -m evaluation``.
"""

from __future__ import annotations

import gc
import hashlib
import logging
import re
import unicodedata
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from extractor import __version__
from extractor.chain.abbreviations import add_defined_abbreviations
from extractor.chain.attributes import add_medicine_attributes
from extractor.chain.calibration import Calibrator
from extractor.chain.context import CONTEXT_FILE, SECTIONS_FILE, ContextAnnotator
from extractor.chain.findings import FINDINGS_FILE, ORGAN_CHANGES_FILE, Findings
from extractor.chain.lab_tests import LAB_CONTEXT_FILE, LAB_TESTS_FILE, LabTests
from extractor.chain.model import ILLNESS, MEDICINE, Entity, ExtractionError, ExtractionResult, Label
from extractor.chain.non_entities import NON_ENTITIES_FILE, NonEntities
from extractor.chain.patient_wording import FILE as PATIENT_WORDING_FILE
from extractor.chain.patient_wording import PatientWording
from extractor.chain.rules import RULES_FILE, RegexStage
from extractor.chain.segments import Segments, SpanIndex, extract_by_segment
from extractor.chain.stage import Stage

if TYPE_CHECKING:
    from extractor.config import Settings

log = logging.getLogger(__name__)

COMMON_WORDS_FILE = "common_words.txt"
# a word the cascade gate looks at: 4+ ASCII letters (shorter ones are mostly abbreviations the rules know)
_LONG_WORD = re.compile(r"[A-Za-z]{4,}")
_LINE_BREAKS = str.maketrans("", "", "\t\n\r")


class Linker(Protocol):
    """Gives an entity found by regex or NER its canonical name and code from the lexicons."""

    def link(self, entity: Entity) -> Entity: ...


@dataclass
class _Prepared:
    text: str  # control characters replaced by spaces: same length, same offsets
    reason: str | None  # set when the entry cannot be processed at all


def prepare_text(text: object, max_chars: int) -> _Prepared:
    """Validate one input. Never raises for a string; raises :class:`ExtractionError` for a non-string."""
    if not isinstance(text, str):
        raise ExtractionError(f"text must be a str, got {type(text).__name__}")
    if len(text) > max_chars:
        return _Prepared("", f"text too long: {len(text)} characters (limit {max_chars}, EXTRACTOR_MAX_TEXT_CHARS)")
    if not text.strip():
        return _Prepared("", "empty text")
    if text.isprintable() or text.translate(_LINE_BREAKS).isprintable():  # fast path: nothing to blank
        return _Prepared(text, None)
    bad = 0
    chars = list(text)
    for i, ch in enumerate(chars):
        if ch in "\t\n\r":
            continue
        cat = unicodedata.category(ch)
        if cat[0] == "C" or ch == "\ufffd":  # control, format, surrogate, private use, unassigned
            bad += 1
            chars[i] = " "
    if bad and bad / len(text) > 0.1:
        return _Prepared("", f"binary or control characters: {bad} of {len(text)} characters")
    cleaned = "".join(chars) if bad else text
    if not cleaned.strip():
        return _Prepared("", "empty text")
    return _Prepared(cleaned, None)


def load_common_words(lexicon_dir: Path) -> frozenset[str]:
    path = lexicon_dir / COMMON_WORDS_FILE
    if not path.is_file():
        return frozenset()
    words = []
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            words.append(line.split("\t", 1)[0].lower())
    return frozenset(words)


def _labels(entities: Iterable[Entity]) -> set[Label]:
    return {e.label for e in entities}


def settle_heap() -> None:
    """Move every object alive now out of the cyclic garbage collector's generations (``gc.freeze``).

    A loaded chain is a few hundred thousand long-lived objects (lexicon rows and indexes, the spaCy model). Left
    in the collected generations, every full collection walks them again: 6 % of the chain's CPU per short entry
    (``bench chain``-style loop, 264 -> 246 µs). Frozen objects are still freed by reference counting; what was
    garbage before is collected first (unfreeze, collect), so repeated loads (a hot reload, tests) leak nothing.
    """
    gc.unfreeze()
    gc.collect()
    gc.freeze()


@contextmanager
def collector_paused() -> Iterator[None]:
    """The cyclic garbage collector off while a chain loads, back on after (as it was). A load allocates a few
    hundred thousand objects that all stay alive (lexicon rows, indexes, the model), and every collection the
    allocations set off walked them again for nothing: the lexicon's load took 0.70 s with it, 0.33 s without.
    Cyclic garbage made meanwhile is not lost: :func:`settle_heap`, which ends every load, collects it."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


@dataclass
class Chain:
    """An ordered list of stages plus the steps that run after them. Build with :meth:`from_settings`."""

    stages: list[Stage]
    context: ContextAnnotator | None = None
    non_entities: NonEntities | None = None
    lab_tests: LabTests | None = None
    findings: Findings | None = None
    patient_wording: PatientWording | None = None
    linker: Linker | None = None
    calibrator: Calibrator | None = None
    # the confidence a result reports: fitted on the whole chain's output, applied last (calibration.py)
    reported: Calibrator | None = None
    mode: str = "cascade"
    max_chars: int = 20_000
    common_words: frozenset[str] = frozenset()
    min_confidence: float = 0.0
    lexicon_version: str = "none"
    model_name: str = "none"
    reload_failures: int = 0  # lexicon edits that failed to load since start (the old chain stayed live)
    settings: Any = None
    _fingerprint: tuple[tuple[str, int, int], ...] = field(default=(), repr=False)

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_settings(cls, settings: Settings, *, nlp: Any = None) -> Chain:
        """Load every resource the settings name. ``nlp`` lets a caller pass an already loaded spaCy model."""
        with collector_paused():
            chain = cls._load(settings, nlp)
        settle_heap()
        return chain

    @classmethod
    def _load(cls, settings: Settings, nlp: Any) -> Chain:
        from extractor.chain.lexicon import Lexicon, LexiconStage

        lexicon_dir = Path(settings.lexicon_dir)
        stages: list[Stage] = []
        lexicon = None
        model_name = "none"
        for name in settings.stages:
            if name == "regex":
                stages.append(RegexStage.from_dir(lexicon_dir))
            elif name == "lexicon":
                lexicon = lexicon or Lexicon.load(lexicon_dir)
                stages.append(LexiconStage(lexicon))
            elif name == "ner":
                from extractor.chain.ner import NerStage, load_ner_model

                model = nlp if nlp is not None else load_ner_model(settings.ner_model)
                stage = NerStage(model, batch_size=settings.ner_batch_size)
                model_name = stage.model_name
                stages.append(stage)
            else:
                raise ValueError(f"unknown stage {name!r}: choose from regex, lexicon, ner")
        if lexicon is None and any(s in settings.stages for s in ("regex", "ner")):
            lexicon = Lexicon.load(lexicon_dir)  # still needed to link regex/NER entities to codes
        from extractor.chain.linking import LexiconLinker

        chain = cls(
            stages=stages,
            context=ContextAnnotator.from_dir(lexicon_dir),
            non_entities=NonEntities.from_dir(lexicon_dir),
            lab_tests=LabTests.from_dir(lexicon_dir),
            findings=Findings.from_dir(lexicon_dir) if "lexicon" in settings.stages else None,
            patient_wording=PatientWording.from_dir(lexicon_dir) if "lexicon" in settings.stages else None,
            linker=LexiconLinker(lexicon) if lexicon is not None else None,
            calibrator=Calibrator.load_default(),
            reported=Calibrator.load_default("reported"),
            mode=settings.chain_mode,
            max_chars=settings.max_text_chars,
            common_words=load_common_words(lexicon_dir),
            min_confidence=settings.min_confidence,
            lexicon_version=lexicon_dir_version(lexicon_dir, lexicon.version if lexicon is not None else ""),
            model_name=model_name,
            settings=settings,
            _fingerprint=lexicon_dir_fingerprint(lexicon_dir),
        )
        return chain

    @property
    def stage_names(self) -> tuple[str, ...]:
        return tuple(s.method for s in self.stages)

    @property
    def version(self) -> str:
        return f"extractor-{__version__}+lexicon-{self.lexicon_version}+model-{self.model_name}"

    def prefix(self, k: int) -> Chain:
        """A chain with only the first ``k`` stages, sharing every loaded resource (for per-stage scores)."""
        if not 1 <= k <= len(self.stages):
            raise ValueError(f"prefix length must be in 1..{len(self.stages)}")
        clone = Chain(**{f: getattr(self, f) for f in self.__dataclass_fields__})  # type: ignore[arg-type]
        clone.stages = self.stages[:k]
        return clone

    def reload_if_changed(self) -> bool:
        """Reload rules, triggers and lexicons when a file under the lexicon dir changed. The NER model stays.

        A broken edit is logged and the running chain is kept, so a worker never dies from a typo.
        """
        if self.settings is None:
            return False
        lexicon_dir = Path(self.settings.lexicon_dir)
        fp = lexicon_dir_fingerprint(lexicon_dir)
        if fp == self._fingerprint:
            return False
        self._fingerprint = fp
        ner = next((s for s in self.stages if s.method == "ner"), None)
        try:
            fresh = Chain.from_settings(self.settings, nlp=getattr(ner, "nlp", None))
        except Exception as exc:  # noqa: BLE001 - any load error keeps the old chain
            log.error("lexicon reload failed, keeping version %s: %s", self.lexicon_version, exc)
            self.reload_failures += 1
            return False
        failures = self.reload_failures
        for f in self.__dataclass_fields__:
            setattr(self, f, getattr(fresh, f))
        self.reload_failures = failures
        settle_heap()  # the replaced chain's structures are garbage now: collected, the rest frozen again
        log.info("lexicons reloaded: version %s", self.lexicon_version)
        return True

    # ------------------------------------------------------------------ extraction
    def extract(self, text: str) -> ExtractionResult:
        return self.extract_many([text])[0]

    def extract_many(self, texts: Sequence[str]) -> list[ExtractionResult]:
        prepared = [prepare_text(t, self.max_chars) for t in texts]
        found: list[list[Entity]] = [[] for _ in texts]
        ran: list[list[str]] = [[] for _ in texts]
        live = [i for i, p in enumerate(prepared) if p.reason is None]
        segments = {i: Segments(prepared[i].text) for i in live}
        for stage in self.stages:
            if stage.method == "ner":
                outputs = self._run_ner(stage, live, prepared, segments, found)
            else:  # regex and lexicon: one pass over the whole text (terms may wrap over a line break)
                outputs = dict(zip(live, stage.extract_many([prepared[i].text for i in live]), strict=True))
            for i, ents in outputs.items():
                ran[i].append(stage.method)
                # below min_confidence an entity is dropped where it is made, so it cannot mask a later stage's
                ents = [f for f in (self._finish_entity(e, segments[i].band(e.start)) for e in ents)
                        if f.confidence >= self.min_confidence]
                if any(e.details.get("clinical_only") for e in ents) and not self._clinical(prepared[i].text,
                                                                                             segments[i]):
                    # a sign or symptom that abstracts and criteria leave unlabelled (lexicon.py, scope
                    # "abstracts"): only a case report or a patient's own words make it the patient's complaint
                    ents = [e for e in ents if not e.details.get("clinical_only")]
                if self.mode == "cascade" and stage.method != "ner":
                    # each entity is kept unless it overlaps one already kept (earlier stages' or this one's);
                    # a longer medicine name that contains the one word an earlier stage captured replaces it
                    # (the rule caught "chloride" before a dose, the lexicon knows "potassium chloride")
                    kept = SpanIndex(found[i])
                    for e in ents:
                        hits = kept.overlapping(e.start, e.end)
                        if not hits:
                            found[i].append(e)
                            kept.add(e)
                        elif e.label == MEDICINE and all(
                            h.label == MEDICINE and e.start <= h.start and h.end <= e.end
                            and (h.end - h.start) < (e.end - e.start) and " " not in h.surface for h in hits
                        ):
                            gone = {id(h) for h in hits}
                            found[i] = [f for f in found[i] if id(f) not in gone] + [e]
                            kept = SpanIndex(found[i])
                        elif _names_an_uncoded_capture(e, hits):
                            # a rule's capture ("presents with progressive DOE", "started calcium supplements")
                            # with no code of its own holds the coded entity the lexicon found: that is the name
                            found[i] = [f for f in found[i] if f is not hits[0]] + [e]
                            kept = SpanIndex(found[i])
                else:  # merge mode; and NER in cascade mode, which only runs where entries are left unsettled
                    found[i] = merge_entities(found[i] + ents, self.calibrator)
        results = [self._result(p, f, r, segments[i].narrative if i in segments else False)
                   for i, (p, f, r) in enumerate(zip(prepared, found, ran, strict=True))]
        if self.reported is not None:
            for i in live:
                self._report_confidence(results[i], segments[i])
        for text, p, res in zip(texts, prepared, results, strict=True):
            if p.text is not text:  # control characters were blanked: report surfaces as in the original
                res.illnesses = [e.with_(surface=text[e.start : e.end]) for e in res.illnesses]
                res.medicines = [e.with_(surface=text[e.start : e.end]) for e in res.medicines]
        return results

    def _run_ner(
        self, stage: Stage, live: list[int], prepared: list[_Prepared], segments: dict[int, Segments],
        found: list[list[Entity]],
    ) -> dict[int, list[Entity]]:
        """NER on segments (sentences), all of them in one batch: in cascade mode only the segments the gate
        lets through. Offsets come back relative to the whole entry."""
        spans = {}
        for i in live:
            spans[i] = segments[i].spans
            if self.mode == "cascade":
                spans[i] = self._segments_needing_ner(prepared[i].text, spans[i], found[i])
        todo = [i for i in live if spans[i]]
        outputs = extract_by_segment(stage, [prepared[i].text for i in todo], [spans[i] for i in todo])
        return dict(zip(todo, outputs, strict=True))

    def _report_confidence(self, res: ExtractionResult, segments: Segments) -> None:
        """Replace each entity's confidence by the reported table's (fitted on final output; see calibration.py)."""
        cal = self.reported
        assert cal is not None
        res.illnesses = [cal.calibrate(e, segments.band(e.start)) for e in res.illnesses]
        res.medicines = [cal.calibrate(e, segments.band(e.start)) for e in res.medicines]
        res.substances = [cal.calibrate(e, segments.band(e.start)) for e in res.substances]

    def _finish_entity(self, e: Entity, band: str | None = None) -> Entity:
        if self.linker is not None and e.code is None:
            e = self.linker.link(e)
        if self.calibrator is not None:
            e = self.calibrator.calibrate(e, band)
        return e

    @staticmethod
    def _clinical(text: str, segments: Segments) -> bool:
        """Clinical text in the sense of the stop-terms' scope "abstracts": a narrative report about one patient
        or a patient's own words (first person)."""
        return segments.narrative or PatientWording.first_person(text)

    def _known_term(self, term: str) -> bool:
        """Is ``term`` an illness or medicine row of the lexicon (exactly, case rules applied)?"""
        lexicon = getattr(self.linker, "lexicon", None)
        return lexicon is not None and lexicon.lookup(term) is not None

    def _lookup_illness(self, name: str) -> tuple[str, str, str] | None:
        """(canonical, code, code_system) of the illness row named ``name`` exactly, or None."""
        lexicon = getattr(self.linker, "lexicon", None)
        row = lexicon.lookup(name) if lexicon is not None else None
        if row is None or row.label != ILLNESS or not row.code or not row.code_system:
            return None
        return row.canonical, row.code, row.code_system

    def _segments_needing_ner(
        self, text: str, spans: list[tuple[int, int]], entities: list[Entity]
    ) -> list[tuple[int, int]]:
        """Cascade gate: which segments still hold something only the model could find?

        A segment does when a word of 4+ letters in it is neither inside an entity found so far nor a common
        word. Without a common-word list, every segment of an entry that still lacks an illness or a medicine.
        """
        if not self.common_words:
            return spans if _labels(entities) != {ILLNESS, MEDICINE} else []
        covered = SpanIndex(entities)
        common = self.common_words
        out = []
        for s, e in spans:
            for m in _LONG_WORD.finditer(text, s, e):
                if m.group(0).lower() not in common and not covered.covers(m.start()):
                    out.append((s, e))
                    break
        return out

    def _result(self, prep: _Prepared, entities: list[Entity], ran: list[str], report: bool = False
                ) -> ExtractionResult:
        """The post-steps on one entry's entities; ``report``: the entry reads as a narrative report."""
        if prep.reason is not None:
            return ExtractionResult([], [], "unresolved", prep.reason, ())
        ents = [e for e in entities if e.confidence >= self.min_confidence]
        if self.findings is not None:  # a narrative report's findings where nothing else was found
            ents += [self._finish_entity(e) for e in self.findings.add(prep.text, ents, report)[len(ents):]]
        if self.patient_wording is not None:  # "my knees ache", "I can't sleep": a patient's own words
            before = {id(e) for e in ents}
            ents = self.patient_wording.add(prep.text, ents, self._lookup_illness)
            if self.calibrator is not None:
                ents = [e if id(e) in before else self.calibrator.calibrate(e) for e in ents]
        ents = add_defined_abbreviations(prep.text, ents, self._known_term)
        if self.context is not None:
            ents = self.context.annotate(prep.text, ents)
        ents = add_medicine_attributes(prep.text, ents)
        ents.sort(key=lambda e: (e.start, e.end))
        substances: list[Entity] = []
        if self.lab_tests is not None:  # tests, analytes and markers read from their context: not medicines
            ents, substances = self.lab_tests.split(prep.text, ents, report)
        if self.non_entities is not None and self.non_entities.kinds:
            kept = []
            for e in ents:
                kind = self.non_entities.kind(e.label, e.surface, e.canonical)
                if kind is None:
                    kept.append(e)
                elif kind == "substance":
                    substances.append(e)
            ents = kept
        ill = [e for e in ents if e.label == ILLNESS]
        med = [e for e in ents if e.label == MEDICINE]
        if ill and med:
            status, reason = "resolved", None
        elif ill or med:
            status, reason = "partial", "no medicine found" if ill else "no illness found"
        else:
            status, reason = "unresolved", "no illness or medicine found"
        return ExtractionResult(ill, med, status, reason, tuple(ran), substances)  # type: ignore[arg-type]


def merge_entities(entities: list[Entity], calibrator: Calibrator | None = None) -> list[Entity]:
    """Merge overlapping entities: the best supported wins; agreeing methods raise its confidence.

    Two entities agree when they overlap and carry the same label. The winner is the one with the highest
    confidence (ties: a coded entity over an uncoded one, then the longer span); ``details.agreed`` names the
    agreeing methods. Its confidence is then the calibration table's precision for that agreement (fitted on
    held-out data like every other bucket), or without a table ``1 - prod(1 - c_i)`` over the agreeing
    methods (a noisy-OR, capped at 0.99).
    """
    out: list[Entity] = []
    pending = sorted(entities, key=lambda e: (-e.confidence, e.code is None, -(e.end - e.start), e.start))
    rank = {id(e): i for i, e in enumerate(pending)}
    index = SpanIndex(pending)
    used = [False] * len(pending)
    for i, e in enumerate(pending):
        if used[i]:
            continue
        used[i] = True
        group = [e]
        # every entity ranked before e is used already: the unused overlapping ones, in rank order
        for j in sorted(rank[id(o)] for o in index.overlapping(e.start, e.end)):
            if not used[j]:
                used[j] = True
                if pending[j].label == e.label:
                    group.append(pending[j])
        methods = sorted({g.method for g in group})
        if e.label == ILLNESS:
            e = _widen(e, group)
        if len(methods) > 1:
            miss = 1.0
            for m in methods:
                miss *= 1.0 - max(g.confidence for g in group if g.method == m)
            details = dict(e.details, agreed=methods)
            e = e.with_(confidence=min(0.99, round(1.0 - miss, 4)), details=details)
            if e.code is None:
                coded = next((g for g in group if g.code), None)
                if coded is not None:
                    e = e.with_(canonical=coded.canonical, code=coded.code, code_system=coded.code_system)
            if calibrator is not None:
                e = calibrator.calibrate(e)
        out.append(e)
    return sorted(out, key=lambda e: e.start)


# Words of severity, course and control that annotators (Chia's Qualifier, MACCROBAT's Severity) and clinicians
# keep apart from the illness's name: "severe allergy", "uncontrolled hypertension", "progressive DOE". Anatomy
# and kind stay in the name ("left-sided heart disease", "posterior circulation ischemic stroke"), and so do
# "acute" and "chronic", which most names carry ("acute pancreatitis", "chronic kidney disease").
_COURSE_WORDS = frozenset(
    "severe mild moderate significant clinically uncontrolled poorly controlled decompensated progressive "
    "worsening worsened increasing new new-onset onset recent recurrent persistent known active ongoing current "
    "untreated symptomatic asymptomatic documented prior previous intermittent occasional frequent sudden "
    "sudden-onset refractory marked profound very extreme life-threatening".split()
)
_CONNECTIVE = re.compile(r"(?i)\b(?:including|and|or|with|such as|e\.g\.)\b|[,;/]")


# words of a medicine's form or route around its name in a rule's capture ("calcium supplements", "oral prednisone")
_FORM_WORDS = frozenset(
    "supplement supplements supplementation tablet tablets tab tabs capsule capsules caps cream ointment drops "
    "injection injections infusion therapy solution patch inhaler syrup spray gel pill pills oral iv topical "
    "intravenous low-dose dose doses".split()
)


def _names_an_uncoded_capture(e: Entity, hits: list[Entity]) -> bool:
    """``e`` is a coded illness that ends a longer, uncoded regex illness capture (the one entity it overlaps)
    whose other words are course words ("progressive DOE") or another item ("malignancy including leukemia");
    or a coded medicine inside an uncoded regex medicine capture whose other words name its form or route
    ("started calcium supplements": calcium, linked)."""
    if len(hits) != 1 or not e.code:
        return False
    h = hits[0]
    if e.label == MEDICINE:
        if not (h.method == "regex" and h.label == MEDICINE and not h.code and h.start <= e.start
                and e.end <= h.end and (h.end - h.start) > (e.end - e.start)):
            return False
        rest = (h.surface[: e.start - h.start] + " " + h.surface[e.end - h.start :]).lower().split()
        return all(w in _FORM_WORDS for w in rest)
    if e.label != ILLNESS:
        return False
    if not (h.method == "regex" and h.label == ILLNESS and not h.code and h.start < e.start and e.end == h.end):
        return False
    before = h.surface[: e.start - h.start]
    return bool(_CONNECTIVE.search(before)) or all(w in _COURSE_WORDS for w in before.lower().split())


# An illness mention is a noun phrase whose modifiers belong to it ("muscle rigidity", "acute renal failure"): when
# an agreeing entity spans the winner and more, with nearly its confidence, the wider span is kept. Measured on
# BC5CDR dev (illness strict F1 0.771 -> 0.785) and NCBI-disease dev, not used to choose it (0.742 -> 0.760);
# for medicines it lowered F1 (chemical names are annotated minimally), so it applies to illnesses only.
WIDEN_MARGIN = 0.2


def _widen(e: Entity, group: list[Entity]) -> Entity:
    wider = [
        g for g in group
        if g is not e and g.start <= e.start and g.end >= e.end and (g.end - g.start) > (e.end - e.start)
        and g.confidence >= e.confidence - WIDEN_MARGIN
    ]
    if not wider:
        return e
    w = max(wider, key=lambda g: (g.end - g.start, g.confidence))
    return e.with_(surface=w.surface, start=w.start, end=w.end, details=dict(e.details, widened_by=w.method))


# the chain's own editable files beside the lexicon files (which extractor.chain.lexicon tracks itself)
CHAIN_FILES = (
    RULES_FILE, CONTEXT_FILE, SECTIONS_FILE, NON_ENTITIES_FILE, LAB_CONTEXT_FILE, LAB_TESTS_FILE, FINDINGS_FILE,
    ORGAN_CHANGES_FILE, PATIENT_WORDING_FILE,
)


def lexicon_dir_fingerprint(lexicon_dir: Path) -> tuple[tuple[str, int, int], ...]:
    """Cheap change detector for hot reload: (name, size, mtime) of the lexicon files, rules and triggers."""
    from extractor.chain.lexicon import Lexicon

    own = []
    for name in CHAIN_FILES:
        p = lexicon_dir / name
        if p.is_file():
            st = p.stat()
            own.append((name, st.st_size, st.st_mtime_ns))
    return Lexicon.fingerprint(lexicon_dir) + tuple(own)


def lexicon_dir_version(lexicon_dir: Path, lexicon_version: str) -> str:
    """Version of everything editable (12 hex digits, for documents and DLQ headers): the lexicon's own content
    hash (computed once when it loads) combined with the rules and triggers."""
    h = hashlib.sha256(lexicon_version.encode())
    for name in CHAIN_FILES:
        p = lexicon_dir / name
        if p.is_file():
            h.update(name.encode() + b"\0" + p.read_bytes())
    return h.hexdigest()[:12]
