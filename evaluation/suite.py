"""``python -m evaluation suite``: every labelled dev set plus data/sample_entries.csv through one chain, one table.

    python -m evaluation suite [--data DIR] [--extra FILE ...] [--json PATH] [--compare A B | --baseline JSON]
                               [chain options]

Corpora: each ``*_dev.csv`` in ``--data`` (default ``../shared/data/train``; ``.csv`` so that every corpus is
scored the same way; ``*_train`` files are never read) and ``data/sample_entries.csv`` (``--extra``). Per corpus:
strict and lenient P/R/F1 per field and micro, ECE (strict) on all entries and on the **held-out half**
(documents that ``scripts/calibrate.py`` does not fit on, :mod:`evaluation.splits`), and entries/s.

Each corpus is scored by its declared gold policy (``GOLD_POLICY``): where the gold marks every mention whatever
its assertion (BC5CDR, NCBI, Chia, MACCROBAT), negated and hypothetical entities count as predictions, as
``--count-negated`` does; the table's ``gold`` column says which. Where a corpus's span JSONL file carries
``polarity`` marks (MACCROBAT), the suite also scores negation and uncertainty (:mod:`evaluation.assertion`).

The chain is built once and reused for every corpus. ``--compare A B`` (lexicon dirs or config files) runs the
suite through both and prints B - A per corpus; ``--baseline JSON`` prints this run minus a saved ``--json`` (of
another commit, say). Exit status as ``python -m evaluation``.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from evaluation.assertion import format_assertion, read_polarity, score_assertion
from evaluation.calibration import reliability
from evaluation.data import DataError, Dataset, read_labelled
from evaluation.scoring import score
from evaluation.splits import calibration_half

REPO = Path(__file__).resolve().parent.parent
DEFAULT_DATA = REPO.parent / "shared" / "data" / "train"
DEFAULT_EXTRA = (REPO / "data" / "sample_entries.csv",)
SCHEMA_VERSION = 2
# Which mentions each corpus's gold marks (by the corpus name before "_dev"). "all": every mention, whatever its
# assertion (BC5CDR, NCBI, Chia and MACCROBAT annotate "no fever" as a fever mention), so negated and hypothetical
# entities are predictions, as `python -m evaluation --count-negated` scores them. "asserted": only mentions
# asserted for the patient (data/sample_entries.csv puts negated ones in separate columns), so they are not.
# A corpus not named here is "asserted".
GOLD_POLICY: dict[str, str] = {"bc5cdr": "all", "ncbi_disease": "all", "chia": "all", "maccrobat": "all"}
# Corpora whose MEDICINE gold is every chemical, drugs or not (BC5CDR "Chemical": dopamine in a rat's striatum,
# serum potassium). The service reports a measured analyte in `substances`, not in `medicines`; on these corpora
# the medicine field is scored against medicines + substances, which is what the corpus's label means.
CHEMICAL_GOLD = frozenset({"bc5cdr"})
# the figures of one corpus that the table shows and --compare subtracts
KEYS: tuple[tuple[str, str], ...] = (
    ("illness.strict.f1", "ill F1"),
    ("medicine.strict.f1", "med F1"),
    ("micro.strict.precision", "micro P"),
    ("micro.strict.recall", "micro R"),
    ("micro.strict.f1", "micro F1"),
    ("illness.lenient.f1", "ill len"),
    ("medicine.lenient.f1", "med len"),
    ("micro.lenient.f1", "micro len"),
    ("ece", "ECE"),
    ("ece_heldout", "ECE held"),
    ("entries_per_second", "entries/s"),
)


def corpora(data_dir: Path, extra: Sequence[Path]) -> list[tuple[str, Path]]:
    """(name, path) of every dev CSV in ``data_dir`` (sorted) then the extra files."""
    if not data_dir.is_dir():
        raise DataError(data_dir, None, "not a directory (expected the train/ folder with *_dev.csv files)")
    out = [(p.stem, p) for p in sorted(data_dir.glob("*_dev.csv"))]
    out += [(p.stem, p) for p in extra]
    if not out:
        raise DataError(data_dir, None, "no *_dev.csv file")
    return out


def _base(name: str) -> str:
    return name.removesuffix("_dev").removesuffix("_train")


def gold_policy_of(name: str) -> str:
    """The corpus's gold policy ("all" or "asserted"), from its name (``maccrobat_dev`` -> ``maccrobat``)."""
    return GOLD_POLICY.get(_base(name), "asserted")


