"""``python -m extractor bench chain --lengths``: the long-note benchmark runs and writes its figures."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_bench_chain_lengths_writes_per_length_figures_and_the_ratio(tmp_path: Path) -> None:
    out = tmp_path / "lengths.json"
    proc = subprocess.run(
        [sys.executable, "-m", "extractor", "bench", "chain", "--lengths", "100,1000,3000", "--notes", "3",
         "--rounds", "2", "--json", str(out)],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    figures = json.loads(out.read_text())
    assert figures["rounds"] == 2
    assert set(figures["lengths"]) == {"100", "1000", "3000"}
    for row in figures["lengths"].values():
        assert row["notes_per_s"] > 0 and row["chars_per_s"] > 0 and row["entities_per_note"] > 0
    assert figures["ratio_chars_per_s_3000_vs_1000"] > 0
    assert figures["peak_rss_mb"] > 0


def test_bench_notes_have_the_asked_length(tmp_path: Path) -> None:
    from extractor.tools.bench.chain import make_notes

    notes = make_notes([100, 5000], 4)
    assert all(len(n) == 100 for n in notes[100]) and all(len(n) == 5000 for n in notes[5000])
    own = tmp_path / "notes.csv"
    own.write_text("patient_id,medical_entry,timestamp\np1,Hx of HTN.,2024-01-01\np2,On lisinopril.,2024-01-02\n")
    notes = make_notes([60], 2, own, "\n")
    assert notes[60][0].startswith("Hx of HTN.\nOn lisinopril.\nHx of HTN.") and len(notes[60][0]) == 60
