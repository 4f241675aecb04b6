#!/usr/bin/env python
"""Evaluate extractor.chain.ner.NerStage against a labelled span file (exact character offsets + label).

Measures what the chain sees (after label mapping, offset trimming): per-label P/R/F1 without and with scores
(score_mode none vs action_probs), NER-only throughput, and how precision varies with the score
(a reliability table for the lead's calibration).

    .venv/bin/python scripts/ner_eval.py --model models/ner-clinical \
        --data /work/shared/data/train/bc5cdr_dev.spans.jsonl
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from extractor.chain.ner import NerStage, load_ner_model  # noqa: E402


def prf(tp: int, fp: int, fn: int) -> dict:
    p = tp / (tp + fp) if tp + fp else 0.0
    r = tp / (tp + fn) if tp + fn else 0.0
    f = 2 * p * r / (p + r) if p + r else 0.0
    return {"p": round(p, 4), "r": round(r, 4), "f": round(f, 4), "tp": tp, "fp": fp, "fn": fn}


def evaluate(stage: NerStage, rows: list[dict], labels: set[str]) -> dict:
    t = time.perf_counter()
    preds = stage.extract_many([r["text"] for r in rows])
    dt = time.perf_counter() - t
    c: Counter = Counter()
    bins: Counter = Counter()
    for r, ents in zip(rows, preds, strict=True):
        gold = {(s["start"], s["end"], s["label"]) for s in r["spans"] if s["label"] in labels}
        for e in ents:
            assert r["text"][e.start : e.end] == e.surface
            if e.label not in labels:
                continue
            ok = (e.start, e.end, e.label) in gold
            c[(e.label, "tp" if ok else "fp")] += 1
            if e.score is not None:
                b = min(9, int(e.score * 10))
                bins[(b, ok)] += 1
            gold.discard((e.start, e.end, e.label))
        for _, _, lab in gold:
            c[(lab, "fn")] += 1
    out = {lab: prf(c[(lab, "tp")], c[(lab, "fp")], c[(lab, "fn")]) for lab in sorted(labels)}
    out["docs_per_s"] = round(len(rows) / dt)
    if bins:
        out["precision_by_score_decile"] = {
            f"{b / 10:.1f}-{(b + 1) / 10:.1f}": {
                "n": bins[(b, True)] + bins[(b, False)],
                "precision": round(bins[(b, True)] / max(1, bins[(b, True)] + bins[(b, False)]), 3),
            }
            for b in range(10)
            if bins[(b, True)] + bins[(b, False)]
        }
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=str(REPO / "models" / "ner-clinical"))
    ap.add_argument("--data", action="append", type=Path, help="spans.jsonl (repeatable)")
    ap.add_argument("--modes", default="none,action_probs")
    ap.add_argument("--limit", type=int, default=0)
    args = ap.parse_args()
    data = args.data or [Path("/work/shared/data/train/bc5cdr_dev.spans.jsonl")]
    nlp = load_ner_model(args.model)
    report = {}
    for path in data:
        rows = [json.loads(line) for line in path.open(encoding="utf-8")]
        if args.limit:
            rows = rows[: args.limit]
        labels = {"ILLNESS"} if "ncbi" in path.name else {"ILLNESS", "MEDICINE"}
        for mode in args.modes.split(","):
            stage = NerStage(nlp, score_mode=mode)
            report[f"{path.name.split('.')[0]}/{mode}"] = res = evaluate(stage, rows, labels)
            print(path.name, mode, json.dumps(res), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
