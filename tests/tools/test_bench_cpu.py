"""CPU per component (extractor/tools/bench/cpu.py): real processes, read from /proc."""

from __future__ import annotations

import subprocess
import sys
import time

from extractor.tools.bench.cpu import CpuMeter, format_table, per_entry_ms, tree_cpu_seconds

BURN = "import time\nt=time.process_time()\nwhile time.process_time()-t<{s}: pass\n"


def test_a_process_tree_counts_its_children_live_and_reaped() -> None:
    # a parent that starts a CPU-burning child, waits for it (reaped), then starts another it leaves running
    code = (
        "import subprocess,sys,time\n"
        f"subprocess.run([sys.executable,'-c',{BURN.format(s=0.4)!r}])\n"
        f"p=subprocess.Popen([sys.executable,'-c',{BURN.format(s=0.4)!r}+'time.sleep(30)'])\n"
        "print('GO',flush=True); time.sleep(30)\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert parent.stdout is not None and parent.stdout.readline().strip() == "GO"
        time.sleep(0.8)  # the second child burns its 0.4 s
        total = tree_cpu_seconds(parent.pid)
        assert total is not None and total >= 0.7  # both children, the reaped one and the live one
    finally:
        parent.kill()
        parent.wait()
    assert tree_cpu_seconds(parent.pid) is None  # gone


def test_the_meter_reports_what_each_component_used_between_start_and_stop() -> None:
    burner = subprocess.Popen([sys.executable, "-c", "print('GO',flush=True)\n" + BURN.format(s=0.5)],
                              stdout=subprocess.PIPE, text=True)
    idle = subprocess.Popen([sys.executable, "-c", "import time; print('GO',flush=True); time.sleep(30)"],
                            stdout=subprocess.PIPE, text=True)
    try:
        for p in (burner, idle):
            assert p.stdout is not None and p.stdout.readline().strip() == "GO"
        meter = CpuMeter({"burner": lambda: [burner.pid], "idle": lambda: [idle.pid], "absent": lambda: []})
        meter.start()
        time.sleep(0.4)
        used = meter.stop()
    finally:
        for p in (burner, idle):
            p.kill()
            p.wait()
    assert set(used) == {"producer", "burner", "idle"}  # a component with no process is left out
    assert used["burner"] > 0.2 and used["idle"] < 0.1


def test_per_entry_and_table() -> None:
    ms = per_entry_ms({"worker-1": 2.0, "broker": 0.5}, 1000)
    assert ms == {"worker-1": 2.0, "broker": 0.5, "total": 2.5}
    lines = format_table({"1 worker": ms, "baseline": {"consumer": 1.0, "total": 1.0}})
    assert lines[0].split() == ["CPU", "ms/entry", "1", "worker", "baseline"]
    assert lines[-1].split() == ["total", "2.500", "1.000"] and "-" in lines[1].split()
