"""A tiny fake extraction chain (duck-typed like extractor.chain.Chain) for tests and dry runs."""

from __future__ import annotations

import re
from collections.abc import Sequence

from extractor.chain.model import ILLNESS, MEDICINE, Entity, ExtractionResult

# stage -> (term, label, confidence)
DEFAULT_STAGES: dict[str, list[tuple[str, str, float]]] = {
    "regex": [("ibuprofen", MEDICINE, 0.95), ("HTN", ILLNESS, 0.9)],
    "lexicon": [
        ("flu", ILLNESS, 0.8),
        ("chest pain", ILLNESS, 0.85),
        ("lisinopril", MEDICINE, 0.8),
        ("pain", ILLNESS, 0.3),
    ],
    "ner": [("pneumonia", ILLNESS, 0.6), ("amoxicillin 500", MEDICINE, 0.55), ("cough", ILLNESS, 0.4)],
}


class FakeChain:
    def __init__(
        self,
        stages: dict[str, list[tuple[str, str, float]]] | None = None,
        names: Sequence[str] | None = None,
    ):
        self.stages = stages or DEFAULT_STAGES
        self.stage_names = tuple(names or self.stages)
        self.calls = 0

    def prefix(self, k: int) -> FakeChain:
        return FakeChain(self.stages, self.stage_names[:k])

    def extract(self, text: str) -> ExtractionResult:
        ents: list[Entity] = []
        taken: list[tuple[int, int]] = []
        for stage in self.stage_names:
            for term, label, conf in self.stages[stage]:
                for m in re.finditer(r"\b" + re.escape(term) + r"\b", text, flags=re.IGNORECASE):
                    if any(m.start() < e and s < m.end() for s, e in taken):
                        continue  # cascade: earlier stages win
                    taken.append((m.start(), m.end()))
                    negated = bool(re.search(r"\bno (signs of )?$", text[: m.start()], flags=re.IGNORECASE))
                    ents.append(
                        Entity(
                            m.group(0),
                            m.start(),
                            m.end(),
                            label,
                            stage,
                            f"fake:{stage}",
                            conf,
                            negated=negated,
                        )
                    )
        ents.sort(key=lambda e: e.start)
        return ExtractionResult(
            illnesses=[e for e in ents if e.label == ILLNESS],
            medicines=[e for e in ents if e.label == MEDICINE],
            status="resolved" if ents else "unresolved",
            stages_run=self.stage_names,
        )

    def extract_many(self, texts: Sequence[str]) -> list[ExtractionResult]:
        self.calls += 1
        return [self.extract(t) for t in texts]


def result(*ents: Entity) -> ExtractionResult:
    return ExtractionResult(
        illnesses=[e for e in ents if e.label == ILLNESS],
        medicines=[e for e in ents if e.label == MEDICINE],
        status="resolved",
    )


def ent(
    text: str,
    surface: str,
    label: str = ILLNESS,
    method: str = "lexicon",
    conf: float = 0.8,
    negated: bool = False,
    hypothetical: bool = False,
    occurrence: int = 0,
) -> Entity:
    start = -1
    for _ in range(occurrence + 1):
        start = text.index(surface, start + 1)
    return Entity(
        surface,
        start,
        start + len(surface),
        label,
        method,
        "test",
        conf,
        negated=negated,  # type: ignore[arg-type]
        hypothetical=hypothetical,
    )
