"""``bench pipeline`` against the real servers: throughput, latency, baseline, and CPU per component."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from extractor.config import REPO_ROOT

pytestmark = pytest.mark.integration


def test_bench_pipeline_reports_cpu_per_component(services, tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    svg = tmp_path / "worker.svg"
    proc = subprocess.run(
        [sys.executable, "-m", "extractor", "bench", "pipeline", "--entries", "1500", "--latency-seconds", "1",
         "--warmup", "1", "--json", str(out), "--profile", str(svg)],
        cwd=str(REPO_ROOT), capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    figures = json.loads(out.read_text())
    assert figures["warmup_entries"] == 1500 and "warm-up: 1500 entries" in proc.stdout  # one run first, not counted
    cpu = figures["cpu_ms_per_entry"]
    assert set(cpu) == {"1 worker", "2 workers", "baseline"}
    for col, components in (("1 worker", {"worker-1"}), ("2 workers", {"worker-1", "worker-2"})):
        assert components | {"sink", "producer", "broker", "ferretdb", "postgresql"} <= set(cpu[col])
        assert all(cpu[col][w] > 0 for w in components)  # the chain runs there
        assert cpu[col]["total"] == pytest.approx(sum(v for k, v in cpu[col].items() if k != "total"), abs=0.01)
    assert {"consumer", "producer", "broker", "ferretdb", "postgresql"} <= set(cpu["baseline"])
    assert cpu["baseline"]["consumer"] > 0
    assert figures["cpu_ms_per_entry_total_2_workers"] == cpu["2 workers"]["total"]
    assert "CPU ms/entry" in proc.stdout  # the table is printed
    assert figures["profile"] == str(svg) and svg.read_text().lstrip().startswith("<?xml")
