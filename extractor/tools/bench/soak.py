"""``python -m extractor bench soak --minutes M``: minutes of steady load with repeated faults, then a reckoning.

One isolated pipeline (its own topics, groups and collection) of 2 workers and the project's sink on the servers
of ``python -m services up``:

1. the throughput of that pipeline is measured first (``--calibrate-entries`` generated entries, as fast as it
   goes); the soak then produces at ``--load`` (default 70 %) of it for M minutes;
2. every ``--kill-every`` seconds one worker is SIGKILLed and started again at once; once, at half time, the
   broker is restarted (``python -m services``' own stop/start, data kept);
3. a monitor samples both consumer groups' committed lag every second.

Its topics are deleted at the end, as its database is dropped: a broker holding every past run's partitions
restarts slower (``broker_partitions`` reports how many the restart reloaded).

Reported: produced, documents, dead-lettered, duplicates (documents + dead letters beyond one per entry, and
entries both written and dead-lettered), lost, the maximum lag, per fault the seconds until the lag is back under
1,000, and end-to-end latency (``written_at_ms - produced_at_ms`` of every document) p50/p99 outside the fault
windows (``--fault-window`` seconds after each fault) and overall.
"""

from __future__ import annotations

import argparse
import csv
import signal
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from extractor.tools.bench.report import report

LAG_OK = 1_000


def configure_soak_parser(p: argparse.ArgumentParser) -> None:
    p.add_argument("--minutes", type=float, default=10.0, help="length of the soak (default 10)")
    p.add_argument("--load", type=float, default=0.7, help="fraction of the measured throughput (default 0.7)")
    p.add_argument("--rate", type=float, default=None, help="entries/s to produce (default: measured x --load)")
    p.add_argument("--calibrate-entries", type=int, default=10_000)
    p.add_argument("--kill-every", type=float, default=60.0, help="seconds between worker SIGKILLs (default 60)")
    p.add_argument("--fault-window", type=float, default=30.0,
                   help="seconds after a fault excluded from the steady-state latency (default 30)")
    p.add_argument("--no-broker-restart", action="store_true")
    p.add_argument("--dynamic-membership", action="store_true",
                   help="no EXTRACTOR_GROUP_INSTANCE_ID for the workers (default: static membership)")
    p.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    p.add_argument("--seed", type=int, default=11)


def _pct(values: list[float], q: float) -> float:
    v = sorted(values)
    return v[min(len(v) - 1, int(round(q / 100 * (len(v) - 1))))] if v else float("nan")


class Monitor(threading.Thread):
    """Samples (time, worker lag + sink lag) every second until stopped."""

    def __init__(self, pipe: Any) -> None:
        super().__init__(daemon=True)
        self.pipe = pipe
        self.samples: list[tuple[float, int]] = []
        self.stopped = threading.Event()

    def run(self) -> None:
        s = self.pipe.settings
        while not self.stopped.is_set():
            try:
                lw = self.pipe.group_lag(s.group_id, s.input_topic) or 0
                ls = self.pipe.group_lag(s.sink_group_id, s.processed_topic) or 0
                self.samples.append((time.monotonic(), lw + ls))
            except Exception:  # noqa: BLE001 - the broker is restarting: no sample
                pass
            self.stopped.wait(1.0)

    def recovery_s(self, t_fault: float) -> float | None:
        """Seconds from a fault until the lag is under LAG_OK again and stays there for the next STEADY_SAMPLES
        samples: right after a broker restart one sample can read a few hundred while the real lag is tens of
        thousands (a 10-minute soak reported 7.4 s for a 44 s recovery)."""
        return recovery_s(self.samples, t_fault)


STEADY_SAMPLES = 3


def recovery_s(samples: list[tuple[float, int]], t_fault: float) -> float | None:
    """See :meth:`Monitor.recovery_s`; ``samples`` are (monotonic time, lag) in time order."""
    after = [(t, lag) for t, lag in samples if t >= t_fault]
    for i, (t, lag) in enumerate(after):
        if lag < LAG_OK and t > t_fault + 1.0 and all(x < LAG_OK for _, x in after[i + 1 : i + 1 + STEADY_SAMPLES]):
            return round(t - t_fault, 1)
    return None


