"""A lossless q-gram index for fuzzy lexicon lookups, and a benchmark against brute force.

The scorer is :func:`rapidfuzz.fuzz.ratio` (normalised Indel similarity, 0..100)::

    ratio(a, b) = 100 * (1 - d / (|a| + |b|))      d = Indel distance = |a| + |b| - 2 * LCS(a, b)

so ``ratio >= cutoff`` <=> ``d <= k(|a|, |b|) = (100 - cutoff) * (|a| + |b|) / 100``. Two filters follow and
neither can drop a true match (the index is *lossless* for the scorer and cutoff; tests check it against brute
force):

* length filter: ``d >= | |a| - |b| |``, so only terms whose length lies in a window around the query's are
  looked at. Term ids are sorted by length, so the window is one contiguous id range.
* count filter: strings are padded with ``q - 1`` sentinels at each end; one insertion or deletion changes at
  most ``q`` q-gram positions, and a Levenshtein distance never exceeds the Indel distance, so the number of
  *distinct* q-grams the two strings share is at least ``max(D(a), D(b)) - q * k`` (``D`` = distinct q-gram
  count). Candidates sharing fewer distinct q-grams are skipped without scoring.

The survivors are scored with ``rapidfuzz.process.extractOne`` in id order, so ties resolve exactly as a brute
force ``extractOne(query, index.terms, ...)`` over all terms would (the first best term in id order).
"""

from __future__ import annotations

import math
import random
import time
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import numpy as np
from rapidfuzz import fuzz, process

DEFAULT_Q = 3
DEFAULT_CUTOFF = 85.0
LEN_CAP = 62  # per-length posting offsets are stored up to this term length
_PAD_L = "\x02"
_PAD_R = "\x03"


def qgrams(s: str, q: int = DEFAULT_Q) -> set[str]:
    """Distinct q-grams of ``s`` padded with ``q - 1`` sentinels at each end."""
    p = _PAD_L * (q - 1) + s + _PAD_R * (q - 1)
    return {p[i : i + q] for i in range(len(p) - q + 1)}


def _max_dist(la: int, lb: int, cutoff: float) -> int:
    # a tiny epsilon keeps the bound generous (never lossy) under float rounding
    return math.floor((100.0 - cutoff) * (la + lb) / 100.0 + 1e-9)


