"""``python -m extractor lexicon check|eval``: validate the lexicon files, or score the lexicon stage alone.

``check`` reports, with ``file:line``: malformed rows (error), duplicate rows within a file (warning;
error in hand files), the same term with a different label in two files or a different canonical/code in
curated files (error for hand files, warning for generated ones, which the build already resolves),
misspellings whose target is unknown (error), stop-terms that stop a curated term or abbreviation (error)
and stop-terms that stop nothing (warning). Exit code 1 when an error was found, else 0.

``eval CSV`` runs only the lexicon stage over a labelled CSV (``text,illnesses,medicines``; ``|``-separated
gold surfaces) and prints strict precision / recall / F1 per label (normalised case,
whitespace and surrounding
punctuation; deduplicated per row like the gold), plus throughput.
"""

from __future__ import annotations

import argparse
import csv
import re
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from extractor.chain.lexicon import (
    ABBREVIATIONS,
    CURATED_TERMS,
    GENERATED_FILES,
    HEADERS,
    MISSPELLINGS,
    OPTIONAL_COLUMNS,
    REVIEWED_EDITS,
    REVIEWED_KINDS,
    STOP_SCOPES,
    STOPTERMS,
    STOPTERMS_GENERATED,
    Lexicon,
    LexiconError,
    LexiconStage,
    cs_key,
    is_case_sensitive,
    norm_key,
    read_tsv,
)
from extractor.chain.model import CODE_SYSTEMS

TERM_COL = {
    CURATED_TERMS: "term",
    ABBREVIATIONS: "abbreviation",
    MISSPELLINGS: "misspelling",
    STOPTERMS: "term",
    STOPTERMS_GENERATED: "term",
    REVIEWED_EDITS: "term",
    **{n: "term" for n in GENERATED_FILES},
}


def configure_parser(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="lexicon_command", metavar="SUBCOMMAND", required=True)
    c = sub.add_parser("check", help="report malformed, duplicate and conflicting rows (exit 1 on errors)")
    c.add_argument("--dir", type=Path, default=None, help="lexicon directory (default: settings lexicon_dir)")
    c.add_argument("--max-warnings", type=int, default=50, help="warnings printed per kind (default 50)")
    e = sub.add_parser("eval", help="precision/recall of the lexicon stage alone on a labelled CSV")
    e.add_argument("csv", type=Path, help="labelled CSV with text, illnesses, medicines columns")
    e.add_argument("--dir", type=Path, default=None, help="lexicon directory (default: settings lexicon_dir)")
    e.add_argument("--no-fuzzy", action="store_true", help="exact, abbreviation and misspelling matches only")
    e.add_argument(
        "--errors", type=int, default=0, help="print this many false positives / negatives per label"
    )


def _dir(args: argparse.Namespace) -> Path:
    if args.dir is not None:
        return Path(args.dir)
    from extractor.config import load_settings

    return load_settings(getattr(args, "config", None)).lexicon_dir


def run(args: argparse.Namespace) -> int:
    if args.lexicon_command == "check":
        errors, warnings = check(_dir(args))
        shown: dict[str, int] = defaultdict(int)
        for w in warnings:
            kind = w.split(": ", 2)[1] if w.count(": ") >= 2 else ""
            shown[kind] += 1
            if shown[kind] <= args.max_warnings:
                print(f"warning: {w}")
        hidden = sum(max(0, n - args.max_warnings) for n in shown.values())
        if hidden:
            print(f"({hidden} more warnings not shown; --max-warnings to see them)")
        for e in errors:
            print(f"error: {e}")
        print(f"{len(errors)} errors, {len(warnings)} warnings")
        return 1 if errors else 0
    if args.lexicon_command == "eval":
        res = evaluate(_dir(args), args.csv, fuzzy=not args.no_fuzzy, show_errors=args.errors)
        for k, v in res.items():
            print(f"{k}\t{v}")
        return 0
    return 2


