"""Linking: give an entity found by the regex or NER stage its canonical name and code from the lexicons.

Exact lookup first (the lexicon's own case rules), then the lexicon's fuzzy index for single spellings such as
"ibuprofin". A row of the other label never links (a regex "medicine" that the lexicon knows as an illness stays
unlinked, and calibration gives unlinked captures their own, lower, confidence).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from extractor.chain.model import Entity

if TYPE_CHECKING:
    from extractor.chain.lexicon import Lexicon

MIN_FUZZY_CHARS = 5


class LexiconLinker:
    def __init__(self, lexicon: Lexicon) -> None:
        self.lexicon = lexicon

    def link(self, entity: Entity) -> Entity:
        row = self.lexicon.lookup(entity.surface)
        how = "exact"
        if row is None and len(entity.surface) >= MIN_FUZZY_CHARS:
            hit = self.lexicon.fuzzy(entity.surface.lower())
            if hit is not None:
                row, _score, _term = hit
                how = "fuzzy"
        if row is None or row.label != entity.label:
            return entity
        return entity.with_(
            canonical=row.canonical,
            code=row.code,
            code_system=row.code_system,
            details={**entity.details, "linked": how, "lexicon_row": row.source},
        )
