"""The interface every extraction stage implements (regex, lexicon, NER)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from extractor.chain.model import Entity, Method


@runtime_checkable
class Stage(Protocol):
    """A stage finds entities in texts. It never loads anything on call: resources are passed in at build."""

    method: Method

    def extract(self, text: str) -> list[Entity]:
        """Entities found in one text, offsets into that text."""
        ...

    def extract_many(self, texts: Sequence[str]) -> list[list[Entity]]:
        """Batched form of :meth:`extract`; stages with a model batch internally."""
        ...
