"""Helpers for scripts/train_ner.py: the tokenizer rules and the conversion of the span files to DocBins.

Tokenizer
---------
spaCy's default English tokenizer already splits hyphens between letters ("lithium-induced" ->
"lithium - induced"), which is what the BC5CDR / NCBI gold offsets need (scispaCy's rule tokenizer keeps
hyphenated words whole and misaligns ~9 % of BC5CDR spans, so it is NOT used). A few extra rules fix most of
the remaining cases ("(PAN)-induced", "[3H]spiperone", "Diazepam- and ..."). The rules are plain regexes, so
they are saved inside the pipeline's ``tokenizer`` file and a plain ``spacy.load(path)`` restores them: no
custom code is needed at load time.

NCBI (illness only)
-------------------
NCBI disease sentences mention drugs that are not labelled. Training on them with every non-illness token
as "O" would teach the model that drugs are not medicines. We keep the gold ILLNESS spans and mark every
token that matches the drug dictionary (lexicons/drug_ner_dictionary.tsv, case-insensitive, plus the
BC5CDR-train MEDICINE mentions) as MISSING (ent_iob 0): no gradient either way on those tokens. All other
tokens stay "O", so NCBI still teaches where illnesses are *not* (a fully-missing variant gives no negative
signal and tends to over-predict illness).
"""

from __future__ import annotations

import csv
import json
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

import spacy
from spacy.language import Language
from spacy.matcher import PhraseMatcher
from spacy.tokens import Doc, DocBin
from spacy.util import compile_infix_regex, compile_prefix_regex, compile_suffix_regex

EXTRA_INFIXES = [
    r"(?<=[\)\]\+])-(?=\S)",  # "(PAN)-induced", "Na+-K+"
    r"[\)\]](?=-)",  # the ")" / "]" before such a hyphen
    r"\](?=[A-Za-z])",  # "[3H]spiperone"
    r"(?<=[A-Za-z])-(?=\[)",  # "L-[3H]nicotine"
    r"(?<=[A-Za-z0-9])/(?=[A-Za-z])",  # "GS/or", "AO2/DTD"
]
EXTRA_SUFFIXES = [r"(?<=[A-Za-z]{2})-"]  # "Diazepam- and scopolamine-induced"
EXTRA_PREFIXES: list[str] = []


def customize_tokenizer(nlp: Language) -> Language:
    """Add the extra split rules to ``nlp.tokenizer`` (in place) and return ``nlp``."""
    tok = nlp.tokenizer
    tok.infix_finditer = compile_infix_regex(list(nlp.Defaults.infixes) + EXTRA_INFIXES).finditer
    tok.suffix_search = compile_suffix_regex(list(nlp.Defaults.suffixes) + EXTRA_SUFFIXES).search
    if EXTRA_PREFIXES:
        tok.prefix_search = compile_prefix_regex(list(nlp.Defaults.prefixes) + EXTRA_PREFIXES).search
    return nlp


@spacy.registry.callbacks("clinical_extractor.ner_tokenizer.v1")
def make_tokenizer_callback():
    """``[initialize.before_init]`` callback for `spacy train` (training time only)."""

    def before_init(nlp: Language) -> Language:
        return customize_tokenizer(nlp)

    return before_init


def blank_nlp() -> Language:
    return customize_tokenizer(spacy.blank("en"))


def read_spans(path: Path) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def load_drug_terms(lexicon: Path, extra: Iterable[str] = ()) -> list[str]:
    terms: set[str] = set(t.lower() for t in extra)
    with open(lexicon, encoding="utf-8", newline="") as f:
        for row in csv.DictReader(f, delimiter="\t"):
            t = (row.get("term") or "").strip().lower()
            if len(t) >= 3:
                terms.add(t)
    return sorted(terms)


def make_drug_matcher(nlp: Language, terms: list[str]) -> PhraseMatcher:
    matcher = PhraseMatcher(nlp.vocab, attr="LOWER")
    matcher.add("DRUG", list(nlp.tokenizer.pipe(terms, batch_size=2000)))
    return matcher


def _span(doc: Doc, start: int, end: int, label: str, stats: Counter):
    sp = doc.char_span(start, end, label=label)
    if sp is not None:
        stats["aligned"] += 1
        return sp
    sp = doc.char_span(start, end, label=label, alignment_mode="expand")
    if sp is None or not sp.text.strip():
        stats["dropped"] += 1
        return None
    stats["expanded"] += 1
    return sp


