"""``python -m extractor.demo``: the whole pipeline on sample data, with a summary that reconciles every entry.

CSV -> producer -> medical-entries -> 2 workers (subprocesses) -> processed-entries -> own sink (subprocess)
and Kafka Connect -> MongoDB medical.processed_entries; invalid rows / poison / unresolved -> dlq-topic.

The summary checks: rows produced = documents in MongoDB + entries dead-lettered (+ rows rejected by the
producer), for the entries of *this* run (entry ids are deterministic, so re-running the demo is idempotent).
Example documents are printed to stdout (synthetic sample data); nothing goes through logging.

The helpers here (:class:`Pipeline`) are also what the integration tests and ``bench pipeline`` use to start
workers/sinks as subprocesses, wait for consumer groups to catch up and read the DLQ.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from extractor import messages as m
from extractor.config import REPO_ROOT, Settings, load_settings

log = logging.getLogger(__name__)

SAMPLE_CSV = REPO_ROOT / "data" / "sample_entries.csv"
# settings that name the pipeline's Kafka/Mongo resources; passed to subprocesses as EXTRACTOR_* variables
RESOURCE_FIELDS = ("bootstrap_servers", "input_topic", "processed_topic", "dlq_topic", "group_id",
                   "sink_group_id", "mongo_database", "mongo_collection", "batch_size", "poll_timeout_s",
                   "lexicon_dir", "input_partitions", "lexicon_reload_s", "dlq_replay_group_id")


def isolated_settings(prefix: str | None = None, **overrides: Any) -> Settings:
    """Settings whose topics, groups and collection all carry ``prefix`` (fresh when None)."""
    prefix = prefix or f"run-{uuid.uuid4().hex[:8]}"
    names = dict(input_topic=f"{prefix}-entries", processed_topic=f"{prefix}-processed",
                 dlq_topic=f"{prefix}-dlq", group_id=f"{prefix}-workers", sink_group_id=f"{prefix}-sink",
                 mongo_collection=prefix.replace("-", "_"))
    names.update(overrides)
    return load_settings(**names)


def subprocess_env(settings: Settings, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EXTRACTOR_")}
    for name in RESOURCE_FIELDS:
        v = getattr(settings, name)
        if v is not None:
            env[f"EXTRACTOR_{name.upper()}"] = str(v)
    env["EXTRACTOR_MONGO_URI"] = settings.mongo_uri.get_secret_value()
    env.update(extra)
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


@dataclass
class Pipeline:
    """Workers and sinks as subprocesses of one isolated pipeline, plus the checks on its outcome."""

    settings: Settings
    log_dir: Path
    procs: dict[str, subprocess.Popen] = field(default_factory=dict)

    def start(self, kind: str, name: str | None = None, *args: str, env: dict[str, str] | None = None
              ) -> subprocess.Popen:
        name = name or f"{kind}-{len([n for n in self.procs if n.startswith(kind)]) + 1}"
        self.log_dir.mkdir(parents=True, exist_ok=True)
        out = open(self.log_dir / f"{name}.log", "ab")  # noqa: SIM115 - lives as long as the process
        cmd = [sys.executable, "-m", "extractor", kind, *args]
        p = subprocess.Popen(cmd, env={**subprocess_env(self.settings), **(env or {})}, stdout=out,
                             stderr=subprocess.STDOUT, cwd=str(REPO_ROOT))
        self.procs[name] = p
        return p

    def stop(self, name: str, sig: int = signal.SIGTERM, timeout: float = 60) -> int | None:
        p = self.procs.pop(name)
        if p.poll() is None:
            p.send_signal(sig)
            try:
                p.wait(timeout)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(10)
        return p.returncode

    def stop_all(self) -> None:
        for name in list(self.procs):
            self.stop(name)

    def log_text(self, name: str) -> str:
        p = self.log_dir / f"{name}.log"
        return p.read_text(errors="replace") if p.exists() else ""

    # --- progress ------------------------------------------------------------------------------------
    def group_lag(self, group: str, topic: str) -> int | None:
        """Sum over partitions of (high watermark - committed offset); None when the topic is unknown."""
        from confluent_kafka import Consumer, TopicPartition

        c = Consumer({**self.settings.kafka_common(), "group.id": group, "enable.auto.commit": False})
        try:
            md = c.list_topics(topic, timeout=10).topics.get(topic)
            if md is None or md.error is not None:
                return None
            tps = [TopicPartition(topic, p) for p in md.partitions]
            committed = {tp.partition: tp.offset for tp in c.committed(tps, timeout=10)}
            lag = 0
            for tp in tps:
                _low, high = watermarks(c, tp)
                done = committed.get(tp.partition, -1)
                lag += high - (done if done >= 0 else 0)
            return lag
        finally:
            c.close()

    def wait_caught_up(self, timeout_s: float = 300, sink: bool = True, poll_s: float = 0.5) -> float:
        """Wait until the workers and (optionally) the sink committed everything; returns the seconds waited."""
        s = self.settings
        t0 = time.monotonic()
        while True:
            try:
                lw = self.group_lag(s.group_id, s.input_topic)
                ls = self.group_lag(s.sink_group_id, s.processed_topic) if sink else 0
            except Exception as exc:  # broker restarting
                log.debug("lag check failed: %s", exc)
                lw = ls = None
            if lw == 0 and ls == 0:
                return time.monotonic() - t0
            if time.monotonic() - t0 > timeout_s:
                raise TimeoutError(f"pipeline not caught up after {timeout_s:.0f}s (worker lag {lw}, sink lag {ls})")
            time.sleep(poll_s)

    # --- outcome -------------------------------------------------------------------------------------
    def collection(self) -> Any:
        from pymongo import MongoClient

        client: Any = MongoClient(self.settings.mongo_uri.get_secret_value(), serverSelectionTimeoutMS=5000)
        return client[self.settings.mongo_database][self.settings.mongo_collection]

    def dlq_records(self, start: dict[int, int] | None = None) -> list[tuple[dict[str, str], bytes]]:
        """Every DLQ record (headers, value) from ``start`` offsets (default: the beginning) to the end now."""
        return read_topic(self.settings, self.settings.dlq_topic, start)

    def dlq_end_offsets(self) -> dict[int, int]:
        return end_offsets(self.settings, self.settings.dlq_topic)

    def reconcile(self, produced_ids: Iterable[str], dlq_start: dict[int, int] | None = None) -> dict[str, Any]:
        """Where each produced entry ended: documents, DLQ, both or neither (lost)."""
        ids = set(produced_ids)
        coll = self.collection()
        in_mongo: set[str] = set()
        id_list = sorted(ids)
        for i in range(0, len(id_list), 5000):
            in_mongo.update(d["_id"] for d in coll.find({"_id": {"$in": id_list[i:i + 5000]}}, {"_id": 1}))
        dlq = self.dlq_records(dlq_start)
        dlq_ids = {h.get(m.H_ENTRY_ID) for h, _ in dlq if h.get(m.H_ENTRY_ID)} & ids
        reasons: dict[str, int] = {}
        for h, _ in dlq:
            reasons[h.get(m.H_REASON, "?")] = reasons.get(h.get(m.H_REASON, "?"), 0) + 1
        return {
            "produced": len(ids),
            "documents": len(in_mongo),
            "dead_lettered_entries": len(dlq_ids - in_mongo),
            "in_both": len(dlq_ids & in_mongo),
            "lost": sorted(ids - in_mongo - dlq_ids),
            "dlq_records": len(dlq),
            "dlq_reasons": reasons,
            "collection_count": coll.count_documents({}),
        }


def watermarks(consumer: Any, tp: Any, attempts: int = 40) -> tuple[int, int]:
    """get_watermark_offsets, retried while a fresh or restarting partition has no leader yet."""
    from confluent_kafka import KafkaException

    for i in range(attempts):
        try:
            return consumer.get_watermark_offsets(tp, timeout=10)
        except KafkaException:
            if i == attempts - 1:
                raise
            time.sleep(0.25)
    raise AssertionError("unreachable")


def end_offsets(settings: Settings, topic: str) -> dict[int, int]:
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer({**settings.kafka_common(), "group.id": f"probe-{uuid.uuid4().hex[:8]}"})
    try:
        md = c.list_topics(topic, timeout=10).topics.get(topic)
        if md is None or md.error is not None:
            return {}
        return {p: watermarks(c, TopicPartition(topic, p))[1] for p in md.partitions}
    finally:
        c.close()


def read_topic(settings: Settings, topic: str, start: dict[int, int] | None = None
               ) -> list[tuple[dict[str, str], bytes]]:
    from confluent_kafka import Consumer, TopicPartition

    end = end_offsets(settings, topic)
    start = start or {}
    todo = {p: (start.get(p, 0), e) for p, e in end.items() if start.get(p, 0) < e}
    if not todo:
        return []
    c = Consumer({**settings.kafka_common(), "group.id": f"reader-{uuid.uuid4().hex[:8]}",
                  "enable.auto.commit": False, "auto.offset.reset": "earliest"})
    out = []
    try:
        c.assign([TopicPartition(topic, p, s) for p, (s, _e) in todo.items()])
        remaining = dict(todo)
        deadline = time.monotonic() + 60
        while remaining and time.monotonic() < deadline:
            for msg in c.consume(1000, timeout=0.5):
                if msg.error() is not None:
                    continue
                p = msg.partition()
                if p in remaining and msg.offset() < remaining[p][1]:
                    out.append((m.headers_dict(msg.headers()), msg.value() or b""))
                    if msg.offset() >= remaining[p][1] - 1:
                        remaining.pop(p)
        return out
    finally:
        c.close()


def servers_reachable(settings: Settings) -> bool:
    from confluent_kafka.admin import AdminClient

    try:
        AdminClient(settings.kafka_common()).list_topics(timeout=3)
        return True
    except Exception:
        return False


def ensure_servers(settings: Settings) -> None:
    if servers_reachable(settings):
        return
    print("servers not reachable; running `python -m services up` ...", flush=True)
    from services import manager
    from services.config import ServiceConfig

    manager.up(ServiceConfig.from_env())


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
         examples: int = 3) -> int:
    from extractor.producer import produce_file
    from extractor.topics import ensure_topics

    settings = isolated_settings(prefix) if prefix else load_settings()
    ensure_servers(settings)
    path = sample_csv(csv_path)
    ensure_topics(settings)
    pipe = Pipeline(settings, REPO_ROOT / "out" / "demo-logs")
    dlq_start = pipe.dlq_end_offsets()
    print(f"demo: {path} -> {settings.input_topic} -> {workers} workers -> {settings.processed_topic} -> "
          f"sink -> {settings.mongo_database}.{settings.mongo_collection}  (DLQ {settings.dlq_topic})", flush=True)
    try:
        for _ in range(workers):
            pipe.start("work")
        pipe.start("sink")
        t0 = time.monotonic()
        summary = produce_file(settings, path, keep_ids=True)
        print(summary.line(), flush=True)
        waited = pipe.wait_caught_up(timeout_s)
        elapsed = time.monotonic() - t0
    finally:
        pipe.stop_all()
    rec = pipe.reconcile(summary.entry_ids or [], dlq_start)
    producer_rejected = summary.dead_lettered
    ok = not rec["lost"] and rec["documents"] + rec["dead_lettered_entries"] == rec["produced"]
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
    return 0 if ok else 1


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m extractor.demo", description=__doc__.splitlines()[0])
    p.add_argument("--csv", type=Path, default=None, help=f"default: {SAMPLE_CSV} (generated when missing)")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--prefix", default=None,
                   help="isolate the run: topics/groups/collection named after this prefix (default: the "
                        "configured names, which Kafka Connect also sinks)")
    p.add_argument("--timeout", type=float, default=600)
    args = p.parse_args(argv)
    logging.basicConfig(level=os.environ.get("EXTRACTOR_LOG_LEVEL", "WARNING").upper(),
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")
    return demo(args.csv, args.workers, args.prefix, args.timeout)


if __name__ == "__main__":
    sys.exit(main())