def run_soak_bench(args: argparse.Namespace) -> int:
    from extractor.stream.producer import produce_file
    from extractor.stream.topics import ensure_topics
    from extractor.tools.bench.pipeline import _run_ours
    from extractor.tools.generate import generate, write_csv
    from extractor.tools.harness import Pipeline, broker_partitions, delete_topics, ensure_servers, isolated_settings
    from services import kafka as kafka_service
    from services.config import ServiceConfig

    base = f"soak-{uuid.uuid4().hex[:6]}"
    tmp = Path(tempfile.mkdtemp(prefix="bench-soak-"))
    settings = isolated_settings(base, mongo_database=base.replace("-", "_"))
    ensure_servers(settings)
    figures: dict[str, Any] = {"minutes": args.minutes}
    rate = args.rate
    if rate is None:
        cal_csv = tmp / "calibrate.csv"
        with cal_csv.open("w", encoding="utf-8", newline="") as fh:
            write_csv(iter(generate(args.calibrate_entries, seed=args.seed + 1)), fh)
        cal = _run_ours(isolated_settings(f"{base}-cal", mongo_database=base.replace("-", "_")), cal_csv, 2,
                        tmp / "calibrate", 600)
        figures["measured_entries_per_s"] = round(cal["entries_per_s"])
        rate = cal["entries_per_s"] * args.load
    figures["rate_entries_per_s"] = round(rate)
    n = int(rate * args.minutes * 60)
    csv_path = tmp / "soak.csv"
    with csv_path.open("w", encoding="utf-8", newline="") as fh:
        write_csv(iter(generate(n, seed=args.seed)), fh)
    print(f"bench soak: {n} entries at {rate:.0f}/s for {args.minutes} min; SIGKILL a worker every "
          f"{args.kill_every:.0f}s; broker restart at half time; logs {tmp}", flush=True)

    ensure_topics(settings)
    pipe = Pipeline(settings, tmp / "logs", static_membership=not args.dynamic_membership)
    monitor = Monitor(pipe)
    faults: list[tuple[str, float]] = []
    result: dict[str, Any] = {}
    cfg = ServiceConfig.from_env()

    def produce() -> None:
        result["summary"] = produce_file(settings, csv_path, rate=rate, progress=False, keep_ids=True)

    try:
        pipe.start("work", "worker-1")
        pipe.start("work", "worker-2")
        pipe.start("sink")
        time.sleep(10)  # joined and assigned before the clock starts
        monitor.start()
        producer = threading.Thread(target=produce, daemon=True)
        t0 = time.monotonic()
        producer.start()
        end = t0 + args.minutes * 60
        next_kill = t0 + args.kill_every
        broker_at = None if args.no_broker_restart else t0 + args.minutes * 30 + args.kill_every / 2
        victim = 1
        while time.monotonic() < end and producer.is_alive():
            now = time.monotonic()
            if now >= next_kill:
                name = f"worker-{victim}"
                pipe.stop(name, signal.SIGKILL, timeout=10)
                pipe.start("work", name)
                faults.append((f"SIGKILL {name}", now))
                print(f"  {now - t0:6.0f}s  SIGKILL {name}, restarted", flush=True)
                victim = 3 - victim
                next_kill += args.kill_every
            if broker_at is not None and now >= broker_at:
                figures["broker_partitions"] = broker_partitions(settings)  # what the restart reloads
                kafka_service.process(cfg).stop(timeout_s=60)
                kafka_service.start(cfg)
                kafka_service.wait(cfg)
                faults.append(("broker restart", now))
                print(f"  {now - t0:6.0f}s  broker restarted ({time.monotonic() - now:.0f}s, "
                      f"{figures['broker_partitions']} partitions)", flush=True)
                broker_at = None
            time.sleep(0.5)
        producer.join()
        pipe.wait_caught_up(900)
        elapsed = time.monotonic() - t0
    finally:
        monitor.stopped.set()
        pipe.stop_all()
    summary = result["summary"]
    rec = pipe.reconcile(summary.entry_ids or [])
    figures.update(
        produced=rec["produced"], documents=rec["documents"], dead_lettered=rec["dead_lettered_entries"],
        producer_dead_lettered=summary.dead_lettered, lost=len(rec["lost"]), in_both=rec["in_both"],
        duplicate_documents=rec["collection_count"] - rec["documents"],
        reconciled=rec["documents"] + rec["dead_lettered_entries"] == rec["produced"] and not rec["lost"],
        seconds=round(elapsed, 1), max_lag=max((lag for _, lag in monitor.samples), default=None),
    )
    recov = {f"{i + 1}: {what}": monitor.recovery_s(t) for i, (what, t) in enumerate(faults)}
    figures["lag_recovery_s"] = recov
    known = [v for v in recov.values() if v is not None]
    figures["max_lag_recovery_s"] = max(known) if len(known) == len(recov) and known else None
    docs = list(pipe.collection().find({}, {"written_at_ms": 1, "produced_at_ms": 1}))
    lat_all, lat_steady = [], []
    fault_ms = [(t - t0) * 1000 for _, t in faults]
    t0_ms = None
    if docs:
        t0_ms = min(d["produced_at_ms"] for d in docs if "produced_at_ms" in d)
    for d in docs:
        if "written_at_ms" not in d or "produced_at_ms" not in d:
            continue
        lat = d["written_at_ms"] - d["produced_at_ms"]
        lat_all.append(lat)
        rel = d["produced_at_ms"] - (t0_ms or 0)
        if not any(f <= rel <= f + args.fault_window * 1000 for f in fault_ms):
            lat_steady.append(lat)
    figures.update(p50_ms=round(_pct(lat_all, 50)), p99_ms=round(_pct(lat_all, 99)),
                   steady_p50_ms=round(_pct(lat_steady, 50)), steady_p99_ms=round(_pct(lat_steady, 99)),
                   faults=len(faults))
    with (tmp / "lag.csv").open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["seconds", "lag"])
        w.writerows((round(t - t0, 1), lag) for t, lag in monitor.samples)
    print(f"lag samples: {tmp / 'lag.csv'}")
    try:
        pipe.collection().database.client.drop_database(settings.mongo_database)
    except Exception as exc:  # noqa: BLE001 - the figures still count
        print(f"warning: could not drop {settings.mongo_database}: {exc}")
    delete_topics(settings, f"{base}-")
    print()
    return report(figures, args.json)
