"""``python -m extractor bench backfill``: the Spark backfill against one process calling ``extract_many``.

Both sides get the same generated CSV rows. One process: the chain loaded once (load time reported apart), then
``extract_many`` over every entry in batches of ``batch_size``, half of them before Spark and half after (the
machine's speed drifts within minutes: the two halves bracket the Spark run, and their rates are printed); then
the same in two processes side by side (forked with the chain, every other text each: what two cores of this
machine give two chains at once, without Spark).
Spark: a ``local[N]`` session started first (its JVM start-up reported apart), then the whole backfill (CSV parse,
the chain loaded in each Python worker, ``extract_many``, documents and dead letters as Parquet). Printed: entries/s
each way and their ratios, and what Spark costs per row on top of the chain: ``(cores x Spark seconds -
one-process seconds) / rows`` in CPU microseconds (JVM, Python workers, serialisation, Parquet), both from the wall
clock and as measured CPU time of the JVM and its Python workers (/proc), against the one process and against the
two side by side, plus the machine's load average, because on a shared machine the other processes take cores from
Spark and from the plain processes alike.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from extractor.tools.bench.report import report


def configure_backfill_parser(p: argparse.ArgumentParser) -> None:
    p.add_argument("--rows", type=int, default=200_000, help="generated entries (default 200000)")
    p.add_argument("--master", default="local[2]", help="Spark master (default local[2])")
    p.add_argument("--seed", type=int, default=11)
    p.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    p.add_argument("--workdir", type=Path, default=None, help="where the CSV and the output go (default: a temp dir)")


def _cores(master: str) -> int:
    inside = master[master.find("[") + 1 : master.find("]")] if "[" in master else "1"
    return os.cpu_count() or 1 if inside == "*" else int(inside.split(",")[0])


def _tree_cpu_s(root: int, own_only: bool = False) -> float | None:
    """CPU seconds used so far by process ``root`` and all its descendants (the Spark JVM, its Python daemon and
    workers), from /proc (Linux); None elsewhere. Counts reaped children too (cutime, cstime). ``own_only``:
    the root process alone (the JVM), without its children."""
    proc = Path("/proc")
    if not (proc / str(root)).is_dir():
        return None
    stats: dict[int, tuple[int, float]] = {}
    for d in proc.iterdir():
        if d.name.isdigit():
            try:
                fields = (d / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            # after the name: state ppid ... utime(12) stime(13) cutime(14) cstime(15), 0-based from state
            upto = 13 if own_only and int(d.name) == root else 15
            stats[int(d.name)] = (int(fields[1]), sum(int(x) for x in fields[11:upto]) / os.sysconf("SC_CLK_TCK"))
    total, todo = 0.0, [root]
    while todo:
        pid = todo.pop()
        total += stats.get(pid, (0, 0.0))[1]
        if own_only:
            break
        todo.extend(p for p, (ppid, _) in stats.items() if ppid == pid)
    return total


def _side_by_side(chain: Any, texts: list[str], batch_size: int, processes: int) -> tuple[float, float]:
    """``extract_many`` over ``texts`` in ``processes`` forked processes at once (text i in process i mod n):
    (wall seconds until the last ends, their CPU seconds together)."""
    import gc

    gc.collect()
    t0 = time.perf_counter()
    children = []
    for k in range(processes):
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: its share, then its CPU time through the pipe
            os.close(r)
            mine = texts[k::processes]
            cpu0 = time.process_time()
            for i in range(0, len(mine), batch_size):
                chain.extract_many(mine[i : i + batch_size])
            os.write(w, f"{time.process_time() - cpu0}".encode())
            os._exit(0)
        os.close(w)
        children.append((pid, r))
    cpu = 0.0
    for pid, r in children:
        with os.fdopen(r, "rb") as fh:
            cpu += float(fh.read() or 0)
        os.waitpid(pid, 0)
    return time.perf_counter() - t0, cpu


class _OneProcess:
    """``extract_many`` over texts in this process, in batches of ``batch_size``: wall and CPU seconds summed over
    the calls of :meth:`run`, and each call's entries/s."""

    def __init__(self, chain: Any, batch_size: int) -> None:
        self.chain, self.batch_size = chain, batch_size
        self.seconds = self.cpu = 0.0
        self.rates: list[float] = []

    def run(self, texts: list[str]) -> None:
        t0, cpu0 = time.perf_counter(), time.process_time()
        for i in range(0, len(texts), self.batch_size):
            self.chain.extract_many(texts[i : i + self.batch_size])
        wall = time.perf_counter() - t0
        self.seconds += wall
        self.cpu += time.process_time() - cpu0
        self.rates.append(len(texts) / max(wall, 1e-9))


