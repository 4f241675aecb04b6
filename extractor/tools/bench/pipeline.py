"""``python -m extractor bench pipeline``: end-to-end throughput and latency through the real Kafka and MongoDB.

One run, one generated CSV of clinical-style entries, the servers of ``python -m services up``:

1. **throughput** with 1 and then 2 workers (``python -m extractor work`` subprocesses) and the project's sink:
   the clock starts when the producer starts (every process already running and assigned its partitions) and
   stops when every produced entry is a document in MongoDB or a record on the DLQ;
2. **latency** at half the measured 2-worker rate (the producer's ``rate``): per document, ``written_at_ms``
   (stamped by the sink) minus ``produced_at_ms`` (the producer's ``produced_at`` header, carried by the worker);
3. **baseline**, the reference design's shape: kafka-python, one message at a time, its two regexes
   ``signs of (\\w+)`` / ``Prescribed (\\w+)``, one MongoDB ``insert_one`` per message (its own collection).

Every phase has its own topics, consumer groups and collection (in one throw-away database, dropped at the end).
Warm-up runs (the entries through 2 workers, for ``--warmup`` seconds, 60 by default) come first and are not
counted: the servers' JVMs compile their hot paths during their first minute of load, and a bench run right after
``services up`` otherwise measured the broker's warm-up (0.17-0.27 ms of its CPU per entry against 0.04-0.05).

Each throughput run also reports **CPU milliseconds per entry by component** (:mod:`extractor.tools.bench.cpu`):
the producer (this process: the producing and the lag probes that tell when all is written), the broker, each
worker, the writer (the project's sink), FerretDB and PostgreSQL, and their total, over the measured window; the
baseline's the same way. ``--profile PATH`` records a py-spy profile (flame graph for .svg) of the first worker
in the 1-worker run.
"""

from __future__ import annotations

import argparse
import csv
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from extractor.config import REPO_ROOT, Settings
from extractor.tools.bench.cpu import format_table, per_entry_ms
from extractor.tools.bench.report import report

BASELINE_ILLNESS = r"signs of (\w+)"
BASELINE_MEDICINE = r"Prescribed (\w+)"


