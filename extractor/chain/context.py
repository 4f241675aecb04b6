"""ConText-style modifiers: flag entities as negated or hypothetical from trigger phrases.

Follows the ConText algorithm (Harkema et al., 2009; medspaCy's ``ConTextComponent``): trigger phrases from an
editable table (``lexicons/context.tsv``) have a category and a direction; a trigger's scope runs forward or
backward from it up to the end of the sentence, a terminating phrase, or a word limit. Pseudo-triggers
("no increase") are matched first so that they hide the real trigger inside them.
Negated entities are kept and flagged; the chain never makes one the entry's primary illness.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from extractor.chain.model import Entity

CONTEXT_FILE = "context.tsv"
CONTEXT_COLUMNS = ("phrase", "category", "direction", "max_words")
Category = Literal["NEGATED", "HYPOTHETICAL", "PSEUDO", "TERMINATE"]
Direction = Literal["forward", "backward", "both", "none"]
CATEGORIES = ("NEGATED", "HYPOTHETICAL", "PSEUDO", "TERMINATE")
DIRECTIONS = ("forward", "backward", "both", "none")

FORWARD_WORDS = 8
BACKWARD_WORDS = 5
_SENTENCE_END = re.compile(r"[.;!]\s|[.;!]$|\n")
_WORD = re.compile(r"\w+")
_TOKEN = re.compile(r"\w+|[^\w\s]")


def _tokens(text: str) -> list[tuple[str, int, int]]:
    """Lower-cased word and punctuation tokens with offsets: how both triggers and texts are matched."""
    return [(m.group(0).lower(), m.start(), m.end()) for m in _TOKEN.finditer(text)]


class ContextError(ValueError):
    """The trigger table is malformed; the message names file and line."""


@dataclass(frozen=True, slots=True)
class Trigger:
    phrase: str
    category: Category
    direction: Direction
    line: int
    max_words: int | None = None  # scope length in words; None = FORWARD_WORDS / BACKWARD_WORDS


def load_triggers(path: Path) -> list[Trigger]:
    if not path.is_file():
        raise ContextError(f"{path}: context trigger file not found")
    triggers: list[Trigger] = []
    seen: dict[str, int] = {}
    header = False
    with path.open(encoding="utf-8", newline="") as fh:
        for lineno, raw in enumerate(fh, start=1):
            line = raw.rstrip("\r\n")
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            fields = [f.strip() for f in line.split("\t")]
            where = f"{path}:{lineno}"
            if not header:
                if tuple(fields) not in (CONTEXT_COLUMNS, CONTEXT_COLUMNS[:3]):
                    raise ContextError(f"{where}: header must be {' | '.join(CONTEXT_COLUMNS)}, got {fields}")
                header = True
                continue
            if len(fields) == 3:
                fields.append("")
            if len(fields) != 4:
                raise ContextError(f"{where}: expected 3 or 4 tab-separated fields, got {len(fields)}")
            phrase, category, direction, max_words_s = fields
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
            if category in ("NEGATED", "HYPOTHETICAL") and direction == "none":
                raise ContextError(f"{where}: {category} triggers need a direction")
            key = " ".join(phrase.lower().split())
            if key in seen:
                raise ContextError(f"{where}: duplicate phrase {phrase!r} (first on line {seen[key]})")
            seen[key] = lineno
            triggers.append(Trigger(key, category, direction, lineno, max_words))  # type: ignore[arg-type]
    if not header:
        raise ContextError(f"{path}: no header line ({' | '.join(CONTEXT_COLUMNS)})")
    return triggers


@dataclass(frozen=True, slots=True)
class _Hit:
    start: int
    end: int
    trigger: Trigger


class ContextAnnotator:
    """Sets ``negated`` / ``hypothetical`` on entities according to the trigger table."""

    def __init__(self, triggers: Sequence[Trigger]) -> None:
        self.triggers = list(triggers)
        # phrases as token tuples indexed by their first token; longest first so "no signs of" wins over "no"
        self._by_first: dict[str, list[tuple[tuple[str, ...], Trigger]]] = {}
        for t in sorted(self.triggers, key=lambda t: -len(_tokens(t.phrase))):
            toks = tuple(tok for tok, _, _ in _tokens(t.phrase))
            self._by_first.setdefault(toks[0], []).append((toks, t))

    @classmethod
    def from_dir(cls, lexicon_dir: Path) -> ContextAnnotator:
        return cls(load_triggers(lexicon_dir / CONTEXT_FILE))

    def _hits(self, text: str) -> list[_Hit]:
        """Trigger occurrences, matched token by token (a dict lookup per token: no big regex)."""
        toks = _tokens(text)
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

    def annotate(self, text: str, entities: Sequence[Entity]) -> list[Entity]:
        if not entities:
            return list(entities)
        hits = self._hits(text)
        if not hits:
            return list(entities)
        boundaries = [m.start() for m in _SENTENCE_END.finditer(text)]
        stops = sorted(boundaries + [h.start for h in hits if h.trigger.category == "TERMINATE"])
        out = []
        for ent in entities:
            negated, hypothetical = ent.negated, ent.hypothetical
            for h in hits:
                cat = h.trigger.category
                if cat in ("PSEUDO", "TERMINATE"):
                    continue
                if h.start < ent.end and ent.start < h.end:
                    continue  # the trigger is inside the entity ("no" in "nociception" never matches: \b)
                if self._in_scope(text, h, ent, stops):
                    if cat == "NEGATED":
                        negated = True
                    else:
                        hypothetical = True
            if (negated, hypothetical) != (ent.negated, ent.hypothetical):
                ent = ent.with_(negated=negated, hypothetical=hypothetical)
            out.append(ent)
        return out

    @staticmethod
    def _in_scope(text: str, hit: _Hit, ent: Entity, stops: list[int]) -> bool:
        d = hit.trigger.direction
        if ent.start >= hit.end and d in ("forward", "both"):
            gap = text[hit.end : ent.start]
            if any(hit.end <= s < ent.start for s in stops):
                return False
            return len(_WORD.findall(gap)) <= (hit.trigger.max_words or FORWARD_WORDS)
        if ent.end <= hit.start and d in ("backward", "both"):
            gap = text[ent.end : hit.start]
            if any(ent.end <= s < hit.start for s in stops):
                return False
            return len(_WORD.findall(gap)) <= (hit.trigger.max_words or BACKWARD_WORDS)
        return False



__all__ = ["ContextAnnotator", "ContextError", "Trigger", "load_triggers"]
