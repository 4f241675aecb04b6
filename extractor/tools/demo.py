"""``python -m extractor.tools.demo``: the whole pipeline on sample data, with a summary that reconciles every entry.

CSV -> producer -> medical-entries -> 2 workers (subprocesses) -> processed-entries -> ONE MongoDB writer
(``EXTRACTOR_WRITER`` / ``--writer``: Kafka Connect's MongoDB sink connector by default, the reference design's; or
the project's own sink) -> MongoDB medical.processed_entries; invalid rows / poison / unresolved -> dlq-topic.

The summary checks: rows produced = documents in MongoDB + entries dead-lettered (+ rows rejected by the
producer), for the entries of *this* run (entry ids are deterministic, so re-running the demo is idempotent).
Example documents are printed to stdout (synthetic sample data); nothing goes through logging.

The processes are started and checked by :class:`extractor.tools.harness.Pipeline`, as in ``bench pipeline`` and
the integration tests.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

from extractor.config import REPO_ROOT, load_settings
from extractor.tools.harness import Pipeline, ensure_servers, isolated_settings

log = logging.getLogger(__name__)

SAMPLE_CSV = REPO_ROOT / "data" / "sample_entries.csv"


def sample_csv(path: Path | None, rows: int = 3000, seed: int = 7) -> Path:
    if path is not None:
        return path
    if SAMPLE_CSV.is_file():
        return SAMPLE_CSV
    SAMPLE_CSV.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "extractor", "generate", "--rows", str(rows), "--seed", str(seed),
                    "--out", str(SAMPLE_CSV)], check=True, cwd=str(REPO_ROOT))
    return SAMPLE_CSV


def demo(csv_path: Path | None = None, workers: int = 2, prefix: str | None = None, timeout_s: float = 600,
         examples: int = 3, writer: str | None = None) -> int:
    from extractor.stream.producer import produce_file
    from extractor.stream.store import ensure_indexes
    from extractor.stream.topics import ensure_topics

    settings = isolated_settings(prefix) if prefix else load_settings()
    writer = writer or settings.writer
    ensure_servers(settings)
    path = sample_csv(csv_path)
    ensure_topics(settings)
    ensure_indexes(settings)
    monitor = _local_prometheus()
    pipe = Pipeline(settings, REPO_ROOT / "out" / "demo-logs", monitor=monitor)
    dlq_start = pipe.dlq_end_offsets()
    shown = "Kafka Connect MongoDB sink" if writer == "connect" else "the project's sink"
    print(f"demo: {path} -> {settings.input_topic} -> {workers} workers -> {settings.processed_topic} -> "
          f"{shown} -> {settings.mongo_database}.{settings.mongo_collection}  (DLQ {settings.dlq_topic})",
          flush=True)
    try:
        for _ in range(workers):
            pipe.start("work")
        pipe.start_writer(writer)
        t0 = time.monotonic()
        summary = produce_file(settings, path, keep_ids=True)
        print(summary.line(), flush=True)
        waited = pipe.wait_caught_up(timeout_s)
        elapsed = time.monotonic() - t0
        if monitor is not None:
            time.sleep(6)  # one more scrape of the final counters
    finally:
        pipe.stop_all()
        pipe.unregister_targets()
    rec = pipe.reconcile(summary.entry_ids or [], dlq_start)
    producer_rejected = summary.dead_lettered
    ok = not rec["lost"] and rec["documents"] + rec["dead_lettered_entries"] == rec["produced"]
    # counted in MongoDB itself: this run's documents (entry ids are deterministic) and the collection's total
    print()
    print(f"rows in file           {summary.rows}")
    print(f"  rejected by producer {producer_rejected:>6}  {summary.dlq_reasons}")
    print(f"  blank, skipped       {summary.skipped_blank:>6}")
    print(f"entries produced       {summary.sent:>6}   ({rec['produced']} distinct entry ids)")
    print(f"  documents in MongoDB {rec['documents']:>6}")
    print(f"  dead-lettered        {rec['dead_lettered_entries']:>6}")
    print(f"  lost                 {len(rec['lost']):>6}")
    print(f"DLQ records this run   {rec['dlq_records']:>6}  {rec['dlq_reasons']}")
    print(f"end to end             {elapsed:.1f}s ({summary.sent / elapsed:.0f} entries/s; "
          f"{waited:.1f}s after the last row was sent)")
    print(f"reconciled: produced {rec['produced']} = {rec['documents']} documents + "
          f"{rec['dead_lettered_entries']} dead-lettered -> {'OK' if ok else 'MISMATCH'}")
    coll = pipe.collection()
    ids = (summary.entry_ids or [])[:200]
    shown = 0
    for doc in coll.find({"_id": {"$in": ids}, "status": "resolved"}).limit(examples):
        shown += 1
        keep = {k: doc.get(k) for k in ("_id", "patient_id", "timestamp", "text", "illness", "medicine", "status",
                                        "lexicon_version")}
        keep["illnesses"] = [{k: e.get(k) for k in ("text", "canonical", "code", "method", "confidence")}
                             for e in doc.get("illnesses", [])]
        keep["medicines"] = [{k: e.get(k) for k in ("text", "canonical", "code", "method", "dose", "frequency")}
                             for e in doc.get("medicines", [])]
        print(f"\nexample document {shown}:\n" + json.dumps(keep, indent=2, ensure_ascii=False))
    if monitor is not None:
        from services import prometheus

        print(f"\nmonitoring: Prometheus {prometheus.url()} scraped this run's workers and writer every 5 s; "
              f"alerts {prometheus.url()}/alerts (rules: deploy/monitoring/alerts.yml); the dashboard's panels "
              f"as a picture: python scripts/plot_dashboard.py --minutes 5 --out out/dashboard.png; Grafana: "
              f"import deploy/monitoring/dashboard.json")
    return 0 if ok else 1


def _local_prometheus():  # type: ignore[no-untyped-def]
    """The services config when `python -m services up`'s Prometheus is running (the demo is then scraped)."""
    try:
        from services import prometheus
        from services.config import ServiceConfig

        cfg = ServiceConfig.from_env()
        return cfg if prometheus.ready(cfg) else None
    except Exception:  # noqa: BLE001 - monitoring is optional for the demo
        return None


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m extractor.tools.demo", description=__doc__.splitlines()[0])
    p.add_argument("--csv", type=Path, default=None, help=f"default: {SAMPLE_CSV} (generated when missing)")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--prefix", default=None,
                   help="isolate the run: topics/groups/collection named after this prefix (default: the "
                        "configured names, which Kafka Connect also sinks)")
    p.add_argument("--timeout", type=float, default=600)
    p.add_argument("--writer", choices=("connect", "sink"), default=None,
                   help="the one MongoDB writer (default: EXTRACTOR_WRITER, i.e. connect)")
    args = p.parse_args(argv)
    logging.basicConfig(level=os.environ.get("EXTRACTOR_LOG_LEVEL", "WARNING").upper(),
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")
    return demo(args.csv, args.workers, args.prefix, args.timeout, writer=args.writer)


if __name__ == "__main__":
    sys.exit(main())