def configure_pipeline_parser(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    p.add_argument("--entries", type=int, default=20_000, help="generated entries (default 20000)")
    p.add_argument("--seed", type=int, default=2024)
    p.add_argument("--latency-seconds", type=float, default=10.0,
                   help="length of the half-load latency run (default 10 s)")
    p.add_argument("--warmup", type=float, default=60.0, metavar="SECONDS",
                   help="seconds of the generated entries through 2 workers before anything is measured, so that "
                        "the servers' JVMs have compiled their hot paths (default 60; 0: none)")
    p.add_argument("--no-baseline", action="store_true", help="skip the kafka-python baseline")
    p.add_argument("--timeout", type=float, default=300.0, help="deadline of each phase (default 300 s)")
    p.add_argument("--keep", action="store_true", help="keep the bench database (default: dropped)")
    p.add_argument("--profile", type=Path, metavar="PATH",
                   help="py-spy profile of the first worker during the 1-worker run: a flame graph for .svg, "
                        "speedscope for .json, collapsed stacks otherwise")


# --- helpers --------------------------------------------------------------------------------------------


def _settings(base: str, phase: str, database: str) -> Settings:
    from extractor.tools.harness import isolated_settings

    return isolated_settings(f"{base}-{phase}", mongo_database=database)


def _wait_members(settings: Settings, group: str, n: int, deadline: float) -> None:
    """Until the consumer group is stable with ``n`` members that all hold partitions."""
    from confluent_kafka.admin import AdminClient

    admin = AdminClient(settings.kafka_common())
    while time.monotonic() < deadline:
        try:
            d = admin.describe_consumer_groups([group], request_timeout=5)[group].result()
            members = d.members or []
            if (len(members) == n and str(d.state).endswith("STABLE")
                    and all(mb.assignment and mb.assignment.topic_partitions for mb in members)):
                return
        except Exception:  # noqa: BLE001 - group not there yet
            pass
        time.sleep(0.2)
    raise TimeoutError(f"consumer group {group} did not reach {n} assigned members")


class _Lag:
    """Committed lag of one consumer group on one topic, from a long-lived probe consumer (never subscribes).

    Counting documents is no progress probe: a full ``count`` reads every document on FerretDB, and polling it
    would eat the very CPU being measured. The worker and the sink commit only after
    their output is durable, so "both groups at lag 0" is "every entry is a document or a DLQ record"."""

    def __init__(self, settings: Settings, group: str, topic: str):
        from confluent_kafka import Consumer, TopicPartition

        self.consumer = Consumer({**settings.kafka_common(), "group.id": group, "enable.auto.commit": False})
        md = self.consumer.list_topics(topic, timeout=10).topics[topic]
        self.tps = [TopicPartition(topic, p) for p in md.partitions]

    def __call__(self) -> int:
        committed = {tp.partition: tp.offset for tp in self.consumer.committed(self.tps, timeout=10)}
        lag = 0
        for tp in self.tps:
            high = self.consumer.get_watermark_offsets(tp, timeout=10, cached=False)[1]
            lag += high - max(committed.get(tp.partition, 0), 0)
        return lag

    def close(self) -> None:
        self.consumer.close()


def _wait_all_written(settings: Settings, expected: int, deadline: float) -> float:
    """Monotonic time when the workers and the sink have committed all ``expected`` (already produced) entries."""
    worker = _Lag(settings, settings.group_id, settings.input_topic)
    sink = _Lag(settings, settings.sink_group_id, settings.processed_topic)
    try:
        while time.monotonic() < deadline:
            if worker() == 0 and sink() == 0:  # in this order: the worker commits after its output is acked
                return time.monotonic()
            time.sleep(0.05)
    finally:
        worker.close()
        sink.close()
    raise TimeoutError(f"the {expected} entries were not all written before the deadline")


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    k = min(len(s) - 1, max(0, round(q / 100 * (len(s) - 1))))
    return s[k]


SERVER_COMPONENTS = {"kafka": "broker", "ferretdb": "ferretdb", "postgres": "postgresql"}


def _server_components() -> dict[str, Any]:
    from extractor.tools.bench.cpu import service_pids

    return {label: src for name, src in service_pids(SERVER_COMPONENTS).items()
            for label in [SERVER_COMPONENTS[name]]}


def _profiler(pid: int, out: Path) -> subprocess.Popen:
    """py-spy recording ``pid`` into ``out`` until it gets SIGINT: a flame graph for ``.svg``, speedscope JSON for
    ``.json``, collapsed stacks (one line per stack and its sample count, for grep and sort) otherwise."""
    import shutil

    exe = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    out.parent.mkdir(parents=True, exist_ok=True)
    fmt = {".svg": "flamegraph", ".json": "speedscope"}.get(out.suffix, "raw")
    return subprocess.Popen([exe, "record", "--pid", str(pid), "--output", str(out), "--format", fmt,
                             "--rate", "100", "--nonblocking"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _run_ours(settings: Settings, csv_path: Path, workers: int, log_dir: Path, timeout: float,
              rate: float | None = None, limit: int | None = None, profile: Path | None = None) -> dict[str, Any]:
    import signal

    from extractor.stream.producer import produce_file
    from extractor.stream.topics import ensure_topics
    from extractor.tools.bench.cpu import CpuMeter
    from extractor.tools.harness import Pipeline

    ensure_topics(settings)
    pipe = Pipeline(settings, log_dir)
    coll = pipe.collection()
    spy = None
    try:
        for i in range(workers):
            pipe.start("work", f"worker-{i + 1}")
        pipe.start("sink", "sink")
        deadline = time.monotonic() + timeout
        _wait_members(settings, settings.group_id, workers, deadline)
        _wait_members(settings, settings.sink_group_id, 1, deadline)
        procs = dict(pipe.procs)
        components: dict[str, Any] = {name: (lambda p=p: [p.pid]) for name, p in procs.items()}
        meter = CpuMeter({**components, **_server_components()})
        if profile is not None:
            spy = _profiler(procs["worker-1"].pid, profile)
        t0 = time.monotonic()
        meter.start()
        summary = produce_file(settings, csv_path, rate=rate, progress=False, limit=limit)
        if summary.delivery_errors:
            raise RuntimeError(f"{summary.delivery_errors} delivery errors while producing")
        t_end = _wait_all_written(settings, summary.sent, deadline)
        cpu = meter.stop()
    finally:
        if spy is not None and spy.poll() is None:
            spy.send_signal(signal.SIGINT)
            try:
                spy.wait(60)
            except subprocess.TimeoutExpired:
                spy.kill()
        pipe.stop_all()
    out: dict[str, Any] = {"sent": summary.sent, "seconds": t_end - t0, "entries_per_s": summary.sent / (t_end - t0),
           "produce_seconds": summary.seconds, "cpu_seconds": cpu}
    if spy is not None:
        err = spy.stderr.read().decode(errors="replace") if spy.stderr else ""
        out["profile"] = str(profile) if profile and profile.is_file() else f"py-spy failed: {err.strip()[-300:]}"
    lat = [d["written_at_ms"] - d["produced_at_ms"]
           for d in coll.find({}, {"written_at_ms": 1, "produced_at_ms": 1})
           if "written_at_ms" in d and "produced_at_ms" in d]
    out["latencies_ms"] = lat
    return out


# --- the baseline (reference design) -------------------------------------------------------------------


def baseline_consumer(bootstrap: str, topic: str, group: str, mongo_uri: str, database: str, collection: str,
                      expected: int) -> None:
    """The reference design's consumer: kafka-python, one message at a time, two regexes, one insert each."""
    import re

    from kafka import KafkaConsumer
    from pymongo import MongoClient

    coll: Any = MongoClient(mongo_uri)[database][collection]
    consumer = KafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=group, auto_offset_reset="earliest")
    while not consumer.assignment():
        consumer.poll(timeout_ms=200)
    print("READY", flush=True)
    n = 0
    for message in consumer:
        medical_entry = message.value.decode("utf-8")
        ill = re.search(BASELINE_ILLNESS, medical_entry)
        med = re.search(BASELINE_MEDICINE, medical_entry)
        coll.insert_one({"entry": medical_entry, "illness": ill.group(1) if ill else None,
                         "medicine": med.group(1) if med else None})
        n += 1
        if n >= expected:
            break
    consumer.close()


def _run_baseline(settings: Settings, csv_path: Path, base: str, timeout: float) -> dict[str, Any]:
    from confluent_kafka.admin import AdminClient, NewTopic
    from kafka import KafkaProducer

    topic, coll_name = f"{base}-baseline-entries", f"{base}_baseline".replace("-", "_")
    admin = AdminClient(settings.kafka_common())
    admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])[topic].result(30)
    with csv_path.open(encoding="utf-8", newline="") as fh:
        rows = list(csv.reader(fh))[1:]
    uri = settings.mongo_uri.get_secret_value()
    cmd = [sys.executable, "-c", "import sys; from extractor.tools.bench.pipeline import baseline_consumer as c; "
           "c(*sys.argv[1:7], int(sys.argv[7]))", settings.bootstrap_servers, topic, f"{base}-baseline",
           uri, settings.mongo_database, coll_name, str(len(rows))]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, cwd=str(REPO_ROOT), text=True)
    from extractor.tools.bench.cpu import CpuMeter

    meter = CpuMeter({"consumer": lambda: [proc.pid], **_server_components()})
    try:
        if (proc.stdout.readline() if proc.stdout else "").strip() != "READY":
            raise RuntimeError("baseline consumer did not start")
        from pymongo import MongoClient

        coll: Any = MongoClient(uri)[settings.mongo_database][coll_name]
        t0 = time.monotonic()
        meter.start()
        producer = KafkaProducer(bootstrap_servers=settings.bootstrap_servers)
        for row in rows:
            producer.send(topic, value=",".join(row[:3]).encode("utf-8"))
        producer.flush()
        produce_s = time.monotonic() - t0
        cpu = _wait_exit_measured(proc, meter, timeout)
        t_end = time.monotonic()
        n = coll.count_documents({})  # exact: DocumentDB estimates from table statistics (16,804 of 20,000 seen)
        if n < len(rows):
            raise RuntimeError(f"baseline wrote {n} of {len(rows)} documents")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    return {"sent": len(rows), "seconds": t_end - t0, "entries_per_s": len(rows) / (t_end - t0),
            "produce_seconds": produce_s, "cpu_seconds": cpu}


