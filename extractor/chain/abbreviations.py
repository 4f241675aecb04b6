"""In-text abbreviation definitions: "neuroleptic malignant syndrome (NMS)" makes "NMS" an illness too.

A light Schwartz & Hearst (2003) check, as in scispaCy's ``AbbreviationDetector`` but on plain strings: a short
form in parentheses right after an entity is accepted when its first letter starts a word of the entity and its
letters appear in order in the entity. The short form, and its later uses in the same text, get the entity's
label, canonical name and code; ``details.abbreviation_of`` records the long form.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from extractor.chain.model import Entity
from extractor.chain.segments import SpanIndex

_SHORT = re.compile(r"\s*\(\s*([A-Za-z][A-Za-z0-9\-]{0,9})\s*[)\],;]")


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


def add_defined_abbreviations(text: str, entities: Sequence[Entity]) -> list[Entity]:
    out = list(entities)
    taken = SpanIndex(entities)  # overlap checks by bisection: a long note has hundreds of entities
    for ent in entities:
        m = _SHORT.match(text, ent.end)
        if not m:
            continue
        short = m.group(1)
        if not _plausible(short, ent.surface):
            continue
        for occ in re.finditer(rf"(?<![\w-]){re.escape(short)}(?![\w-])", text):
            s, e = occ.span()
            if taken.overlapping(s, e):
                continue
            use = ent.with_(surface=text[s:e], start=s, end=e, details={**ent.details, "abbreviation_of": ent.surface})
            out.append(use)
            taken.add(use)
    return sorted(out, key=lambda x: x.start)
