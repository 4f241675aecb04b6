"""Sentence-sized segments of an entry, and an index of entity spans: what keeps the chain linear in note length.

A discharge summary is a few hundred sentences. The NER model and the cascade gate work per segment, not per
note: the gate asks "does *this sentence* still hold a word no rule explained?", so NER runs on the sentences
that need it and not on the whole note because one of them does; and spaCy's parser decodes a batch of short
docs in lock-step (one matrix product per step for all of them) where a single long doc takes one step per
token. The regex, lexicon and context steps still see the whole text (a section header, an abbreviation defined
in the first paragraph, a term wrapped over a line break), and every offset stays relative to the whole text.

A segment ends at a line break, or after ``.``, ``!`` or ``?`` followed by white space and a character that is
not a lower-case letter ("i.v. heparin" stays whole), unless the period ends an initial, a number or a common
abbreviation ("Dr. W. Kniest", "Fig. 2", "1. Hypertension"); a segment longer than
:data:`MAX_SEGMENT_CHARS` is cut at the last white space before the limit. A short entry is one segment, so
short entries are processed exactly as before.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Iterable, Iterator, Sequence
from operator import attrgetter

from extractor.chain.calibration import length_band, narrative
from extractor.chain.model import Entity
from extractor.chain.stage import Stage

#: the longest segment handed to NER; longer runs without a sentence end are cut at white space
MAX_SEGMENT_CHARS = 1_000

_BOUNDARY = re.compile(r"\n|[.!?](?=\s+[^\sa-z])")
# a period after one of these does not end a sentence (compared lower-cased, without the period)
_ABBREVIATIONS = frozenset(
    "dr mr mrs ms prof st vs fig figs no nos al approx ca cf eg ie etc inc ltd jr sr dept min max".split()
)


def _ends_sentence(text: str, period: int) -> bool:
    if text[period] != ".":
        return True
    start = max(text.rfind(" ", 0, period), text.rfind("\n", 0, period), text.rfind("\t", 0, period)) + 1
    word = text[start:period].lstrip("([")
    return not (len(word) <= 1 or word.isdigit() or word.lower().replace(".", "") in _ABBREVIATIONS)


def segment_spans(text: str, max_chars: int = MAX_SEGMENT_CHARS) -> list[tuple[int, int]]:
    """``(start, end)`` of each segment, white space trimmed, in order; together they cover every non-space
    character of ``text``. One regex pass, so linear in the length of the text."""
    out: list[tuple[int, int]] = []
    pos = 0
    for m in _BOUNDARY.finditer(text):
        if m.group(0) != "\n" and not _ends_sentence(text, m.start()):
            continue
        _add(text, pos, m.end(), max_chars, out)
        pos = m.end()
    _add(text, pos, len(text), max_chars, out)
    return out


def _add(text: str, start: int, end: int, max_chars: int, out: list[tuple[int, int]]) -> None:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    while end - start > max_chars:  # a run-on line: cut at the last white space before the limit
        cut = max(text.rfind(" ", start + 1, start + max_chars), text.rfind("\t", start + 1, start + max_chars))
        if cut <= start:
            cut = start + max_chars  # one enormous "word": cut anyway, NER must stay bounded
        out.append((start, cut))
        start = cut
        while start < end and text[start].isspace():
            start += 1
    if start < end:
        out.append((start, end))


def extract_by_segment(
    stage: Stage, texts: Sequence[str], spans: Sequence[Sequence[tuple[int, int]]]
) -> list[list[Entity]]:
    """Run ``stage`` on the given segments of each text, all of them in one batch (spaCy decodes short docs in
    lock-step), and return each text's entities with offsets relative to that text."""
    jobs: list[tuple[int, int]] = []  # (text, segment start)
    pieces: list[str] = []
    for k, (text, segs) in enumerate(zip(texts, spans, strict=True)):
        for s, e in segs:
            jobs.append((k, s))
            pieces.append(text[s:e])
    out: list[list[Entity]] = [[] for _ in texts]
    if pieces:
        for (k, s), ents in zip(jobs, stage.extract_many(pieces), strict=True):
            out[k].extend(e.with_(start=e.start + s, end=e.end + s) if s else e for e in ents)
    return out


class Segments:
    """An entry's segments (:func:`segment_spans`) and the calibration band of each:
    an entity's confidence depends on the shape of the sentence it is in, not on the length of the whole note."""

    def __init__(self, text: str) -> None:
        self.spans = segment_spans(text)
        self._starts = [s for s, _ in self.spans]
        self.narrative = narrative(text)  # of the whole entry: a report's every sentence is narrative
        genre = "n" if self.narrative else ""
        self._bands = [length_band(text[s:e], genre) for s, e in self.spans]

    def band(self, pos: int) -> str | None:
        i = bisect.bisect_right(self._starts, pos) - 1
        return self._bands[max(i, 0)] if self._bands else None


_start = attrgetter("start")


class SpanIndex:
    """Entities kept sorted by start, answering "which overlap [start, end)?" in O(log n + k) instead of a scan
    of them all: a long note has hundreds of entities, and all-pairs checks made the chain quadratic in it."""

    def __init__(self, entities: Iterable[Entity] = ()) -> None:
        self._items: list[Entity] = sorted(entities, key=_start)
        self._starts: list[int] = [e.start for e in self._items]
        self._longest = max((e.end - e.start for e in self._items), default=0)

    def add(self, e: Entity) -> None:
        i = bisect.bisect_right(self._starts, e.start)
        self._starts.insert(i, e.start)
        self._items.insert(i, e)
        self._longest = max(self._longest, e.end - e.start)

    def overlapping(self, start: int, end: int) -> list[Entity]:
        lo = bisect.bisect_left(self._starts, start - self._longest)
        hi = bisect.bisect_left(self._starts, end)
        return [o for o in self._items[lo:hi] if o.start < end and start < o.end]

    def overlaps(self, e: Entity) -> bool:
        return bool(self.overlapping(e.start, e.end))

    def __iter__(self) -> Iterator[Entity]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def covers(self, pos: int) -> bool:
        """Is character ``pos`` inside one of the entities?"""
        return bool(self.overlapping(pos, pos + 1))