class QGramIndex:
    """Inverted q-gram index over a list of (already normalised) term strings.

    ``terms`` is kept in *id order* (sorted by length, then by the input order), which is also the order a
    brute-force comparison must use to get identical tie-breaking: see :attr:`terms`.
    """

    def __init__(self, terms: Sequence[str], q: int = DEFAULT_Q) -> None:
        self.q = q
        uniq = list(dict.fromkeys(terms))
        order = sorted(range(len(uniq)), key=lambda i: (len(uniq[i]), i))
        self.terms: list[str] = [uniq[i] for i in order]
        lens = np.fromiter((len(t) for t in self.terms), dtype=np.int32, count=len(self.terms))
        self.lens = lens
        # first id of each length: ids of length L are [len_start[L], len_start[L + 1])
        max_len = int(lens.max()) if len(lens) else 0
        self.len_start = np.searchsorted(lens, np.arange(max_len + 2), side="left").astype(np.int64)
        postings: dict[str, list[int]] = defaultdict(list)  # gram -> ids (build only)
        ngr = np.empty(len(self.terms), dtype=np.int32)
        for tid, t in enumerate(self.terms):
            g = qgrams(t, q)
            ngr[tid] = len(g)
            for gram in g:
                postings[gram].append(tid)
        self.n_grams = ngr
        # ids are appended in increasing order, so each posting list is sorted. All lists live in one flat
        # array; off[row, L] = position (relative to the list's start) of its first id of length >= L, so a
        # length window is a slice without a binary search (lengths above LEN_CAP fall back to searchsorted).
        grams = sorted(postings)
        self.gram_row: dict[str, int] = {g: r for r, g in enumerate(grams)}
        sizes = np.fromiter((len(postings[g]) for g in grams), dtype=np.int64, count=len(grams))
        starts = np.zeros(len(grams) + 1, dtype=np.int64)
        np.cumsum(sizes, out=starts[1:])
        self.flat = np.fromiter(
            (i for g in grams for i in postings[g]), dtype=np.int32, count=int(starts[-1])
        )
        self.starts = starts
        self.starts_list: list[int] = starts.tolist()
        bounds = (
            self.len_start[: LEN_CAP + 2]
            if len(self.len_start) >= LEN_CAP + 2
            else np.concatenate(
                [self.len_start, np.full(LEN_CAP + 2 - len(self.len_start), len(self.terms), dtype=np.int64)]
            )
        )
        off = np.empty((len(grams), LEN_CAP + 2), dtype=np.int32)
        for r in range(len(grams)):
            off[r] = np.searchsorted(self.flat[starts[r] : starts[r + 1]], bounds)
        self.off = off
        self._need_cache: dict[tuple[int, int, float], tuple[int, int, int, int, np.ndarray]] = {}

    def _slice(self, row: int, lo: int, hi: int, lo_len: int, hi_len: int) -> np.ndarray:
        s, e = int(self.starts[row]), int(self.starts[row + 1])
        seg = self.flat[s:e]
        a = int(self.off[row, lo_len]) if lo_len <= LEN_CAP + 1 else int(seg.searchsorted(lo))
        b = int(self.off[row, hi_len + 1]) if hi_len + 1 <= LEN_CAP + 1 else int(seg.searchsorted(hi))
        return seg[a:b]

    def __len__(self) -> int:
        return len(self.terms)

    def _len_window(self, la: int, cutoff: float) -> tuple[int, int]:
        """Term lengths ``[lo_len, hi_len]`` that can reach ``cutoff`` against a query of length ``la``."""
        # |la - lb| <= (100 - c)(la + lb)/100  <=>  lb in [la*c/(200-c), la*(200-c)/c]
        c = cutoff
        lo = max(math.ceil(la * c / (200.0 - c) - 1e-9), 0)
        hi = math.floor(la * (200.0 - c) / c + 1e-9) if c > 0 else 10**9
        return lo, min(hi, len(self.len_start) - 2)

    def _window(self, la: int, cutoff: float) -> tuple[int, int]:
        """Term id range whose lengths can reach ``cutoff`` against a query of length ``la``."""
        lo, hi = self._len_window(la, cutoff)
        if hi < lo:
            return 0, 0
        return int(self.len_start[lo]), int(self.len_start[hi + 1])

    def _need(self, la: int, ng: int, cutoff: float) -> tuple[int, int, int, int, np.ndarray]:
        """(lo, hi, lo_len, hi_len, need): the id window for a query of length ``la`` and, per id in it, the
        number of distinct q-grams a term must share with the query to possibly reach ``cutoff``. Cached per
        query length and q-gram count (few distinct values)."""
        key = (la, ng, cutoff)
        hit = self._need_cache.get(key)
        if hit is not None:
            return hit
        lo_len, hi_len = self._len_window(la, cutoff)
        lo, hi = self._window(la, cutoff)
        lens = self.lens[lo:hi].astype(np.float64)
        kmax = np.floor((100.0 - cutoff) * (la + lens) / 100.0 + 1e-9)
        need = (np.maximum(ng, self.n_grams[lo:hi]) - self.q * kmax).astype(np.int64)
        hit = (lo, hi, lo_len, hi_len, need)
        if len(self._need_cache) > 4096:
            self._need_cache.clear()
        self._need_cache[key] = hit
        return hit

    def candidates(self, query: str, cutoff: float = DEFAULT_CUTOFF) -> np.ndarray:
        """Ids (ascending) of the terms that pass the length and count filters."""
        g = qgrams(query, self.q)
        lo, hi, lo_len, hi_len, need = self._need(len(query), len(g), cutoff)
        if hi <= lo:
            return np.empty(0, dtype=np.int64)
        parts = []
        row_of = self.gram_row.get
        starts, flat, off = self.starts_list, self.flat, self.off
        fast = hi_len + 1 <= LEN_CAP + 1
        for gram in g:
            r = row_of(gram)
            if r is None:
                continue
            if fast:
                o = off[r]
                s0 = starts[r]
                a, b = s0 + int(o[lo_len]), s0 + int(o[hi_len + 1])
                if b > a:
                    parts.append(flat[a:b])
            else:
                sl = self._slice(r, lo, hi, lo_len, hi_len)
                if len(sl):
                    parts.append(sl)
        if parts:
            counts = np.bincount(np.concatenate(parts) - lo, minlength=hi - lo)
        else:
            counts = np.zeros(hi - lo, dtype=np.int64)
        return np.flatnonzero(counts >= need) + lo

    def lookup(self, query: str, cutoff: float = DEFAULT_CUTOFF) -> tuple[str, float, int] | None:
        """Best ``(term, score, id)`` with ``fuzz.ratio >= cutoff``, or None. Same answer as brute force."""
        cand = self.candidates(query, cutoff)
        if len(cand) == 0:
            return None
        terms = self.terms
        choices = [terms[i] for i in cand]
        best = process.extractOne(query, choices, scorer=fuzz.ratio, score_cutoff=cutoff)
        if best is None:
            return None
        return best[0], float(best[1]), int(cand[best[2]])

    def brute_force(self, query: str, cutoff: float = DEFAULT_CUTOFF) -> tuple[str, float, int] | None:
        best = process.extractOne(query, self.terms, scorer=fuzz.ratio, score_cutoff=cutoff)
        if best is None:
            return None
        return best[0], float(best[1]), int(best[2])