def run_backfill_bench(args: argparse.Namespace) -> int:
    from extractor.batch.backfill import backfill, spark_session
    from extractor.chain import Chain
    from extractor.config import load_settings
    from extractor.stream.producer import iter_rows
    from extractor.tools.generate import EntryGenerator, write_csv

    settings = load_settings()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="bench-backfill-"))
    work.mkdir(parents=True, exist_ok=True)
    csv_path = work / "entries.csv"
    with csv_path.open("w", encoding="utf-8", newline="") as fh:
        write_csv(EntryGenerator(args.seed).rows(args.rows), fh)
    print(f"bench backfill: {args.rows} generated entries in {csv_path}; load average {os.getloadavg()[0]:.1f}",
          flush=True)
    figures: dict[str, Any] = {"rows": args.rows, "master": args.master, "batch_size": settings.batch_size,
                               "cpu_count": os.cpu_count(), "load_average_before": round(os.getloadavg()[0], 2)}

    # one process: the same rows, the same chain, extract_many in the worker's batch size
    with csv_path.open("rb") as fh:
        texts = [r.entry.text for r in iter_rows(fh, csv_path.name, patient_id_column=settings.csv_patient_id_column,
                                                 text_column=settings.csv_text_column,
                                                 timestamp_column=settings.csv_timestamp_column) if r.entry]
    t0 = time.perf_counter()
    chain = Chain.from_settings(settings)
    figures["one_process_chain_load_s"] = round(time.perf_counter() - t0, 2)
    # one process, in two halves around the Spark run (the first half now, the second after Spark): this machine's
    # speed drifts by 10-20 % within minutes, and a one-process figure taken only before Spark compared Spark
    # with another machine's speed. Their rates are reported apart (one_process_drift: second ÷ first)
    half = len(texts) // 2
    one = _OneProcess(chain, settings.batch_size)
    one.run(texts[:half])
    # the same work in two plain processes side by side (forked with the chain loaded, as Spark's daemon forks its
    # workers), every other text each: what this machine's cores give two chains at once, with no Spark at all.
    # On a shared machine two busy vCPUs often run slower each than one alone; that is not Spark's cost
    pair_s, pair_cpu = _side_by_side(chain, texts, settings.batch_size, _cores(args.master))
    figures["side_by_side_s"] = round(pair_s, 2)
    figures["side_by_side_cpu_s"] = round(pair_cpu, 2)

    # Spark: session first (JVM start-up apart), then the whole backfill
    t0 = time.perf_counter()
    spark = spark_session(args.master, app_name="bench-backfill", conf={"spark.ui.enabled": "false"})
    figures["spark_session_start_s"] = round(time.perf_counter() - t0, 2)
    out = work / "out"
    jvm_pid = getattr(getattr(spark.sparkContext, "_gateway", None), "proc", None)
    jvm_pid = getattr(jvm_pid, "pid", None)
    try:
        cpu0 = _tree_cpu_s(jvm_pid) if jvm_pid else None
        jvm0 = _tree_cpu_s(jvm_pid, own_only=True) if jvm_pid else None
        own0 = time.process_time()
        t0 = time.perf_counter()
        summary = backfill(settings, csv_path, out, spark=spark)
        spark_s = time.perf_counter() - t0
        cpu1 = _tree_cpu_s(jvm_pid) if jvm_pid else None
        jvm1 = _tree_cpu_s(jvm_pid, own_only=True) if jvm_pid else None
        driver_cpu = time.process_time() - own0
    finally:
        spark.stop()
    one.run(texts[half:])  # the second half, after Spark
    del chain
    single_s = one.seconds
    figures["one_process_s"] = round(single_s, 2)
    figures["one_process_cpu_s"] = round(one.cpu, 2)
    figures["one_process_entries_per_s"] = round(len(texts) / single_s)
    figures["one_process_halves_entries_per_s"] = [round(r) for r in one.rates]
    figures["one_process_drift"] = round(one.rates[1] / one.rates[0], 2) if len(one.rates) == 2 else None
    figures["ratio_side_by_side_to_one_process"] = round(single_s / pair_s, 2)
    if cpu0 is not None and cpu1 is not None:
        spark_cpu = cpu1 - cpu0 + driver_cpu
        figures["spark_cpu_s"] = round(spark_cpu, 2)
        if jvm0 is not None and jvm1 is not None:  # the split: the JVM alone, the Python workers, this driver
            figures["spark_jvm_cpu_s"] = round(jvm1 - jvm0, 2)
            figures["spark_python_workers_cpu_s"] = round(cpu1 - cpu0 - (jvm1 - jvm0), 2)
            figures["spark_driver_cpu_s"] = round(driver_cpu, 2)
        # measured CPU beyond the chain's own: JVM, Python workers' serialisation, CSV parse, documents, Parquet
        figures["spark_overhead_cpu_us_per_row_measured"] = round(
            (spark_cpu - figures["one_process_cpu_s"]) / max(1, summary.read) * 1e6, 1)
    cores = _cores(args.master)
    figures["spark_s"] = round(spark_s, 2)
    figures["spark_entries_per_s"] = round(summary.read / spark_s)
    figures["spark_reconciled"] = summary.reconciled
    figures["spark_summary"] = summary.line()
    figures["ratio_spark_to_one_process"] = round(
        figures["spark_entries_per_s"] / figures["one_process_entries_per_s"], 2)
    figures["ratio_target"] = ">= 1.5"
    # what the cores could have done in the Spark run's wall time beyond the chain's work (idle or taken by others
    # included): the bound a ratio of `cores` would need to reach
    figures["spark_overhead_core_us_per_row_wall"] = round((cores * spark_s - single_s) / max(1, summary.read) * 1e6, 1)
    figures["chain_cpu_us_per_row"] = round(figures["one_process_cpu_s"] / max(1, len(texts)) * 1e6, 1)
    if "spark_cpu_s" in figures:  # Spark's CPU beyond the same chains run side by side without it
        figures["spark_overhead_cpu_us_per_row_vs_side_by_side"] = round(
            (figures["spark_cpu_s"] - figures["side_by_side_cpu_s"]) / max(1, summary.read) * 1e6, 1)
    if "spark_overhead_cpu_us_per_row_measured" in figures:  # the figure: Spark's CPU beyond the chain's
        figures["ratio_spark_overhead_cpu_to_chain"] = round(
            figures["spark_overhead_cpu_us_per_row_measured"] / max(1e-9, figures["chain_cpu_us_per_row"]), 2)
        figures["ratio_spark_overhead_cpu_to_chain_target"] = "<= 0.3"
    figures["load_average_after"] = round(os.getloadavg()[0], 2)
    print(summary.line())
    if args.workdir is None:
        shutil.rmtree(work, ignore_errors=True)
    return report(figures, args.json)
