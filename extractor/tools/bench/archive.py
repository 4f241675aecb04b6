"""``python -m extractor bench archive``: how fast raw entries go from Kafka into the archive's object storage.

Publishes ``--entries`` generated entries (the producer's message format) to a fresh topic, then times one
archiver process (``python -m extractor archive``, :mod:`extractor.stream.archive`) from its start until every
record is in an object: entries/s (process start included), objects, Parquet bytes per entry, CPU per entry and
that process's peak RSS. Needs the local Kafka and storage (``python -m services up``:
the GCS emulator) or ``--url file:///DIR``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from extractor.tools.bench.report import report

IDLE_S = 2.0


def configure_archive_parser(p: argparse.ArgumentParser) -> None:
    p.add_argument("--entries", type=int, default=200_000, help="entries to publish and archive")
    p.add_argument("--url", default=None, help="archive URL (default: the local emulator's bucket, gs://...)")
    p.add_argument("--json", type=Path, default=None, help="also write the figures to this JSON file")


def run_archive_bench(args: argparse.Namespace) -> int:
    from confluent_kafka import Producer

    from extractor.config import load_settings
    from extractor.stream import messages as m
    from extractor.stream.topics import ensure_topics
    from extractor.tools.generate import EntryGenerator

    run_id = f"bench-archive-{uuid.uuid4().hex[:8]}"
    endpoint = os.environ.get("EXTRACTOR_GCS_ENDPOINT") or os.environ.get("STORAGE_EMULATOR_HOST")
    if args.url is None and endpoint is None:
        from services import gcs

        endpoint = gcs.url()
        url = f"gs://{gcs.bucket()}/{run_id}"
    else:
        url = args.url or f"gs://clinical-extractor-archive/{run_id}"
    s = load_settings(input_topic=f"{run_id}-entries", processed_topic=f"{run_id}-processed",
                      dlq_topic=f"{run_id}-dlq", archive_url=url, archive_topics=f"{run_id}-entries",
                      archive_group_id=f"{run_id}-archiver", gcs_endpoint=endpoint, batch_size=5000)
    ensure_topics(s)
    producer = Producer({**s.kafka_common(), "linger.ms": 20, "batch.num.messages": 10_000,
                         "compression.type": "lz4", "queue.buffering.max.messages": 500_000})
    t0 = time.perf_counter()
    for i, row in enumerate(EntryGenerator(7).rows(args.entries)):
        entry = m.build_entry(row["patient_id"], row["medical_entry"], row["timestamp"], "bench.csv", i + 2)
        while True:
            try:
                producer.produce(s.input_topic, m.encode_entry(entry), key=entry.entry_id.encode())
                break
            except BufferError:
                producer.poll(0.1)
        producer.poll(0)
    producer.flush(60)
    produce_s = time.perf_counter() - t0
    print(f"bench archive: {args.entries} entries published in {produce_s:.1f}s to {s.input_topic}; archiving to "
          f"{url}", flush=True)
    # the archiver as it runs in production: its own process (peak RSS of that child alone)
    out = Path(tempfile.mkdtemp(prefix="bench-archive-")) / "stats.json"
    env = {**os.environ, "EXTRACTOR_GCS_ENDPOINT": endpoint or "", "EXTRACTOR_BOOTSTRAP_SERVERS": s.bootstrap_servers}
    if not endpoint:
        env.pop("EXTRACTOR_GCS_ENDPOINT")
    argv = [sys.executable, "-m", "extractor", "archive", "--url", url, "--topics", s.input_topic, "--group-id",
            s.archive_group_id, "--batch-size", "5000", "--max-idle-s", str(IDLE_S), "--json", str(out)]
    t0 = time.perf_counter()
    done = subprocess.run(argv, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0 - IDLE_S  # the idle wait that ends the run is not archiving
    if done.returncode != 0:
        print(done.stderr[-3000:], file=sys.stderr)
        return done.returncode
    stats = json.loads(out.read_text())
    child = resource.getrusage(resource.RUSAGE_CHILDREN)
    figures: dict[str, Any] = {
        "entries": args.entries, "url": url, "archived": stats["records"], "objects": stats["objects"],
        "parquet_bytes_per_entry": round(stats["bytes"] / max(1, stats["records"]), 1),
        "archive_s_incl_start": round(wall, 2), "entries_per_s": round(stats["records"] / max(wall, 1e-9)),
        "cpu_us_per_entry": round((child.ru_utime + child.ru_stime) / max(1, stats["records"]) * 1e6, 1),
        "upload_failures": stats["failures"], "archiver_peak_rss_mb": round(child.ru_maxrss / 1024),
        "target": ">= 20,000 entries/s, RSS <= 300 MB",
    }
    return report(figures, args.json)
