"""Findings in narrative reports: "a 3-cm mass", "multiple nodules", "bilateral infiltrates", "crackles".

A case report, a discharge summary or an admission note describes one patient, and what it finds on examination
and imaging (a mass, a lesion, nodules, infiltrates, consolidation, thickening, a murmur) is that patient's sign.
In an abstract or an eligibility criterion the same words are usually generic ("lesions were induced in rats",
"a lesion of any kind"), which is why the lexicon's generated stop-terms (mined from PubMed and Chia TRAIN) keep
them out. So the words of ``lexicons/findings.tsv`` count as illnesses only in a text that reads as a narrative
report about one patient (:func:`extractor.chain.calibration.narrative`), and only where no other entity
already covers them.

A change word next to an organ word (``lexicons/organ_changes.tsv``) is a finding too, in the same texts and on
the same terms: "a dilated left ventricle", "an enlarged left inguinal lymph node", "the left atrium (LA) was
dilated", "dilated and hypertrophied LV" (``details["match"] = "organ change"``).

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
ORGAN_CHANGES_FILE = "organ_changes.tsv"
COLUMNS = ("term", "canonical", "code", "code_system", "note")
CHANGE_COLUMNS = ("term", "kind", "note")
CHANGE_KINDS = ("change", "organ")
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


def load_organ_changes(path: Path) -> tuple[list[str], list[str]]:
    """(change words, organ words) of organ_changes.tsv; errors name file:line."""
    changes: list[str] = []
    organs: list[str] = []
    seen: dict[str, str] = {}
    for where, fields in tsv_rows(path, CHANGE_COLUMNS, FindingsError):
        term, kind = " ".join(fields[0].split()), fields[1]
        if not term:
            raise FindingsError(f"{where}: empty term")
        if kind not in CHANGE_KINDS:
            raise FindingsError(f"{where}: kind must be one of {', '.join(CHANGE_KINDS)}, got {kind!r}")
        key = term if term.isupper() else term.lower()
        if key in seen:
            raise FindingsError(f"{where}: duplicate term {term!r} (first at {seen[key]})")
        seen[key] = where
        (changes if kind == "change" else organs).append(term)
    return changes, organs


_DEGREE = (
    r"(?:(?:mildly|moderately|severely|markedly|slightly|massively|grossly|significantly|diffusely|also|very)\s+)*"
)
_LINK = r"(?:was|were|is|are|appeared|appears|became|remained|looked|seemed)"
_NOT_MODIFIER = r"(?!(?:and|or|with|without|in|of|the|a|an|was|were|is|are|by|to|on|at|no|not)\b)"


class OrganChanges:
    """Finds "dilated left ventricle" / "LA was dilated" spans from change and organ words."""

    def __init__(self, changes: Sequence[str], organs: Sequence[str]) -> None:
        def alt(words: Sequence[str]) -> str:
            ci = sorted((w for w in words if not w.isupper()), key=len, reverse=True)
            cs = sorted((w for w in words if w.isupper()), key=len, reverse=True)
            parts = []
            if ci:
                parts.append("(?i:" + "|".join(r"\s+".join(map(re.escape, w.split())) for w in ci) + ")")
            if cs:
                parts.append("|".join(map(re.escape, cs)))
            return "(?:" + "|".join(parts) + ")"

        change, organ = alt(changes), alt(organs)
        self._attributive = re.compile(
            rf"\b(?P<c>{change})(?:\s*(?:,|(?i:and|or))\s*{change})?\s+"
            rf"(?:{_NOT_MODIFIER}[A-Za-z][\w-]*\s+){{0,2}}?(?P<o>{organ})(?![\w-])"
        )
        self._predicative = re.compile(
            rf"(?<![\w-])(?P<o>{organ})(?:\s*\([^()\n]{{1,30}}\))?\s+(?i:{_LINK})\s+(?i:{_DEGREE})(?P<c>{change})\b"
        )

    def spans(self, text: str) -> list[tuple[int, int, str]]:
        """(start, end, canonical) of each organ change, the attributive ones first."""
        out = []
        for pat in (self._attributive, self._predicative):
            for m in pat.finditer(text):
                o = m.group("o")
                canonical = f"{m.group('c').lower()} {o if o.isupper() else ' '.join(o.lower().split())}"
                out.append((m.start(), m.end(), canonical))
        return out


class Findings:
    """Adds the findings of a narrative report (see the module doc) to the chain's entities."""

    def __init__(self, rows: Sequence[Finding], changes: OrganChanges | None = None) -> None:
        self.changes = changes
        self.rows = {r.term: r for r in rows}
        # first word -> (words, row), longest first: "pleural thickening" before "thickening"
        self._first: dict[str, list[tuple[tuple[str, ...], Finding]]] = {}
        for r in sorted(rows, key=lambda r: -len(r.term.split())):
            words = tuple(r.term.split())
            self._first.setdefault(words[0], []).append((words, r))

    @classmethod
    def from_dir(cls, lexicon_dir: Path) -> Findings | None:
        path = Path(lexicon_dir) / FINDINGS_FILE
        if not path.is_file():
            return None
        changes_path = Path(lexicon_dir) / ORGAN_CHANGES_FILE
        changes = OrganChanges(*load_organ_changes(changes_path)) if changes_path.is_file() else None
        return cls(load_findings(path), changes)

    def add(self, text: str, entities: Sequence[Entity], report: bool | None = None) -> list[Entity]:
        """``entities`` followed by a finding entity for each finding word no entity covers, in a narrative report
        (``report``: already decided by the caller; None: decided here)."""
        if not self._first or not (narrative(text) if report is None else report):
            return list(entities)
        toks = [(m.start(), m.end(), m.group(0).lower()) for m in _WORD.finditer(text)]
        taken = SpanIndex(entities)
        out = list(entities)
        if self.changes is not None:
            added: list[tuple[int, int]] = []
            for start, end, canonical in self.changes.spans(text):
                if taken.overlapping(start, end) or any(s < end and start < e for s, e in added):
                    continue
                added.append((start, end))
                out.append(Entity(
                    text[start:end], start, end, ILLNESS, "lexicon", ORGAN_CHANGES_FILE, PRIOR,
                    canonical=canonical, score=100.0, details={"match": "organ change"},
                ))
            if added:
                taken = SpanIndex(out)
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
