"""Run a chain over a labelled dataset and build the report (a JSON-ready dict) and its terminal rendering.

The report's schema is documented in ``evaluation/README.md``; bump :data:`SCHEMA_VERSION` on any
incompatible change.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any

from evaluation.calibration import DEFAULT_THRESHOLDS, calibration_report
from evaluation.data import FIELDS, Dataset
from evaluation.scoring import ALL_FIELDS, MODES, Scores, by_method, entry_errors, score, top_errors

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
METHODS: tuple[str, ...] = ("regex", "lexicon", "ner")


def extract_all(
    chain: Any, texts: Sequence[str], *, batch_size: int = 256, progress: bool = True, desc: str = "extract"
) -> list[Any]:
    """``chain.extract_many`` over ``texts`` in batches, with a tqdm progress bar on stderr."""
    from tqdm import tqdm

    results: list[Any] = []
    with tqdm(total=len(texts), desc=desc, unit="entry", disable=not progress, leave=False) as bar:
        for i in range(0, len(texts), batch_size):
            batch = list(texts[i : i + batch_size])
            out = chain.extract_many(batch)
            if len(out) != len(batch):
                raise RuntimeError(f"chain returned {len(out)} results for a batch of {len(batch)} texts")
            results.extend(out)
            bar.update(len(batch))
    return results


def stage_names(chain: Any) -> tuple[str, ...]:
    return tuple(getattr(chain, "stage_names", ()) or ())


def evaluate(
    chain: Any,
    dataset: Dataset,
    *,
    count_negated: bool = False,
    thresholds: Sequence[float] = DEFAULT_THRESHOLDS,
    bins: int = 10,
    by_stage: bool = True,
    batch_size: int = 256,
    progress: bool = True,
    top: int = 10,
    chain_info: dict[str, Any] | None = None,
) -> tuple[dict[str, Any], Scores, list[Any]]:
    """Evaluate ``chain`` on ``dataset``: returns (report, scores of the whole chain, results)."""
    t0 = time.perf_counter()
    examples = dataset.examples
    texts = [ex.text for ex in examples]
    names = stage_names(chain)
    results = extract_all(
        chain, texts, batch_size=batch_size, progress=progress, desc="/".join(names) or "chain"
    )
    t_extract = time.perf_counter() - t0
    scores = score(examples, results, count_negated=count_negated)
    log.info(
        "scored %d entries (%d entities) in %.2fs", len(examples), scores.n_entities, time.perf_counter() - t0
    )

    stages_out: list[dict[str, Any]] = []
    if by_stage and names and hasattr(chain, "prefix"):
        for k in range(1, len(names) + 1):
            ts = time.perf_counter()
            if k == len(names):
                s_k, secs = scores, t_extract
            else:
                sub = chain.prefix(k)
                res_k = extract_all(
                    sub, texts, batch_size=batch_size, progress=progress, desc="/".join(names[:k])
                )
                s_k = score(examples, res_k, count_negated=count_negated)
                secs = time.perf_counter() - ts
            stages_out.append(
                {
                    "name": "+".join(names[:k]),
                    "stages": list(names[:k]),
                    "seconds": round(secs, 3),
                    "fields": s_k.fields_dict(),
                    "spans": s_k.spans_dict(),
                }
            )
    seconds = time.perf_counter() - t0
    report: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "input": {"path": dataset.path, "format": dataset.format},
        "chain": {"stages": list(names), **(chain_info or {})},
        "options": {
            "count_negated": count_negated,
            "thresholds": list(thresholds),
            "bins": bins,
        },
        "n_entries": len(examples),
        "n_gold": {**scores.n_gold, "micro": sum(scores.n_gold.values())},
        "n_entities": scores.n_entities,
        "n_excluded_negated": scores.n_excluded,
        "seconds": round(seconds, 3),
        "extract_seconds": round(t_extract, 3),
        "entries_per_second": round(len(examples) / t_extract, 1) if t_extract > 0 else None,
        "fields": scores.fields_dict(),
        "spans": scores.spans_dict(),
        "by_method": by_method(scores, METHODS),
        "by_stage": stages_out,
        "calibration": calibration_report(scores, thresholds, bins, METHODS),
        "errors": top_errors(scores, top),
    }
    return report, scores, results


# ------------------------------------------------------------------------------------------------------------
def _f(x: float | None, width: int = 6) -> str:
    return f"{x:{width}.3f}" if isinstance(x, int | float) else f"{'-':>{width}}"


def _counts_row(name: str, blocks: Sequence[dict[str, Any]], w: int = 18) -> str:
    cells = []
    for b in blocks:
        cells.append(
            f"{_f(b['precision'])} {_f(b['recall'])} {_f(b['f1'])} {b['tp']:>6} {b['fp']:>6} {b['fn']:>6}"
        )
    return f"{name:<{w}}" + "   ".join(cells)


def _counts_header(titles: Sequence[str], w: int = 18) -> list[str]:
    cell = f"{'P':>6} {'R':>6} {'F1':>6} {'TP':>6} {'FP':>6} {'FN':>6}"
    top = " " * w + "   ".join(f"{t:^{len(cell)}}" for t in titles)
    return [top, " " * w + "   ".join(cell for _ in titles)]


def format_report(report: dict[str, Any]) -> str:
    lines: list[str] = []
    chain = report["chain"]
    stages = " > ".join(chain.get("stages") or []) or "?"
    mode = chain.get("mode")
    lines.append(
        f"Evaluated {report['n_entries']:,} entries of {report['input']['path']} "
        f"({report['input']['format']}) "
        f"in {report['seconds']:.1f} s (extraction {report['extract_seconds']:.1f} s, "
        f"{report['entries_per_second'] or 0:,.0f} entries/s)"
    )
    lines.append(f"Chain: {stages}" + (f" ({mode})" if mode else ""))
    g = report["n_gold"]
    lines.append(
        f"Gold items: {g['illness']:,} illness, {g['medicine']:,} medicine. Entities returned: "
        f"{report['n_entities']:,}, of which {report['n_excluded_negated']:,} negated/hypothetical "
        + ("counted" if report["options"]["count_negated"] else "not counted")
    )
    lines.append("")
    lines += _counts_header(["strict", "lenient"])
    for f in ALL_FIELDS:
        lines.append(_counts_row(f, [report["fields"][f][m] for m in MODES]))
    if report.get("spans"):
        lines.append("")
        lines += _counts_header(["exact spans (offsets + label)"])
        for f in ALL_FIELDS:
            lines.append(_counts_row(f, [report["spans"][f]]))

    lines.append("")
    lines.append("By method (micro; what each method contributed; recall share = its TP / all gold)")
    lines.append(
        f"{'method':<18}{'preds':>7} {'TP':>6} {'FP':>6} {'P':>6} {'R share':>8}   "
        f"{'lenient TP':>10} {'FP':>6} {'P':>6}"
    )
    for m, per_field in report["by_method"].items():
        s, le = per_field["micro"]["strict"], per_field["micro"]["lenient"]
        lines.append(
            f"{m:<18}{s['predictions']:>7} {s['tp']:>6} {s['fp']:>6} {_f(s['precision'])} "
            f"{_f(s['recall_share'], 8)}   "
            f"{le['tp']:>10} {le['fp']:>6} {_f(le['precision'])}"
        )

    if report["by_stage"]:
        lines.append("")
        lines.append("By chain prefix (micro)")
        lines.append(
            f"{'stages':<24}{'strict P':>9} {'R':>6} {'F1':>6}   "
            f"{'lenient P':>9} {'R':>6} {'F1':>6} {'seconds':>8}"
        )
        for st in report["by_stage"]:
            s, le = st["fields"]["micro"]["strict"], st["fields"]["micro"]["lenient"]
            lines.append(
                f"{st['name']:<24}{_f(s['precision'], 9)} {_f(s['recall'])} {_f(s['f1'])}   "
                f"{_f(le['precision'], 9)} {_f(le['recall'])} {_f(le['f1'])} {st['seconds']:>8.1f}"
            )

    cal = report["calibration"]
    for mode_name in ("strict",):
        c = cal[mode_name]
        lines.append("")
        lines.append(
            f"Calibration ({mode_name}): ECE {_f(c['ece']).strip()} over {c['n']:,} predicted items; "
            + ", ".join(f"{m} {_f(b['ece']).strip()}" for m, b in c["by_method"].items() if b["n"])
        )
        lines.append(f"{'confidence':<14}{'count':>7} {'mean conf':>10} {'precision':>10}")
        for b in c["bins"]:
            if b["count"]:
                lines.append(
                    f"{b['lower']:.2f}-{b['upper']:.2f}    {b['count']:>7} {_f(b['mean_confidence'], 10)} "
                    f"{_f(b['precision'], 10)}"
                )
        lines.append(f"{'threshold':<14}{'kept':>7} {'P':>6} {'R':>6} {'F1':>6}")
        for t in c["thresholds"]:
            lines.append(
                f">= {t['threshold']:<11}{t['predictions']:>7} {_f(t['precision'])} {_f(t['recall'])} "
                f"{_f(t['f1'])}"
            )

    errs = report["errors"]
    for kind, title in (
        ("false_positives", "Top false positives"),
        ("false_negatives", "Top false negatives"),
    ):
        lines.append("")
        lines.append(f"{title} (strict, normalised)")
        for f in FIELDS:
            items = errs[f][kind]
            txt = ", ".join(f"{e['surface']!r} ×{e['count']}" for e in items) or "(none)"
            lines.append(f"  {f:<9} {txt}")
    return "\n".join(lines)


def format_error_examples(dataset: Dataset, scores: Scores, n: int) -> str:
    """The first ``n`` entries with a strict error: id, line, text, missed gold and spurious predictions."""
    errs = entry_errors(scores, "strict")
    lines = [f"Entries with errors (strict): {len(errs):,} of {len(dataset):,}; first {min(n, len(errs))}:"]
    for idx in sorted(errs)[:n]:
        ex = dataset.examples[idx]
        e = errs[idx]
        lines.append(f"- {ex.entry_id} (line {ex.line}): {ex.text}")
        if e["fn"]:
            lines.append("    missed:   " + "; ".join(f"{f}: {s!r}" for f, s in e["fn"]))
        if e["fp"]:
            lines.append("    spurious: " + "; ".join(f"{f}: {s!r}" for f, s in e["fp"]))
    return "\n".join(lines)
