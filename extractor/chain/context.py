"""ConText-style assertion from editable files: negated, hypothetical, historical, experiencer, discontinued, allergy.

Follows the ConText algorithm (Harkema et al., 2009; medspaCy's ``ConTextComponent`` and ``Sectionizer``):

* trigger phrases from ``lexicons/context.tsv`` have a category and a direction; a trigger's scope runs forward
  or backward from it up to the end of the sentence, a terminating phrase, or a word limit. Pseudo-triggers
  ("no increase") are matched first so that they hide the real trigger inside them.
* section headers from ``lexicons/sections.tsv`` ("Family history:", "PMH:", "Allergies:") set attributes for
  every entity in their section: a header alone on its line scopes until the next header or a blank line; a
  header followed by text on the same line ("FH: mother had breast cancer.") scopes to the end of that sentence.

Categories: NEGATED, HYPOTHETICAL (conditional: "if", "return if", "risk of"), UNCERTAIN (suspected, possible,
"suggestive of", "could not be excluded", a differential diagnosis), HISTORICAL, FAMILY / OTHER (experiencer),
DISCONTINUED, HELD and ALLERGY (medicines only: "stopped lipitor" is not a negation, "apixaban held" is withheld
for now, "allergic to penicillin" is not a medicine taken), PSEUDO, TERMINATE. A negation or an uncertainty
carries along a list of entities ("no fever, chills, or night sweats"; "neither A nor B"): an entity that follows
a negated / uncertain one with only a list separator between them (comma, and, or, nor, versus, a parenthesised
abbreviation) takes its flag; a backward negation carries from a list's last item to the first ("A, B and C were
not observed"). Negation wins over uncertainty ("no signs suggesting myocarditis" is negated, not uncertain).
Entities are kept and flagged; the chain never makes a negated, hypothetical, family/other or allergy entity the
entry's primary illness / medicine.

Cost: triggers and sections are found in one pass over the tokens; each trigger becomes one interval of positions
where an entity may start (forward) or end (backward); intervals of a category are merged and each entity is
looked up by bisection. No loop over (entity, trigger) pairs.
"""

from __future__ import annotations

import re
from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from extractor.chain.model import MEDICINE, Entity

CONTEXT_FILE = "context.tsv"
SECTIONS_FILE = "sections.tsv"
CONTEXT_COLUMNS = ("phrase", "category", "direction", "max_words")
SECTION_COLUMNS = ("header", "section", "sets")
Category = Literal[
    "NEGATED", "HYPOTHETICAL", "HISTORICAL", "FAMILY", "OTHER", "DISCONTINUED", "ALLERGY", "UNCERTAIN", "HELD",
    "PSEUDO", "TERMINATE",
]
Direction = Literal["forward", "backward", "both", "none"]
MODIFIERS = (  # the categories that set an attribute
    "NEGATED", "HYPOTHETICAL", "HISTORICAL", "FAMILY", "OTHER", "DISCONTINUED", "ALLERGY", "UNCERTAIN", "HELD"
)
CATEGORIES = (*MODIFIERS, "PSEUDO", "TERMINATE")
MEDICINE_ONLY = frozenset({"DISCONTINUED", "ALLERGY", "HELD"})
# a negation or an uncertainty reaches along a list: "no fever, chills, or night sweats", "neither A nor B",
# "differential diagnosis included A, B and C"
LIST_CATEGORIES = ("NEGATED", "UNCERTAIN")
# After a comma or a conjunction an item may carry one or two modifier words ("no rash, subcutaneous bleeding or
# joint swelling"), never a word that starts a clause (a pronoun, article, auxiliary or verb form).
_CLAUSE_WORDS = (
    r"the|a|an|he|she|it|they|we|his|her|their|this|that|these|which|who|was|were|is|are|be|been|had|has|have|"
    r"did|does|do|then|also|but|later|after|before|with|without|in|on|at|of|to|for|from|by|as|not|no|there"
)
_MODIFIER = rf"(?:(?!(?:{_CLAUSE_WORDS})\b)[a-z][a-z-]*(?<!ed)(?<!ing)\s+)"
_CONJ = r"(?i:and/or|and|or|nor|as well as|versus|vs\.?)"
_SEP = rf"(?:[,/]\s*(?:{_CONJ}\s+)?|{_CONJ}\s+)"
_ITEM_PREFIX = r"(?i:(?:any|other|no|signs of|symptoms of)\s+)"
_LIST_GAP = re.compile(
    rf"(?:\s*\([^().;\n]{{1,40}}\))?\s*(?:{_SEP}{_ITEM_PREFIX}?{_MODIFIER}{{0,2}}|{_ITEM_PREFIX}?)"
)
# backward, a list is carried from its last item to the first: "A, B and C were not observed"; a gap holding a
# "no" starts a scope of its own ("fever, no chills")
_BACK_LIST_GAP = re.compile(
    r"(?:\s*\([^().;\n]{1,40}\))?\s*(?:,|/)?\s*(?:(?:and/or|and|or|nor|as well as|versus|vs\.?)\s+)?",
    re.IGNORECASE,
)
DIRECTIONS = ("forward", "backward", "both", "none")
# what a section may set: the trigger categories in lower case
SECTION_SETS = tuple(c.lower() for c in MODIFIERS)

