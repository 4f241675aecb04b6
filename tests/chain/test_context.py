"""ConText step: negation and hypothetical flags from the editable trigger table."""

from __future__ import annotations

from pathlib import Path

import pytest

from extractor.chain.context import ContextAnnotator, ContextError, load_triggers
from extractor.chain.model import Entity

LEXICONS = Path(__file__).resolve().parents[2] / "lexicons"


@pytest.fixture(scope="module")
def ctx() -> ContextAnnotator:
    return ContextAnnotator.from_dir(LEXICONS)


def _ent(text: str, surface: str, label: str = "ILLNESS") -> Entity:
    start = text.index(surface)
    return Entity(surface, start, start + len(surface), label, "lexicon", "t", 0.9)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "surface", "negated", "hypothetical"),
    [
        ("No signs of flu.", "flu", True, False),
        ("Patient denies chest pain.", "chest pain", True, False),
        ("Rule out pneumonia.", "pneumonia", False, True),
        ("Negative for influenza.", "influenza", True, False),
        ("Influenza was ruled out.", "Influenza", True, False),
        ("Shows signs of flu.", "flu", False, False),
        ("No fever. Has cough.", "cough", False, False),  # scope ends at the sentence
        ("No fever but has cough.", "cough", False, False),  # terminated by "but"
        ("No increase in seizures.", "seizures", False, False),  # pseudo-trigger
        ("Return if fever develops.", "fever", False, True),
        ("Nociception is impaired.", "impaired", False, False),  # "no" only on word boundaries
        ("no signs of flu or pneumonia", "pneumonia", True, False),
    ],
)
def test_context_table(ctx: ContextAnnotator, text: str, surface: str, negated: bool, hypothetical: bool) -> None:
    (e,) = ctx.annotate(text, [_ent(text, surface)])
    assert (e.negated, e.hypothetical) == (negated, hypothetical)


def test_bad_trigger_file(tmp_path: Path) -> None:
    p = tmp_path / "context.tsv"
    p.write_text("phrase\tcategory\tdirection\nno\tNEGATIVE\tforward\n", encoding="utf-8")
    with pytest.raises(ContextError, match=r"context.tsv:2: category must be one of"):
        load_triggers(p)
