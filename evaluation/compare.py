"""``--compare A B``: the same data through two chains; the delta of every score, the entries that changed."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from evaluation.data import FIELDS, Dataset
from evaluation.scoring import entities_of

_COUNT_KEYS = frozenset({"tp", "fp", "fn", "predictions"})


def flatten(obj: Any, prefix: str = "") -> dict[str, float]:
    """Numeric leaves of a nested dict as ``{"a.b.c": value}`` (lists and non-numbers skipped)."""
    out: dict[str, float] = {}
    if isinstance(obj, dict):
        for k, v in obj.items():
            out.update(flatten(v, f"{prefix}.{k}" if prefix else str(k)))
    elif isinstance(obj, bool):
        pass
    elif isinstance(obj, int | float):
        out[prefix] = obj
    return out


def score_deltas(a: dict[str, Any], b: dict[str, Any]) -> dict[str, dict[str, float | None]]:
    """``{key: {"a", "b", "delta"}}`` for every score in fields, spans, by_method and the ECEs."""

    def scored(r: dict[str, Any]) -> dict[str, float]:
        sel = {
            "fields": r["fields"],
            "spans": r.get("spans") or {},
            "by_method": r["by_method"],
            "calibration": {m: {"ece": r["calibration"][m]["ece"]} for m in ("strict", "lenient")},
        }
        return flatten(sel)

    fa, fb = scored(a), scored(b)
    out: dict[str, dict[str, float | None]] = {}
    for key in list(fa) + [k for k in fb if k not in fa]:
        va, vb = fa.get(key), fb.get(key)
        delta = round(vb - va, 6) if va is not None and vb is not None else None
        out[key] = {"a": va, "b": vb, "delta": delta}
    return out


def _entity_keys(result: Any) -> dict[tuple, dict[str, Any]]:
    out = {}
    for f in FIELDS:
        for e in entities_of(result, f):
            flag = "negated" if e.negated else "hypothetical" if getattr(e, "hypothetical", False) else ""
            out[(f, e.start, e.end, e.surface, flag)] = {
                "field": f,
                "surface": e.surface,
                "start": e.start,
                "end": e.end,
                "method": e.method,
                "confidence": e.confidence,
                **({"flag": flag} if flag else {}),
            }
    return out


def changed_entries(
    dataset: Dataset, results_a: Sequence[Any], results_b: Sequence[Any]
) -> list[dict[str, Any]]:
    """Entries whose extracted entities differ: ids, added (in B only) and removed (in A only) entities."""
    out = []
    for ex, ra, rb in zip(dataset.examples, results_a, results_b, strict=True):
        ka, kb = _entity_keys(ra), _entity_keys(rb)
        if ka.keys() == kb.keys():
            continue
        out.append(
            {
                "entry_id": ex.entry_id,
                "line": ex.line,
                "added": [kb[k] for k in kb if k not in ka],
                "removed": [ka[k] for k in ka if k not in kb],
            }
        )
    return out


def _fmt(v: float | None, is_count: bool, signed: bool = False) -> str:
    if v is None:
        return f"{'-':>9}"
    sign = "+" if signed else ""
    return f"{v:>{sign}9,.0f}" if is_count else f"{v:>{sign}9.3f}"


def format_compare(
    name_a: str,
    name_b: str,
    deltas: dict[str, dict[str, float | None]],
    changed: list[dict[str, Any]],
    n_entries: int,
    show: int = 20,
) -> str:
    lines = [f"A = {name_a}", f"B = {name_b}", ""]
    lines.append(f"{'score':<46}{'A':>9} {'B':>9} {'B - A':>9}")
    for key, d in deltas.items():
        a, b, dl = d["a"], d["b"], d["delta"]
        # keep the terminal short: counts and rates of fields/spans, precision of by_method, ECEs
        if key.startswith("by_method.") and not key.endswith(
            ("micro.strict.precision", "micro.strict.tp", "micro.strict.fp")
        ):
            continue

        is_count = key.rsplit(".", 1)[-1] in _COUNT_KEYS
        mark = "" if not dl else "  *"
        lines.append(
            f"{key:<46}{_fmt(a, is_count)} {_fmt(b, is_count)} {_fmt(dl, is_count, signed=True)}{mark}"
        )
    lines.append("")
    lines.append(
        f"Entries whose extraction changed: {len(changed):,} of {n_entries:,}"
        + (f" (first {min(show, len(changed))})" if changed else "")
    )
    for c in changed[:show]:
        add = "; ".join(
            f"{e['field']}: {e['surface']!r}" + (f" [{e['flag']}]" if e.get("flag") else "")
            for e in c["added"]
        )
        rem = "; ".join(
            f"{e['field']}: {e['surface']!r}" + (f" [{e['flag']}]" if e.get("flag") else "")
            for e in c["removed"]
        )
        lines.append(f"- {c['entry_id']} (line {c['line']})")
        if add:
            lines.append(f"    + {add}")
        if rem:
            lines.append(f"    - {rem}")
    return "\n".join(lines)