def sample_queries(index: QGramIndex, n: int, seed: int = 13) -> list[str]:
    """``n`` deterministic benchmark queries: half misspelled index terms (1-2 random edits of single words of
    5-20 letters), half random letter strings of the same lengths (mostly no match)."""
    rnd = random.Random(seed)
    words = [t for t in index.terms if " " not in t and 5 <= len(t) <= 20 and t.isalpha()] or index.terms
    letters = "abcdefghilmnoprstuy"
    out = []
    for i in range(n):
        w = list(rnd.choice(words))
        if i % 2:
            w = [rnd.choice(letters) for _ in w]
        else:
            for _ in range(rnd.randint(1, 2)):
                pos = rnd.randrange(len(w))
                op = rnd.random()
                if op < 0.4:
                    w[pos] = rnd.choice(letters)
                elif op < 0.7 and len(w) > 1:
                    del w[pos]
                else:
                    w.insert(pos, rnd.choice(letters))
        out.append("".join(w))
    return out


def bench_index(lexicon: Any, queries: list[str] | int = 300, cutoff: float | None = None) -> dict[str, Any]:
    """Index lookup vs brute-force ``rapidfuzz.process.extractOne`` over ALL indexed terms.

    ``lexicon`` is a :class:`extractor.chain.lexicon.Lexicon` (its all-terms index) or a :class:`QGramIndex`.
    ``queries`` is a list of strings or a count (then :func:`sample_queries` makes them). Returns timings, the
    speed ratio and the fraction of identical answers (same term and score, or both None).
    """
    index: QGramIndex = lexicon if isinstance(lexicon, QGramIndex) else lexicon.fuzzy_index
    if cutoff is None:
        cutoff = getattr(lexicon, "fuzzy_cutoff", DEFAULT_CUTOFF)
    if isinstance(queries, int):
        queries = sample_queries(index, queries)
    qs = [q.lower().strip() for q in queries]
    for q in qs[:20]:  # warm-up (per-length filter tables are cached by query length, not by query)
        index.lookup(q, cutoff)
    t0 = time.perf_counter()
    idx = [index.lookup(q, cutoff) for q in qs]
    t_index = time.perf_counter() - t0
    t0 = time.perf_counter()
    brute = [index.brute_force(q, cutoff) for q in qs]
    t_brute = time.perf_counter() - t0
    same = sum(
        1
        for a, b in zip(idx, brute, strict=True)
        if (a is None and b is None) or (a and b and a[:2] == b[:2])
    )
    n = max(len(qs), 1)
    return {
        "terms": len(index),
        "queries": len(qs),
        "cutoff": cutoff,
        "index_s": t_index,
        "brute_s": t_brute,
        "index_us_per_query": 1e6 * t_index / n,
        "brute_us_per_query": 1e6 * t_brute / n,
        "speedup": (t_brute / t_index) if t_index > 0 else float("inf"),
        "identical": same / n,
        "matched": sum(1 for a in idx if a is not None) / n,
    }
