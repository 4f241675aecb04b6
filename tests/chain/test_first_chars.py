"""A regex guarded by its first characters finds exactly the matches of the pattern alone
(extractor.chain.first_chars)."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import pytest

from extractor.chain import calibration
from extractor.chain.first_chars import first_chars, guarded
from extractor.tools.generate import EntryGenerator

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data" / "train"


def _texts() -> list[str]:
    texts = [r["medical_entry"] for r in EntryGenerator(5).rows(2000)]
    texts += ["A 45-year-old man PRESENTED with chest pain; CT revealed a mass (Fig. 2).", "her", "", "Ｈer ſhe ＫK",
              "(normal range 3-5)", "In his early 40s he underwent ECHO", "٣-year-old"]
    for name in ("maccrobat_dev.csv", "chia_dev.csv", "bc5cdr_dev.csv", "ncbi_disease_dev.csv"):
        path = SHARED / name
        if path.is_file():  # the dev sets beside the repo, when they are there
            with path.open(newline="", encoding="utf-8") as fh:
                texts += [r.get("text") or r.get("medical_entry") or "" for r in csv.DictReader(fh)]
    return texts


def test_the_narrative_cues_match_exactly_as_without_the_guard() -> None:
    plain = re.compile(calibration._NARRATIVE.pattern.split(")(?:", 1)[1][:-1], re.IGNORECASE)
    assert calibration._NARRATIVE.pattern.startswith("(?=[")  # the guard is on
    for t in _texts():
        assert [m.span() for m in calibration._NARRATIVE.finditer(t)] == [m.span() for m in plain.finditer(t)], t


@pytest.mark.parametrize("pattern, expected", [
    (r"\bab|c[de]|\d+x", ({"a", "c"}, {r"\d"})),
    (r"(?:x?y)z", ({"x", "y"}, set())),
    (r"\bfoo(?:bar)?", ({"f"}, set())),
])
def test_first_chars(pattern: str, expected: tuple[set[str], set[str]]) -> None:
    assert first_chars(pattern) == expected


@pytest.mark.parametrize("pattern", [r"a?", r"(?=a)b", r"[^a]b", r"(?<=a)b"])
def test_patterns_it_cannot_follow_stay_as_they_are(pattern: str) -> None:
    compiled = re.compile(pattern)
    assert guarded(compiled) is compiled
