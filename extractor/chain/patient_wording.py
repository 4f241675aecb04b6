"""Patient wording: complaints as people write them about themselves.

A patient does not write "arthralgia of the knee" but "my knees ache", "pain in my legs", "I feel anxious",
"I can't sleep", "my hair started falling out", "gained 20 pounds". Lexicon rows cannot list every such phrase:
the words that carry it sit apart ("my stomach is killing me") and combine freely (any part with any complaint).
So this step builds them from the small grammar in ``lexicons/patient_wording.tsv``:

- a body **part** with a **complaint**, in four places: "my back hurts" / "my ankles are so swollen" (the part,
  a linking verb, the complaint), "stomach cramps" (the part, then the complaint), "pain in my legs" (the
  complaint, a preposition, the part) and "swollen ankles" (the complaint, then the part). The name reported is the
  part's clinical word and the complaint's finding: "knee pain", "abdominal cramps", "ankle swelling"; a ``name``
  row renames a built name ("head pain" -> "headache", "hair loss" -> "alopecia");
- a **state** after a verb of feeling: "I feel anxious", "made me nauseous", "I'm exhausted" -> anxiety, nausea,
  fatigue;
- an **inability**: "I can't sleep", "trouble swallowing", "could hardly walk" -> insomnia, dysphagia, difficulty
  walking;
- a fixed **phrase**: "ringing in my ears" -> tinnitus, "gained 20 pounds" -> weight gain.

It runs only on text written in the first person (I, my, me): a patient's own words, or a note quoting them. In an
abstract or a criterion "back", "weak" or "gained" are ordinary words. A phrase is added where no other entity
overlaps it, or where the only ones it overlaps are illnesses inside it ("pain" in "pain in my legs", "falling" in
"hair started falling out"), which it replaces. The code comes from the lexicons' row for the built name, else for
the complaint's finding ("arm rash" gets the code of rash). Context (negation, history) applies afterwards as to
any entity: "I don't feel dizzy" is negated. The entity's method is ``lexicon``, ``details["match"] = "patient
wording"`` and its source the ``patient_wording.tsv`` row of the complaint, state, inability or phrase.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from extractor.chain.model import ILLNESS, Entity
from extractor.chain.segments import SpanIndex
from extractor.chain.tsv import tsv_rows

FILE = "patient_wording.tsv"
COLUMNS = ("term", "kind", "canonical", "note")
KINDS = ("part", "complaint", "state", "inability", "phrase", "name")
PRIOR = 0.6  # provisional confidence; models/calibration.json refines it
MATCH = "patient wording"

def _apostrophes(pattern: str) -> str:
    """A typed post writes "can’t" as often as "can't": either apostrophe matches."""
    return pattern.replace("'", "['\u2019]")


# first person: "I" in capitals (a Roman numeral "I" after a word like "type" is not a person), or my/me/myself
# (case-sensitive: "IM" is intramuscular and "ME" an illness, "im" and "Me" are a person)
_FIRST_PERSON = re.compile(_apostrophes(
    r"(?<![\w-])(?:I(?:'m|'ve|'d|'ll| am| was| have| had| feel| felt| get| got| can)?|[Mm]y|MY|[Mm]e|[Mm]yself"
    r"|im|ive)(?![\w-])"
))
# a patient's post often drops the "I": "Been on Zoloft for 3 months, still can't sleep", "Took Crestor for a year.
# Could barely walk." A sentence that starts with such a verb reads as first person too.
_ELIDED_I = re.compile(_apostrophes(
    r"(?:^|[.!?]\s+|\n\s*)(?:Been|Took|Taking(?!\s+into\b)|Started|Stopped|Quit|Feeling|Felt|Got|Getting|Woke|Went|Tried|"
    r"Can't|Cant|Couldn't|Could\s+(?:barely|hardly|not)|Have\s+been|Had\s+to)\s+\w"
))
_NOT_PERSON = re.compile(r"(?i:type|grade|stage|class|phase|degree|part|category|level)\s+I\b")
_ADV = (r"(?:so|really|very|extremely|super|quite|too|a\s+bit|a\s+little|kind\s+of|kinda|pretty|all|always|still|"
        r"constantly|often|sometimes|also|even|just|now|more|most|badly|terribly|horribly|incredibly)")
_LINK = (r"(?:is|are|was|were|feels?|felt|keeps?|kept|started|starts|began|begins|has\s+been|have\s+been|"
         r"had\s+been|been|gets?|got|getting|became|become|is\s+getting|are\s+getting|would|will|went|goes|"
         r"were\s+getting|was\s+getting|start(?:ed)?\s+to)")
_POSS = (r"(?:(?:my|the|both(?:\s+of)?(?:\s+my)?|his|her|their|our|your|one\s+of\s+my|all\s+my)\s+)?"
         r"(?:(?:left|right|upper|lower|both|whole|entire)\s+)?")
_PREP = r"(?:in|on|around|behind|under|across|down|of|at|over|inside)"
_FEEL = _apostrophes(
    r"(?:feel|feels|felt|feeling|am|i'm|im|was|were|been|be|get|gets|got|getting|become|became|"
    r"makes?\s+me|made\s+me|making\s+me|left\s+me|leaves\s+me|keeps?\s+me|kept\s+me)"
)
_CANNOT = _apostrophes(
    r"(?:can't|cant|can\s*not|couldn't|couldnt|could\s+not|could\s+hardly|can\s+hardly|could\s+barely|"
    r"can\s+barely|unable\s+to|hard\s+to|(?:a\s+)?hard\s+time|trouble|difficulty|difficulties|problems?|"
    r"struggl(?:e|ed|ing)\s+to|not\s+able\s+to|wasn't\s+able\s+to)"
)
_NUMBER = r"(?:\d+(?:[.,]\d+)?|a\s+few|a\s+lot\s+of|lots\s+of|so\s+much|some|about\s+\d+|over\s+\d+|almost\s+\d+)"


class PatientWordingError(ValueError):
    """A bad row in patient_wording.tsv (the message names file:line)."""


@dataclass(frozen=True, slots=True)
class WordingRow:
    term: str
    kind: str
    canonical: str
    line: int


def load_rows(path: Path) -> list[WordingRow]:
    """Rows of patient_wording.tsv; errors name file:line."""
    out: list[WordingRow] = []
    seen: dict[tuple[str, str], str] = {}
    for where, fields in tsv_rows(path, COLUMNS, PatientWordingError, min_fields=3):
        term, kind, canonical = " ".join(fields[0].lower().split()), fields[1], " ".join(fields[2].split())
        if not term or not canonical:
            raise PatientWordingError(f"{where}: term and canonical are required")
        if kind not in KINDS:
            raise PatientWordingError(f"{where}: kind must be one of {', '.join(KINDS)}, got {kind!r}")
        if (term, kind) in seen:
            raise PatientWordingError(f"{where}: duplicate {kind} {term!r} (first at {seen[term, kind]})")
        if kind != "phrase" and "#" in term:
            raise PatientWordingError(f"{where}: '#' (a number) is allowed only in a phrase")
        seen[term, kind] = where
        out.append(WordingRow(term, kind, canonical, int(where.rsplit(":", 1)[1])))
    return out


def _words(term: str) -> str:
    return r"\s+".join(re.escape(w) for w in term.split())


def _alt(terms: Sequence[str], plural: bool = False) -> str:
    tail = r"(?:s|es)?" if plural else ""
    return "(?:" + "|".join(_words(t) + tail for t in sorted(terms, key=len, reverse=True)) + ")"


def _phrase(term: str) -> str:
    parts = []
    for w in term.split():
        if w == "my":
            parts.append(r"(?:(?:my|the|his|her|their|both|both\s+my|both\s+of\s+my)\s+)?")
        elif w == "#":
            parts.append(_NUMBER + r"\s+")
        else:
            parts.append(re.escape(w) + r"\s+")
    return "".join(parts)[: -len(r"\s+")]


class PatientWording:
    """Finds the phrases of the module doc in first-person text and adds them as illnesses."""

    def __init__(self, rows: Sequence[WordingRow]) -> None:
        by_kind: dict[str, dict[str, WordingRow]] = {k: {} for k in KINDS}
        for r in rows:
            by_kind[r.kind][r.term] = r
        self.by_kind = by_kind
        self.names = {t: r.canonical for t, r in by_kind["name"].items()}
        self._patterns: list[tuple[str, re.Pattern[str]]] = []
        parts, complaints = list(by_kind["part"]), list(by_kind["complaint"])
        end = r"(?![\w-])"
        if parts and complaints:
            p, c = _alt(parts, plural=True), _alt(complaints)
            self._patterns += [
                # "my legs feel heavy and weak": one other word and "and" may come before the complaint
                ("part+complaint", re.compile(
                    rf"(?i)(?<![\w-])(?P<p>{p})\s+(?:(?:{_LINK})\s+)?(?:{_ADV}\s+)*"
                    rf"(?:(?!(?:{c})\s)[a-z]+\s+(?:and|or)\s+)?(?P<c>{c}){end}")),
                ("complaint+part", re.compile(
                    rf"(?i)(?<![\w-])(?P<c>{c})\s+(?:{_PREP}\s+{_POSS})?(?P<p>{p}){end}")),
            ]
        if by_kind["state"]:
            self._patterns.append(("state", re.compile(
                rf"(?i)(?<![\w-]){_FEEL}\s+(?:{_ADV}\s+)*(?P<s>{_alt(list(by_kind['state']))}){end}")))
        if by_kind["inability"]:
            self._patterns.append(("inability", re.compile(
                rf"(?i)(?<![\w-]){_CANNOT}\s+(?:to\s+)?(?:{_ADV}\s+)*(?P<s>{_alt(list(by_kind['inability']))}){end}")))
        # "my feet are numb and tingly": a second complaint of the same part
        self._and_complaint = re.compile(
            rf"(?i)\s*(?:,\s*(?:and\s+|or\s+)?|\s+(?:and|or)\s+)(?:(?:{_LINK})\s+)?(?:{_ADV}\s+)*"
            rf"(?P<c>{_alt(complaints)}){end}"
        ) if complaints else None
        self._phrases = [
            (r, re.compile(rf"(?i)(?<![\w-]){_phrase(r.term)}{end}")) for r in by_kind["phrase"].values()
        ]

    @classmethod
    def from_dir(cls, lexicon_dir: Path) -> PatientWording | None:
        path = Path(lexicon_dir) / FILE
        return cls(load_rows(path)) if path.is_file() else None

    @staticmethod
    def first_person(text: str) -> bool:
        """Whether ``text`` is written in the first person (I, my, me; not "type I")."""
        for m in _FIRST_PERSON.finditer(text):
            if m.group(0) == "I" and _NOT_PERSON.search(text, max(0, m.start() - 12), m.end()):
                continue
            return True
        return _ELIDED_I.search(text) is not None

    def spans(self, text: str) -> list[tuple[int, int, str, WordingRow]]:
        """(start, end, canonical, row) of each phrase, longest first, not overlapping one another."""
        found: list[tuple[int, int, str, WordingRow]] = []
        for r, pat in self._phrases:
            for m in pat.finditer(text):
                found.append((m.start(), m.end(), r.canonical, r))
        for kind, pat in self._patterns:
            for m in pat.finditer(text):
                if kind in ("state", "inability"):
                    row = self.by_kind[kind][" ".join(m.group("s").lower().split())]
                    found.append((m.start("s") if kind == "state" else m.start(), m.end(), row.canonical, row))
                    continue
                part = self._part(m.group("p"))
                row = self.by_kind["complaint"][" ".join(m.group("c").lower().split())]
                if part is None:
                    continue
                built = f"{part.canonical} {row.canonical}"
                found.append((m.start(), m.end(), self.names.get(built, built), row))
                more = self._and_complaint.match(text, m.end()) if kind == "part+complaint" and self._and_complaint \
                    else None
                if more is not None:
                    row2 = self.by_kind["complaint"][" ".join(more.group("c").lower().split())]
                    built2 = f"{part.canonical} {row2.canonical}"
                    if row2.canonical != row.canonical:
                        found.append((more.start("c"), more.end("c"), self.names.get(built2, built2), row2))
        found.sort(key=lambda f: (-(f[1] - f[0]), f[0]))
        out: list[tuple[int, int, str, WordingRow]] = []
        for f in found:
            if not any(f[0] < o[1] and o[0] < f[1] for o in out):
                out.append(f)
        return sorted(out, key=lambda f: f[0])

    def _part(self, surface: str) -> WordingRow | None:
        key = " ".join(surface.lower().split())
        parts = self.by_kind["part"]
        for cand in (key, key[:-1], key[:-2]):  # knees, ankles; "es" after s/sh/ch
            if cand in parts:
                return parts[cand]
        return None

    def add(self, text: str, entities: Sequence[Entity],
            lookup: Callable[[str], tuple[str, str, str] | None] | None = None) -> list[Entity]:
        """``entities`` with the patient-wording illnesses added (and the shorter illnesses inside them removed);
        ``lookup(name)`` gives a name's (canonical, code, code_system) in the lexicons, or None."""
        if not self.first_person(text):
            return list(entities)
        spans = self.spans(text)
        if not spans:
            return list(entities)
        index = SpanIndex(entities)
        drop: set[int] = set()
        added: list[Entity] = []
        for start, end, name, row in spans:
            hits = index.overlapping(start, end)
            inside = [e for e in hits if e.label == ILLNESS and start <= e.start and e.end <= end
                      and (e.end - e.start) < (end - start)]
            if len(inside) != len(hits):
                continue  # another entity (a medicine, a longer illness) holds these words
            drop.update(id(e) for e in inside)
            linked = lookup(name) if lookup is not None else None
            if linked is None and row.kind == "complaint" and lookup is not None:
                linked = lookup(row.canonical)
            code = system = None
            if linked is not None:
                _canonical, code, system = linked
            added.append(Entity(
                text[start:end], start, end, ILLNESS, "lexicon", f"{FILE}:{row.line}", PRIOR,
                canonical=name, code=code, code_system=system, score=100.0, details={"match": MATCH},
            ))
        return [e for e in entities if id(e) not in drop] + added
