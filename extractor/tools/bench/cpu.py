"""CPU time per component of a pipeline run: user + system seconds of each process and its descendants.

Used by ``bench pipeline``: a snapshot when the producer starts and one when everything is written; the difference
divided by the entries gives CPU milliseconds per entry, per component (producer, broker, each worker, the writer,
FerretDB, PostgreSQL) and in total. psutil reads ``/proc``: a component's figure is its root process, every live
descendant (PostgreSQL's backends, Connect's tasks live inside its JVM) and the children it has already reaped
(``children_user``/``children_system``), so a backend that ends between two snapshots still counts.

Local servers are found by their pid files (``python -m services``); a component whose process is not running is
left out of the table rather than reported as zero.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

import psutil

PidSource = Callable[[], Iterable[int]]


def tree_cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of ``pid``, its live descendants and its reaped children; None when it is gone."""
    try:
        root = psutil.Process(pid)
        t = root.cpu_times()
        total = t.user + t.system + t.children_user + t.children_system
        children = root.children(recursive=True)
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return None
    for child in children:
        try:
            c = child.cpu_times()
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue  # it ended just now: its parent reaps it and counts it from then on
        total += c.user + c.system
    return total


def self_cpu_seconds() -> float:
    """This process's own CPU seconds (all its threads: the producer's librdkafka threads included)."""
    t = psutil.Process(os.getpid()).cpu_times()
    return t.user + t.system


def service_pids(names: Iterable[str]) -> dict[str, PidSource]:
    """Pid sources for the local servers of ``python -m services`` (kafka, ferretdb, postgres, connect)."""
    from services.config import ServiceConfig
    from services.manager import SERVICES

    cfg = ServiceConfig.from_env()

    def source(name: str) -> PidSource:
        def pids() -> list[int]:
            pid = SERVICES[name].process(cfg).pid()
            return [pid] if pid is not None else []

        return pids

    return {name: source(name) for name in names}


@dataclass
class CpuMeter:
    """Snapshots of CPU seconds per component; ``own`` names the component this process is (the producer)."""

    components: Mapping[str, PidSource]
    own: str | None = "producer"
    _start: dict[str, float] = field(default_factory=dict)

    def snapshot(self) -> dict[str, float]:
        out: dict[str, float] = {}
        if self.own:
            out[self.own] = self_cpu_seconds()
        for name, pids in self.components.items():
            values = [v for v in (tree_cpu_seconds(p) for p in pids()) if v is not None]
            if values:
                out[name] = sum(values)
        return out

    def start(self) -> None:
        self._start = self.snapshot()

    def stop(self) -> dict[str, float]:
        """CPU seconds each component used since :meth:`start` (components seen both times)."""
        end = self.snapshot()
        return {k: max(0.0, end[k] - self._start[k]) for k in end if k in self._start}


def per_entry_ms(seconds: Mapping[str, float], entries: int) -> dict[str, float]:
    """CPU milliseconds per entry for each component, plus ``total``."""
    n = max(1, entries)
    out = {k: round(v * 1000 / n, 3) for k, v in seconds.items()}
    out["total"] = round(sum(seconds.values()) * 1000 / n, 3)
    return out


def format_table(columns: Mapping[str, Mapping[str, float]]) -> list[str]:
    """Rows ``component  ms/entry ...`` for each run (column), components in the order first seen, total last."""
    names: list[str] = []
    for col in columns.values():
        names += [k for k in col if k != "total" and k not in names]
    names.append("total")
    width = max(len(n) for n in names) + 2
    head = f"{'CPU ms/entry':<{width}}" + "".join(f"{c:>14}" for c in columns)
    rows = [head]
    for n in names:
        cells = "".join(f"{columns[c][n]:>14.3f}" if n in columns[c] else f"{'-':>14}" for c in columns)
        rows.append(f"{n:<{width}}" + cells)
    return rows


__all__ = ["CpuMeter", "format_table", "per_entry_ms", "service_pids", "tree_cpu_seconds"]