def _wait_exit_measured(proc: subprocess.Popen, meter: Any, timeout: float) -> dict[str, float]:
    """Wait for the baseline consumer to finish, sampling CPU until the last moment it is alive (a process that
    has exited has no /proc entry to read, and its parent, this process, is the producer's component)."""
    deadline = time.monotonic() + timeout
    last = meter.stop()
    while proc.poll() is None:
        if time.monotonic() > deadline:
            raise subprocess.TimeoutExpired(proc.args, timeout)
        now = meter.stop()
        if "consumer" in now:
            last = now
        time.sleep(0.05)
    final = meter.stop()
    final["consumer"] = last.get("consumer", 0.0)
    return final


# --- the command ----------------------------------------------------------------------------------------


def run_pipeline_bench(args: argparse.Namespace) -> int:
    from extractor.stream.store import mongo_client
    from extractor.tools.generate import generate, write_csv
    from extractor.tools.harness import delete_topics, ensure_servers

    base = f"bench-{uuid.uuid4().hex[:6]}"
    database = base.replace("-", "_")
    probe = _settings(base, "probe", database)
    ensure_servers(probe)
    tmp = Path(tempfile.mkdtemp(prefix="bench-pipeline-"))
    csv_path = tmp / "entries.csv"
    with csv_path.open("w", encoding="utf-8", newline="") as fh:
        write_csv(iter(generate(args.entries, seed=args.seed)), fh)
    print(f"bench pipeline: {args.entries} generated entries (seed {args.seed}); database {database}; "
          f"logs {tmp}", flush=True)
    figures: dict[str, Any] = {"entries": args.entries}
    try:
        if args.warmup > 0:
            # right after `services up` the broker's JVM has compiled nothing: the first measured runs charged it
            # 0.17-0.27 ms of CPU per entry against 0.04-0.05 once warm, after about a minute of load (one
            # 20,000-entry warm-up run was not enough). Warm-up runs of the same kind, not counted, until
            # --warmup seconds have passed: the figures are the service's as it runs, not its first minute's
            t_warm, sent, k = time.monotonic(), 0, 0
            while k == 0 or time.monotonic() - t_warm < args.warmup:
                k += 1
                sent += _run_ours(_settings(base, f"warm{k}", database), csv_path, 2, tmp / f"warm{k}",
                                  args.timeout)["sent"]
                delete_topics(probe, f"{base}-warm{k}-")  # the measured runs find the broker's partitions as before
            figures["warmup_entries"] = sent
            print(f"  warm-up: {sent} entries through 2 workers in {time.monotonic() - t_warm:.0f} s (not counted)",
                  flush=True)
        runs = {}
        for workers in (1, 2):
            r = _run_ours(_settings(base, f"w{workers}", database), csv_path, workers, tmp / f"w{workers}",
                          args.timeout, profile=args.profile if workers == 1 else None)
            runs[workers] = r
            print(f"  {workers} worker(s): {r['sent']} entries in {r['seconds']:.1f} s -> "
                  f"{r['entries_per_s']:.0f} entries/s (produce {r['produce_seconds']:.1f} s)", flush=True)
        figures["entries_per_s_1_worker"] = round(runs[1]["entries_per_s"])
        figures["entries_per_s_2_workers"] = round(runs[2]["entries_per_s"])
        figures["ratio_2w_1w"] = round(runs[2]["entries_per_s"] / runs[1]["entries_per_s"], 2)
        cpu_cols = {f"{w} worker{'s' if w > 1 else ''}": per_entry_ms(runs[w]["cpu_seconds"], runs[w]["sent"])
                    for w in (1, 2)}
        if runs[1].get("profile"):
            figures["profile"] = runs[1]["profile"]
        rate = runs[2]["entries_per_s"] / 2
        n_lat = int(min(args.entries, max(1000, rate * args.latency_seconds)))
        r = _run_ours(_settings(base, "lat", database), csv_path, 2, tmp / "lat", args.timeout, rate=rate,
                      limit=n_lat)
        lat = r["latencies_ms"]
        figures.update(latency_rate_per_s=round(rate), latency_entries=len(lat), p50_ms=round(_pct(lat, 50), 1),
                       p99_ms=round(_pct(lat, 99), 1), max_ms=round(max(lat) if lat else float("nan"), 1))
        print(f"  latency at {rate:.0f} entries/s (2 workers, {len(lat)} documents): p50 {figures['p50_ms']} ms, "
              f"p99 {figures['p99_ms']} ms", flush=True)
        if not args.no_baseline:
            b = _run_baseline(probe, csv_path, base, args.timeout)
            figures["baseline_entries_per_s"] = round(b["entries_per_s"])
            figures["vs_baseline_2_workers"] = round(runs[2]["entries_per_s"] / b["entries_per_s"], 2)
            print(f"  baseline (kafka-python, 2 regexes, insert_one): {b['entries_per_s']:.0f} entries/s", flush=True)
            cpu_cols["baseline"] = per_entry_ms(b["cpu_seconds"], b["sent"])
        figures["cpu_ms_per_entry"] = cpu_cols
        for col, values in cpu_cols.items():
            figures[f"cpu_ms_per_entry_total_{col.replace(' ', '_')}"] = values["total"]
        print()
        for line in format_table(cpu_cols):
            print(f"  {line}", flush=True)
    finally:
        if not args.keep:
            try:
                mongo_client(probe).drop_database(database)
            except Exception as exc:  # noqa: BLE001 - report, the figures still count
                print(f"warning: could not drop {database}: {exc}", file=sys.stderr)
            delete_topics(probe, f"{base}-")
    print()

    return report(figures, args.json)
