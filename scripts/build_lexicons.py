#!/usr/bin/env python
"""Build the generated lexicon files under lexicons/ from the read-only source data.

Writes (and overwrites) only the GENERATED files:

* lexicons/illnesses.tsv   -- Disease Ontology, ICD-10-CM (illness chapters, with derived short forms),
                              HPO phenotypes (names, exact and layperson synonyms: "joint pain", "heart attack"),
                              NCBI-disease + BC5CDR + Chia TRAIN mentions
* lexicons/medicines.tsv   -- drug-named-entity-recognition dictionary (DrugBank / MeSH / MedlinePlus),
                              BC5CDR + Chia TRAIN drug mentions, FDA UNII official names (filtered)
* lexicons/stopterms_generated.tsv -- terms that mostly match outside gold spans of the TRAIN corpora
                              (scope all) and frequent non-entity TRAIN words (scope fuzzy)

Hand-written files (curated_terms.tsv, abbreviations.tsv, misspellings.tsv, stopterms.tsv) are never written
here, so editors' rows survive rebuilds. DEV splits are never read. The output is deterministic.

    python scripts/build_lexicons.py [--data DIR] [--out DIR] [--no-stop-mining]
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

from tqdm import tqdm

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from extractor.chain.lexicon import (  # noqa: E402
    STOPTERMS_GENERATED,
    Lexicon,
    LexiconStage,
    is_case_sensitive,
    norm_key,
    tokenize,
)

ILL, MED = "ILLNESS", "MEDICINE"
# a corpus mention whose last word is a procedure ("cardiac surgery", "right heart catheterization", "cholecystectomy",
# "dual antiplatelet therapy"): Chia's annotators labelled a few of these conditions; as illnesses they match a
# note's procedures (the regex stage drops such captures too: extractor/chain/rules.py _PROCEDURE_HEAD)
PROCEDURE_WORD = re.compile(
    r"(?i)(?:surgery|surgeries|procedures?|transplants?|(?:re)?transplantation|catheteri[sz]ation|biops(?:y|ies)"
    r"|resection|arthroplasty|therapy|[a-z]*(?:ectomy|ectomies|otomy|ostomy|plasty|scopy|graphy))")

# ----------------------------------------------------------------------------------------------------
# Source preference (lower wins) when the same normalised term comes from several sources. The label of a term
# that both an illness and a medicine source list is the one TRAIN gold mentions use, else the preferred
# source's.
PRIORITY = {
    ("doid", "label"): 10,
    ("doid", "exact_synonym"): 12,
    ("doid", "former_label"): 14,
    ("icd", "description"): 20,
    ("icd", "inclusion_term"): 22,
    ("icd", "derived"): 24,
    ("drug", "DrugBank"): 10,
    ("drug", "MedlinePlus"): 12,
    ("drug", "MeSH"): 14,
    ("drug", ""): 16,
    ("hpo", "name"): 26,
    ("hpo", "exact"): 27,
    ("hpo", "layperson"): 28,
    ("corpus", ILL): 30,
    ("corpus", MED): 30,
    ("unii", "official_name"): 40,
}

# Sources added for clinical wording (issue 9). Their terms must not cost the PubMed corpora: the stop-term
# mining judges them on each TRAIN corpus separately (see mine_stops).
CLINICAL_SOURCES = ("HPO", "Chia-train")

# ICD-10-CM chapters kept. Letters by first character of the code:
#   A-B infectious, C-D neoplasms/blood, E endocrine, F mental, G nervous, H eye/ear, I circulatory,
#   J respiratory, K digestive, L skin, M musculoskeletal, N genitourinary, O pregnancy, P perinatal,
#   Q congenital, R symptoms/signs (BC5CDR and clinical notes annotate symptoms such as "seizures", "nausea",
#   "fever" as illnesses, so R is kept), U special purposes (U07.1 COVID-19).
# Dropped: S (injuries: "Fracture of ..., initial encounter" never appear verbatim and are not illnesses a
#   prescription is for), T except T66-T78 / T80-T88 (effects of external causes such as anaphylaxis, heat
#   stroke, and complications of care are illnesses; poisonings "by <drug>" would collide with medicines),
#   V-Y (external causes of morbidity) and Z (factors influencing health status, "history of ...").
ICD_KEEP_T = re.compile(r"^T(6[6-9]|7[0-8]|8[0-8])")

# qualifiers stripped from ICD-10-CM descriptions to derive short surface forms
ICD_STRIP = [
    re.compile(r"\s*\([^)]*\)"),  # parenthetical qualifiers: "Essential (primary) hypertension"
    re.compile(r",?\s+without (complications?|mention of [^,]*|[a-z]+ (symptoms|behavior|features))$", re.I),
    re.compile(r",?\s+not elsewhere classified$", re.I),
    re.compile(r",?\s+not otherwise specified$|\s+NOS$", re.I),
    re.compile(r",\s+unspecified(\s+[a-z ]+)?$", re.I),
    re.compile(r"^unspecified\s+", re.I),
    re.compile(r",\s+(site|type|organism|part|side|laterality) unspecified$", re.I),
    re.compile(r",\s+(initial|subsequent) encounter$", re.I),
]
ICD_HEADS = re.compile(r"\s+(with|due to|in diseases classified elsewhere|complicating)\b.*$", re.I)
MAX_TERM_TOKENS = 12  # longer descriptions are kept only in derived forms (they never occur verbatim)


def code_system_of(prefixed: str) -> tuple[str, str]:
    """("DRUGBANK:DB01048") -> ("DB01048", "DrugBank"); unknown prefixes give ("", "")."""
    if not prefixed:
        return "", ""
    pre, _, code = prefixed.partition(":")
    pre = pre.upper()
    if pre == "DRUGBANK":
        return code, "DrugBank"
    if pre == "MESH":
        return code, "MeSH"
    if pre == "MEDLINEPLUS":
        return code, "MedlinePlus"
    if pre == "UNII":
        return code, "UNII"
    if pre == "DOID":
        return prefixed, "DOID"
    if pre in ("ICD10CM", "ICD-10-CM"):
        return code, "ICD-10-CM"
    return "", ""


def read_source(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh, delimiter="\t", quoting=csv.QUOTE_NONE))


class Builder:
    def __init__(self, data: Path, out: Path, unii: str) -> None:
        self.data = data
        self.lex = data / "lexicons"
        self.out = out
        self.unii = unii
        # key -> label -> list of candidate rows
        self.cands: dict[str, dict[str, list[tuple]]] = defaultdict(lambda: defaultdict(list))
        self.gold_label: dict[str, Counter] = defaultdict(Counter)  # key -> label counts in TRAIN gold
        self.gold_lower: set[str] = set()  # short terms attested in lower case in TRAIN gold
        self.stats: Counter = Counter()
        self.hpo_kinds: tuple[str, ...] = ("layperson",)
        self.hpo_clinical_kinds: tuple[str, ...] = ("name", "exact")
        self.clinical_keys: dict[tuple[str, str], str] = {}  # (key, label) of CLINICAL_SOURCES rows -> stop term

    # ------------------------------------------------------------------ candidates
    def add(
        self,
        label: str,
        term: str,
        canonical: str,
        code: str,
        system: str,
        source: str,
        term_type: str,
        prio: int,
        xrefs: str = "",
    ) -> None:
        term = " ".join(term.split())
        key = norm_key(term)
        if not key or len(key) < 2 or len(key.split(" ")) > MAX_TERM_TOKENS:
            self.stats[f"skip:{source}"] += 1
            return
        if not re.search(r"[^\W\d_]", key):  # numbers / punctuation only
            self.stats[f"skip:{source}"] += 1
            return
        if len(key) <= 2 and source in ("DO", "ICD-10-CM", "drug-ner", "FDA-UNII"):
            # two-character dictionary abbreviations ("HT", "SD", "CP") are mostly something else in text
            self.stats[f"skip:short:{source}"] += 1
            return
        self.cands[key][label].append((prio, term, canonical or term, code, system, source, term_type, xrefs))

    def short_case(self, term: str) -> str:
        """Short (<= 4 chars) lower-case dictionary terms become case-sensitive capitals ("apap" -> "APAP")
        unless TRAIN gold shows them in lower case ("iron", "urea")."""
        compact = re.sub(r"[\s\-]", "", term)
        if len(compact) <= 4 and term == term.lower() and term.lower() not in self.gold_lower:
            return term.upper()
        return term

    def load_gold(self) -> None:
        for name in ("bc5cdr_train_mentions.tsv", "ncbi_disease_train_mentions.tsv"):
            for r in read_source(self.lex / name):
                self.gold_label[norm_key(r["term"])][r["term_type"]] += 1
                if r["term"] == r["term"].lower():
                    self.gold_lower.add(r["term"].lower())
        for line in (self.data / "train" / "chia_train.spans.jsonl").read_text(encoding="utf-8").splitlines():
            d = json.loads(line)
            for sp in d["spans"]:
                term = d["text"][sp["start"] : sp["end"]]
                self.gold_label[norm_key(term)][sp["label"]] += 1
                if term == term.lower():
                    self.gold_lower.add(term.lower())

    def doid(self) -> None:
        xref: dict[str, list[str]] = defaultdict(list)
        for r in read_source(self.lex / "disease_ontology_xrefs.tsv"):
            parts = r["code"].split("|")
            if len(parts) == 2:
                xref[parts[0]].append(parts[1])
        for r in tqdm(read_source(self.lex / "disease_ontology.tsv"), desc="disease ontology", unit="row"):
            self.add(
                ILL,
                r["term"],
                r["canonical"],
                r["code"],
                "DOID",
                "DO",
                r["term_type"],
                PRIORITY.get(("doid", r["term_type"]), 14),
                "|".join(sorted(xref.get(r["code"], []))),
            )

    def icd(self) -> None:
        for r in tqdm(read_source(self.lex / "icd10cm.tsv"), desc="icd-10-cm", unit="row"):
            code = r["code"]
            first = code[:1]
            if first in "SVWXYZ" or (first == "T" and not ICD_KEEP_T.match(code)):
                self.stats["icd:dropped_chapter"] += 1
                continue
            term = r["term"]
            canonical = r["canonical"]
            forms = {term}
            cur = term
            for _ in range(3):  # strip qualifiers repeatedly ("X, unspecified (Y)")
                prev = cur
                for rx in ICD_STRIP:
                    cur = rx.sub("", cur).strip(" ,")
                if cur == prev:
                    break
            if cur:
                forms.add(cur)
            head = ICD_HEADS.sub("", cur).strip(" ,")
            if head and len(head.split()) >= 1:
                forms.add(head)
            for f in sorted(forms):
                derived = f != term
                tt = "derived" if derived else r["term_type"]
                # a head cut before "due to" / "with" names a narrower code than the words say ("Sepsis" from
                # "Sepsis due to streptococcus, group A", "Omphalitis" from "Omphalitis with mild hemorrhage"): it
                # yields to a form whose qualifier said "unspecified" ("Sepsis, unspecified organism", A41.9) or
                # any other source, and where it is the only one it carries no code
                cut = derived and f == head and head != cur
                if cut:  # recognised, but named by its own words and uncoded: the code would claim the qualifier
                    self.add(ILL, f, f, "", "", "ICD-10-CM", tt, PRIORITY[("icd", tt)] + 1)
                else:
                    self.add(ILL, f, canonical, code, "ICD-10-CM", "ICD-10-CM", tt, PRIORITY[("icd", tt)])

    def drugs(self) -> None:
        for r in tqdm(read_source(self.lex / "drug_ner_dictionary.tsv"), desc="drug dictionary", unit="row"):
            code, system = code_system_of(r["code"])
            self.add(
                MED,
                self.short_case(r["term"]),
                r["canonical"],
                code,
                system,
                "drug-ner",
                r["term_type"],
                PRIORITY[("drug", system)],
            )

    def unii_names(self) -> None:
        if self.unii == "none":
            return
        for r in tqdm(read_source(self.lex / "fda_unii_official_and_brand.tsv"), desc="fda unii", unit="row"):
            if r["term_type"] != "official_name" and self.unii != "all":
                continue
            term = r["term"]
            # keep plain substance names: <= 3 words, letters (and spaces/hyphens) only, no salts of salts
            if self.unii == "plain" and (len(term.split()) > 3 or re.search(r"[^A-Za-z \-]", term)):
                self.stats["unii:dropped_complex"] += 1
                continue
            code, system = code_system_of(r["code"])
            self.add(
                MED,
                self.short_case(term.lower()),
                r["canonical"].lower(),
                code,
                system,
                "FDA-UNII",
                r["term_type"],
                PRIORITY[("unii", "official_name")],
            )

    def corpus_mentions(self) -> None:
        for name, src in (
            ("bc5cdr_train_mentions.tsv", "BC5CDR-train"),
            ("ncbi_disease_train_mentions.tsv", "NCBI-disease-train"),
        ):
            for r in read_source(self.lex / name):
                label = r["term_type"]
                if is_case_sensitive(r["term"]) and (label == ILL or len(norm_key(r["term"])) <= 2):
                    # disease abbreviations defined inside one abstract ("MED", "TD", "WT") mean other things
                    # elsewhere; chemical abbreviations of 3+ characters ("STZ", "MPTP", "5-HT") are stable
                    self.stats[f"skip:abbrev:{src}"] += 1
                    continue
                if label == ILL and r["term"].split() and PROCEDURE_WORD.fullmatch(
                        r["term"].split()[-1].strip(".,;:()")):
                    self.stats[f"skip:procedure:{src}"] += 1
                    continue
                first = r["code"].split("|")[0]
                code, system = code_system_of(first)
                xrefs = r["code"] if not code else ""
                self.add(
                    label,
                    r["term"],
                    r["canonical"],
                    code,
                    system,
                    src,
                    "train_mention",
                    PRIORITY[("corpus", label)],
                    xrefs,
                )

    def hpo(self) -> None:
        """HPO phenotypes (2023-01-27): names, exact and layperson synonyms, read as published (the licence asks
        that its rows stay unaltered; our own phrases live in lexicons/curated_terms.tsv). One-word synonyms
        that are common English words ("tired") are left out: exact matching would find them everywhere."""
        common = set()
        cw = self.out / "common_words.txt"
        if cw.is_file():
            common = {w.strip().lower() for w in cw.read_text(encoding="utf-8").splitlines() if w.strip()}
        for r in read_source(self.lex / "hpo_phenotypes.tsv"):
            kind = r["synonym_type"]
            if kind not in self.hpo_kinds:
                continue
            term = r["term"]
            if " " not in term.strip() and term.strip().lower() in common and kind != "name":
                self.stats["skip:hpo:common_word"] += 1
                continue
            self.add(ILL, term, r["canonical"], r["code"], "HPO", "HPO", f"hpo_{kind}", PRIORITY[("hpo", kind)])

    def hpo_clinical(self) -> None:
        """HPO names and exact synonyms that no other source holds, as clinical-only rows (term types in
        extractor/chain/lexicon.py CLINICAL_TERM_TYPES: they match only in a narrative report or a patient's own
        words). A clinician's words for a sign ("chest tightness", "crepitations", "third heart sound") that
        abstracts and criteria rarely label; imported everywhere they cost the PubMed corpora. Short forms
        ("CP", "PDA", "SVT") are left out: in a note they are usually something else. Call after every other
        source."""
        taken = set(self.cands)
        for r in read_source(self.lex / "hpo_phenotypes.tsv"):
            kind = r["synonym_type"]
            if kind not in self.hpo_clinical_kinds:
                continue
            term = " ".join(r["term"].split())
            key = norm_key(term)
            if key in taken:
                continue
            if len(key) <= 5 or (term.upper() == term and " " not in term):
                self.stats["skip:hpo_clinical:short"] += 1
                continue
            self.add(ILL, term, r["canonical"], r["code"], "HPO", "HPO", f"hpo_{kind}_clinical",
                     PRIORITY[("hpo", kind)])

    def chia_mentions(self) -> None:
        """Chia TRAIN gold mentions (Condition -> ILLNESS, Drug -> MEDICINE), except what
        lexicons/non_entities.tsv says the service does not report. No codes: linking comes from other rows
        of the same term when there are any. Abbreviations need 2+ mentions."""
        sys.path.insert(0, str(REPO_ROOT))
        from extractor.chain.non_entities import NonEntities

        non = NonEntities.from_dir(self.out)
        counts: Counter = Counter()
        path = self.data / "train" / "chia_train.spans.jsonl"
        for line in path.read_text(encoding="utf-8").splitlines():
            d = json.loads(line)
            for sp in d["spans"]:
                counts[(d["text"][sp["start"] : sp["end"]], sp["label"])] += 1
        for (term, label), n in sorted(counts.items()):
            if non.kind(label, term) is not None:
                self.stats["skip:chia:non_entity"] += 1
                continue
            if is_case_sensitive(term) and (n < 2 or len(norm_key(term)) <= 2):
                self.stats["skip:chia:abbrev"] += 1
                continue
            if len(term) > 60:
                self.stats["skip:chia:long"] += 1
                continue
            if label == ILL and term.split() and PROCEDURE_WORD.fullmatch(term.split()[-1].strip(".,;:()")):
                self.stats["skip:chia:procedure"] += 1
                continue
            # after the other corpora's mentions (which carry codes) on a tie
            self.add(label, term, term, "", "", "Chia-train", "train_mention", PRIORITY[("corpus", label)] + 1)

    # ------------------------------------------------------------------ resolve + write
    def resolve(self) -> dict[str, list[tuple]]:
        out: dict[str, list[tuple]] = {ILL: [], MED: []}
        for key in tqdm(sorted(self.cands), desc="resolve", unit="term"):
            by_label = self.cands[key]
            if len(by_label) > 1:
                self.stats["conflict:label"] += 1
                gold = self.gold_label.get(key)
                if gold:
                    label = gold.most_common(1)[0][0]
                else:
                    label = min(by_label, key=lambda lb: (min(c[0] for c in by_label[lb]), lb))
            else:
                label = next(iter(by_label))
            rows = sorted(by_label[label], key=lambda c: (c[0], len(c[3]), c[3], c[1]))
            if len({(c[2].lower(), c[3]) for c in rows}) > 1:
                self.stats["conflict:canonical"] += 1
            out[label].append((key,) + rows[0][1:])
        return out

    def write_terms(self, resolved: dict[str, list[tuple]]) -> None:
        for label, name in ((ILL, "illnesses.tsv"), (MED, "medicines.tsv")):
            path = self.out / name
            with path.open("w", encoding="utf-8", newline="") as fh:
                fh.write(
                    f"# GENERATED by scripts/build_lexicons.py from {self.data.name}/lexicons -- "
                    "do not edit: "
                    "add rows to curated_terms.tsv, stop rows to stopterms.tsv (see README.md)\n"
                )
                fh.write("term\tcanonical\tcode\tcode_system\tsource\tterm_type\txrefs\n")
                for _key, term, canonical, code, system, source, tt, xrefs in resolved[label]:
                    if source in CLINICAL_SOURCES:
                        # a capitals-only term is stopped by a row in its own capitals ("HBV", not "hbv")
                        self.clinical_keys[(_key, label)] = term if is_case_sensitive(term) else _key
                    fields = [term, canonical, code, system, source, tt, xrefs]
                    fh.write("\t".join(f.replace("\t", " ") for f in fields) + "\n")
            self.stats[f"rows:{name}"] = len(resolved[label])

    # ------------------------------------------------------------------ stop-term mining on TRAIN
    def mine_stops(self, min_matches: int, max_precision: float) -> None:
        gen = self.out / STOPTERMS_GENERATED
        gen.write_text("term\tlabel\tscope\treason\n", encoding="utf-8")
        lex = Lexicon.load(self.out, use_cache=False)
        stage = LexiconStage(lex, fuzzy=False)
        stats: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])  # (key, label) -> [n, tp]
        per_corpus: dict[tuple[str, str, str], list[int]] = defaultdict(lambda: [0, 0])  # + corpus
        cased: dict[tuple[str, str], str] = {}
        word_out: Counter = Counter()
        word_in: Counter = Counter()
        for name, labels in (("bc5cdr_train", (ILL, MED)), ("ncbi_disease_train", (ILL,)), ("chia_train", (ILL, MED))):
            path = self.data / "train" / f"{name}.spans.jsonl"
            lines = path.read_text(encoding="utf-8").splitlines()
            for line in tqdm(lines, desc=f"mine {name}", unit="sent"):
                d = json.loads(line)
                text = d["text"]
                gold = {(s["start"], s["end"], s["label"]) for s in d["spans"]}
                inside = [False] * (len(text) + 1)
                for s in d["spans"]:
                    for k in range(s["start"], s["end"]):
                        inside[k] = True
                for e in stage.extract(text):
                    if e.label not in labels or not e.source.startswith(("illnesses.tsv", "medicines.tsv")):
                        continue
                    hit = (e.start, e.end, e.label) in gold
                    term = str(e.details.get("term") or e.surface)
                    if is_case_sensitive(term):  # stopped by a row in its own capitals
                        cased[(norm_key(e.surface), e.label)] = term
                    for st in (stats[(norm_key(e.surface), e.label)], per_corpus[(norm_key(e.surface), e.label, name)]):
                        st[0] += 1
                        st[1] += hit
                for s, _e, tok in tokenize(text):
                    w = tok.lower()
                    if len(w) >= 5 and w.isalpha():
                        (word_in if inside[s] else word_out)[w] += 1
        # a drug class ("ACE inhibitors", "calcium channel blockers") is not a wrong match when a corpus leaves
        # classes unlabelled: lab_tests.py decides from the context whether the class is given (a medicine) or
        # a topic, so no class is mined as a stop-term
        from extractor.chain.lab_tests import LAB_CONTEXT_FILE, LabTests

        labs = LabTests.from_dir(self.out if (self.out / LAB_CONTEXT_FILE).is_file() else REPO_ROOT / "lexicons")
        for key, label in [k for k in stats if k[1] == MED and labs.is_class_name(k[0])]:
            del stats[(key, label)]
            for c in ("bc5cdr_train", "chia_train"):
                per_corpus.pop((key, label, c), None)
        rows = []
        for (key, label), (n, tp) in sorted(stats.items()):
            if (n >= min_matches and tp / n < max_precision) or (tp == 0 and len(key) <= 4):
                rows.append((cased.get((key, label), key), label, "all", f"TRAIN: {n} matches, {tp} exact gold"))
        stopped = {(norm_key(r[0]), r[1]) for r in rows}
        for (key, label, corpus), (n, tp) in sorted(per_corpus.items()):
            if (key, label) in self.clinical_keys and (key, label) not in stopped:
                # stricter than the general rule: one wrong match in a TRAIN corpus with no right one is enough
                if tp / n < max(max_precision, 0.5):
                    stop = self.clinical_keys[(key, label)]
                    rows.append((stop, label, "all", f"TRAIN {corpus}: {n} matches, {tp} exact gold (clinical source)"))
                    stopped.add((key, label))
        # A sign or symptom (an HPO phenotype, an ICD-10-CM R-chapter code) that abstracts and criteria leave
        # unlabelled ("malaise", "weight gain", "leg pain", "tingling", "drowsiness") is still the patient's
        # complaint in a case report or a patient's own words: it is stopped only outside clinical text
        # (scope "abstracts", extractor/chain/lexicon.py)
        for k, r in enumerate(rows):
            if r[1] in (ILL, "*") and r[2] == "all" and len(r[0]) >= 5 and not is_case_sensitive(r[0]):
                row = lex.lookup(r[0])
                if row is not None and row.label == ILL and (
                    row.code_system == "HPO" or (row.code_system == "ICD-10-CM" and (row.code or "").startswith("R"))
                ):
                    rows[k] = (r[0], r[1], "abstracts", r[3] + "; a sign or symptom")
        self.stats["stop:all"] = sum(r[2] == "all" for r in rows)
        self.stats["stop:abstracts"] = sum(r[2] == "abstracts" for r in rows)
        nfz = 0
        # A misspelling is a rare word: any word seen at least twice in the TRAIN texts (inside or outside
        # gold
        # spans) is a real word and never a fuzzy query. Exact terms never reach fuzzy matching anyway.
        for w in sorted(set(word_out) | set(word_in)):
            n_out, n_in = word_out[w], word_in[w]
            if n_out + n_in >= 2 and lex.lookup(w) is None:
                rows.append((w, "*", "fuzzy", f"TRAIN word: {n_out}x outside gold, {n_in}x inside"))
                nfz += 1
        self.stats["stop:fuzzy"] = nfz
        with gen.open("w", encoding="utf-8", newline="") as fh:
            fh.write(
                "# GENERATED by scripts/build_lexicons.py from TRAIN corpora -- do not edit: override with "
                "curated_terms.tsv, add stops to stopterms.tsv\n"
            )
            fh.write("term\tlabel\tscope\treason\n")
            for r in rows:
                fh.write("\t".join(r) + "\n")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument(
        "--data",
        type=Path,
        default=REPO_ROOT.parent / "shared" / "data",
        help="source data dir holding lexicons/ and train/ (default: ../shared/data from the repo root)",
    )
    ap.add_argument(
        "--out", type=Path, default=REPO_ROOT / "lexicons", help="output lexicon dir (default: lexicons/)"
    )
    ap.add_argument(
        "--unii",
        choices=("none", "plain", "official", "all"),
        default="plain",
        help="FDA UNII rows to keep: plain official names (default), all official names, "
        "official + brand names, or none",
    )
    ap.add_argument("--no-hpo", action="store_true", help="leave out the HPO phenotype terms")
    ap.add_argument(
        "--hpo-kinds",
        default="layperson",
        help="HPO synonym types to import, comma-separated from name,exact,layperson (default layperson: names "
        "and exact synonyms cost the PubMed corpora more than they gave Chia)",
    )
    ap.add_argument(
        "--hpo-clinical-kinds",
        default="name,exact",
        help="HPO synonym types imported as clinical-only rows where no other source has the term (matched only "
        "in narrative reports and patients' own words); empty: none",
    )
    ap.add_argument("--no-chia", action="store_true", help="leave out the Chia TRAIN mentions")
    ap.add_argument("--no-stop-mining", action="store_true", help="do not (re)write stopterms_generated.tsv")
    ap.add_argument("--min-matches", type=int, default=2, help="stop-term mining: minimum TRAIN matches")
    ap.add_argument(
        "--max-precision",
        type=float,
        default=0.4,
        help="stop-term mining: a term whose TRAIN matches are gold less often than this is stopped",
    )
    args = ap.parse_args(argv)
    if not (args.data / "lexicons").is_dir():
        ap.error(f"no lexicons/ under {args.data}")
    args.out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    b = Builder(args.data, args.out, args.unii)
    b.load_gold()
    b.doid()
    b.icd()
    b.corpus_mentions()
    if not args.no_chia:
        b.chia_mentions()
    if not args.no_hpo:
        b.hpo_kinds = tuple(k.strip() for k in args.hpo_kinds.split(",") if k.strip())
        b.hpo()
    b.drugs()
    b.unii_names()
    if not args.no_hpo:
        b.hpo_clinical_kinds = tuple(k.strip() for k in args.hpo_clinical_kinds.split(",") if k.strip())
        b.hpo_clinical()
    b.write_terms(b.resolve())
    if not args.no_stop_mining:
        b.mine_stops(args.min_matches, args.max_precision)
    for k, v in sorted(b.stats.items()):
        print(f"{k}\t{v}")
    print(f"done in {time.time() - t0:.1f}s -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