# ------------------------------------------------------------------------------------------------------ check
def check(lexicon_dir: Path) -> tuple[list[str], list[str]]:
    """(errors, warnings), each message starting with ``file:line``."""
    d = Path(lexicon_dir)
    errors: list[str] = []
    warnings: list[str] = []
    terms: dict[str, list[tuple[str, str, str, str, str]]] = defaultdict(
        list
    )  # key -> [(where, label, canon, code, file)]
    stops: list[tuple[str, str, str, str]] = []  # (where, key, label, scope)
    miss: list[tuple[str, str, str]] = []
    for name in HEADERS:
        path = d / name
        if not path.is_file():
            if name in GENERATED_FILES:
                errors.append(f"{name}:0: missing file")
            continue
        seen: dict[tuple, int] = {}
        try:
            for lineno, r in read_tsv(path, HEADERS[name], OPTIONAL_COLUMNS.get(name, ())):
                where = f"{name}:{lineno}"
                term = r[TERM_COL[name]]
                if not term.strip() or term != term.strip() or not norm_key(term):
                    errors.append(f"{where}: malformed: empty term or surrounding whitespace ({term!r})")
                    continue
                cs = r.get("code_system", "")
                if cs and cs not in CODE_SYSTEMS:
                    errors.append(f"{where}: malformed: code_system {cs!r} not one of {list(CODE_SYSTEMS)}")
                label = GENERATED_FILES.get(name) or r.get("label", "")
                allowed = (
                    ("ILLNESS", "MEDICINE", "*")
                    if name in (STOPTERMS, STOPTERMS_GENERATED)
                    else ("ILLNESS", "MEDICINE")
                )
                if label not in allowed:
                    errors.append(f"{where}: malformed: label {label!r} not one of {list(allowed)}")
                    continue
                key = cs_key(term) if is_case_sensitive(term) else norm_key(term)
                dup = (key, label)
                if dup in seen:
                    msg = f"{where}: duplicate: {term!r} already at {name}:{seen[dup]}"
                    (
                        errors if name not in GENERATED_FILES and name != STOPTERMS_GENERATED else warnings
                    ).append(msg)
                else:
                    seen[dup] = lineno
                if name == REVIEWED_EDITS and r["kind"] not in REVIEWED_KINDS:
                    errors.append(f"{where}: malformed: kind {r['kind']!r} not one of {list(REVIEWED_KINDS)}")
                    continue
                if name == REVIEWED_EDITS and r["kind"] != "term":
                    if r["kind"] == "substance" and label != "MEDICINE":
                        errors.append(f"{where}: malformed: kind substance takes label MEDICINE")
                    continue  # a non-entity row: no lexicon term
                if name in (STOPTERMS, STOPTERMS_GENERATED):
                    if r["scope"] not in STOP_SCOPES:
                        errors.append(f"{where}: malformed: scope {r['scope']!r} not one of {', '.join(STOP_SCOPES)}")
                    stops.append((where, key, label, r["scope"]))
                elif name == MISSPELLINGS:
                    miss.append((where, label, r["correct"]))
                    terms[key].append((where, label, r["correct"].lower(), "", name))
                else:
                    canon = r.get("canonical") or r.get("expansion") or term
                    terms[key].append((where, label, canon.lower(), r.get("code", ""), name))
        except LexiconError as exc:
            errors.append(f"{exc} (malformed)")
    curated = (CURATED_TERMS, ABBREVIATIONS, MISSPELLINGS, REVIEWED_EDITS)
    for key, rows in terms.items():
        if len(rows) < 2:
            continue
        labels = {r[1] for r in rows}
        if len(labels) > 1:
            where = ", ".join(f"{r[0]} ({r[1]})" for r in rows)
            msg = f"{rows[-1][0]}: conflict: {key!r} has labels {sorted(labels)} in {where}"
            (
                errors
                if any(r[4] in curated for r in rows) and _curated_label_clash(rows, curated)
                else warnings
            ).append(msg)
            continue
        cur = [r for r in rows if r[4] in curated]
        if len(cur) > 1 and len({(r[2], r[3]) for r in cur if r[4] != MISSPELLINGS}) > 1:
            errors.append(
                f"{cur[-1][0]}: conflict: {key!r} has different canonical/code in "
                + ", ".join(r[0] for r in cur)
            )
        elif cur and any(r[4] in GENERATED_FILES for r in rows):
            gen = next(r for r in rows if r[4] in GENERATED_FILES)
            if (gen[2], gen[3]) != (cur[0][2], cur[0][3]):
                warnings.append(f"{cur[0][0]}: override: {key!r} overrides {gen[0]} ({gen[2]!r} {gen[3]})")
    known = {k for k, rows in terms.items() for r in rows if r[4] != MISSPELLINGS}
    for where, label, correct in miss:
        k = cs_key(correct) if is_case_sensitive(correct) else norm_key(correct)
        if k not in known or not any(r[1] == label for r in terms[k] if r[4] != MISSPELLINGS):
            errors.append(f"{where}: unknown: misspelling target {correct!r} is not a known {label} term")
    for where, key, label, scope in stops:
        rows = [r for r in terms.get(key, []) if label == "*" or r[1] == label]
        if scope == "all" and where.startswith(STOPTERMS + ":"):
            hit = [r for r in rows if r[4] in curated]
            if hit:
                errors.append(
                    f"{where}: collision: stop-term {key!r} stops curated row " + ", ".join(r[0] for r in hit)
                )
            elif not rows:
                warnings.append(f"{where}: unused: stop-term {key!r} matches no {label} term")
        elif scope == "all" and where.startswith(STOPTERMS_GENERATED):
            hit = [r for r in rows if r[4] in curated]
            if hit:
                warnings.append(
                    f"{where}: overridden: generated stop-term {key!r} is overridden by "
                    + ", ".join(r[0] for r in hit)
                )
    if not errors:
        try:
            Lexicon.load(d, use_cache=False)
        except LexiconError as exc:
            errors.append(str(exc))
    # the regex rules and the context triggers live beside the lexicons: validate them the same way
    from extractor.chain.context import CONTEXT_FILE, SECTIONS_FILE, ContextError, load_sections, load_triggers
    from extractor.chain.findings import (
        FINDINGS_FILE,
        ORGAN_CHANGES_FILE,
        FindingsError,
        load_findings,
        load_organ_changes,
    )
    from extractor.chain.lab_tests import (
        LAB_CONTEXT_FILE,
        LAB_TESTS_FILE,
        LabContextError,
        load_lab_context,
        load_lab_tests,
    )
    from extractor.chain.non_entities import NON_ENTITIES_FILE, NonEntities, NonEntityError
    from extractor.chain.patient_wording import FILE as WORDING_FILE
    from extractor.chain.patient_wording import PatientWordingError
    from extractor.chain.patient_wording import load_rows as load_wording
    from extractor.chain.rules import RULES_FILE, RuleError, load_rules

    for fname, loader, err in (
        (RULES_FILE, load_rules, RuleError),
        (CONTEXT_FILE, load_triggers, ContextError),
        (SECTIONS_FILE, load_sections, ContextError),
        (NON_ENTITIES_FILE, NonEntities.load, NonEntityError),
        (LAB_CONTEXT_FILE, load_lab_context, LabContextError),
        (LAB_TESTS_FILE, load_lab_tests, LabContextError),
        (FINDINGS_FILE, load_findings, FindingsError),
        (ORGAN_CHANGES_FILE, load_organ_changes, FindingsError),
        (WORDING_FILE, load_wording, PatientWordingError),
    ):
        if not (d / fname).is_file():
            warnings.append(f"{fname}:0: missing: the chain's regex/context step needs it")
            continue
        try:
            loader(d / fname)
        except err as exc:
            errors.append(str(exc).replace(str(d) + "/", ""))
    if (d / REVIEWED_EDITS).is_file():
        from extractor.chain.non_entities import load_reviewed

        try:
            load_reviewed(d / REVIEWED_EDITS)
        except NonEntityError as exc:
            errors.append(str(exc))
    return errors, warnings