# a one-word backward trigger right after a comma or a dash: a status label of the item before it ("AKI, resolved")
_POSTFIX_LABEL = re.compile(r"[,\-\u2013\u2014]\s*$")
FORWARD_WORDS = 8
BACKWARD_WORDS = 6
_SENTENCE_END = re.compile(r"[.;!]\s|[.;!]$|\n")
_TOKEN = re.compile(r"\w+|[^\w\s]")


def _tokens(text: str) -> list[tuple[str, int, int]]:
    """Lower-cased word and punctuation tokens with offsets: how both triggers and texts are matched."""
    # a typographic apostrophe ("don’t", common in typed posts) reads as the ASCII one of the triggers
    return [(m.group(0).lower().replace("\u2019", "'"), m.start(), m.end()) for m in _TOKEN.finditer(text)]


class ContextError(ValueError):
    """The trigger or section table is malformed; the message names file and line."""


@dataclass(frozen=True, slots=True)
class Trigger:
    phrase: str
    category: Category
    direction: Direction
    line: int
    max_words: int | None = None  # scope length in words; None = FORWARD_WORDS / BACKWARD_WORDS


@dataclass(frozen=True, slots=True)
class Section:
    header: str  # normalised (lower case, single spaces)
    name: str
    sets: frozenset[str]  # lower-case categories from SECTION_SETS
    line: int


def _rows(path: Path, columns: tuple[str, ...], min_fields: int, what: str):  # type: ignore[no-untyped-def]
    """(lineno, where, fields) of every data row; checks the header. Blank and ``#`` lines are skipped."""
    if not path.is_file():
        raise ContextError(f"{path}: {what} file not found")
    header = False
    with path.open(encoding="utf-8", newline="") as fh:
        for lineno, raw in enumerate(fh, start=1):
            line = raw.rstrip("\r\n")
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            fields = [f.strip() for f in line.split("\t")]
            where = f"{path}:{lineno}"
            if not header:
                if tuple(fields) not in (columns, columns[:min_fields]):
                    raise ContextError(f"{where}: header must be {' | '.join(columns)}, got {fields}")
                header = True
                continue
            if len(fields) == min_fields and len(columns) > min_fields:
                fields.append("")
            if len(fields) != len(columns):
                raise ContextError(
                    f"{where}: expected {min_fields} or {len(columns)} tab-separated fields, got {len(fields)}"
                )
            yield lineno, where, fields
    if not header:
        raise ContextError(f"{path}: no header line ({' | '.join(columns)})")


