"""``python -m extractor bench backfill`` end to end on a few rows (its own process: it starts and stops Spark)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from extractor.config import REPO_ROOT


@pytest.mark.slow
def test_bench_backfill_reports_both_sides_and_the_side_by_side_reference(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    run = subprocess.run([sys.executable, "-m", "extractor", "bench", "backfill", "--rows", "400", "--json", str(out)],
                         capture_output=True, text=True, timeout=600, cwd=REPO_ROOT,
                         env={**os.environ, "PYTHONPATH": str(REPO_ROOT)})
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-3000:]
    f = json.loads(out.read_text())
    assert f["rows"] == 400 and f["spark_reconciled"] is True
    for key in ("one_process_s", "side_by_side_s", "side_by_side_cpu_s", "ratio_side_by_side_to_one_process",
                "spark_s", "ratio_spark_to_one_process", "chain_cpu_us_per_row", "spark_jvm_cpu_s",
                "spark_overhead_cpu_us_per_row_measured", "spark_overhead_cpu_us_per_row_vs_side_by_side"):
        assert isinstance(f[key], (int, float)), key
    # two forked processes did the one process's work: some CPU, each text once
    assert f["side_by_side_cpu_s"] > 0 and f["ratio_side_by_side_to_one_process"] > 0
    assert "read=400" in f["spark_summary"]
    # the one process ran in two halves around Spark: both rates, and the time is their sum
    assert len(f["one_process_halves_entries_per_s"]) == 2 and f["one_process_drift"] > 0
    assert f["one_process_entries_per_s"] == pytest.approx(400 / f["one_process_s"], rel=0.05)
