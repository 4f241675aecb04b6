"""Decisions -> lexicon rows -> validation -> atomic write, and the chain honouring the reviewed file."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from extractor.chain.lexicon import REVIEWED_EDITS
from extractor.config import DEFAULT_LEXICON_DIR, load_settings
from extractor.review.edits import Edit, merged, read_rows, render, row_errors, validate, write_atomic
from extractor.stream.lexicon_updates import staged_dir

MADE_UP = "kwazzle"  # made up; the NER model guesses at "-itis" words, so none of those


def test_row_errors_name_the_column():
    assert row_errors(Edit(MADE_UP, "ILLNESS", "term")) == []
    assert any(e.startswith("label") for e in row_errors(Edit(MADE_UP, "DISEASE", "term")))
    assert any(e.startswith("kind") for e in row_errors(Edit(MADE_UP, "ILLNESS", "weird")))
    assert any(e.startswith("kind") for e in row_errors(Edit("ferritin", "ILLNESS", "substance")))
    assert any(e.startswith("term") for e in row_errors(Edit(" x ", "ILLNESS", "term")))
    assert any("tabs" in e for e in row_errors(Edit("a\tb", "ILLNESS", "term")))
    assert any(e.startswith("code_system") for e in row_errors(Edit(MADE_UP, "ILLNESS", "term", code="X1",
                                                                     code_system="SNOMED")))


def test_render_and_read_round_trip(tmp_path):
    rows = [Edit(MADE_UP, "ILLNESS", "term", "Kwazzle", "R69", "ICD-10-CM", "ann", "2026-01-01T00:00:00+00:00",
                 "e1"), Edit("vitals", "ILLNESS", "generic", reviewer="bob", entry_id="e2")]
    p = tmp_path / REVIEWED_EDITS
    p.write_text(render(rows))
    assert read_rows(p) == rows


def test_a_later_decision_replaces_an_earlier_row_of_the_same_term():
    old = [Edit(MADE_UP, "ILLNESS", "term", reviewer="a"), Edit("other", "MEDICINE", "term")]
    new = [Edit(MADE_UP.upper(), "ILLNESS", "generic", reviewer="b")]
    out = merged(old, new)
    assert [(e.term, e.kind) for e in out] == [("other", "term"), (MADE_UP.upper(), "generic")]


def test_validate_runs_the_lexicon_check_and_names_file_and_line():
    ok, _ = validate(DEFAULT_LEXICON_DIR, [Edit(MADE_UP, "ILLNESS", "term", reviewer="a")])
    assert ok == []
    # the same term twice in the reviewed file: the check's duplicate error, with the line number
    errors, _ = validate(DEFAULT_LEXICON_DIR, [Edit(MADE_UP, "ILLNESS", "term"), Edit(MADE_UP, "ILLNESS", "term")])
    assert errors and all(e.startswith(f"{REVIEWED_EDITS}:") for e in errors), errors
    assert "duplicate" in errors[0]
    # a row-level problem is reported before the directory check runs
    errors, _ = validate(DEFAULT_LEXICON_DIR, [Edit(MADE_UP, "ILLNESS", "nope")])
    assert errors and "kind" in errors[0]


def test_write_atomic_replaces_whole_file_and_leaves_no_temporary(tmp_path):
    p = tmp_path / REVIEWED_EDITS
    p.write_text("old\n")
    write_atomic(p, "new content\n")
    assert p.read_text() == "new content\n"
    assert [x.name for x in tmp_path.iterdir()] == [REVIEWED_EDITS]
    assert stat.S_IMODE(os.stat(p).st_mode) == 0o644


def test_write_atomic_keeps_the_old_file_when_writing_fails(tmp_path, monkeypatch):
    p = tmp_path / REVIEWED_EDITS
    p.write_text("old\n")

    def boom(*_a, **_k):
        raise OSError("disk full")

    monkeypatch.setattr(os, "fsync", boom)
    with pytest.raises(OSError):
        write_atomic(p, "new\n")
    assert p.read_text() == "old\n"
    assert [x.name for x in tmp_path.iterdir()] == [REVIEWED_EDITS]


def test_the_chain_matches_a_reviewed_term_and_drops_a_reviewed_non_entity(tmp_path):
    from extractor.chain import Chain

    text = f"Pt seen for {MADE_UP}. Also has vitamin D deficiency and takes metformin daily."
    settings = load_settings(stages=("regex", "lexicon"))
    before = Chain.from_settings(settings).extract(text)
    assert MADE_UP not in [e.surface for e in before.illnesses]
    assert "metformin" in [e.surface.lower() for e in before.medicines]
    rows = [Edit(MADE_UP, "ILLNESS", "term", "Kwazzle", reviewer="ann", entry_id="e1"),
            Edit("metformin", "MEDICINE", "generic", reviewer="ann", entry_id="e1")]
    d = staged_dir(DEFAULT_LEXICON_DIR, render(rows), tmp_path / "lexicons")
    after = Chain.from_settings(settings.model_copy(update={"lexicon_dir": d})).extract(text)
    hit = [e for e in after.illnesses if e.surface == MADE_UP]
    assert hit and hit[0].canonical == "Kwazzle" and hit[0].source == f"{REVIEWED_EDITS}:4"
    assert "metformin" not in [e.surface.lower() for e in after.medicines]


def test_shipped_reviewed_file_is_valid_and_lexicon_check_covers_it():
    from extractor.tools.lexicon_check import check

    assert (Path(DEFAULT_LEXICON_DIR) / REVIEWED_EDITS).is_file()
    errors, _ = check(Path(DEFAULT_LEXICON_DIR))
    assert errors == []
