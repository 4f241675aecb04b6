"""Is an entity's ``confidence`` a probability of being right? Reliability bins, ECE, P/R at thresholds.

A predicted item is "right" when it is a true positive in the given mode (see :mod:`evaluation.scoring`).
Precision/recall at a threshold keep the items whose confidence is >= the threshold; in lenient mode the
one-to-one matching is the one made with all predictions (exact in strict mode, an approximation in
lenient mode).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from evaluation.data import FIELDS
from evaluation.scoring import MODES, Outcome, Scores

DEFAULT_THRESHOLDS: tuple[float, ...] = (0.5, 0.7, 0.9)
SWEEP: tuple[float, ...] = tuple(round(i / 20, 2) for i in range(21))


def reliability(outcomes: Sequence[Outcome], bins: int = 10) -> dict[str, Any]:
    """Equal-width confidence bins: count, mean confidence, observed precision; and the ECE.

    ECE = sum over bins of (count / n) * |precision - mean confidence|. Empty bins have null means; the ECE of
    no predictions is null.
    """
    if bins < 1:
        raise ValueError("bins must be >= 1")
    n_in = [0] * bins
    conf_sum = [0.0] * bins
    right = [0] * bins
    for o in outcomes:
        c = min(max(o.confidence, 0.0), 1.0)
        b = min(int(c * bins), bins - 1)
        n_in[b] += 1
        conf_sum[b] += c
        right[b] += o.correct
    n = sum(n_in)
    table = []
    ece = 0.0
    for b in range(bins):
        mean_c = conf_sum[b] / n_in[b] if n_in[b] else None
        prec = right[b] / n_in[b] if n_in[b] else None
        if n_in[b]:
            ece += n_in[b] / n * abs(prec - mean_c)  # type: ignore[operator]
        table.append(
            {
                "lower": round(b / bins, 6),
                "upper": round((b + 1) / bins, 6),
                "count": n_in[b],
                "tp": right[b],
                "mean_confidence": None if mean_c is None else round(mean_c, 6),
                "precision": None if prec is None else round(prec, 6),
            }
        )
    return {"n": n, "ece": round(ece, 6) if n else None, "bins": table}


def at_thresholds(
    outcomes: Sequence[Outcome], n_gold: int, thresholds: Sequence[float]
) -> list[dict[str, Any]]:
    rows = []
    for t in thresholds:
        kept = [o for o in outcomes if o.confidence >= t]
        tp = sum(o.correct for o in kept)
        fp = len(kept) - tp
        p = tp / len(kept) if kept else 0.0
        r = tp / n_gold if n_gold else 0.0
        f1 = 2 * p * r / (p + r) if p + r else 0.0
        rows.append(
            {
                "threshold": t,
                "predictions": len(kept),
                "tp": tp,
                "fp": fp,
                "fn": n_gold - tp,
                "precision": round(p, 6),
                "recall": round(r, 6),
                "f1": round(f1, 6),
            }
        )
    return rows


def calibration_report(
    scores: Scores,
    thresholds: Sequence[float] = DEFAULT_THRESHOLDS,
    bins: int = 10,
    methods: Sequence[str] = ("regex", "lexicon", "ner"),
) -> dict[str, Any]:
    """``{mode: {n, ece, bins, thresholds, by_field: {field: ...}, by_method: {method: ...}}}`` (micro)."""
    n_gold_all = sum(scores.n_gold.values())
    out: dict[str, Any] = {"n_bins": bins, "threshold_values": list(thresholds)}
    for mode in MODES:
        outs = [o for o in scores.outcomes if o.mode == mode]
        rel = reliability(outs, bins)
        block: dict[str, Any] = {
            "n": rel["n"],
            "ece": rel["ece"],
            "bins": rel["bins"],
            "thresholds": at_thresholds(outs, n_gold_all, thresholds),
            "by_field": {},
            "by_method": {},
        }
        for f in FIELDS:
            fo = [o for o in outs if o.field == f]
            r = reliability(fo, bins)
            block["by_field"][f] = {
                "n": r["n"],
                "ece": r["ece"],
                "thresholds": at_thresholds(fo, scores.n_gold[f], thresholds),
            }
        present = list(methods) + sorted({o.method for o in outs} - set(methods))
        for m in present:
            mo = [o for o in outs if o.method == m]
            r = reliability(mo, bins)
            # recall here is the share of all gold items this method's predictions found
            block["by_method"][m] = {
                "n": r["n"],
                "ece": r["ece"],
                "thresholds": at_thresholds(mo, n_gold_all, thresholds),
            }
        out[mode] = block
    return out


def sweep(
    scores: Scores, mode: str = "strict", points: Sequence[float] = SWEEP
) -> dict[str, list[dict[str, Any]]]:
    """Precision/recall over a fine grid of thresholds, overall ("all") and per method, for the plots."""
    outs = [o for o in scores.outcomes if o.mode == mode]
    n_gold = sum(scores.n_gold.values())
    res = {"all": at_thresholds(outs, n_gold, points)}
    for m in sorted({o.method for o in outs}):
        res[m] = at_thresholds([o for o in outs if o.method == m], n_gold, points)
    return res
