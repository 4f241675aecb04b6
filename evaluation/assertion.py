"""Assertion scores: the chain's negation and uncertainty flags against gold polarity marks.

A span JSONL file whose spans carry ``polarity`` (MACCROBAT: ``NEG``, ``UNCERTAIN``, ``MAYBE_POS``,
``MAYBE_NEG`` or null) is gold for assertion. Over the gold mentions of one label (ILLNESS by default) that the
chain finds (a predicted entity of that label overlaps the gold span, whatever its flags), this scores:

negation
    gold ``NEG`` against the entity's ``negated`` flag;
uncertainty
    gold ``UNCERTAIN`` / ``MAYBE_POS`` / ``MAYBE_NEG`` against ``uncertain`` or ``hypothetical`` (MACCROBAT has
    no separate class for conditional mentions, so both flags count as "not asserted as certain").

and the detection rate (found / gold mentions). Where several entities overlap one gold span, the one that
overlaps it most speaks for it. Mentions the chain misses are not in the P/R/F1: assertion is scored where
there is something to assert about, and detection is reported beside it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evaluation.scoring import Counts

NEGATION = frozenset({"NEG"})
UNCERTAINTY = frozenset({"UNCERTAIN", "MAYBE_POS", "MAYBE_NEG"})


@dataclass(frozen=True, slots=True)
class PolaritySpan:
    start: int
    end: int
    label: str
    polarity: str | None


def read_polarity(path: Path) -> dict[str, list[PolaritySpan]] | None:
    """entry_id -> gold spans with polarity, or None when the file's spans carry no ``polarity`` key."""
    out: dict[str, list[PolaritySpan]] = {}
    has_polarity = False
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            if not line.strip():
                continue
            row = json.loads(line)
            spans = []
            for s in row.get("spans", ()):
                has_polarity = has_polarity or "polarity" in s
                spans.append(PolaritySpan(int(s["start"]), int(s["end"]), s["label"], s.get("polarity")))
            out[str(row["entry_id"])] = spans
    return out if has_polarity else None


def _entities(result: Any, label: str) -> list[Any]:
    return list(result.illnesses if label == "ILLNESS" else result.medicines)


def _is_uncertain(entity: Any) -> bool:
    return bool(getattr(entity, "uncertain", False) or getattr(entity, "hypothetical", False))


def score_assertion(
    entry_ids: Sequence[str],
    results: Sequence[Any],
    gold: dict[str, list[PolaritySpan]],
    *,
    label: str = "ILLNESS",
) -> dict[str, Any]:
    """Negation and uncertainty P/R/F1 over the gold mentions found, plus detection (see the module doc)."""
    neg, unc = Counts(), Counts()
    n_gold = n_found = 0
    for entry_id, result in zip(entry_ids, results, strict=True):
        ents = _entities(result, label)
        for g in gold.get(entry_id, ()):
            if g.label != label:
                continue
            n_gold += 1
            best, best_overlap = None, 0
            for e in ents:
                overlap = min(e.end, g.end) - max(e.start, g.start)
                if overlap > best_overlap:
                    best, best_overlap = e, overlap
            if best is None:
                continue
            n_found += 1
            for counts, gold_set, predicted in (
                (neg, NEGATION, bool(best.negated)),
                (unc, UNCERTAINTY, _is_uncertain(best)),
            ):
                truth = g.polarity in gold_set
                if predicted and truth:
                    counts.tp += 1
                elif predicted:
                    counts.fp += 1
                elif truth:
                    counts.fn += 1
    return {
        "label": label,
        "n_gold": n_gold,
        "n_found": n_found,
        "detection": round(n_found / n_gold, 6) if n_gold else 0.0,
        "negation": neg.to_dict(),
        "uncertainty": unc.to_dict(),
    }


def format_assertion(rows: dict[str, dict[str, Any]]) -> list[str]:
    """Table lines: one row per corpus that has polarity gold."""
    if not rows:
        return []
    w = max(len(n) for n in rows) + 2
    lines = [
        "assertion (gold polarity; over the gold illness mentions the chain finds):",
        f"  {'corpus':<{w}}{'found':>13} "
        + " ".join(f"{h:>7}" for h in ("neg P", "neg R", "neg F1", "unc P", "unc R", "unc F1")),
    ]
    for name, a in rows.items():
        n, u = a["negation"], a["uncertainty"]
        found = f"{a['n_found']}/{a['n_gold']}"
        lines.append(
            f"  {name:<{w}}{found:>13} {n['precision']:>7.3f} {n['recall']:>7.3f} {n['f1']:>7.3f}"
            f" {u['precision']:>7.3f} {u['recall']:>7.3f} {u['f1']:>7.3f}"
        )
    return lines


__all__ = ["NEGATION", "UNCERTAINTY", "PolaritySpan", "format_assertion", "read_polarity", "score_assertion"]
