"""Laboratory tests, analytes and markers are not medicines: the context and the name decide.

"serum calcium 11.2 mg/dL" is a test; "calcium supplements" is a medicine. "oxygen saturation 88%" is a test;
"2 L/min of oxygen via nasal cannula" is a medicine. A MEDICINE entity is a *test* (reported in the result's
``substances``, never in ``medicines``) when

1. no treatment cue touches it: a treatment phrase right before ("treated with", "started", "infusion of") or
   after ("supplements", "was administered", "via"), a dose ("81 mg", "1 g", "5 mg/kg") or a flow
   ("2 L/min of", "4 L of") around it;
2. and a test cue touches it: a phrase right before ("serum", "elevated", "positive for", "level of") or after
   ("level", "saturation", "staining", "was normal"), a value with a concentration unit or a per cent after it
   ("11.2 mg/dL", "(2.34 mmol/L)", "of 98%", "276 U/L"), an enzyme word after it ("creatine kinase", "alanine
   aminotransferase": the entity is the head of a test's name), or a bare number after an analyte ("Na 131");
3. or, with no test cue, its name is an *analyte* (``lexicons/lab_tests.tsv``, built from the HPO and Chia TRAIN
   measurements by ``scripts/build_lab_tests.py``, and ``analyte`` rows of ``lexicons/lab_context.tsv``), unless a
   weak treatment cue ("with", "on") touches it. A *dual-use* name (calcium, insulin, oxygen) is never a test by
   its name alone.
4. or, with no test cue, its name is built like a marker's: its last word is a ``marker_head`` row of
   ``lab_context.tsv`` ("antinuclear antibodies", "human leukocyte antigen", "estrogen receptor", "Bence-Jones
   protein"), or it has two words or more and the last names an enzyme ("-ase": "neuron-specific enolase",
   "cytochrome c oxidase"; a one-word "-ase" is a drug: alteplase, asparaginase). The drug dictionaries hold
   every MeSH chemical, proteins and enzymes included; a treatment cue (strong or weak) keeps it a medicine
   ("treated with a monoclonal antibody", "on an antibody").

The cues are editable rows of ``lexicons/lab_context.tsv``; the value and dose syntax is here. Each decision is
explained in the entity's ``details["test"]`` (the cue that decided).

An illness word right before a ``measure_after`` row names a measure or a test, not the illness ("Glasgow Coma
Scale", "tumor markers", "Hamilton Depression Rating Scale"): it goes to ``substances`` too.

A medicine *class* or therapy ("chemotherapy", "beta-blockers", "antibiotics"; ``class`` rows) is a medicine
when the text says it is given: a treatment cue in the words before it in its sentence ("received adjuvant
chemotherapy", "started on a beta-blocker", "treated with antibiotics") or right after it ("antibiotic therapy
was started"), or anywhere in a narrative report about one patient (calibration.py ``narrative``: "after
chemotherapy, she underwent ...", "further chemotherapy was stopped"). Elsewhere (an abstract, a criterion) it is
a topic, not a treatment ("chemotherapy-induced nausea", "opioid receptors") and is dropped.

A name ending in a ``class_head`` row ("ACE inhibitors", "calcium channel blockers", "receptor antagonists") names
a drug class: a treatment cue after a marker's name ("mineralocorticoid receptor antagonists") keeps it a
medicine, and ``scripts/build_lexicons.py`` never mines such a name as a stop-term (a corpus that leaves classes
unlabelled says nothing about whether a clinician's "started an ACE inhibitor" is a medicine).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from extractor.chain.calibration import narrative
from extractor.chain.model import MEDICINE, Entity
from extractor.chain.non_entities import normalise
from extractor.chain.tsv import tsv_rows

LAB_CONTEXT_FILE = "lab_context.tsv"
LAB_TESTS_FILE = "lab_tests.tsv"
COLUMNS = ("phrase", "kind", "note")
CUE_KINDS = ("test_before", "test_after", "treatment_before", "treatment_after", "weak_treatment_before",
             "measure_after")
NAME_KINDS = ("analyte", "dual_use", "class")
HEAD_KIND = "marker_head"  # the last word of a name that makes it a marker: "antibodies", "antigen", "receptor"
CLASS_HEAD_KIND = "class_head"  # the last word of a drug class's name: "inhibitors", "blockers", "antagonist"
HEAD_KINDS = (HEAD_KIND, CLASS_HEAD_KIND)
KINDS = CUE_KINDS + NAME_KINDS + HEAD_KINDS
WINDOW = 48  # characters looked at on each side

_NUM = r"(?:[<>≤≥~]\s*)?\d+(?:[.,]\d+)*(?:\s*[-–]\s*\d+(?:[.,]\d+)*)?"
# a concentration, a pressure, a count or a per cent: what a measured value is written in
_CONC_UNIT = (
    r"(?:(?:[a-zµμ]{0,4}(?:mol|g|eq|u|iu|kat|cells|copies|units?))\s*/\s*(?:d?l|ml|µl|μl|mm3|mm\^?3|hpf|24\s*h)\b"
    r"|mm\s?hg\b|torr\b|kpa\b|[mµμnp]mol\b|mosm|(?:x|×)\s*10)"
)
# a dose or a flow: what a treatment is written in ("81 mg", "5 mg/kg", "2 L/min", "4 L", "10 units")
_DOSE_UNIT = (
    r"(?:mg|g|mcg|µg|μg|ug|meq|mmol|units?|iu|ml|l|tabs?|tablets?|puffs?|drops?|caps?|capsules?|%)"
    r"(?:\s*/\s*(?:kg|day|d|h|hr|hour|min|m2|dose))*\b(?!\s*/\s*(?:d?l|ml|µl|μl|24\s*h)\b)"
)
_VALUE_AFTER = re.compile(
    rf"\s*(?:\(|:|=|,|-)?\s*(?:(?:was|were|is|are|of|at|to|measured|reached|rose\s+to|fell\s+to)\s+)*"
    rf"(?:\w+\s+)?{_NUM}\s*{_CONC_UNIT}",
    re.IGNORECASE,
)
# a value followed by its reference range is a measurement, whatever its unit ("24-hour epinephrine 13 μg (normal
# range: 4-20)", "SAA of 7.0 μg/mL (RV: 0-8.0)")
_REFERENCE_AFTER = re.compile(
    rf"\s*(?:\(|:|=|,)?\s*(?:(?:was|were|is|are|of|at)\s+)*{_NUM}\s*[^\s()\d][^\s()]{{0,10}}\s*[\(\[,;]\s*"
    r"(?:normal|reference|ref\b|RV\b|NR\b|N\s*[:=<]|range\b|upper\s+limit|ULN\b)",
    re.IGNORECASE,
)
_DOSE_AFTER = re.compile(rf"\s*(?:\(|,)?\s*{_NUM}\s*{_DOSE_UNIT}", re.IGNORECASE)
_DOSE_BEFORE = re.compile(rf"{_NUM}\s*{_DOSE_UNIT}(?:\s*/\s*min)?\s*(?:of\s+)?$", re.IGNORECASE)
# a per cent is a value when something links it to the name ("saturation of 98%", "was 12%"); right after a
# drug's name it is a strength ("hydrocortisone 1%", "mupirocin 2%")
_LINKED_PERCENT_AFTER = re.compile(
    rf"\s*(?:\(|:|=|,)?\s*(?:was|were|is|are|of|at|to|measured|reached|:|=)\s*{_NUM}\s*%", re.IGNORECASE
)
_BARE_NUMBER_AFTER = re.compile(rf"\s*(?::|=|,|was|is|of)?\s*{_NUM}(?!\s*[a-zA-Zµμ%/])")
_ENZYME_AFTER = re.compile(r"[\s-]*[a-z]*(?:ase|ases)\b", re.IGNORECASE)


# between two items of a list: a comma, "and", "or", "as well as", a parenthesised abbreviation or figure
# or an opening parenthesis: the abbreviation defined right after a test's name is the same test ("neuron-specific
# enolase (NSE)", "serum amyloid A (SAA)")
_TEST_LIST_GAP = re.compile(
    r"(?:\s*\([^();\n]{1,40}\))?\s*(?:,|;|/)?\s*(?:(?:and|or|as well as|and/or)\s+)?|\s*\(\s*",
    re.IGNORECASE,
)


def _abbreviation_like(surface: str) -> bool:
    """A short form (T4, TSH, HbA1c, K+), whose linked name tells what it measures; not a word-like name."""
    s = surface.strip()
    return len(s) <= 5 or any(c.isdigit() for c in s) or s.isupper()


def _words(surface: str) -> list[str]:
    """The words of a name, split at spaces, hyphens and slashes ("angiotensin-converting enzyme inhibitor")."""
    return re.split(r"[\s/-]+", normalise(surface))


class LabContextError(ValueError):
    """lab_context.tsv is malformed; the message names file and line."""


def _phrase_pattern(phrases: Sequence[str]) -> str:
    alts = sorted({" ".join(p.split()) for p in phrases}, key=len, reverse=True)
    return "|".join(r"[\s-]+".join(re.escape(w) for w in a.split()) for a in alts)


@dataclass
class LabTests:
    cues: dict[str, list[str]] = field(default_factory=dict)  # cue kind -> phrases
    names: dict[str, str] = field(default_factory=dict)  # normalised name -> analyte | dual_use
    heads: frozenset[str] = frozenset()  # marker_head words
    class_heads: frozenset[str] = frozenset()  # class_head words

    def __post_init__(self) -> None:
        self._before: dict[str, re.Pattern[str]] = {}
        self._after: dict[str, re.Pattern[str]] = {}
        self._anywhere: dict[str, re.Pattern[str]] = {}
        for kind, phrases in self.cues.items():
            if not phrases:
                continue
            alt = _phrase_pattern(phrases)
            if kind.endswith("_before"):
                # an article may stand between the cue and the name: "treated with a monoclonal antibody"
                self._before[kind] = re.compile(
                    rf"(?:^|[^\w-])(?:{alt})(?:\s+(?:a|an|the))?[\s(]*$", re.IGNORECASE
                )
                self._anywhere[kind] = re.compile(rf"(?:^|[^\w-])(?:{alt})(?![\w-])", re.IGNORECASE)
            else:
                # a measure's name may follow a second item: "Hepatitis B and C serology", "HIV and HCV testing"
                coord = r"(?:\s+(?:and|or|&)\s+[\w-]{1,10}|\s*/\s*[\w-]{1,10})?" if kind == "measure_after" else ""
                self._after[kind] = re.compile(rf"{coord}[\s)]*(?:{alt})(?![\w])", re.IGNORECASE)
        # an item further down a list that a test cue opens: "positive for S-100, HMB-45, melan-A and vimentin"
        tb = self.cues.get("test_before")
        self._list_after_cue = (
            re.compile(
                rf"(?:^|[^\w-])(?:{_phrase_pattern(tb)})\s+(?:[^,;.()\n]{{1,40}}(?:\([^()\n]{{0,30}}\))?"
                r"(?:\s*,\s*(?:(?:and|or|as well as)\s+)?|\s+(?:and|or|as well as)\s+)){1,8}$",
                re.IGNORECASE,
            )
            if tb
            else None
        )

    # ------------------------------------------------------------------ loading
    @classmethod
    def from_dir(cls, lexicon_dir: Path) -> LabTests:
        names = load_lab_tests(lexicon_dir / LAB_TESTS_FILE)
        cues, own = load_lab_context(lexicon_dir / LAB_CONTEXT_FILE)
        heads = frozenset(k for k, v in own.items() if v == HEAD_KIND)
        class_heads = frozenset(k for k, v in own.items() if v == CLASS_HEAD_KIND)
        # hand-written rows override the generated vocabulary
        names.update((k, v) for k, v in own.items() if v not in HEAD_KINDS)
        return cls(cues, names, heads, class_heads)

    def is_class_name(self, surface: str) -> bool:
        """A drug class's name: two words or more ending in a ``class_head`` word ("ACE inhibitors")."""
        words = _words(surface)
        return len(words) >= 2 and words[-1] in self.class_heads

    def marker_name(self, surface: str) -> bool:
        """Is ``surface`` built like a marker's name (see rule 4 of the module's docstring)?"""
        words = _words(surface)
        last = words[-1]
        return last in self.heads or (len(words) >= 2 and last.endswith(("ase", "ases")) and len(last) > 5)

    # ------------------------------------------------------------------ deciding
    def _touches(self, kind: str, before: str, after: str) -> str | None:
        pat = self._before.get(kind) if kind.endswith("_before") else self._after.get(kind)
        if pat is None:
            return None
        m = pat.search(before) if kind.endswith("_before") else pat.match(after)
        return " ".join(m.group(0).split()).strip("( )").lower() if m else None

    def test_cue(self, text: str, e: Entity) -> str | None:
        """Why ``e`` reads as a test here (the deciding cue), or None when it is a medicine."""
        return self._decide(text, e)[1]

    def _decide(self, text: str, e: Entity) -> tuple[bool, str | None]:
        """(a treatment cue touches it, the test cue that decides or None)."""
        before = text[max(0, e.start - WINDOW) : e.start]
        after = text[e.end : e.end + WINDOW]
        for kind in ("treatment_before", "treatment_after"):
            if self._touches(kind, before, after):
                return True, None
        if _LINKED_PERCENT_AFTER.match(after) or _REFERENCE_AFTER.match(after):
            return False, "value"
        if _DOSE_AFTER.match(after) or _DOSE_BEFORE.search(before):
            return True, None
        return False, self._test_cue(before, after, e, text[max(0, e.start - 3 * WINDOW) : e.start])

    def _test_cue(self, before: str, after: str, e: Entity, long_before: str = "") -> str | None:
        name = self.names.get(normalise(e.surface))
        if name is None and e.canonical and _abbreviation_like(e.surface):
            # "T4" is the analyte thyroxine; a brand or a full name linked to one ("Synthroid" -> Thyroxine,
            # levothyroxine) is the medicine
            name = self.names.get(normalise(e.canonical))
        if _VALUE_AFTER.match(after):
            return "value"
        for kind in ("test_before", "test_after"):
            cue = self._touches(kind, before, after)
            if cue:
                return cue
        m = self._list_after_cue.search(long_before) if self._list_after_cue is not None else None
        if m and not any(
            pat.search(m.group(0)) for kind, pat in self._anywhere.items() if kind.startswith(("treatment", "weak"))
        ):  # "positive for HIV, and was started on tenofovir, emtricitabine": the list changed hands
            return "list after a test cue"
        if _ENZYME_AFTER.match(after) and not after[:1].isalnum():
            return "enzyme"
        if name is not None and _BARE_NUMBER_AFTER.match(after):
            return "value"
        if name == "analyte" and not self._touches("weak_treatment_before", before, after):
            return "analyte"
        if name is None and self.marker_name(e.surface) and not self._touches("weak_treatment_before", before, after):
            return "marker"
        return None

    def given(self, text: str, e: Entity) -> bool:
        """Does a treatment cue say this class is given? (in its sentence before it, or right after it)"""
        before = text[max(0, e.start - 2 * WINDOW) : e.start]
        cut = max(before.rfind(". "), before.rfind("\n"), before.rfind(";"))
        before = before[cut + 1 :]
        after = text[e.end : e.end + WINDOW]
        if self._touches("treatment_after", before, after):
            return True
        kinds = ("treatment_before", "weak_treatment_before")
        return any(pat.search(before) for kind, pat in self._anywhere.items() if kind in kinds)

    def split(self, text: str, entities: Sequence[Entity], report: bool | None = None
              ) -> tuple[list[Entity], list[Entity]]:
        """(entities kept, tests): MEDICINE entities that read as tests come out, with ``details["test"]``;
        a medicine class that is not given is dropped."""
        kept: list[Entity] = []
        tests: list[Entity] = []
        # in a narrative report about one patient a class or therapy named is the patient's ("after chemotherapy",
        # "further chemotherapy was stopped"); in an abstract or a criterion it is a topic unless a cue says given
        report = narrative(text) if report is None else report
        meds: list[Entity] = []
        for e in entities:
            if e.label != MEDICINE:
                measure = self._touches("measure_after", "", text[e.end : e.end + WINDOW])
                if measure:  # "Glasgow Coma Scale", "tumor markers": an illness word naming a measure or test
                    tests.append(e.with_(details=dict(e.details, test=f"part of a measure's name: {measure}")))
                else:
                    kept.append(e)
            elif self.names.get(normalise(e.surface)) == "class":
                if report or self.given(text, e):
                    kept.append(e)
            elif e.label == MEDICINE:
                meds.append(e)
            else:
                kept.append(e)
        decided = [self._decide(text, e) for e in meds]
        cues = [cue for _, cue in decided]
        # a list of markers or analytes shares its cue: "positive for S-100, HMB-45 and vimentin", "CEA, CA19-9 and
        # NSE were within normal ranges"; an item with a treatment cue of its own (a dose, "started") stays a medicine
        for order in (range(1, len(meds)), range(len(meds) - 2, -1, -1)):
            for k in order:
                j = k - 1 if order.step == 1 else k + 1
                if cues[k] is None and cues[j] is not None and not decided[k][0]:
                    a, b = (meds[j], meds[k]) if j < k else (meds[k], meds[j])
                    if _TEST_LIST_GAP.fullmatch(text, a.end, b.start):
                        cues[k] = "list of tests"
        for e, cue in zip(meds, cues, strict=True):
            if cue is None:
                kept.append(e)
            else:
                tests.append(e.with_(details=dict(e.details, test=cue)))
        kept.sort(key=lambda e: (e.start, e.end))
        return kept, tests


