"""``python -m extractor bench chain``: the chain's speed and memory, in one process and one run.

Measured together, so the ratios are fair on a noisy shared machine: load time and peak RSS of the chain
(lexicons + index + NER model); entries/s of each stage and of the whole chain on short clinical-style entries
and on a mixed corpus (those plus BC5CDR dev sentences); the NER-only pipeline (the model on every entry) and the
chain's ratio to it; the lexicon's fuzzy index against brute-force ``rapidfuzz.process.extractOne`` over all terms.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from extractor.config import REPO_ROOT
from extractor.tools.bench.report import report

DEV_CSV = REPO_ROOT.parent / "shared" / "data" / "train" / "bc5cdr_dev.csv"


def configure_chain_parser(c: argparse.ArgumentParser) -> None:
    c.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    c.add_argument("--entries", type=int, default=10_000, help="short clinical-style entries to run (default 10000)")
    c.add_argument("--dev-csv", type=Path, default=DEV_CSV, help="BC5CDR dev CSV for the mixed corpus")
    c.add_argument("--queries", type=int, default=300, help="fuzzy queries for the index-vs-brute-force check")
    c.add_argument("--mode", choices=("cascade", "merge"), default=None)
    c.add_argument("--lengths", default=None,
                   help="comma-separated note lengths in characters (e.g. 100,1000,5000,19000): measure notes/s, "
                        "characters/s and entities per note at each length instead of the short-entry figures")
    c.add_argument("--notes", type=int, default=40, help="notes per length for --lengths (default 40)")
    c.add_argument("--rounds", type=int, default=3,
                   help="for --lengths: time every length this many times, in turn, and report medians (default 3)")
    c.add_argument("--notes-from", type=Path, default=None,
                   help="for --lengths: build notes from this CSV's medical_entry (or text) column instead of "
                        "generated clinical entries, e.g. your own notes or ../shared/data/train/chia_dev.csv")
    c.add_argument("--line-breaks", action="store_true",
                   help="for --lengths: join the entries of a note with line breaks instead of spaces")


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _rate(fn: Callable[[Sequence[str]], Any], texts: Sequence[str], batch: int = 512) -> float:
    t0 = time.perf_counter()
    for i in range(0, len(texts), batch):
        fn(texts[i : i + batch])
    return len(texts) / max(time.perf_counter() - t0, 1e-9)


def _clinical_entries(n: int) -> list[str]:
    from extractor.tools.generate import generate

    return [row["medical_entry"] for row in generate(n, seed=2024)]


def _csv_texts(path: Path) -> list[str]:
    import csv

    with path.open(encoding="utf-8", newline="") as fh:
        reader = csv.DictReader(fh)
        column = next((c for c in ("medical_entry", "text") if c in (reader.fieldnames or ())), None)
        if column is None:
            raise SystemExit(f"{path}: no medical_entry or text column")
        return [row[column] for row in reader if row[column].strip()]


def make_notes(lengths: Sequence[int], per_length: int, source: Path | None = None,
               sep: str = " ") -> dict[int, list[str]]:
    """Notes of each length, made by joining short entries (as a note is a run of short ones): generated clinical
    entries, or the rows of ``source`` (a CSV with a ``medical_entry`` or ``text`` column)."""
    if source is not None:
        texts = _csv_texts(source)
    else:
        texts = _clinical_entries(max(2_000, per_length * max(lengths) // 60 + 100))
    out: dict[int, list[str]] = {}
    i = 0
    for length in lengths:
        notes = []
        for _ in range(per_length):
            parts: list[str] = []
            size = 0
            while size < length:
                parts.append(texts[i % len(texts)])
                size += len(parts[-1]) + 1
                i += 1
            notes.append(sep.join(parts)[:length])
        out[length] = notes
    return out


def length_figures(chain: Any, lengths: Sequence[int], per_length: int, rounds: int = 3,
                   source: Path | None = None, sep: str = " ") -> dict[str, Any]:
    """Per note length: notes/s, characters/s, entities per note; and chars/s at the longest vs at 1,000.

    Each round times every length once, in turn, and each figure is the median over the rounds: on a shared
    machine the load changes from second to second, and interleaving keeps the lengths' ratio fair."""
    notes = make_notes(lengths, per_length, source, sep)
    chain.extract_many(notes[lengths[0]][:5])  # warm-up
    times: dict[int, list[float]] = {length: [] for length in lengths}
    entities: dict[int, float] = {}
    for _ in range(max(1, rounds)):
        for length in lengths:
            t0 = time.perf_counter()
            results = chain.extract_many(notes[length])
            times[length].append(max(time.perf_counter() - t0, 1e-9))
            entities[length] = sum(len(r.entities) for r in results) / len(results)
    rows: dict[str, Any] = {}
    for length in lengths:
        dt = statistics.median(times[length])
        chars = sum(map(len, notes[length]))
        rows[str(length)] = {"notes_per_s": round(len(notes[length]) / dt, 1), "chars_per_s": round(chars / dt),
                             "ms_per_note": round(dt * 1000 / len(notes[length]), 1),
                             "entities_per_note": round(entities[length], 1)}
        print(f"  {length:>6} chars: {rows[str(length)]}", flush=True)
    figures: dict[str, Any] = {"lengths": rows, "rounds": max(1, rounds),
                               "notes_from": str(source) if source else "generated clinical entries"}
    for length, row in rows.items():
        figures[f"chars_per_s_{length}"] = row["chars_per_s"]
        figures[f"ms_per_note_{length}"] = row["ms_per_note"]
    longest = str(max(lengths))
    if "1000" in rows:
        ratio = rows[longest]["chars_per_s"] / rows["1000"]["chars_per_s"]
        figures[f"ratio_chars_per_s_{longest}_vs_1000"] = round(ratio, 2)
    return figures