def load_triggers(path: Path) -> list[Trigger]:
    triggers: list[Trigger] = []
    seen: dict[str, int] = {}
    for lineno, where, (phrase, category, direction, max_words_s) in _rows(path, CONTEXT_COLUMNS, 3, "context trigger"):
        max_words: int | None = None
        if max_words_s:
            if not max_words_s.isdigit() or not 1 <= int(max_words_s) <= 50:
                raise ContextError(f"{where}: max_words must be a whole number 1..50, got {max_words_s!r}")
            max_words = int(max_words_s)
        if not phrase:
            raise ContextError(f"{where}: empty phrase")
        if category not in CATEGORIES:
            raise ContextError(f"{where}: category must be one of {', '.join(CATEGORIES)}, got {category!r}")
        if direction not in DIRECTIONS:
            raise ContextError(f"{where}: direction must be one of {', '.join(DIRECTIONS)}, got {direction!r}")
        if category in ("PSEUDO", "TERMINATE") and direction != "none":
            raise ContextError(f"{where}: {category} triggers take direction 'none'")
        if category not in ("PSEUDO", "TERMINATE") and direction == "none":
            raise ContextError(f"{where}: {category} triggers need a direction")
        key = " ".join(phrase.lower().split())
        if key in seen:
            raise ContextError(f"{where}: duplicate phrase {phrase!r} (first on line {seen[key]})")
        seen[key] = lineno
        triggers.append(Trigger(key, category, direction, lineno, max_words))  # type: ignore[arg-type]
    return triggers


def load_sections(path: Path) -> list[Section]:
    sections: list[Section] = []
    seen: dict[str, int] = {}
    for lineno, where, (header, name, sets_s) in _rows(path, SECTION_COLUMNS, 3, "section"):
        if not header:
            raise ContextError(f"{where}: empty header")
        if header.endswith(":"):
            raise ContextError(f"{where}: write the header without its colon ({header[:-1]!r})")
        if not name or not re.fullmatch(r"[a-z_]+", name):
            raise ContextError(f"{where}: section name must be lower-case letters and _, got {name!r}")
        sets = frozenset(s.strip() for s in sets_s.split(",") if s.strip() and s.strip() != "-")
        bad = sorted(sets - set(SECTION_SETS))
        if bad:
            raise ContextError(f"{where}: sets must be among {', '.join(SECTION_SETS)} or '-', got {', '.join(bad)}")
        key = " ".join(header.lower().split())
        if key in seen:
            raise ContextError(f"{where}: duplicate header {header!r} (first on line {seen[key]})")
        seen[key] = lineno
        sections.append(Section(key, name, sets, lineno))
    return sections


@dataclass(frozen=True, slots=True)
class _Hit:
    start: int
    end: int
    trigger: Trigger


def _overlaps_sorted(spans: list[tuple[int, int]], ends: list[int], start: int, end: int) -> bool:
    """Does [start, end) overlap one of ``spans`` (sorted, disjoint; ``ends`` their ends)? By bisection."""
    i = bisect_right(ends, start)
    return i < len(spans) and spans[i][0] < end


class _Cover:
    """A union of closed intervals [lo, hi]; ``in`` by bisection."""

    def __init__(self, intervals: list[tuple[int, int]]) -> None:
        self.lo: list[int] = []
        self.hi: list[int] = []
        for lo, hi in sorted(intervals):
            if hi < lo:
                continue
            if self.hi and lo <= self.hi[-1] + 1:
                self.hi[-1] = max(self.hi[-1], hi)
            else:
                self.lo.append(lo)
                self.hi.append(hi)

    def __contains__(self, x: int) -> bool:
        i = bisect_right(self.lo, x) - 1
        return i >= 0 and x <= self.hi[i]


