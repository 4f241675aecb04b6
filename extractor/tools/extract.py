"""``python -m extractor extract "TEXT"`` or ``--csv FILE.csv --out FILE.jsonl``: the chain, offline."""

from __future__ import annotations

import argparse
import csv
import json
import logging
import sys
import time
from pathlib import Path

log = logging.getLogger(__name__)
BATCH = 512


def configure_parser(p: argparse.ArgumentParser) -> None:
    p.add_argument("text", nargs="?", help="one entry to extract from (omit with --csv)")
    p.add_argument("--csv", type=Path, help="CSV with columns patient_id,medical_entry,timestamp")
    p.add_argument("--out", type=Path, help="JSON-lines output for --csv (default: standard output)")
    p.add_argument("--text-column", default=None, help="text column of --csv (default: settings, medical_entry)")
    p.add_argument("--mode", choices=("cascade", "merge"), default=None, help="chain policy (default: settings)")
    p.add_argument("--stages", default=None, help="comma-separated subset of regex,lexicon,ner")
    p.add_argument("--lexicon-dir", type=Path, default=None, help="lexicon directory (default: lexicons/)")
    p.add_argument("--model", default=None, help="spaCy model path or installed package name")


def _settings(args: argparse.Namespace):  # noqa: ANN202
    from extractor.config import load_settings

    stages = tuple(s.strip() for s in args.stages.split(",")) if args.stages else None
    return load_settings(
        args.config, chain_mode=args.mode, stages=stages, lexicon_dir=args.lexicon_dir, ner_model=args.model
    )


def run(args: argparse.Namespace) -> int:
    from extractor.chain import Chain

    if (args.text is None) == (args.csv is None):
        print("error: give either TEXT or --csv FILE", file=sys.stderr)
        return 2
    settings = _settings(args)
    chain = Chain.from_settings(settings)
    if args.text is not None:
        print(json.dumps(chain.extract(args.text).to_dict(), indent=2, ensure_ascii=False))
        return 0
    return _run_csv(chain, args.csv, args.out, args.text_column or settings.csv_text_column)


def _run_csv(chain, path: Path, out_path: Path | None, text_column: str) -> int:  # noqa: ANN001
    from tqdm import tqdm

    if not path.is_file():
        print(f"error: {path}: no such file", file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    with path.open(encoding="utf-8", errors="replace", newline="") as fh:
        reader = csv.DictReader(fh)
        if reader.fieldnames is None or text_column not in reader.fieldnames:
            print(f"error: {path}:1: no column {text_column!r} (columns: {reader.fieldnames})", file=sys.stderr)
            return 2
        rows = list(reader)
    out = out_path.open("w", encoding="utf-8") if out_path else sys.stdout
    counts: dict[str, int] = {}
    try:
        with tqdm(total=len(rows), unit="entry", disable=out is sys.stdout, desc="extract") as bar:
            for i in range(0, len(rows), BATCH):
                batch = rows[i : i + BATCH]
                results = chain.extract_many([r.get(text_column) or "" for r in batch])
                for row, res in zip(batch, results, strict=True):
                    doc = {k: v for k, v in row.items() if k is not None}
                    doc.update(res.to_dict())
                    counts[res.status] = counts.get(res.status, 0) + 1
                    out.write(json.dumps(doc, ensure_ascii=False) + "\n")
                bar.update(len(batch))
    finally:
        if out is not sys.stdout:
            out.close()
    secs = time.perf_counter() - t0
    summary = ", ".join(f"{k}={v}" for k, v in sorted(counts.items()))
    print(f"{len(rows)} entries in {secs:.1f} s ({len(rows) / max(secs, 1e-9):.0f}/s): {summary}", file=sys.stderr)
    return 0
