"""Gazetteer features for the NER pipeline (``models/ner-clinical``): a dictionary lookup whose result the
tok2vec embeds as one more token attribute.

The component ``clinical_gazetteer`` runs before ``tok2vec``. It marks, per token, whether a longest
dictionary match of each label covers it (B = first token of a match, I = inside, O = none) and writes the
pair into ``token.tag_`` as ``"G" + <ILLNESS IOB> + <MEDICINE IOB>`` (e.g. ``"GBO"``, ``"GOI"``, ``"GOO"``).
The tok2vec's ``MultiHashEmbed`` has ``TAG`` among its attributes, so the NER can learn how far to trust
a dictionary hit in context. Nothing else in the pipeline reads or writes tags.

The dictionary is NOT derived from any annotated corpus (no BC5CDR / NCBI mention lists, no lexicon rows or
stop-lists built from them): a dictionary that contains the training mentions is near-perfect on the
training sentences and the model learns to over-trust it. It is built by ``scripts/ner_data.py``
(``build_gazetteer``) from ICD-10-CM, Disease Ontology (ILLNESS) and the drug-NER dictionary + FDA UNII
names (MEDICINE), pre-tokenized with the pipeline's own tokenizer, lower-cased, and stored inside the
pipeline directory (``gazetteer/terms.tsv.gz``), so loading needs no other file and no download.

Loading a pipeline with this component needs the factory registered: ``import extractor.chain.ner_features``
first (``extractor.chain.ner.load_ner_model`` does); after that ``spacy.load(path)`` works as usual.
"""

from __future__ import annotations

import gzip
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import numpy as np
from spacy.attrs import TAG
from spacy.language import Language
from spacy.tokens import Doc
from spacy.util import ensure_path

FACTORY = "clinical_gazetteer"
LABELS = ("ILLNESS", "MEDICINE")
TERMS_FILE = "terms.tsv.gz"
#: the longest match looked for, in tokens (longer dictionary terms are dropped when built)
MAX_TOKENS = 8


class _Trie:
    """Lower-cased token sequences of one label; greedy longest match from each position."""

    __slots__ = ("prefixes", "terms")

    def __init__(self) -> None:
        self.prefixes: set[str] = set()
        self.terms: set[str] = set()

    def add(self, tokens: list[str]) -> None:
        for i in range(1, len(tokens)):
            self.prefixes.add(" ".join(tokens[:i]))
        self.terms.add(" ".join(tokens))

    def tag(self, words: list[str], out: list[str]) -> None:
        """Write 'B' / 'I' into ``out`` for each token covered by a (leftmost-longest) match."""
        n = len(words)
        i = 0
        prefixes, terms = self.prefixes, self.terms
        while i < n:
            key = words[i]
            best = i + 1 if key in terms else 0
            j = i + 1
            while key in prefixes and j < n:
                key = key + " " + words[j]
                j += 1
                if key in terms:
                    best = j
            if best:
                out[i] = "B"
                for k in range(i + 1, best):
                    out[k] = "I"
                i = best
            else:
                i += 1


class GazetteerTagger:
    """Pipeline component: dictionary IOB marks of both labels -> ``token.tag_`` (see module doc)."""

    def __init__(self, nlp: Language, name: str = "gazetteer") -> None:
        self.name = name
        self.vocab = nlp.vocab
        self.entries: list[tuple[str, str]] = []  # (label, space-joined lower-cased tokens)
        self.tries: dict[str, _Trie] = {}
        self._tag_ids: dict[str, int] = {}
        self._rebuild()

    # -- data -----------------------------------------------------------------------------------------
    def _rebuild(self) -> None:
        self.tries = {lab: _Trie() for lab in LABELS}
        for lab, term in self.entries:
            trie = self.tries.get(lab)
            if trie is not None:
                trie.add(term.split(" "))
        self._tag_ids = {f"G{a}{b}": self.vocab.strings.add(f"G{a}{b}") for a in "BIO" for b in "BIO"}

    def set_entries(self, entries: Iterable[tuple[str, str]]) -> None:
        self.entries = sorted(set((lab, term) for lab, term in entries if lab in LABELS and term.strip()))
        self._rebuild()

    def initialize(
        self,
        get_examples: Callable[[], Iterable] | None = None,
        *,
        nlp: Language | None = None,
        terms_path: str | None = None,
    ) -> None:
        """``[initialize.components.gazetteer] terms_path``: a ``label<TAB>tokens`` file (.gz or plain)."""
        if terms_path:
            self.set_entries(read_terms(Path(terms_path)))

    # -- annotate ---------------------------------------------------------------------------------------
    def __call__(self, doc: Doc) -> Doc:
        n = len(doc)
        if not n:
            return doc
        words = [t.lower_ for t in doc]
        marks = {}
        for lab in LABELS:
            out = ["O"] * n
            self.tries[lab].tag(words, out)
            marks[lab] = out
        ids = self._tag_ids
        arr = np.fromiter(
            (ids["G" + a + b] for a, b in zip(marks["ILLNESS"], marks["MEDICINE"], strict=True)),
            dtype="uint64",
            count=n,
        )
        doc.from_array([TAG], arr.reshape(n, 1))
        return doc

    def pipe(self, docs: Iterable[Doc], batch_size: int = 256) -> Iterator[Doc]:
        for doc in docs:
            yield self(doc)

    # -- serialization ------------------------------------------------------------------------------------
    def to_bytes(self, *, exclude: Iterable[str] = ()) -> bytes:
        return gzip.compress(_dump(self.entries).encode("utf-8"), mtime=0)

    def from_bytes(self, data: bytes, *, exclude: Iterable[str] = ()) -> GazetteerTagger:
        self.entries = _load(gzip.decompress(data).decode("utf-8"))
        self._rebuild()
        return self

    def to_disk(self, path, *, exclude: Iterable[str] = ()) -> None:
        path = ensure_path(path)
        path.mkdir(parents=True, exist_ok=True)
        (path / TERMS_FILE).write_bytes(self.to_bytes())

    def from_disk(self, path, *, exclude: Iterable[str] = ()) -> GazetteerTagger:
        path = ensure_path(path)
        self.from_bytes((path / TERMS_FILE).read_bytes())
        return self


def _dump(entries: Iterable[tuple[str, str]]) -> str:
    return "".join(f"{lab}\t{term}\n" for lab, term in entries)


def _load(text: str) -> list[tuple[str, str]]:
    out = []
    for line in text.splitlines():
        lab, _, term = line.partition("\t")
        if term:
            out.append((lab, term))
    return out


def read_terms(path: Path) -> list[tuple[str, str]]:
    data = path.read_bytes()
    if path.suffix == ".gz":
        data = gzip.decompress(data)
    return _load(data.decode("utf-8"))


def write_terms(entries: Iterable[tuple[str, str]], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    text = _dump(sorted(set(entries))).encode("utf-8")
    path.write_bytes(gzip.compress(text, mtime=0) if path.suffix == ".gz" else text)


@Language.factory(FACTORY, default_config={})
def make_gazetteer(nlp: Language, name: str) -> GazetteerTagger:
    return GazetteerTagger(nlp, name)