def to_docs(
    nlp: Language,
    rows: list[dict],
    labels: set[str],
    stats: Counter,
    missing_matcher: PhraseMatcher | None = None,
    non_entities: dict[str, set[str]] | None = None,
) -> list[Doc]:
    """Docs with gold ``labels`` spans; other labels' spans are ignored.

    With ``missing_matcher``, tokens it matches (outside gold spans) get ent_iob 0 (missing) instead of "O".
    With ``non_entities`` (label -> normalised terms, lexicons/non_entities.tsv), a gold span whose text is
    listed for its label (Chia "pregnancy", "study drug"; BC5CDR "creatinine") is marked missing: the service
    does not report it, but it is not a counter-example either.
    """
    from extractor.chain.non_entities import normalise

    docs = []
    for r in rows:
        doc = nlp.make_doc(r["text"])
        ents = []
        taken: set[int] = set()
        miss_idx: set[int] = set()
        for s in sorted(r["spans"], key=lambda s: (s["start"], s["end"])):
            if s["label"] not in labels:
                stats[f"skipped_label_{s['label']}"] += 1
                continue
            sp = _span(doc, s["start"], s["end"], s["label"], stats)
            if sp is None:
                continue
            if any(i in taken for i in range(sp.start, sp.end)):
                stats["dropped_overlap_after_expand"] += 1
                continue
            taken.update(range(sp.start, sp.end))
            if non_entities and normalise(r["text"][s["start"] : s["end"]]) in non_entities.get(s["label"], ()):
                stats[f"non_entity_{s['label']}"] += 1
                miss_idx.update(range(sp.start, sp.end))
                continue
            ents.append(sp)
        if missing_matcher is None and not miss_idx:
            doc.set_ents(ents, default="outside")
        else:
            for _, mstart, mend in missing_matcher(doc) if missing_matcher is not None else ():
                if not any(i in taken for i in range(mstart, mend)):
                    miss_idx.update(range(mstart, mend))
            # "outside" for everything, then unset the dictionary hits (one-token spans: matches overlap)
            doc.set_ents(ents, default="outside")
            if miss_idx:
                stats["missing_tokens"] += len(miss_idx)
                doc.set_ents([], missing=[doc[i : i + 1] for i in sorted(miss_idx)], default="unmodified")
        docs.append(doc)
    return docs


def write_docbin(docs: list[Doc], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    DocBin(attrs=["ORTH", "ENT_IOB", "ENT_TYPE"], docs=docs).to_disk(path)


# --------------------------------------------------------------------------------------------------------
# Gazetteer for the ``clinical_gazetteer`` feature component (extractor/chain/ner_features.py)
# --------------------------------------------------------------------------------------------------------
#: NON-corpus dictionaries only: no BC5CDR / NCBI mention lists and no project lexicon rows or stop-lists
#: derived from the training corpora (a dictionary containing the train mentions is near-perfect on train
#: and the model would learn to over-trust it).
GAZETTEER_SOURCES = {
    "ILLNESS": ["icd10cm.tsv", "disease_ontology.tsv", "disease_ontology_xrefs.tsv"],
    "MEDICINE": ["drug_ner_dictionary.tsv", "fda_unii_official_and_brand.tsv"],
}
_JUNK = set("{}<>&=|[]")


def build_gazetteer(nlp: Language, lexicon_dir: Path, max_tokens: int = 8) -> tuple[list[tuple[str, str]], dict]:
    """(label, space-joined lower-cased tokens) pairs from the non-corpus dictionaries, tokenized with
    ``nlp.tokenizer`` (the pipeline's own rules). ICD-10-CM external-cause / factor chapters (V-Z) are
    skipped; terms shorter than 3 characters, without a letter, with markup characters or longer than
    ``max_tokens`` tokens are dropped."""
    raw: dict[str, set[str]] = {lab: set() for lab in GAZETTEER_SOURCES}
    stats: Counter = Counter()
    for lab, files in GAZETTEER_SOURCES.items():
        for fname in files:
            with open(lexicon_dir / fname, encoding="utf-8", newline="") as f:
                for row in csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE):
                    term = " ".join((row.get("term") or "").split()).lower()
                    code = (row.get("code") or "").strip()
                    if fname == "icd10cm.tsv" and code[:1] in "VWXYZ":
                        stats["skipped_icd_v_z"] += 1
                        continue
                    if len(term) < 3 or not any(c.isalpha() for c in term) or _JUNK & set(term):
                        stats["skipped_short_or_junk"] += 1
                        continue
                    raw[lab].add(term)
    out: list[tuple[str, str]] = []
    for lab, terms in raw.items():
        for doc in nlp.tokenizer.pipe(sorted(terms), batch_size=5000):
            toks = [t.lower_ for t in doc if not t.is_space]
            if not toks or len(toks) > max_tokens:
                stats["skipped_too_long"] += 1
                continue
            out.append((lab, " ".join(toks)))
    out = sorted(set(out))
    stats.update(f"terms_{lab}" for lab, _ in out)
    return out, dict(stats)
