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

FINDINGS_FILE = "findings.tsv"
COLUMNS = ("term", "canonical", "code", "code_system", "note")
PRIOR = 0.6  # provisional confidence; models/calibration.json refines it
BLOCK = "-"


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
    header = False
    with path.open(encoding="utf-8", newline="") as fh:
        for lineno, raw in enumerate(fh, start=1):
            line = raw.rstrip("\r\n")
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            fields = [f.strip() for f in line.split("\t")]
            where = f"{path}:{lineno}"
            if not header:
                if tuple(fields) != COLUMNS:
                    raise FindingsError(f"{where}: header must be {' | '.join(COLUMNS)}, got {fields}")
                header = True
                continue
            if len(fields) < 2 or len(fields) > len(COLUMNS):
                raise FindingsError(f"{where}: expected 2 to {len(COLUMNS)} tab-separated fields, got {len(fields)}")
            fields += [""] * (len(COLUMNS) - len(fields))
            term, canonical, code, system = (fields[0], fields[1], fields[2] or None, fields[3] or None)
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
    if not header:
        raise FindingsError(f"{path}: no header line ({' | '.join(COLUMNS)})")
    return out


class Findings:
    """Adds the findings of a narrative report (see the module doc) to the chain's entities."""

    def __init__(self, rows: Sequence[Finding]) -> None:
        self.rows = {r.term: r for r in rows}
        terms = sorted(self.rows, key=len, reverse=True)  # longest first: "pleural thickening" before "thickening"
        body = "|".join(r"\s+".join(re.escape(w) for w in t.split()) for t in terms)
        self._re = re.compile(rf"(?<![\w-])(?:{body})(?![\w-])", re.IGNORECASE) if terms else None

    @classmethod
    def from_dir(cls, lexicon_dir: Path) -> Findings | None:
        path = Path(lexicon_dir) / FINDINGS_FILE
        return cls(load_findings(path)) if path.is_file() else None

    def add(self, text: str, entities: Sequence[Entity]) -> list[Entity]:
        """``entities`` plus a finding entity for each finding word no entity covers, in a narrative report."""
        if self._re is None or not narrative(text):
            return list(entities)
        spans = sorted((e.start, e.end) for e in entities)
        out = list(entities)
        for m in self._re.finditer(text):
            row = self.rows[" ".join(m.group(0).lower().split())]
            if row.canonical == BLOCK or any(s < m.end() and m.start() < e for s, e in spans):
                continue
            out.append(Entity(
                m.group(0), m.start(), m.end(), ILLNESS, "lexicon", f"{FINDINGS_FILE}:{row.line}", PRIOR,
                canonical=row.canonical, code=row.code, code_system=row.code_system, score=100.0,
                details={"match": "finding"},
            ))
        return out
