""""Evaluate" in the console: the evaluation suite with and without the pending lexicon rows.

Both chains share the NER model and differ only in ``reviewed_edits.tsv`` (the pending rows are staged in a
temporary lexicon directory of symbolic links; the real one is untouched). Every corpus is scored with the *same*
gold (filtered by today's non-entities), so a "not an illness" decision shows up as fewer predictions, not as a
moved goalpost. Corpora: the dev sets of ``evaluation.suite`` (when its data folder exists), the sample entries,
and the reviewed entries themselves (what reviewers accepted, corrected and added, as span gold).
"""

from __future__ import annotations

import argparse
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from extractor.config import Settings

METRICS = (("micro.strict.f1", "F1"), ("micro.strict.precision", "precision"), ("micro.strict.recall", "recall"))


@dataclass
class Measurement:
    rows: list[dict[str, Any]] = field(default_factory=list)  # corpus, n, before/after/delta per metric
    changed: list[dict[str, Any]] = field(default_factory=list)  # corpus, entry id, entities before/after
    lowered: list[str] = field(default_factory=list)  # corpora whose F1 or precision went down
    error: str | None = None


def _sets(data_dir: Path | None, extra: Sequence[Path], limit: int, lexicon_dir: Path,
          reviewed: Any = None) -> list[tuple[str, Any]]:
    from evaluation import cli
    from evaluation.data import Dataset, read_labelled
    from evaluation.suite import chemical_gold, corpora

    paths: list[tuple[str, Path]] = []
    if data_dir is not None and data_dir.is_dir() and any(data_dir.glob("*_dev.csv")):
        paths = corpora(data_dir, list(extra))
    else:
        paths = [(p.stem, p) for p in extra if p.is_file()]
    args = argparse.Namespace(raw_gold=False, lexicon_dir=str(lexicon_dir), config=None, model=None, mode=None,
                              stages=None)
    out = []
    for name, path in paths:
        ds = read_labelled(path)
        if limit:
            ds = Dataset(ds.path, ds.format, ds.examples[:limit])
        out.append((name, cli.gold_policy(args, ds, chemicals=chemical_gold(name))))
    if reviewed is not None and reviewed.examples:
        out.append(("reviewed_entries", reviewed))
    return out


def _value(row: dict[str, Any], key: str) -> float | None:
    from evaluation.suite import value

    try:
        return value(row, key)
    except (KeyError, TypeError):
        return None


def measure(settings: Settings, staged_lexicon_dir: Path, *, data_dir: Path | None, extra: Sequence[Path] = (),
            limit: int = 0, reviewed: Any = None, chain: Any = None) -> Measurement:
    """Score every corpus with the current lexicons (``settings.lexicon_dir``) and with ``staged_lexicon_dir``."""
    import contextlib
    import io

    from evaluation.suite import run_suite
    from extractor.chain import Chain

    res = Measurement()
    with contextlib.redirect_stderr(io.StringIO()):  # the suite's notes about filtered gold
        sets = _sets(data_dir, extra, limit, Path(settings.lexicon_dir), reviewed)
    before_chain = chain or Chain.from_settings(settings)
    ner = next((s for s in before_chain.stages if s.method == "ner"), None)
    after_chain = Chain.from_settings(settings.model_copy(update={"lexicon_dir": staged_lexicon_dir}),
                                      nlp=getattr(ner, "nlp", None))
    before_seen, after_seen = _Recording(before_chain), _Recording(after_chain)
    before = run_suite(before_seen, sets)
    after = run_suite(after_seen, sets)
    for name, ds in sets:
        row: dict[str, Any] = {"corpus": name, "n": len(ds.examples)}
        for key, label in METRICS:
            a, b = _value(before[name], key), _value(after[name], key)
            row[label] = (a, b, None if a is None or b is None else round(b - a, 4))
        res.rows.append(row)
        if any(row[label][2] is not None and row[label][2] < -1e-9 for _, label in METRICS[:2]):
            res.lowered.append(name)
        for ex in ds.examples:  # what each chain found, as the suite's runs recorded it (not extracted again)
            ex_a, ex_b = before_seen.found[ex.text], after_seen.found[ex.text]
            if ex_a != ex_b and len(res.changed) < 200:
                res.changed.append({"corpus": name, "entry_id": ex.entry_id,
                                    "removed": [list(x) for x in sorted(set(ex_a) - set(ex_b))],
                                    "added": [list(x) for x in sorted(set(ex_b) - set(ex_a))]})
    return res


class _Recording:
    """A chain that remembers what it found per text (label, surface), so the entries whose result changes come
    from the suite's own runs."""

    def __init__(self, chain: Any) -> None:
        self.chain = chain
        self.found: dict[str, list[tuple[str, str]]] = {}

    def __getattr__(self, name: str) -> Any:
        return getattr(self.chain, name)

    def extract_many(self, texts: Sequence[str]) -> list[Any]:
        results = self.chain.extract_many(texts)
        for text, r in zip(texts, results, strict=True):
            self.found[text] = sorted((e.label, e.surface) for e in (*r.illnesses, *r.medicines))
        return results


def staged(lexicon_dir: Path, content: str) -> tempfile.TemporaryDirectory[str]:
    """A temporary directory whose ``lexicons/`` is ``lexicon_dir`` with ``reviewed_edits.tsv`` = ``content``."""
    from extractor.stream.lexicon_updates import staged_dir

    tmp = tempfile.TemporaryDirectory(prefix="review-eval-")
    staged_dir(lexicon_dir, content, Path(tmp.name) / "lexicons")
    return tmp
