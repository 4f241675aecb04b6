"""Findings in narrative reports: "a 3-cm mass", "multiple nodules", "bilateral infiltrates", "crackles".

A case report, a discharge summary or an admission note describes one patient, and what it finds on examination
and imaging (a mass, a lesion, nodules, infiltrates, consolidation, thickening, a murmur) is that patient's sign.
In an abstract or an eligibility criterion the same words are usually generic ("lesions were induced in rats",
"a lesion of any kind"), which is why the lexicon's generated stop-terms (mined from PubMed and Chia TRAIN) keep
them out. So the words of ``lexicons/findings.tsv`` count as illnesses only in a text that reads as a narrative
report about one patient (:func:`extractor.chain.calibration.narrative`), and only where no other entity
already covers them.

``findings.tsv``: ``term canonical code code_system note``; ``canonical`` ``-`` marks a phrase that is *not* a
finding and hides the finding word inside it ("body mass index", "mass spectrometry", "muscle mass"). Terms match
case-insensitively on word boundaries, the longest first. The entity's method is ``lexicon`` with
``details["match"] = "finding"`` (its own calibration buckets) and its source ``findings.tsv:LINE``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from extractor.chain.calibration import narrative
from extractor.chain.model import CODE_SYSTEMS, ILLNESS, Entity
from extractor.chain.segments import SpanIndex
from extractor.chain.tsv import tsv_rows

FINDINGS_FILE = "findings.tsv"
COLUMNS = ("term", "canonical", "code", "code_system", "note")
PRIOR = 0.6  # provisional confidence; models/calibration.json refines it
BLOCK = "-"
_WORD = re.compile(r"\w[\w-]*")  # a hyphenated word is one ("ground-glass", "space-occupying")


class FindingsError(ValueError):
    """A bad row in findings.tsv (the message names file:line)."""


@dataclass(frozen=True, slots=True)
class Finding:
    term: str
    canonical: str  # "-": a blocking phrase
    code: str | None
    code_system: str | None
    line: int


def load_findings(path: Path) -> list[Finding]:
    """Rows of findings.tsv; errors name file:line."""
    out: list[Finding] = []
    seen: dict[str, int] = {}
    for where, fields in tsv_rows(path, COLUMNS, FindingsError):
        lineno = int(where.rsplit(":", 1)[1])
        term, canonical, code, system = fields[0], fields[1], fields[2] or None, fields[3] or None
        key = " ".join(term.lower().split())
        if not key or not canonical:
            raise FindingsError(f"{where}: term and canonical are required")
        if key in seen:
            raise FindingsError(f"{where}: duplicate term {term!r} (first at line {seen[key]})")
        if (code is None) != (system is None):
            raise FindingsError(f"{where}: code and code_system go together")
        if system is not None and system not in CODE_SYSTEMS:
            raise FindingsError(f"{where}: code_system {system!r} is not one of {', '.join(CODE_SYSTEMS)}")
        seen[key] = lineno
        out.append(Finding(key, canonical, code, system, lineno))
    return out


class Findings:
    """Adds the findings of a narrative report (see the module doc) to the chain's entities."""

    def __init__(self, rows: Sequence[Finding]) -> None:
        self.rows = {r.term: r for r in rows}
        # first word -> (words, row), longest first: "pleural thickening" before "thickening"
        self._first: dict[str, list[tuple[tuple[str, ...], Finding]]] = {}
        for r in sorted(rows, key=lambda r: -len(r.term.split())):
            words = tuple(r.term.split())
            self._first.setdefault(words[0], []).append((words, r))

    @classmethod
    def from_dir(cls, lexicon_dir: Path) -> Findings | None:
        path = Path(lexicon_dir) / FINDINGS_FILE
        return cls(load_findings(path)) if path.is_file() else None

    def add(self, text: str, entities: Sequence[Entity], report: bool | None = None) -> list[Entity]:
        """``entities`` followed by a finding entity for each finding word no entity covers, in a narrative report
        (``report``: already decided by the caller; None: decided here)."""
        if not self._first or not (narrative(text) if report is None else report):
            return list(entities)
        toks = [(m.start(), m.end(), m.group(0).lower()) for m in _WORD.finditer(text)]
        taken = SpanIndex(entities)
        out = list(entities)
        i, n = 0, len(toks)
        while i < n:
            hit = None
            for words, row in self._first.get(toks[i][2], ()):
                k = len(words)
                if i + k <= n and all(toks[i + j][2] == w for j, w in enumerate(words)) and all(
                    not text[toks[i + j][1] : toks[i + j + 1][0]].strip() for j in range(k - 1)
                ):
                    hit = (k, row)
                    break
            if hit is None:
                i += 1
                continue
            k, row = hit
            start, end = toks[i][0], toks[i + k - 1][1]
            i += k
            if row.canonical == BLOCK or taken.overlapping(start, end):
                continue
            out.append(Entity(
                text[start:end], start, end, ILLNESS, "lexicon", f"{FINDINGS_FILE}:{row.line}", PRIOR,
                canonical=row.canonical, code=row.code, code_system=row.code_system, score=100.0,
                details={"match": "finding"},
            ))
        return out
