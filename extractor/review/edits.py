"""Reviewers' decisions become lexicon rows: validated like ``python -m extractor lexicon check`` and written
atomically into ``reviewed_edits.tsv`` of the lexicon directory.

A row is ``term label kind canonical code code_system reviewer reviewed_at entry_id``: ``kind`` ``term`` is a
lexicon term (matched like ``curated_terms.tsv``), ``substance``/``state``/``generic``/``food`` a non-entity
(``non_entities.tsv``'s kinds). The provenance is the reviewer, the time and the entry id, never the entry's text.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from extractor.chain.lexicon import HEADERS, REVIEWED_EDITS, REVIEWED_KINDS, LexiconError, norm_key, read_tsv
from extractor.chain.model import CODE_SYSTEMS
from extractor.stream.lexicon_updates import staged_dir, write_atomic

COLUMNS = HEADERS[REVIEWED_EDITS]
LABELS = ("ILLNESS", "MEDICINE")
FILE_HEADER = (
    "# Decisions of the review console (python -m extractor review), published to the workers; see README.md.\n"
    "# kind: term (a lexicon term, matched like curated_terms.tsv) or a non_entities.tsv kind (substance, state,"
    " generic, food)\n"
)


@dataclass(frozen=True)
class Edit:
    term: str
    label: str
    kind: str
    canonical: str = ""
    code: str = ""
    code_system: str = ""
    reviewer: str = ""
    reviewed_at: str = ""
    entry_id: str = ""

    def key(self) -> tuple[str, str]:
        return norm_key(self.term), self.label

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


def row_errors(edit: Edit) -> list[str]:
    """What is wrong with one row on its own (the whole-directory check is :func:`validate`)."""
    errors = []
    for name in COLUMNS:
        value = getattr(edit, name)
        if any(c in value for c in "\t\r\n"):
            errors.append(f"{name}: tabs and line breaks are not allowed")
    if not edit.term.strip() or edit.term != edit.term.strip() or not norm_key(edit.term):
        errors.append("term: empty, surrounding whitespace, or no word characters")
    if edit.label not in LABELS:
        errors.append(f"label: {edit.label!r} not one of {list(LABELS)}")
    if edit.kind not in REVIEWED_KINDS:
        errors.append(f"kind: {edit.kind!r} not one of {list(REVIEWED_KINDS)}")
    if edit.kind == "substance" and edit.label != "MEDICINE":
        errors.append("kind: substance takes label MEDICINE")
    if edit.code_system and edit.code_system not in CODE_SYSTEMS:
        errors.append(f"code_system: {edit.code_system!r} not one of {list(CODE_SYSTEMS)}")
    if edit.code and not edit.code_system:
        errors.append("code_system: a code needs its code system")
    if len(edit.term) > 200:
        errors.append("term: longer than 200 characters")
    return errors


def render(rows: Iterable[Edit]) -> str:
    lines = [FILE_HEADER + "\t".join(COLUMNS)]
    lines += ["\t".join(getattr(r, c) for c in COLUMNS) for r in rows]
    return "\n".join(lines) + "\n"


def read_rows(path: Path) -> list[Edit]:
    if not path.is_file():
        return []
    return [Edit(**{c: r[c] for c in COLUMNS}) for _, r in read_tsv(path, COLUMNS)]


def merged(existing: Sequence[Edit], pending: Sequence[Edit]) -> list[Edit]:
    """The file after publishing ``pending``: a pending row replaces an existing one of the same term and label
    (a later decision wins), otherwise it is appended."""
    out = {e.key(): e for e in existing}
    for e in pending:
        out.pop(e.key(), None)
        out[e.key()] = e
    return list(out.values())


def validate(lexicon_dir: Path, rows: Sequence[Edit]) -> tuple[list[str], list[str]]:
    """``lexicon check`` of the lexicon directory with ``reviewed_edits.tsv`` holding ``rows``: (errors,
    warnings), each naming ``file:line``. Only messages about the reviewed file are returned (the others are the
    directory's own and ``lexicon check`` reports them)."""
    from extractor.tools.lexicon_check import check

    errors: list[str] = []
    for i, r in enumerate(rows):
        errors += [f"{REVIEWED_EDITS}: row {i + 1} ({r.term!r}): {msg}" for msg in row_errors(r)]
    if errors:
        return errors, []
    with tempfile.TemporaryDirectory(prefix="review-check-") as tmp:
        d = staged_dir(lexicon_dir, render(rows), Path(tmp) / "lexicons")
        errs, warns = check(d)
    mine = [e for e in errs if REVIEWED_EDITS in e]
    return mine, [w for w in warns if REVIEWED_EDITS in w]


__all__ = ["COLUMNS", "Edit", "LexiconError", "merged", "read_rows", "render", "row_errors", "staged_dir",
           "validate", "write_atomic"]
