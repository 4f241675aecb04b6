"""The NER stage: a spaCy pipeline that finds illnesses and medicines the rules and lexicons missed.

Build it from an already loaded pipeline (stages never load on call)::

    nlp = load_ner_model(settings.ner_model)      # a directory or an installed package; never downloads
    stage = NerStage(nlp, batch_size=settings.ner_batch_size)
    stage.extract("Patient was given haloperidol and developed tardive dyskinesia.")

The default model is the project's own ``models/ner-clinical`` (see models/README.md; rebuild with
``.venv/bin/python scripts/train_ner.py``). Any spaCy pipeline with an entity recognizer works; its labels
are mapped ILLNESS/DISEASE -> ILLNESS and MEDICINE/CHEMICAL -> MEDICINE (scispaCy's ``en_ner_bc5cdr_md``
uses DISEASE/CHEMICAL), other labels are ignored.

Scores. spaCy's transition-based NER decodes greedily and gives no probabilities. The cheap proxy used here
(``score_mode="action_probs"``, the default) runs the same greedy decoding in a short Python loop over the
NER's own step model (``ner.model.predict`` -> ``moves`` / ``transition_states``, exactly what spaCy's C loop
does) and records, for every token, the softmax probability of the action taken among the valid actions.
An entity's ``score`` is the product of its tokens' action probabilities (B/I/L or U: the locally-normalised
probability of that labelling path); ``details["min_action_prob"]`` is the weakest token. Entities are
identical to ``nlp.pipe``'s (checked in tests) and the cost is ~10 % on short texts (models/README.md).

Rejected alternative, measured on BC5CDR dev: decoding with a beam (``ner.beam_parse`` + ``scored_ents``)
gives marginal probabilities, but this greedy-trained model has a length bias under a beam (F1 fell from
0.73 to 0.58 on an early checkpoint), and keeping greedy entities while scoring them with a separate beam
pass costs ~2.5x. ``score_mode="none"`` uses ``nlp.pipe`` (fastest) and leaves ``score`` None.

``score`` is raw and uncalibrated; ``confidence`` is only provisional (the score itself, clipped to
[0.01, 0.99]; without a score, the label's BC5CDR-dev precision from meta.json). The chain calibrates per
method from ``score`` and ``details`` (n_tokens, all_caps, short, in_parens, ...).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
from spacy.attrs import ENT_IOB, ENT_TYPE, IS_SPACE, SENT_START

from extractor.chain.model import ILLNESS, MEDICINE, Entity, ExtractionError, Label, Method

log = logging.getLogger(__name__)

#: model label -> project label; labels not listed are ignored
DEFAULT_LABEL_MAP: dict[str, Label] = {
    "ILLNESS": ILLNESS,
    "DISEASE": ILLNESS,
    "MEDICINE": MEDICINE,
    "CHEMICAL": MEDICINE,
}

#: components that annotate features the NER's tok2vec reads: always run with the NER
FEATURE_FACTORIES = frozenset({"clinical_gazetteer"})

ScoreMode = Literal["action_probs", "none"]

_FIX_HINT = (
    "Set EXTRACTOR_NER_MODEL (or Settings.ner_model) to a spaCy pipeline directory (the project's default is "
    "models/ner-clinical; rebuild it with `.venv/bin/python scripts/train_ner.py`) or to the name of an "
    "installed spaCy model package (e.g. `pip install` a local en_ner_bc5cdr_md wheel). Models are never "
    "downloaded at run time."
)


class ModelNotFoundError(FileNotFoundError):
    """The NER model named in the settings is neither a pipeline directory nor an installed package."""

    def __init__(self, name: str, reason: str) -> None:
        self.model = name
        super().__init__(f"NER model {name!r} not found: {reason}. {_FIX_HINT}")


def load_ner_model(name_or_path: str | Path, **spacy_load_kwargs: Any):
    """Load a spaCy pipeline from a directory or an installed package; never downloads.

    Raises :class:`ModelNotFoundError` (a ``FileNotFoundError``) naming the model and the fix when it is
    missing. Extra keyword arguments go to :func:`spacy.load` (e.g. ``exclude=[...]``).
    """
    import spacy
    from spacy import util

    import extractor.chain.ner_features  # noqa: F401  (registers the "clinical_gazetteer" feature factory)

    name = str(name_or_path)
    if not name.strip():
        raise ModelNotFoundError(name, "empty model name")
    path = Path(name).expanduser()
    looks_like_path = isinstance(name_or_path, Path) or "/" in name or "\\" in name or name.startswith(".")
    if path.is_dir():
        if not (path / "config.cfg").is_file():
            raise ModelNotFoundError(name, f"directory {path} has no config.cfg (not a spaCy pipeline)")
        target: str | Path = path
    elif looks_like_path or path.exists():
        raise ModelNotFoundError(name, f"no directory at {path.resolve()}")
    elif util.is_package(name):
        target = name
    else:
        raise ModelNotFoundError(name, "no such directory and no installed spaCy package of that name")
    try:
        nlp = spacy.load(target, **spacy_load_kwargs)
    except OSError as exc:  # spaCy's E050/E053: package or files broken
        raise ModelNotFoundError(name, f"spaCy could not load it ({exc})") from exc
    log.info("loaded NER model %s (%s@%s)", name, nlp.meta.get("name"), nlp.meta.get("version"))
    return nlp


def _ner_component_name(nlp) -> str:
    for name in nlp.pipe_names:
        factory = nlp.get_pipe_meta(name).factory
        if factory in ("ner", "beam_ner"):
            return name
    for name, _ in nlp.pipeline:
        if name == "ner":
            return name
    raise ValueError(f"pipeline {nlp.meta.get('name')!r} has no entity recognizer (pipes: {nlp.pipe_names})")


def _needed_components(nlp, ner_name: str) -> list[str]:
    """The NER component plus the shared tok2vec/transformer components it listens to, in pipeline order."""
    needed = {ner_name}
    for name in nlp.pipe_names:  # feature components (dictionary marks the tok2vec embeds)
        if nlp.get_pipe_meta(name).factory in FEATURE_FACTORIES:
            needed.add(name)
    for name, pipe in nlp.pipeline:
        listeners = getattr(pipe, "listening_components", None)
        if listeners and ner_name in listeners:
            needed.add(name)
    return [n for n in nlp.pipe_names if n in needed]


class NerStage:
    """Stage protocol implementation (method ``"ner"``) around a loaded spaCy pipeline."""

    method: Method = "ner"

    def __init__(
        self,
        nlp,
        model_name: str | None = None,
        *,
        batch_size: int = 256,
        score_mode: ScoreMode = "action_probs",
        label_map: dict[str, Label] | None = None,
    ) -> None:
        if score_mode not in ("action_probs", "none"):
            raise ValueError(f"score_mode must be 'action_probs' or 'none', not {score_mode!r}")
        self.nlp = nlp
        self.batch_size = max(1, int(batch_size))
        self.label_map = dict(DEFAULT_LABEL_MAP if label_map is None else label_map)
        self.ner_name = _ner_component_name(nlp)
        self.ner = nlp.get_pipe(self.ner_name)
        self.components = _needed_components(nlp, self.ner_name)
        self.disabled = [n for n in nlp.pipe_names if n not in self.components]
        if score_mode == "action_probs" and nlp.get_pipe_meta(self.ner_name).factory != "ner":
            # a beam-trained NER ("beam_ner") decodes with its beam: greedy replay would change its output
            log.warning("NER component %r is not a greedy 'ner': score_mode='none'", self.ner_name)
            score_mode = "none"
        self._move_names: list[str] = []
        self._opens: list[str | None] = []
        self._valid_cache: dict[tuple[Any, ...], list[int]] = {}
        self.score_mode: ScoreMode = score_mode
        meta = nlp.meta or {}
        self.model_name = model_name or meta.get("name") or "spacy-ner"
        self.version = meta.get("version") or "0.0.0"
        self.source = f"{self.model_name}@{self.version}"
        # provisional confidence without a score: the label's precision on the model's dev set, if known
        self._prior = self._label_priors(meta)
        unknown = [lab for lab in self.ner.labels if lab not in self.label_map]
        if unknown:
            log.info("NER labels ignored (not mapped): %s", unknown)

    # ------------------------------------------------------------------------------------------------
    def _label_priors(self, meta: dict) -> dict[str, float]:
        priors: dict[str, float] = {ILLNESS: 0.7, MEDICINE: 0.7}
        perf = (meta.get("performance") or {}).get("bc5cdr_dev") or {}
        per = perf.get("ents_per_type") or {}
        for raw, lab in self.label_map.items():
            if raw in per and isinstance(per[raw].get("p"), (int, float)):
                priors[lab] = float(per[raw]["p"])
        return priors

    # ------------------------------------------------------------------------------------------------
    def extract(self, text: str) -> list[Entity]:
        return self.extract_many([text])[0]

    def extract_many(self, texts: Sequence[str]) -> list[list[Entity]]:
        results: list[list[Entity]] = [[] for _ in texts]
        todo: list[int] = []
        for i, t in enumerate(texts):
            if not isinstance(t, str):
                raise ExtractionError(f"NER input #{i} is {type(t).__name__}, not str")
            if t.strip():
                if len(t) > self.nlp.max_length:
                    raise ExtractionError(f"NER input #{i} has {len(t)} chars > nlp.max_length")
                todo.append(i)
        for start in range(0, len(todo), self.batch_size):
            idx = todo[start : start + self.batch_size]
            batch = [texts[i] for i in idx]
            for i, ents in zip(idx, self._run_batch(batch), strict=True):
                results[i] = ents
        return results

    # ------------------------------------------------------------------------------------------------
    def _run_batch(self, texts: list[str]) -> list[list[Entity]]:
        if self.score_mode == "action_probs":
            try:
                return self._run_batch_probs(texts)
            except Exception:  # internal spaCy API changed: keep extracting, without scores
                log.exception("NER action_probs failed; falling back to score_mode='none'")
                self.score_mode = "none"
        docs = list(self.nlp.pipe(texts, batch_size=self.batch_size, disable=self.disabled))
        return [self._entities(doc, None, t) for doc, t in zip(docs, texts, strict=True)]

    def _run_batch_probs(self, texts: list[str]) -> list[list[Entity]]:
        docs = [self.nlp.make_doc(t) for t in texts]
        for name in self.components:
            if name == self.ner_name:
                break
            docs = list(self.nlp.get_pipe(name).pipe(docs, batch_size=self.batch_size))
        probs = self._greedy_parse_with_probs(docs)
        return [self._entities(doc, p, t) for doc, p, t in zip(docs, probs, texts, strict=True)]

    def _greedy_parse_with_probs(self, docs: list) -> list[np.ndarray]:
        """Greedy NER decoding (as spaCy's ``Parser.greedy_parse``) that also returns, per token, the
        softmax probability of the chosen action among the valid ones. Annotates ``docs`` in place.

        Which actions are valid is asked of spaCy (``moves.is_valid``, a Python call that parses the move name)
        once per *situation* and remembered: in BILUO decoding it depends only on the open entity's label,
        whether the token is the last one, and the next token's sentence start, the token's being white space and
        the preset entity marks of both tokens (spaCy's ``ner.pyx``; a test checks the result against asking
        every time). The chosen action is the best-scored valid one, as in spaCy's ``arg_max_if_valid``, ties to
        the lower index."""
        ner, moves = self.ner, self.ner.moves
        if not self._move_names:
            self._move_names = [moves.get_class_name(i) for i in range(moves.n_moves)]
            # the label an action leaves open: "B-X" / "I-X" open X; "L-", "U-", "O" close it
            self._opens = [n[2:] if n[:2] in ("B-", "I-") else None for n in self._move_names]
        names, opens, cache = self._move_names, self._opens, self._valid_cache
        probs = [np.ones(len(doc), dtype="float32") for doc in docs]
        marks = [doc.to_array([IS_SPACE, SENT_START, ENT_IOB, ENT_TYPE]).tolist() for doc in docs]
        open_label: list[str | None] = [None] * len(docs)
        batch = moves.init_batch(docs)
        slot = {id(state): i for i, state in enumerate(batch)}
        states = [s for s in batch if not s.is_final()]
        step = ner.model.predict(docs)
        try:
            while states:
                scores = np.ascontiguousarray(step.predict(states), dtype="float32")
                for state, row in zip(states, scores.tolist(), strict=True):
                    b = state.B(0)
                    if b < 0:
                        continue
                    k = slot[id(state)]
                    m = marks[k]
                    nxt = tuple(m[b + 1][1:]) if b + 1 < len(m) else None
                    key = (open_label[k], m[b][0], m[b][2], m[b][3], nxt)
                    valid = cache.get(key)
                    if valid is None:
                        valid = cache[key] = [j for j, n in enumerate(names) if moves.is_valid(state, n)]
                    if not valid:
                        continue
                    chosen = max(valid, key=lambda j: (row[j], -j))  # first best, as arg_max_if_valid
                    best = row[chosen]
                    probs[k][b] = 1.0 / sum(math.exp(row[j] - best) for j in valid)
                    open_label[k] = opens[chosen]
                states = ner.transition_states(states, scores)
        finally:
            step.clear_memory()
        ner.set_annotations(docs, batch)
        return probs

    def _entities(self, doc, probs: np.ndarray | None, text: str | None = None) -> list[Entity]:
        text = doc.text if text is None else text  # the input text: Doc.text rebuilds it token by token
        out: list[Entity] = []
        for ent in doc.ents:
            label = self.label_map.get(ent.label_)
            if label is None:
                continue
            start, end = ent.start_char, ent.end_char
            while start < end and text[start].isspace():
                start += 1
            while end > start and text[end - 1].isspace():
                end -= 1
            if start >= end:
                continue
            surface = text[start:end]
            score = None
            details = self._features(doc, ent, surface)
            if probs is not None:
                p = probs[ent.start : ent.end]
                score = round(float(np.prod(p)), 4)
                details["min_action_prob"] = round(float(p.min()), 4)
                details["score_kind"] = "greedy_action_prob_product"
            confidence = self._prior[label] if score is None else round(min(0.99, max(0.01, score)), 4)
            out.append(
                Entity(
                    surface=surface,
                    start=start,
                    end=end,
                    label=label,
                    method=self.method,
                    source=self.source,
                    confidence=confidence,
                    canonical=None,
                    score=score,
                    details=details,
                )
            )
        return out

    def _features(self, doc, ent, surface: str) -> dict[str, Any]:
        letters = [c for c in surface if c.isalpha()]
        prev_tok = doc[ent.start - 1].text if ent.start > 0 else ""
        next_tok = doc[ent.end].text if ent.end < len(doc) else ""
        return {
            "model_label": ent.label_,
            "score_kind": "none",
            "n_tokens": len(ent),
            "n_chars": len(surface),
            "all_caps": bool(letters) and all(c.isupper() for c in letters),
            "short": len(surface) <= 3,
            "has_digit": any(c.isdigit() for c in surface),
            "in_parens": prev_tok == "(" and next_tok == ")",  # abbreviation defined in the sentence
            "doc_tokens": len(doc),
        }

    def __repr__(self) -> str:
        return f"NerStage({self.source!r}, components={self.components}, score_mode={self.score_mode!r})"


def build_ner_stage(name_or_path: str | Path, **kwargs: Any) -> NerStage:
    """``NerStage(load_ner_model(name_or_path), ...)``: convenience for the chain builder."""
    return NerStage(load_ner_model(name_or_path), **kwargs)


def map_labels(labels: Iterable[str], label_map: dict[str, Label] | None = None) -> dict[str, Label]:
    """Which of a model's labels the stage keeps, and as what."""
    m = DEFAULT_LABEL_MAP if label_map is None else label_map
    return {lab: m[lab] for lab in labels if lab in m}