def _curated_label_clash(rows: list, curated: tuple[str, ...]) -> bool:
    cur_labels = {r[1] for r in rows if r[4] in curated}
    return len(cur_labels) > 1


# ------------------------------------------------------------------------------------------------------ eval
_PUNCT = re.compile(r"^[\W_]+|[\W_]+$")


def normalise(s: str) -> str:
    return _PUNCT.sub("", " ".join(s.lower().split()))


def evaluate(
    lexicon_dir: Path,
    csv_path: Path,
    *,
    fuzzy: bool = True,
    show_errors: int = 0,
    lexicon: Lexicon | None = None,
) -> dict[str, Any]:
    t0 = time.perf_counter()
    lex = lexicon or Lexicon.load(lexicon_dir)
    load_s = time.perf_counter() - t0
    stage = LexiconStage(lex, fuzzy=fuzzy)
    with open(csv_path, encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    texts = [r["text"] if "text" in r else r["medical_entry"] for r in rows]
    t0 = time.perf_counter()
    preds = stage.extract_many(texts)
    dt = time.perf_counter() - t0
    out: dict[str, Any] = {
        "rows": len(rows),
        "load_s": round(load_s, 3),
        "entries_per_s": round(len(rows) / dt, 1),
    }
    by_match: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for label, col in (("ILLNESS", "illnesses"), ("MEDICINE", "medicines")):
        tp = fp = fn = 0
        fps: list[str] = []
        fns: list[str] = []
        for r, ents in zip(rows, preds, strict=True):
            gold = {normalise(g) for g in (r.get(col) or "").split("|") if normalise(g)}
            pred_ents: dict[str, str] = {}
            for e in ents:
                if e.label == label:
                    pred_ents.setdefault(normalise(e.surface), e.details.get("match", ""))
            for surface, m in pred_ents.items():
                by_match[m][0] += 1
                by_match[m][1] += surface in gold
            pred = set(pred_ents)
            tp += len(pred & gold)
            fp += len(pred - gold)
            fn += len(gold - pred)
            fps += sorted(pred - gold)
            fns += sorted(gold - pred)
        p = tp / (tp + fp) if tp + fp else 0.0
        rc = tp / (tp + fn) if tp + fn else 0.0
        f = 2 * p * rc / (p + rc) if p + rc else 0.0
        out[f"{label}_precision"] = round(p, 4)
        out[f"{label}_recall"] = round(rc, 4)
        out[f"{label}_f1"] = round(f, 4)
        out[f"{label}_tp_fp_fn"] = (tp, fp, fn)
        if show_errors:
            from collections import Counter

            out[f"{label}_top_fp"] = Counter(fps).most_common(show_errors)
            out[f"{label}_top_fn"] = Counter(fns).most_common(show_errors)
    out["precision_by_match"] = {m: (n, round(ok / n, 3)) for m, (n, ok) in sorted(by_match.items())}
    return out


if __name__ == "__main__":  # pragma: no cover
    ap = argparse.ArgumentParser(prog="python -m extractor.tools.lexicon_check")
    configure_parser(ap)
    sys.exit(run(ap.parse_args()))