class ContextAnnotator:
    """Sets the assertion attributes of entities according to the trigger and section tables."""

    def __init__(self, triggers: Sequence[Trigger], sections: Sequence[Section] = ()) -> None:
        self.triggers = list(triggers)
        self.sections = list(sections)
        # phrases as token tuples indexed by their first token; longest first so "no signs of" wins over "no"
        self._by_first: dict[str, list[tuple[tuple[str, ...], Trigger]]] = {}
        for t in sorted(self.triggers, key=lambda t: -len(_tokens(t.phrase))):
            toks = tuple(tok for tok, _, _ in _tokens(t.phrase))
            self._by_first.setdefault(toks[0], []).append((toks, t))
        self._section_of = {s.header: s for s in self.sections}
        self._header_re: re.Pattern[str] | None = None
        if self.sections:
            alts = "|".join(
                r"\s+".join(re.escape(w) for w in s.header.split())
                for s in sorted(self.sections, key=lambda s: -len(s.header))
            )
            # at the start of the text or of a line, or after a sentence end; then the header and a colon
            self._header_re = re.compile(
                rf"(?:^|(?<=[.;!\n]))[ \t]*[-*\u2022]?[ \t]*(?P<h>{alts})[ \t]*:(?P<nl>[ \t]*(?:\n|$))?",
                re.IGNORECASE | re.MULTILINE,
            )

    @classmethod
    def from_dir(cls, lexicon_dir: Path) -> ContextAnnotator:
        sec = lexicon_dir / SECTIONS_FILE
        return cls(load_triggers(lexicon_dir / CONTEXT_FILE), load_sections(sec) if sec.is_file() else ())

    # ------------------------------------------------------------------ matching
    def _hits(self, toks: list[tuple[str, int, int]]) -> list[_Hit]:
        """Trigger occurrences, matched token by token (a dict lookup per token: no big regex)."""
        words = [w for w, _, _ in toks]
        hits: list[_Hit] = []
        i = 0
        while i < len(toks):
            for phrase, trig in self._by_first.get(words[i], ()):
                n = len(phrase)
                if tuple(words[i : i + n]) == phrase:
                    hits.append(_Hit(toks[i][1], toks[i + n - 1][2], trig))
                    i += n - 1
                    break
            i += 1
        return hits

    def section_spans(self, text: str) -> list[tuple[int, int, Section]]:
        """(start, end, section) of each section: from the end of its header to where its scope ends."""
        return self._sections(text)[0]

    def _sections(self, text: str) -> tuple[list[tuple[int, int, Section]], list[tuple[int, int]]]:
        """The sections and the character spans of their header words ("Allergies" is a header, not an illness)."""
        if self._header_re is None:
            return [], []
        found = list(self._header_re.finditer(text))
        headers = [(m.start("h"), m.end("h")) for m in found]
        out: list[tuple[int, int, Section]] = []
        for k, m in enumerate(found):
            sec = self._section_of[" ".join(m.group("h").lower().split())]
            start = m.end()
            nxt = found[k + 1].start() if k + 1 < len(found) else len(text)
            if m.group("nl") is not None:  # a block: until the next header or a blank line
                blank = text.find("\n\n", start)
                end = nxt if blank < 0 else min(nxt, blank)
            else:  # inline: to the end of the sentence or line
                s = _SENTENCE_END.search(text, start)
                end = min(nxt, s.start() if s else len(text))
            out.append((start, end, sec))
        return out, headers

    # ------------------------------------------------------------------ annotation
    def annotate(self, text: str, entities: Sequence[Entity]) -> list[Entity]:
        if not entities:
            return list(entities)
        toks = _tokens(text)
        hits = self._hits(toks)
        sections, headers = self._sections(text)
        if not hits and not sections:
            return list(entities)
        if headers:  # a section header's own words are never an entity (headers are sorted and disjoint)
            ends = [he for _, he in headers]
            entities = [e for e in entities if not _overlaps_sorted(headers, ends, e.start, e.end)]
        covers, carry = self._covers(text, toks, hits) if hits else ({}, {})
        sec_starts = [s for s, _, _ in sections]
        out: list[Entity] = []
        back: list[set[str]] = []  # per entity of out: the list categories a backward scope gave it
        for ent in sorted(entities, key=lambda e: (e.start, e.end)):
            flags = {c for c, (fwd, bwd) in covers.items() if ent.start in fwd or ent.end in bwd}
            back.append({c for c in LIST_CATEGORIES if c in carry and ent.end in carry[c]})
            i = bisect_right(sec_starts, ent.start) - 1
            section = None
            if i >= 0 and ent.start < sections[i][1]:
                section = sections[i][2]
                flags |= {c.upper() for c in section.sets}
            if ent.label != MEDICINE:
                flags -= MEDICINE_ONLY
            if out and _LIST_GAP.fullmatch(text, out[-1].end, ent.start):  # a list goes on: carry its scope
                prev = out[-1]
                flags |= {c for c in LIST_CATEGORIES if getattr(prev, c.lower())}
            if "NEGATED" in flags:  # "no signs suggesting X", "A, B or C, which were excluded": negated, not hedged
                flags.discard("UNCERTAIN")
            if not flags and section is None:
                out.append(ent)
                continue
            experiencer = ent.experiencer
            if "FAMILY" in flags:
                experiencer = "family"
            elif "OTHER" in flags:
                experiencer = "other"
            out.append(
                ent.with_(
                    negated=ent.negated or "NEGATED" in flags,
                    hypothetical=ent.hypothetical or "HYPOTHETICAL" in flags,
                    historical=ent.historical or "HISTORICAL" in flags,
                    experiencer=experiencer,
                    discontinued=ent.discontinued or "DISCONTINUED" in flags,
                    allergy=ent.allergy or "ALLERGY" in flags,
                    uncertain=ent.uncertain or "UNCERTAIN" in flags,
                    held=ent.held or "HELD" in flags,
                    section=section.name if section is not None else ent.section,
                )
            )
        for k in range(len(out) - 2, -1, -1):  # backward scopes carried along a list, from its end
            carried = back[k + 1] - back[k]
            if carried and _BACK_LIST_GAP.fullmatch(text, out[k].end, out[k + 1].start):
                back[k] |= carried
                e = out[k]
                negated = e.negated or "NEGATED" in carried
                out[k] = e.with_(negated=negated, uncertain=(e.uncertain or "UNCERTAIN" in carried) and not negated)
        return out

    @staticmethod
    def _covers(
        text: str, toks: list[tuple[str, int, int]], hits: list[_Hit]
    ) -> tuple[dict[str, tuple[_Cover, _Cover]], dict[str, _Cover]]:
        """Per category: positions where an entity may start (forward scopes) / end (backward scopes); and the
        backward scopes a list carries on to its first item. A one-word backward trigger written as a label after a
        comma or a dash ("CAP, AKI, resolved"; "AKI - resolved") is about the item before it only, as in a problem
        list item (back to the comma before it); a clause ("A, B and C were not observed", "A, B and C, which were
        excluded") covers the list."""
        word_starts = [s for w, s, _ in toks if w[0].isalnum() or w[0] == "_"]
        word_ends = [e for w, _, e in toks if w[0].isalnum() or w[0] == "_"]
        stops = sorted(
            [m.start() for m in _SENTENCE_END.finditer(text)]
            + [h.start for h in hits if h.trigger.category == "TERMINATE"]
        )
        fwd: dict[str, list[tuple[int, int]]] = {}
        bwd: dict[str, list[tuple[int, int]]] = {}
        carried: dict[str, list[tuple[int, int]]] = {}
        for h in hits:
            t = h.trigger
            if t.category in ("PSEUDO", "TERMINATE"):
                continue
            if t.direction in ("forward", "both"):
                k = bisect_left(word_starts, h.end)  # first word after the trigger
                n = t.max_words or FORWARD_WORDS
                limit = word_starts[k + n] if k + n < len(word_starts) else len(text)
                j = bisect_left(stops, h.end)
                if j < len(stops):
                    limit = min(limit, stops[j])
                fwd.setdefault(t.category, []).append((h.end, limit - 1))  # limit: the first position out of scope
            if t.direction in ("backward", "both"):
                m = bisect_right(word_ends, h.start)  # words 0..m-1 end before the trigger
                n = t.max_words or BACKWARD_WORDS
                lower = word_ends[m - n - 1] + 1 if m - n - 1 >= 0 else 0  # after the last word out of reach
                j = bisect_left(stops, h.start) - 1
                if j >= 0:
                    lower = max(lower, stops[j] + 1)
                label = _POSTFIX_LABEL.search(text, max(0, h.start - 4), h.start)
                if label is not None and " " not in t.phrase.strip():
                    # a status label: its scope is the list item right before it, back to the previous comma
                    prev = max(text.rfind(",", 0, label.start()), text.rfind(";", 0, label.start()))
                    lower = max(lower, prev + 1)
                    bwd.setdefault(t.category, []).append((lower, h.start))
                    continue
                bwd.setdefault(t.category, []).append((lower, h.start))
                carried.setdefault(t.category, []).append((lower, h.start))
        return ({c: (_Cover(fwd.get(c, [])), _Cover(bwd.get(c, []))) for c in set(fwd) | set(bwd)},
                {c: _Cover(v) for c, v in carried.items()})


__all__ = ["ContextAnnotator", "ContextError", "Section", "Trigger", "load_sections", "load_triggers"]