def chemical_gold(name: str) -> bool:
    return _base(name) in CHEMICAL_GOLD


def as_chemicals(results: Sequence[Any]) -> list[Any]:
    """Results whose medicines are medicines + substances (for a corpus whose gold is every chemical)."""
    import dataclasses

    out = []
    for r in results:
        subs = getattr(r, "substances", None)
        if subs:
            r = dataclasses.replace(r, medicines=sorted([*r.medicines, *subs], key=lambda e: (e.start, e.end)))
        out.append(r)
    return out


class _ChemicalView:
    """A chain whose results count substances as medicines (see CHEMICAL_GOLD)."""

    def __init__(self, chain: Any) -> None:
        self.chain = chain
        self.stage_names = getattr(chain, "stage_names", ())

    def extract_many(self, texts: Sequence[str]) -> list[Any]:
        return as_chemicals(self.chain.extract_many(texts))


def _ece(
    examples: Sequence[Any], results: Sequence[Any], fields: Sequence[str], count_negated: bool = False
) -> float | None:
    """Strict ECE over the predicted items of the fields the corpus labels (NCBI labels no medicines, so a
    medicine found there can be neither right nor wrong and is left out)."""
    if not examples:
        return None
    scores = score(examples, results, count_negated=count_negated)
    outs = [o for o in scores.outcomes if o.mode == "strict" and o.field in fields]
    return reliability(outs, 10)["ece"]


def summarise(
    report: dict[str, Any], dataset: Dataset, results: Sequence[Any], policy: str = "asserted"
) -> dict[str, Any]:
    """The suite's figures of one corpus: scores per field and mode, ECE all / held-out half, speed."""
    fields = report["fields"]
    count_negated = policy == "all"
    held = [i for i, ex in enumerate(dataset.examples) if not calibration_half(ex.entry_id)]
    labelled = [f for f in ("illness", "medicine") if report["n_gold"].get(f)]
    row: dict[str, Any] = {
        "path": dataset.path,
        "policy": policy,
        "n_entries": report["n_entries"],
        "n_gold": report["n_gold"],
        "fields": fields,
        "ece": _ece(dataset.examples, results, labelled, count_negated),
        "ece_lenient": report["calibration"]["lenient"]["ece"],
        "n_heldout": len(held),
        "ece_heldout": _ece(
            [dataset.examples[i] for i in held], [results[i] for i in held], labelled, count_negated
        ),
        "entries_per_second": report["entries_per_second"],
        "by_method": {m: v["micro"]["strict"] for m, v in report["by_method"].items()},
        "errors": report["errors"],
    }
    return row


def value(row: dict[str, Any], key: str) -> float | None:
    if key in ("ece", "ece_heldout", "entries_per_second"):
        return row.get(key)
    field, mode, metric = key.split(".")
    if field != "micro" and not row["n_gold"].get(field):
        return None  # the corpus does not label this field (NCBI: no medicines)
    return row["fields"][field][mode][metric]


def run_suite(chain: Any, sets: Sequence[tuple[str, Dataset]], *, progress: bool = False) -> dict[str, Any]:
    from evaluation.report import evaluate

    rows: dict[str, Any] = {}
    for name, ds in sets:
        policy = gold_policy_of(name)
        report, _, results = evaluate(
            _ChemicalView(chain) if chemical_gold(name) else chain,
            ds,
            count_negated=policy == "all",
            by_stage=False,
            progress=progress,
            top=10,
        )
        rows[name] = summarise(report, ds, results, policy)
        rows[name]["medicine_gold"] = "chemicals" if chemical_gold(name) else "medicines"
        polarity_file = Path(ds.path).with_suffix(".spans.jsonl")
        gold = read_polarity(polarity_file) if polarity_file.is_file() else None
        if gold is not None:
            rows[name]["assertion"] = score_assertion([ex.entry_id for ex in ds.examples], results, gold)
    return rows


