"""``python -m evaluation LABELLED [options]``: score the extraction chain on labelled data.

LABELLED is a labelled CSV (a ``text`` or ``medical_entry`` column, ``illnesses`` and ``medicines`` as
``|``-separated gold strings, optional ``entry_id``) or a span JSONL file (``.jsonl``). Prints a table;
``--json PATH`` writes the report (schema: evaluation/README.md); ``--plot DIR`` writes PNGs.
Exit status: 0 done, 2 unreadable input or bad option, 1 the chain could not be built or run.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from evaluation.calibration import DEFAULT_THRESHOLDS
from evaluation.data import DataError, Dataset, read_labelled

log = logging.getLogger("evaluation")

ChainFactory = Callable[[Any], Any]  # Settings -> chain
CONFIG_SUFFIXES = (".toml", ".yaml", ".yml", ".json")


class UsageError(Exception):
    """A bad option or configuration: message printed, exit status 2."""


def _thresholds(value: str) -> list[float]:
    try:
        ts = [float(x) for x in value.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {value!r}") from None
    if not ts or any(not 0.0 <= t <= 1.0 for t in ts):
        raise argparse.ArgumentTypeError("thresholds must be numbers in [0, 1]")
    return ts


def _positive(value: str) -> int:
    try:
        n = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {value!r}") from None
    if n < 0:
        raise argparse.ArgumentTypeError("must be >= 0")
    return n


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m evaluation",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
        epilog=(__doc__ or "").split("\n\n", 1)[-1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("data", help="labelled CSV or span JSONL (.jsonl)")
    g = p.add_argument_group("chain")
    g.add_argument("--config", default=None, help="settings file (TOML/YAML/JSON) for the chain")
    g.add_argument("--lexicon-dir", default=None, help="lexicon directory (default: settings)")
    g.add_argument("--model", default=None, help="spaCy NER model path or package (default: settings)")
    g.add_argument(
        "--mode", choices=("cascade", "merge"), default=None, help="chain mode (default: settings)"
    )
    g.add_argument(
        "--stages", default=None, help="comma-separated stages, e.g. regex,lexicon (default: settings)"
    )
    g.add_argument(
        "--batch-size", type=_positive, default=256, help="texts per extract_many call (default 256)"
    )
    g.add_argument(
        "--compare",
        nargs=2,
        metavar=("A", "B"),
        default=None,
        help="compare two lexicon directories or two config files on the same data",
    )
    s = p.add_argument_group("scoring")
    s.add_argument(
        "--count-negated", action="store_true", help="count negated/hypothetical entities as predictions"
    )
    s.add_argument(
        "--raw-gold",
        action="store_true",
        help="score against every gold item, also those lexicons/non_entities.tsv says the service does not "
        "report (lab analytes as medicines, pregnancy as an illness, 'study drug')",
    )
    s.add_argument(
        "--thresholds",
        type=_thresholds,
        default=list(DEFAULT_THRESHOLDS),
        help="confidence thresholds, comma-separated (default 0.5,0.7,0.9)",
    )
    s.add_argument("--bins", type=_positive, default=10, help="reliability bins (default 10)")
    s.add_argument("--no-by-stage", action="store_true", help="skip the scores of chain prefixes (faster)")
    s.add_argument("--limit", type=_positive, default=None, help="evaluate only the first N entries")
    o = p.add_argument_group("output")
    o.add_argument("--json", dest="json_path", default=None, metavar="PATH", help="write the report as JSON")
    o.add_argument("--plot", default=None, metavar="DIR", help="write PNG plots to DIR")
    o.add_argument(
        "--errors",
        type=_positive,
        default=0,
        metavar="N",
        help="list N entries with errors (ids and texts of your file)",
    )
    o.add_argument(
        "--top", type=_positive, default=10, help="most frequent FP/FN strings to show (default 10)"
    )
    o.add_argument(
        "--show-changed",
        type=_positive,
        default=20,
        metavar="N",
        help="with --compare: changed entries to list (default 20)",
    )
    o.add_argument("--no-progress", action="store_true", help="no progress bar")
    o.add_argument("--log-level", default=None, help="logging level (default WARNING)")
    return p


def _settings(
    args: argparse.Namespace, lexicon_dir: str | None = None, config_file: str | None = None
) -> Any:
    from extractor.config import load_settings

    stages = tuple(s.strip() for s in args.stages.split(",") if s.strip()) if args.stages else None
    try:
        return load_settings(
            config_file or args.config,
            lexicon_dir=lexicon_dir or args.lexicon_dir,
            ner_model=args.model,
            chain_mode=args.mode,
            stages=stages,
        )
    except FileNotFoundError as exc:
        raise UsageError(str(exc)) from None
    except Exception as exc:  # pydantic ValidationError, bad TOML/JSON/YAML
        raise UsageError(f"invalid settings: {exc}") from None


def default_chain_factory(settings: Any) -> Any:
    from extractor.chain import Chain  # imported here: the harness must import without the chain

    return Chain.from_settings(settings)


def _chain_info(settings: Any) -> dict[str, Any]:
    return {
        "mode": getattr(settings, "chain_mode", None),
        "lexicon_dir": str(getattr(settings, "lexicon_dir", "")) or None,
        "model": getattr(settings, "ner_model", None),
    }


def _build(factory: ChainFactory, settings: Any) -> Any:
    try:
        return factory(settings)
    except (ImportError, OSError, ValueError) as exc:
        raise ChainError(f"cannot build the extraction chain: {type(exc).__name__}: {exc}") from exc


class ChainError(Exception):
    """The chain could not be built: message printed, exit status 1."""


def gold_policy(args: argparse.Namespace, dataset: Dataset, *, chemicals: bool = False) -> Dataset:
    """Unless ``--raw-gold``: drop gold items listed in the chain's lexicons/non_entities.tsv (see filter_gold).
    ``chemicals``: the corpus's MEDICINE gold is every chemical (BC5CDR), scored against medicines + substances,
    so its analytes (``substance`` rows) stay in the gold."""
    if getattr(args, "raw_gold", False):
        return dataset
    from evaluation.data import filter_gold
    from extractor.chain.non_entities import NonEntities

    lexicon_dir = getattr(_settings(args), "lexicon_dir", None)
    if not lexicon_dir:
        return dataset
    non = NonEntities.from_dir(Path(lexicon_dir))
    medicine = non.terms("MEDICINE", exclude_kinds=("substance",) if chemicals else ())
    out, removed = filter_gold(dataset, {"illness": non.terms("ILLNESS"), "medicine": medicine})
    if removed:
        print(
            f"gold: {removed} item(s) listed in lexicons/non_entities.tsv not scored (--raw-gold scores them)",
            file=sys.stderr,
        )
    return out


def _write_json(path: str, obj: Any) -> None:
    p = Path(path)
    if p.parent and not p.parent.exists():
        p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(json.dumps(obj, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def _run_single(args: argparse.Namespace, dataset: Dataset, factory: ChainFactory) -> int:
    from evaluation.report import evaluate, format_error_examples, format_report

    settings = _settings(args)
    chain = _build(factory, settings)
    report, scores, _ = evaluate(
        chain,
        dataset,
        count_negated=args.count_negated,
        thresholds=args.thresholds,
        bins=args.bins or 10,
        by_stage=not args.no_by_stage,
        batch_size=args.batch_size or 256,
        progress=not args.no_progress,
        top=args.top,
        chain_info=_chain_info(settings),
    )
    print(format_report(report))
    if args.errors:
        print()
        print(format_error_examples(dataset, scores, args.errors))
    if args.plot:
        from evaluation.plots import write_plots

        for path in write_plots(report, scores, args.plot):
            print(f"wrote {path}")
    if args.json_path:
        _write_json(args.json_path, report)
        print(f"wrote {args.json_path}")
    return 0


def _spec(args: argparse.Namespace, value: str) -> tuple[Any, str]:
    p = Path(value)
    if p.is_dir():
        return _settings(args, lexicon_dir=value), f"lexicon dir {value}"
    if p.is_file() and p.suffix.lower() in CONFIG_SUFFIXES:
        return _settings(args, config_file=value), f"config {value}"
    raise UsageError(
        f"--compare {value}: not a lexicon directory nor a config file ({', '.join(CONFIG_SUFFIXES)})"
    )


def _run_compare(args: argparse.Namespace, dataset: Dataset, factory: ChainFactory) -> int:
    from evaluation.compare import changed_entries, format_compare, score_deltas
    from evaluation.report import evaluate

    (sa, name_a), (sb, name_b) = (_spec(args, v) for v in args.compare)
    reports, results = [], []
    for settings in (sa, sb):
        chain = _build(factory, settings)
        rep, _, res = evaluate(
            chain,
            dataset,
            count_negated=args.count_negated,
            thresholds=args.thresholds,
            bins=args.bins or 10,
            by_stage=False,
            batch_size=args.batch_size or 256,
            progress=not args.no_progress,
            top=args.top,
            chain_info=_chain_info(settings),
        )
        reports.append(rep)
        results.append(res)
        del chain
    deltas = score_deltas(reports[0], reports[1])
    changed = changed_entries(dataset, results[0], results[1])
    print(format_compare(name_a, name_b, deltas, changed, len(dataset), args.show_changed))
    if args.json_path:
        _write_json(
            args.json_path,
            {
                "a": {"name": name_a, "report": reports[0]},
                "b": {"name": name_b, "report": reports[1]},
                "delta": deltas,
                "n_changed": len(changed),
                "changed": changed,
            },
        )
        print(f"wrote {args.json_path}")
    return 0


def main(argv: Sequence[str] | None = None, *, chain_factory: ChainFactory | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "suite":
        from evaluation.suite import main as suite_main

        return suite_main(argv[1:], chain_factory=chain_factory)
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help (0) or a bad option (2)
        return int(exc.code or 0)
    level = args.log_level or os.environ.get("EVALUATION_LOG_LEVEL", "WARNING")
    logging.basicConfig(level=level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s")
    factory = chain_factory or default_chain_factory
    try:
        dataset = read_labelled(args.data)
        if args.limit is not None:
            dataset = Dataset(dataset.path, dataset.format, dataset.examples[: args.limit])
        if not dataset.examples:
            raise DataError(args.data, None, "no entries")
        dataset = gold_policy(args, dataset)
        if args.compare:
            return _run_compare(args, dataset, factory)
        return _run_single(args, dataset, factory)
    except (DataError, UsageError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except ChainError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
