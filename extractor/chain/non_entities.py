"""What is not an illness or a medicine here: lab analytes, states, generic words (lexicons/non_entities.tsv).

A MEDICINE entity whose surface or canonical name is a ``substance`` row (creatinine, glucose, HBsAg) moves to the
result's ``substances`` list; one matching a ``state`` / ``generic`` / ``food`` row of its label is dropped. The
file is validated with ``file:line`` messages like the other editable tables. ``normalise`` is the evaluation's
normalisation (case-fold, spaces collapsed, punctuation stripped at both ends), so training, chain and scoring
apply the same rows to the same strings.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from pathlib import Path

NON_ENTITIES_FILE = "non_entities.tsv"
REVIEWED_EDITS_FILE = "reviewed_edits.tsv"  # extractor/chain/lexicon.py REVIEWED_EDITS
COLUMNS = ("term", "label", "kind", "note")
KINDS = ("substance", "state", "generic", "food")
LABELS = ("ILLNESS", "MEDICINE")


class NonEntityError(ValueError):
    """The table is malformed; the message names file and line."""


def normalise(s: str) -> str:
    s = " ".join(s.casefold().split())
    i, j = 0, len(s)
    while i < j and unicodedata.category(s[i])[0] in "PS":
        i += 1
    while j > i and unicodedata.category(s[j - 1])[0] in "PS":
        j -= 1
    return s[i:j]


@dataclass(frozen=True, slots=True)
class NonEntities:
    kinds: dict[tuple[str, str], str]  # (label, normalised term) -> kind

    @classmethod
    def load(cls, path: Path) -> NonEntities:
        if not path.is_file():
            return cls({})
        kinds: dict[tuple[str, str], str] = {}
        lines: dict[tuple[str, str], int] = {}
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
                        raise NonEntityError(f"{where}: header must be {' | '.join(COLUMNS)}, got {fields}")
                    header = True
                    continue
                if len(fields) == 3:
                    fields.append("")
                if len(fields) != 4:
                    raise NonEntityError(f"{where}: expected 3 or 4 tab-separated fields, got {len(fields)}")
                term, label, kind, _ = fields
                key = _checked_key(where, term, label, kind)
                if key in kinds:
                    raise NonEntityError(f"{where}: duplicate term {term!r} (first on line {lines[key]})")
                kinds[key] = kind
                lines[key] = lineno
        if not header:
            raise NonEntityError(f"{path}: no header line ({' | '.join(COLUMNS)})")
        return cls(kinds)

    @classmethod
    def from_dir(cls, lexicon_dir: Path) -> NonEntities:
        """``non_entities.tsv`` plus the non-entity rows of the review console's ``reviewed_edits.tsv`` (a
        reviewer's decision wins over the hand file for the same term and label)."""
        base = cls.load(Path(lexicon_dir) / NON_ENTITIES_FILE)
        reviewed = Path(lexicon_dir) / REVIEWED_EDITS_FILE
        if not reviewed.is_file():
            return base
        return cls({**base.kinds, **load_reviewed(reviewed)})

    def kind(self, label: str, surface: str, canonical: str | None = None) -> str | None:
        """The row's kind when the surface (or, for medicines, the canonical name) is listed for ``label``."""
        if not self.kinds:
            return None
        k = self.kinds.get((label, normalise(surface)))
        if k is None and canonical and label == "MEDICINE":
            k = self.kinds.get((label, normalise(canonical)))
            if k != "substance":
                k = None  # a canonical name only moves analytes ("Hepatitis B Surface Antigens" for HBsAg)
        return k

    def terms(self, label: str, exclude_kinds: tuple[str, ...] = ()) -> set[str]:
        return {t for (lab, t), kind in self.kinds.items() if lab == label and kind not in exclude_kinds}


def _checked_key(where: str, term: str, label: str, kind: str) -> tuple[str, str]:
    """(label, normalised term) of one non-entity row; a bad row raises NonEntityError naming ``where``."""
    key = (label, normalise(term))
    if not key[1]:
        raise NonEntityError(f"{where}: empty term")
    if label not in LABELS:
        raise NonEntityError(f"{where}: label must be ILLNESS or MEDICINE, got {label!r}")
    if kind not in KINDS:
        raise NonEntityError(f"{where}: kind must be one of {', '.join(KINDS)}, got {kind!r}")
    if kind == "substance" and label != "MEDICINE":
        raise NonEntityError(f"{where}: kind substance takes label MEDICINE")
    return key


def load_reviewed(path: Path) -> dict[tuple[str, str], str]:
    """(label, normalised term) -> kind of the non-entity rows of ``reviewed_edits.tsv`` (rows of kind ``term``
    are lexicon terms). The file is validated by the lexicon loader (extractor/chain/lexicon.py)."""
    from extractor.chain.lexicon import HEADERS, REVIEWED_EDITS, LexiconError, read_tsv

    out: dict[tuple[str, str], str] = {}
    try:
        for lineno, r in read_tsv(path, HEADERS[REVIEWED_EDITS]):
            kind, label = r["kind"], r["label"]
            if kind == "term":
                continue
            out[_checked_key(f"{path.name}:{lineno}", r["term"], label, kind)] = kind
    except LexiconError as exc:
        raise NonEntityError(str(exc)) from exc
    return out


__all__ = ["NON_ENTITIES_FILE", "NonEntities", "NonEntityError", "normalise"]