def _fmt(v: float | None, key: str, signed: bool = False) -> str:
    if v is None:
        return "-"
    if key == "entries_per_second":
        return f"{v:+,.0f}" if signed else f"{v:,.0f}"
    return f"{v:+.3f}" if signed else f"{v:.3f}"


def format_table(rows: dict[str, Any], title: str = "") -> str:
    w = max(len(n) for n in rows) + 2
    head = f"{'corpus':<{w}}{'gold':>9}{'n':>6} " + " ".join(f"{label:>9}" for _, label in KEYS)
    lines = [title] if title else []
    lines += [head, "-" * len(head)]
    for name, row in rows.items():
        cells = " ".join(f"{_fmt(value(row, k), k):>9}" for k, _ in KEYS)
        policy = row.get("policy", "asserted") + ("+chem" if row.get("medicine_gold") == "chemicals" else "")
        lines.append(f"{name:<{w}}{policy:>9}{row['n_entries']:>6} {cells}")
    lines.append("")
    lines.append("strict P/R/F1 per field (illness | medicine):")
    for name, row in rows.items():
        parts = []
        for f in ("illness", "medicine"):
            s, le = row["fields"][f]["strict"], row["fields"][f]["lenient"]
            if row["n_gold"][f] == 0 and s["tp"] + s["fp"] == 0:
                parts.append(f"{f}: no gold")
                continue
            parts.append(
                f"{f} {s['precision']:.3f}/{s['recall']:.3f}/{s['f1']:.3f} "
                f"(lenient {le['precision']:.3f}/{le['recall']:.3f}/{le['f1']:.3f})"
            )
        lines.append(f"  {name:<{w}}" + "   ".join(parts))
    lines.append("gold: all = the corpus marks every mention, negated and hypothetical ones too, so they count as "
                 "predictions (--count-negated); asserted = only mentions asserted for the patient;\n"
                 "+chem = the medicine gold is every chemical (BC5CDR), scored against medicines + substances "
                 "(tests, analytes).")
    lines.append("ECE: strict, over the fields the corpus labels; "
                 "ECE held = on the documents scripts/calibrate.py does not fit on.")
    assertion = {n: r["assertion"] for n, r in rows.items() if r.get("assertion")}
    if assertion:
        lines += ["", *format_assertion(assertion)]
    return "\n".join(lines)


def format_compare(a: dict[str, Any], b: dict[str, Any], name_a: str, name_b: str) -> str:
    lines = [format_table(a, f"A = {name_a}"), "", format_table(b, f"B = {name_b}"), "", "B - A"]
    w = max(len(n) for n in a) + 2
    lines.append(f"{'corpus':<{w}}" + " ".join(f"{label:>9}" for _, label in KEYS))
    for name in a:
        if name not in b:
            continue
        cells = []
        for k, _ in KEYS:
            va, vb = value(a[name], k), value(b[name], k)
            d = None if va is None or vb is None else vb - va
            mark = "*" if d and abs(d) >= (1 if k == "entries_per_second" else 0.0005) else " "
            cells.append(f"{_fmt(d, k, signed=True) + mark:>9}")
        lines.append(f"{name:<{w}}" + " ".join(cells))
    assertion = [n for n in a if a[n].get("assertion") and n in b and b[n].get("assertion")]
    if assertion:
        lines += ["", "B - A, assertion:", f"{'corpus':<{w}}" + " ".join(f"{k:>9}" for k in ASSERTION_KEYS)]
        for name in assertion:
            cells = []
            for k in ASSERTION_KEYS:
                d = assertion_value(b[name], k) - assertion_value(a[name], k)
                cells.append(f"{d:>+9.3f}")
            lines.append(f"{name:<{w}}" + " ".join(cells))
    return "\n".join(lines)


