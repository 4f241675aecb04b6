"""CPU-time throughput of the chain: entries per CPU-second (process_time), less sensitive to other jobs than
wall-clock time.

    python scripts/bench_cpu.py LABEL   # run from the checkout whose chain you want to measure (cwd on sys.path)
"""
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path.cwd()))
from extractor import Chain, load_settings
from extractor.tools.generate import generate

rows = list(generate(5000, seed=3))
texts = [r["medical_entry"] for r in rows]
chain = Chain.from_settings(load_settings())
chain.extract_many(texts[:500])
t0, w0 = time.process_time(), time.perf_counter()
for i in range(0, len(texts), 256):
    chain.extract_many(texts[i:i+256])
cpu, wall = time.process_time() - t0, time.perf_counter() - w0
print(f"{sys.argv[1]}: {len(texts)} entries, CPU {cpu:.2f} s -> {len(texts)/cpu:,.0f} entries per CPU-second "
      f"(wall {wall:.1f} s)")