def load_lab_context(path: Path) -> tuple[dict[str, list[str]], dict[str, str]]:
    """(cue kind -> phrases, normalised name -> analyte | dual_use) from lab_context.tsv; errors name file:line."""
    cues: dict[str, list[str]] = {k: [] for k in CUE_KINDS}
    names: dict[str, str] = {}
    if not path.is_file():
        return cues, names
    seen: dict[tuple[str, str], str] = {}
    for where, fields in tsv_rows(path, COLUMNS, LabContextError):
        phrase, kind = fields[0], fields[1]
        key = " ".join(phrase.lower().split())
        if not key:
            raise LabContextError(f"{where}: empty phrase")
        if kind not in KINDS:
            raise LabContextError(f"{where}: kind must be one of {', '.join(KINDS)}, got {kind!r}")
        group = "name" if kind in NAME_KINDS or kind in HEAD_KINDS else kind
        if (group, key) in seen:
            raise LabContextError(f"{where}: duplicate {kind} {phrase!r} (first at {seen[(group, key)]})")
        seen[(group, key)] = where
        if kind in NAME_KINDS or kind in HEAD_KINDS:
            names[normalise(phrase)] = kind
        else:
            cues[kind].append(key)
    return cues, names


def load_lab_tests(path: Path) -> dict[str, str]:
    """The generated vocabulary: normalised term -> analyte | dual_use (empty when the file is absent)."""
    names: dict[str, str] = {}
    if not path.is_file():
        return names
    for where, fields in tsv_rows(path, ("term", "kind", "source"), LabContextError):
        if fields[1] not in NAME_KINDS:
            raise LabContextError(f"{where}: kind must be one of {', '.join(NAME_KINDS)}, got {fields[1]!r}")
        names[normalise(fields[0])] = fields[1]
    return names


__all__ = ["LAB_CONTEXT_FILE", "LAB_TESTS_FILE", "LabContextError", "LabTests", "load_lab_context"]
