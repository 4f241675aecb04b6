"""In-text abbreviation definitions: "neuroleptic malignant syndrome (NMS)" makes "NMS" an illness too, and
"primary care physician (PCP)" makes "PCP" not one.

A light Schwartz & Hearst (2003) check, as in scispaCy's ``AbbreviationDetector`` but on plain strings: a short
form in parentheses (a capital letter in it) defines itself by the words right before it when its first letter
starts one of them and its letters appear in order in them. A text's own definition decides what its short form
means there, whatever a lexicon or the model would have said:

* when the long form is an entity ("neuroleptic malignant syndrome (NMS)"), the short form and its later uses
  get the entity's label, canonical name and code (``details.abbreviation_of`` records the long form); an entity
  of another label or name on exactly those words gives way ("phencyclidine (PCP)": the drug, not *Pneumocystis*
  pneumonia); when the entity is only the long form's head ("heparin-induced thrombocytopenia (HIT)"), the short
  form keeps that label;
* when the long form holds no entity and is not a lexicon term ("primary care physician (PCP)", "left ventricle
  (LV)"), entities on exactly the short form's words are dropped: the text says it means something else. A
  finding made of a change and an organ ("dilated left ventricle (LV)", extractor/chain/findings.py) abbreviates
  the organ only.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

from extractor.chain.model import Entity
from extractor.chain.segments import SpanIndex

_SHORT = re.compile(r"\(\s*([A-Za-z][A-Za-z0-9\-]{0,9})\s*[)\],;]")
_WORD = re.compile(r"[\w][\w'\u2019-]*")
_CLAUSE_END = re.compile(r"[.;:!?()\[\]\n]")


def _plausible(short: str, long: str) -> bool:
    s = short.lower()
    lf = long.lower()
    if len(s) < 2 or len(s) >= len(lf) or not any(c.isalpha() for c in s):
        return False
    if not any(w.startswith(s[0]) for w in re.split(r"[\s\-/]+", lf)):
        return False
    i = 0
    for c in lf:  # letters of the short form in order inside the long form
        if i < len(s) and c == s[i]:
            i += 1
    return i == len(s)


def long_form(text: str, end: int, short: str) -> tuple[int, int] | None:
    """The shortest run of words ending at ``end`` (within the clause) that ``short`` abbreviates, as Schwartz &
    Hearst: its first word starts with the short form's first letter, the short form's letters appear in order,
    at most min(len + 5, 2 * len) words."""
    start = max(0, end - 200)
    cut = None
    for cut in _CLAUSE_END.finditer(text, start, end):  # noqa: B007 - the last clause end before the short form
        pass
    if cut is not None:
        start = cut.end()
    words = [(m.start(), m.end()) for m in _WORD.finditer(text, start, end)]
    first = short[0].lower()
    for k in range(1, min(len(short) + 5, 2 * len(short), len(words)) + 1):
        s = words[-k][0]
        if text[s].lower() == first and _plausible(short, text[s:words[-1][1]]):
            return s, words[-1][1]
    return None


_FUNCTION_WORDS = frozenset({"of", "the", "and", "in", "with", "to", "for", "a", "an", "on", "by", "or"})


def abbreviation_like(short: str) -> bool:
    """A short form, not a name in parentheses ("paclitaxel (Taxol)"): two capitals or more, or at most three
    characters with one ("CsA", "Tac", "GPi")."""
    upper = sum(c.isupper() for c in short)
    return upper >= 2 or (upper == 1 and len(short) <= 3)


def _meaning(text: str, at: int, short: str, ent: Entity | None, taken: SpanIndex,
             known: Callable[[str], bool] | None) -> tuple[str | None, Entity | None] | None:
    """What the definition at ``at`` (where the parenthesis opens, spaces skipped) says the short form is: (label,
    the entity it copies) when an entity ends there (a long form whose head is the entity: "heparin-induced
    thrombocytopenia (HIT)" is an illness too), (None, None) when its long form holds no entity at all, None when
    the text does not define it."""
    if ent is not None and ent.details.get("match") != "organ change":
        return ent.label, (ent if _plausible(short, ent.surface) else None)
    span = long_form(text, at, short)
    if span is None:
        return None
    words = [w for w in _WORD.findall(text, span[0], span[1]) if w.lower() not in _FUNCTION_WORDS]
    if len(words) > len(short) + 1:
        return None  # a loose fit over many words: not a definition one can trust
    if any(o.details.get("match") != "organ change" for o in taken.overlapping(*span)):
        return None  # part of the long form is an entity: the short form may be one too
    if known is not None:
        starts = [m.start() for m in _WORD.finditer(text, span[0], span[1])]
        if any(known(text[s : span[1]]) for s in starts):
            return None  # the lexicon knows the long form ("torsade de pointes (TdP)"): the chain just missed it
    return None, None


def add_defined_abbreviations(
    text: str, entities: Sequence[Entity], known: Callable[[str], bool] | None = None
) -> list[Entity]:
    """``entities`` with each defined short form's uses labelled as the text defines them (see the module doc);
    ``known(term)``: is the term an illness or medicine in the lexicon (a long form the chain missed)."""
    if "(" not in text:
        return list(entities)
    by_end: dict[int, Entity] = {}
    for e in entities:
        if e.end not in by_end or e.end - e.start > by_end[e.end].end - by_end[e.end].start:
            by_end[e.end] = e
    index = SpanIndex(entities)
    meanings: dict[str, tuple[str | None, Entity | None]] = {}  # short form -> (label, the entity it copies)
    for m in _SHORT.finditer(text):
        short = m.group(1)
        if short in meanings or not abbreviation_like(short):
            continue
        at = len(text[: m.start()].rstrip())
        meaning = _meaning(text, at, short, by_end.get(at), index, known)
        if meaning is not None:
            meanings[short] = meaning
    if not meanings:
        return list(entities)
    out = list(entities)
    for short, (label, ent) in meanings.items():
        spans = [o.span() for o in re.finditer(rf"(?<![\w-]){re.escape(short)}(?![\w-])", text)]
        exact = set(spans)
        # what the text's definition overrules: an entity on exactly the short form's words with another meaning
        out = [o for o in out if (o.start, o.end) not in exact or (o.label == label and (
            ent is None or (o.canonical or "").lower() == (ent.canonical or "").lower()))]
        if ent is None:
            continue
        taken = SpanIndex(out)  # overlap checks by bisection: a long note has hundreds of entities
        for s, e in spans:
            if taken.overlapping(s, e):
                continue
            use = ent.with_(surface=text[s:e], start=s, end=e, details={**ent.details, "abbreviation_of": ent.surface})
            out.append(use)
            taken.add(use)
    return sorted(out, key=lambda x: x.start)
