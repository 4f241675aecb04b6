"""Scores of extraction results against labelled data.

Two string-level modes, per entry and per field (illness, medicine):

strict
    the SET of normalised predicted surfaces is compared with the SET of normalised gold strings
    (gold is deduplicated per row, so predictions are too). Normalisation: Unicode case-fold, whitespace runs
    collapsed to one space, punctuation stripped from both ends.
lenient
    a predicted item matches a gold item if the word tokens of one are a contiguous run of the other's
    ("chest pain" ~ "pain", "Famotidine-associated" ~ "famotidine") or if their character spans overlap
    (gold spans: the JSONL spans, or every occurrence of the gold string in a CSV text). Matching is
    one-to-one: identical strings are paired first, then a maximum bipartite matching pairs the rest.

Plus, for span input, ``spans``: exact (start, end, label) of each predicted entity against the gold spans.

Negated and hypothetical entities are not predictions unless ``count_negated``. Every predicted item carries
the method and confidence of its most confident entity, which is what by-method scores and calibration use.
Precision, recall and F1 are 0.0 when their denominator is 0.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from evaluation.data import FIELDS, LABEL_OF_FIELD, Example

MODES: tuple[str, ...] = ("strict", "lenient")
ALL_FIELDS: tuple[str, ...] = (*FIELDS, "micro")
_WS = re.compile(r"\s+")
_TOKEN = re.compile(r"\w+")


def _is_punct(ch: str) -> bool:
    return unicodedata.category(ch)[0] in ("P", "S") or ch.isspace()


def normalize(surface: str) -> str:
    """Case-fold, collapse whitespace, strip surrounding punctuation: ``" Ibuprofen. "`` -> ``ibuprofen``."""
    s = _WS.sub(" ", surface.casefold()).strip()
    i, j = 0, len(s)
    while i < j and _is_punct(s[i]):
        i += 1
    while j > i and _is_punct(s[j - 1]):
        j -= 1
    return s[i:j]


def tokens(normalised: str) -> tuple[str, ...]:
    return tuple(_TOKEN.findall(normalised))


def _contains(big: tuple[str, ...], small: tuple[str, ...]) -> bool:
    n, m = len(big), len(small)
    if m == 0 or m > n:
        return False
    first = small[0]
    for i in range(n - m + 1):
        if big[i] == first and big[i : i + m] == small:
            return True
    return False


def lenient_match(
    a: str, b: str, a_spans: Iterable[tuple[int, int]] = (), b_spans: Iterable[tuple[int, int]] = ()
) -> bool:
    """Whether two surfaces match leniently (token containment either way, or overlapping spans)."""
    na, nb = normalize(a), normalize(b)
    if na and na == nb:
        return True
    ta, tb = tokens(na), tokens(nb)
    if _contains(ta, tb) or _contains(tb, ta):
        return True
    bs = list(b_spans)
    return any(s1 < e2 and s2 < e1 for s1, e1 in a_spans for s2, e2 in bs)


# --------------------------------------------------------------------------------------------------
@dataclass(slots=True)
class Counts:
    tp: int = 0
    fp: int = 0
    fn: int = 0

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 0.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 0.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0

    def __add__(self, other: Counts) -> Counts:
        return Counts(self.tp + other.tp, self.fp + other.fp, self.fn + other.fn)

    def to_dict(self) -> dict[str, Any]:
        return {
            "precision": round(self.precision, 6),
            "recall": round(self.recall, 6),
            "f1": round(self.f1, 6),
            "tp": self.tp,
            "fp": self.fp,
            "fn": self.fn,
        }


@dataclass(frozen=True, slots=True)
class Outcome:
    """One predicted item (a unique normalised surface of one entry and field) and whether it was right."""

    entry: int  # index of the example
    field: str
    mode: str
    key: str  # normalised surface
    surface: str  # surface of the representative (most confident) entity
    method: str
    confidence: float
    correct: bool


@dataclass(frozen=True, slots=True)
class Miss:
    """One gold item nothing matched (a false negative)."""

    entry: int
    field: str
    mode: str
    key: str
    surface: str


@dataclass(slots=True)
class Scores:
    counts: dict[tuple[str, str], Counts]  # (field, mode) for illness / medicine
    spans: dict[str, Counts] | None  # field -> exact-span counts; None without gold spans
    outcomes: list[Outcome]
    misses: list[Miss]
    n_gold: dict[str, int]
    n_entities: int  # entities the chain returned
    n_excluded: int  # of which not counted (negated / hypothetical)
    n_entries: int

    def get(self, field_name: str, mode: str) -> Counts:
        if field_name == "micro":
            return sum((self.counts[(f, mode)] for f in FIELDS), Counts())
        return self.counts[(field_name, mode)]

    def span_counts(self, field_name: str) -> Counts:
        assert self.spans is not None
        if field_name == "micro":
            return sum((self.spans[f] for f in FIELDS), Counts())
        return self.spans[field_name]

    def fields_dict(self) -> dict[str, dict[str, dict[str, Any]]]:
        return {f: {m: self.get(f, m).to_dict() for m in MODES} for f in ALL_FIELDS}

    def spans_dict(self) -> dict[str, dict[str, Any]] | None:
        if self.spans is None:
            return None
        return {f: self.span_counts(f).to_dict() for f in ALL_FIELDS}


@dataclass(slots=True)
class _Item:
    key: str
    toks: tuple[str, ...]
    spans: list[tuple[int, int]] = field(default_factory=list)
    surface: str = ""
    method: str = ""
    confidence: float = 0.0


def counted(entity: Any, count_negated: bool) -> bool:
    return count_negated or not (getattr(entity, "negated", False) or getattr(entity, "hypothetical", False))


def _pred_items(entities: Sequence[Any]) -> list[_Item]:
    items: dict[str, _Item] = {}
    for e in entities:
        key = normalize(e.surface)
        if not key:
            continue
        conf = float(e.confidence) if e.confidence is not None else 0.0
        it = items.get(key)
        if it is None:
            it = items[key] = _Item(key, tokens(key), [], e.surface, e.method, conf)
        elif conf > it.confidence:
            it.surface, it.method, it.confidence = e.surface, e.method, conf
        it.spans.append((e.start, e.end))
    return list(items.values())


def _occurrences(text: str, s: str) -> list[tuple[int, int]]:
    out, i = [], text.find(s)
    while i >= 0 and s:
        out.append((i, i + len(s)))
        i = text.find(s, i + 1)
    return out


def _gold_items(ex: Example, field_name: str) -> list[_Item]:
    items: dict[str, _Item] = {}
    label = LABEL_OF_FIELD[field_name]
    for g in ex.gold[field_name]:
        key = normalize(g)
        if not key:
            continue
        it = items.get(key)
        if it is None:
            it = items[key] = _Item(key, tokens(key), [], g)
        if ex.spans is None:
            it.spans.extend(_occurrences(ex.text, g))
    if ex.spans is not None:
        for s in ex.spans:
            if s.label == label:
                key = normalize(ex.text[s.start : s.end])
                if key in items:
                    items[key].spans.append((s.start, s.end))
    return list(items.values())


def _compatible(p: _Item, g: _Item) -> bool:
    if p.key == g.key or _contains(p.toks, g.toks) or _contains(g.toks, p.toks):
        return True
    return any(s1 < e2 and s2 < e1 for s1, e1 in p.spans for s2, e2 in g.spans)


def _lenient_pairs(preds: list[_Item], golds: list[_Item]) -> dict[int, int]:
    """One-to-one matching pred index -> gold index: identical keys first, then maximum matching."""
    match_p: dict[int, int] = {}
    match_g: dict[int, int] = {}
    gold_by_key = {g.key: j for j, g in enumerate(golds)}
    for i, p in enumerate(preds):
        j = gold_by_key.get(p.key)
        if j is not None:
            match_p[i], match_g[j] = j, i
    rest_p = [i for i in range(len(preds)) if i not in match_p]
    rest_g = [j for j in range(len(golds)) if j not in match_g]
    if not rest_p or not rest_g:
        return match_p
    adj = {i: [j for j in rest_g if _compatible(preds[i], golds[j])] for i in rest_p}

    def augment(i: int, seen: set[int]) -> bool:
        for j in adj[i]:
            if j in seen:
                continue
            seen.add(j)
            owner = match_g.get(j)
            if owner is None or (owner in adj and augment(owner, seen)):
                match_p[i], match_g[j] = j, i
                return True
        return False

    for i in rest_p:
        if adj[i]:
            augment(i, set())
    return match_p


def entities_of(result: Any, field_name: str) -> list[Any]:
    return list(result.illnesses if field_name == "illness" else result.medicines)


def score(
    examples: Sequence[Example],
    results: Sequence[Any],
    *,
    count_negated: bool = False,
    keep: Callable[[Any], bool] | None = None,
) -> Scores:
    """Score ``results`` (one ExtractionResult-like object per example, same order)."""
    if len(examples) != len(results):
        raise ValueError(f"{len(results)} results for {len(examples)} examples")
    has_spans = bool(examples) and all(ex.spans is not None for ex in examples)
    counts = {(f, m): Counts() for f in FIELDS for m in MODES}
    span_counts = {f: Counts() for f in FIELDS} if has_spans else None
    outcomes: list[Outcome] = []
    misses: list[Miss] = []
    n_gold = dict.fromkeys(FIELDS, 0)
    n_entities = n_excluded = 0
    for idx, (ex, res) in enumerate(zip(examples, results, strict=True)):
        for f in FIELDS:
            ents_all = entities_of(res, f)
            n_entities += len(ents_all)
            ents = [e for e in ents_all if counted(e, count_negated) and (keep is None or keep(e))]
            n_excluded += len(ents_all) - len(ents)
            preds = _pred_items(ents)
            golds = _gold_items(ex, f)
            n_gold[f] += len(golds)
            # strict
            gold_keys = {g.key for g in golds}
            pred_keys = {p.key for p in preds}
            c = counts[(f, "strict")]
            for p in preds:
                ok = p.key in gold_keys
                c.tp += ok
                c.fp += not ok
                outcomes.append(Outcome(idx, f, "strict", p.key, p.surface, p.method, p.confidence, ok))
            for g in golds:
                if g.key not in pred_keys:
                    c.fn += 1
                    misses.append(Miss(idx, f, "strict", g.key, g.surface))
            # lenient
            pairs = _lenient_pairs(preds, golds)
            c = counts[(f, "lenient")]
            c.tp += len(pairs)
            c.fp += len(preds) - len(pairs)
            c.fn += len(golds) - len(pairs)
            for i, p in enumerate(preds):
                outcomes.append(
                    Outcome(idx, f, "lenient", p.key, p.surface, p.method, p.confidence, i in pairs)
                )
            matched_g = set(pairs.values())
            for j, g in enumerate(golds):
                if j not in matched_g:
                    misses.append(Miss(idx, f, "lenient", g.key, g.surface))
            # exact spans
            if span_counts is not None:
                label = LABEL_OF_FIELD[f]
                gold_spans = {(s.start, s.end) for s in ex.spans or () if s.label == label}
                pred_spans = {(e.start, e.end) for e in ents}
                sc = span_counts[f]
                hit = len(gold_spans & pred_spans)
                sc.tp += hit
                sc.fp += len(pred_spans) - hit
                sc.fn += len(gold_spans) - hit
    return Scores(counts, span_counts, outcomes, misses, n_gold, n_entities, n_excluded, len(examples))


def by_method(scores: Scores, methods: Sequence[str] = ("regex", "lexicon", "ner")) -> dict[str, Any]:
    """TP / FP / precision of the predicted items each method contributed, per field and mode."""
    seen = list(methods) + sorted({o.method for o in scores.outcomes} - set(methods))
    table: dict[str, dict[str, dict[str, list[int]]]] = {
        m: {f: {mode: [0, 0] for mode in MODES} for f in ALL_FIELDS} for m in seen
    }
    for o in scores.outcomes:
        for f in (o.field, "micro"):
            cell = table[o.method][f][o.mode]
            cell[0 if o.correct else 1] += 1
    out: dict[str, Any] = {}
    for m, per_field in table.items():
        out[m] = {}
        for f, per_mode in per_field.items():
            out[m][f] = {}
            for mode, (tp, fp) in per_mode.items():
                gold = sum(scores.n_gold.values()) if f == "micro" else scores.n_gold[f]
                out[m][f][mode] = {
                    "predictions": tp + fp,
                    "tp": tp,
                    "fp": fp,
                    "precision": round(tp / (tp + fp), 6) if tp + fp else 0.0,
                    "recall_share": round(tp / gold, 6) if gold else 0.0,
                }
    return out


def top_errors(
    scores: Scores, n: int = 10, mode: str = "strict"
) -> dict[str, dict[str, list[dict[str, Any]]]]:
    """Most frequent false positives and false negatives per field (normalised strings, with counts)."""
    from collections import Counter

    out: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for f in FIELDS:
        fp = Counter(o.key for o in scores.outcomes if o.mode == mode and o.field == f and not o.correct)
        fn = Counter(m.key for m in scores.misses if m.mode == mode and m.field == f)
        out[f] = {
            "false_positives": [{"surface": k, "count": c} for k, c in _most_common(fp, n)],
            "false_negatives": [{"surface": k, "count": c} for k, c in _most_common(fn, n)],
        }
    return out


def _most_common(counter: Any, n: int) -> list[tuple[str, int]]:
    return sorted(counter.items(), key=lambda kv: (-kv[1], kv[0]))[:n]


def entry_errors(scores: Scores, mode: str = "strict") -> dict[int, dict[str, list[tuple[str, str]]]]:
    """Per entry index: ``{"fp": [(field, surface)], "fn": [(field, surface)]}`` for entries with errors."""
    out: dict[int, dict[str, list[tuple[str, str]]]] = {}
    for o in scores.outcomes:
        if o.mode == mode and not o.correct:
            out.setdefault(o.entry, {"fp": [], "fn": []})["fp"].append((o.field, o.surface))
    for m in scores.misses:
        if m.mode == mode:
            out.setdefault(m.entry, {"fp": [], "fn": []})["fn"].append((m.field, m.surface))
    return out