def _dev_sentences(path: Path, limit: int) -> list[str]:
    import csv

    if not path.is_file():
        return []
    with path.open(encoding="utf-8", newline="") as fh:
        return [row["text"] for _, row in zip(range(limit), csv.DictReader(fh), strict=False)]


def run_chain_bench(args: argparse.Namespace) -> int:
    rss0 = _rss_mb()
    t0 = time.perf_counter()
    from extractor.chain import Chain
    from extractor.config import load_settings

    settings = load_settings(args.config, chain_mode=args.mode)
    chain = Chain.from_settings(settings)
    load_s = time.perf_counter() - t0
    rss_loaded = _rss_mb()
    print(f"loaded chain {chain.version} in {load_s:.2f} s, RSS {rss_loaded:.0f} MB (before: {rss0:.0f} MB)")

    if args.lengths:
        figures: dict[str, Any] = {"version": chain.version, "mode": chain.mode, "load_s": round(load_s, 2)}
        figures.update(length_figures(chain, [int(x) for x in args.lengths.split(",")], args.notes, args.rounds,
                                      args.notes_from, "\n" if args.line_breaks else " "))
        figures["peak_rss_mb"] = round(_rss_mb())
        return report(figures, args.json)

    clinical = _clinical_entries(args.entries)
    dev = _dev_sentences(args.dev_csv, len(clinical) // 2)
    mixed = clinical[: len(clinical) // 2] + dev
    print(f"corpus: {len(clinical)} clinical-style entries; mixed: {len(mixed)} ({len(dev)} BC5CDR dev sentences)")

    chain.extract_many(clinical[:200])  # warm-up: first-call allocations, lazy tables
    figures: dict[str, Any] = {"version": chain.version, "mode": chain.mode, "load_s": round(load_s, 2)}
    for stage in chain.stages:
        figures[f"stage_{stage.method}_entries_per_s"] = round(_rate(stage.extract_many, clinical))
    figures["chain_entries_per_s"] = round(_rate(chain.extract_many, clinical))
    figures["chain_mixed_entries_per_s"] = round(_rate(chain.extract_many, mixed))
    ner = next((s for s in chain.stages if s.method == "ner"), None)
    if ner is not None:
        figures["ner_only_entries_per_s"] = round(_rate(ner.extract_many, clinical))
        figures["ner_only_mixed_entries_per_s"] = round(_rate(ner.extract_many, mixed))
        ner_rate = max(figures["ner_only_entries_per_s"], 1)
        figures["chain_vs_ner_only"] = round(figures["chain_entries_per_s"] / ner_rate, 2)
        figures["chain_vs_ner_only_mixed"] = round(
            figures["chain_mixed_entries_per_s"] / max(figures["ner_only_mixed_entries_per_s"], 1), 2
        )
        results = chain.extract_many(clinical)
        figures["ner_share_clinical"] = round(sum("ner" in r.stages_run for r in results) / len(results), 3)
    lex = next((s for s in chain.stages if s.method == "lexicon"), None)
    if lex is not None:
        from extractor.chain.lexicon_index import bench_index

        lexicon = getattr(lex, "lexicon")  # noqa: B009 - LexiconStage attribute, not on the Stage protocol
        idx = bench_index(lexicon, args.queries) if _accepts_count(bench_index) else bench_index(lexicon)
        figures["lexicon_index"] = idx
        figures["lexicon_index_speedup"] = idx.get("speedup")
        figures["lexicon_index_identical"] = idx.get("identical_fraction", idx.get("identical"))
    figures["peak_rss_mb"] = round(_rss_mb())
    figures["loaded_rss_mb"] = round(rss_loaded)
    return report(figures, args.json)


def _accepts_count(fn: Callable[..., Any]) -> bool:
    import inspect

    return len(inspect.signature(fn).parameters) >= 2