ASSERTION_KEYS = ("detection", "neg P", "neg R", "neg F1", "unc P", "unc R", "unc F1")


def assertion_value(row: dict[str, Any], key: str) -> float:
    a = row["assertion"]
    if key == "detection":
        return float(a["detection"])
    kind, metric = key.split()
    part = a["negation" if kind == "neg" else "uncertainty"]
    return float(part[{"P": "precision", "R": "recall", "F1": "f1"}[metric]])


def _read_baseline(path: Path) -> dict[str, Any]:
    """The corpora of a saved ``--json`` file (a plain run's, or side B of a ``--compare``)."""
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DataError(path, None, f"cannot read a suite JSON file: {exc}") from exc
    corpora_ = payload.get("corpora") or payload.get("b", {}).get("corpora")
    if not isinstance(corpora_, dict):
        raise DataError(path, None, "not a suite JSON file (no 'corpora')")
    return corpora_


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m evaluation suite",
        description=(__doc__ or "").split("\n\n")[0],
        epilog=(__doc__ or "").split("\n\n", 1)[-1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--data", type=Path, default=DEFAULT_DATA, help="folder with the *_dev.csv files")
    p.add_argument(
        "--extra", type=Path, nargs="*", default=list(DEFAULT_EXTRA), help="more labelled files to score"
    )
    p.add_argument("--config", default=None)
    p.add_argument("--lexicon-dir", default=None)
    p.add_argument("--model", default=None)
    p.add_argument("--mode", choices=("cascade", "merge"), default=None)
    p.add_argument("--stages", default=None)
    p.add_argument("--compare", nargs=2, metavar=("A", "B"), default=None)
    p.add_argument(
        "--baseline", type=Path, default=None, metavar="JSON",
        help="a suite --json file from an earlier run (another commit): print this run - that one per corpus",
    )
    p.add_argument("--limit", type=int, default=None, help="first N entries of each corpus (quick checks)")
    p.add_argument(
        "--raw-gold", action="store_true", help="also score gold items lexicons/non_entities.tsv excludes"
    )
    p.add_argument("--json", dest="json_path", default=None, metavar="PATH")
    p.add_argument("--progress", action="store_true", help="tqdm progress bars on stderr")
    return p


def main(argv: Sequence[str] | None = None, *, chain_factory: Any = None) -> int:
    from evaluation import cli

    args = build_parser().parse_args(argv)
    factory = chain_factory or cli.default_chain_factory
    args.count_negated = False
    try:
        sets = []
        for name, path in corpora(args.data, args.extra):
            ds = read_labelled(path)
            if args.limit:
                ds = Dataset(ds.path, ds.format, ds.examples[: args.limit])
            sets.append((name, cli.gold_policy(args, ds, chemicals=chemical_gold(name))))
        if args.compare:
            specs = [cli._spec(args, v) for v in args.compare]
            out = []
            for settings, _ in specs:
                chain = cli._build(factory, settings)
                out.append(run_suite(chain, sets, progress=args.progress))
                del chain
            print(format_compare(out[0], out[1], specs[0][1], specs[1][1]))
            payload: dict[str, Any] = {
                "schema_version": SCHEMA_VERSION,
                "a": {"name": specs[0][1], "corpora": out[0]},
                "b": {"name": specs[1][1], "corpora": out[1]},
            }
        else:
            settings = cli._settings(args)
            chain = cli._build(factory, settings)
            rows = run_suite(chain, sets, progress=args.progress)
            if args.baseline is not None:
                before = _read_baseline(args.baseline)
                print(format_compare(before, rows, str(args.baseline), "this run"))
            else:
                print(format_table(rows))
            payload = {"schema_version": SCHEMA_VERSION, "chain": cli._chain_info(settings), "corpora": rows}
        if args.json_path:
            p = Path(args.json_path)
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_text(json.dumps(payload, indent=2, default=str) + "\n", encoding="utf-8")
            print(f"wrote {p}")
        return 0
    except (DataError, cli.UsageError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except cli.ChainError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
