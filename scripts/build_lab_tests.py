#!/usr/bin/env python
"""Build lexicons/lab_tests.tsv: names of laboratory tests, analytes and markers, from real sources.

Sources (TRAIN and ontology only; no DEV split is read):

* the Human Phenotype Ontology (``hpo_phenotypes.tsv``, release 2023-01-27): a phenotype that is a measured value
  names its analyte ("Increased circulating prolactin concentration" -> prolactin, "Elevated serum creatine
  kinase" -> creatine kinase, "Abnormal urinary potassium level" -> potassium);
* Chia TRAIN ``Measurement`` annotations (``chia_train_all_types.jsonl``) that are seen as measurements at least
  twice and more often than as ``Drug`` ("HbA1c", "serum creatinine", "platelet count"), with the words that
  only qualify the measurement stripped ("serum", "fasting", "level").

Each term is an ``analyte`` (only ever measured: named alone, it is a test) or ``dual_use`` (also given as a
treatment: calcium, insulin, oxygen; only its context makes it a test): dual use when the drug dictionary gives it
a DrugBank or MedlinePlus id or Chia TRAIN annotates it as a ``Drug`` at least once.

The file is GENERATED; hand-written analytes and the context cues live in lexicons/lab_context.tsv.

    python scripts/build_lab_tests.py [--data DIR] [--out FILE]
"""

from __future__ import annotations

import argparse
import csv
import json
import re
from collections import Counter
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent

_QUALIFIER = r"(?:circulating|serum|plasma|blood|urine|urinary|csf|cerebrospinal fluid|cord blood|fecal|faecal)"
_DIRECTION = (
    r"(?:abnormal|abnormally|elevated|increased|decreased|reduced|low|high|raised|deficient|absent|undetectable)"
)
_MEASURE = r"(?:level|levels|concentration|concentrations|activity|excretion|measurement|titer|titers)"
# "Increased circulating X concentration", "Elevated serum X", "Abnormal urinary X level", "Decreased X level"
HPO_ANALYTE = re.compile(
    rf"^{_DIRECTION}\s+(?:(?P<q>{_QUALIFIER})\s+)?(?P<x>[a-z0-9][\w\- ,/()']*?)(?:\s+(?P<m>{_MEASURE}))?$",
    re.IGNORECASE,
)
# words that qualify a measurement rather than name the analyte (stripped from Chia mentions)
_STRIP_HEAD = re.compile(rf"^(?:{_QUALIFIER}|fasting|total|free|baseline|screening)\s+", re.IGNORECASE)
_STRIP_TAIL = re.compile(r"\s+(?:level|levels|concentration|value|values|count|test|result|results)$", re.IGNORECASE)
_TOO_GENERIC = {
    "amino acid", "protein", "hormone", "antibody", "antibodies", "enzyme", "cell", "cells", "lipid", "metabolite",
    "weight", "height", "age", "temperature", "stage", "grade", "score", "pressure", "blood pressure", "rate",
}


def hpo_analytes(path: Path) -> dict[str, str]:
    out: dict[str, str] = {}
    with path.open(encoding="utf-8", newline="") as fh:
        for row in csv.DictReader(fh, delimiter="\t"):
            m = HPO_ANALYTE.match(row["term"].strip())
            if not m or not (m.group("q") or m.group("m")):
                continue  # "Increased muscle tone" names no analyte: a qualifier or a measure word is required
            x = m.group("x").strip(" ,")
            words = x.split()
            if not 1 <= len(words) <= 4 or " of " in f" {x.lower()} " or x.lower() in _TOO_GENERIC:
                continue
            out.setdefault(x.lower(), f"HPO {row['code']}")
    return out


def chia_counts(path: Path) -> tuple[Counter[str], Counter[str]]:
    """(Measurement, Drug) mention counts of Chia TRAIN, by lower-cased text."""
    measured: Counter[str] = Counter()
    drug: Counter[str] = Counter()
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            doc = json.loads(line)
            for e in doc["entities"]:
                t = " ".join(e["text"].lower().split())
                if e["type"] == "Measurement":
                    measured[t] += 1
                elif e["type"] == "Drug":
                    drug[t] += 1
    return measured, drug


def drug_names(path: Path) -> set[str]:
    """Terms the drug dictionary gives a DrugBank or MedlinePlus id: medicines people are given."""
    out = set()
    with path.open(encoding="utf-8", newline="") as fh:
        for row in csv.DictReader(fh, delimiter="\t"):
            if row["code"].startswith(("DRUGBANK:", "MEDLINEPLUS:")):
                out.add(" ".join(row["term"].lower().split()))
    return out


# a one-word name of a condition ("leukocytosis", "thrombocytopenia", "hyperkalemia") is what a measurement
# shows, not what is measured; Chia sometimes marks it Measurement, but in a report it is a finding (an illness)
_CONDITION_WORD = re.compile(r"^[a-z-]+(?:osis|emia|aemia|penia|itis|uria|megaly)$")


def chia_measurements(measured: Counter[str], drug: Counter[str], min_count: int = 2) -> dict[str, str]:
    out: dict[str, str] = {}
    for t, n in measured.items():
        if n < min_count or drug[t] >= n or _CONDITION_WORD.match(t):
            continue
        for form in {t, _STRIP_TAIL.sub("", _STRIP_HEAD.sub("", t))}:
            if len(form) >= 2 and form not in _TOO_GENERIC and not any(c.isdigit() for c in form):
                out.setdefault(form, f"Chia-train Measurement x{n}")
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    p.add_argument("--data", type=Path, default=REPO_ROOT.parent / "shared" / "data", help="the shared data dir")
    p.add_argument("--out", type=Path, default=REPO_ROOT / "lexicons" / "lab_tests.tsv")
    args = p.parse_args(argv)
    terms = hpo_analytes(args.data / "lexicons" / "hpo_phenotypes.tsv")
    measured, drug = chia_counts(args.data / "train" / "chia_train_all_types.jsonl")
    for t, src in chia_measurements(measured, drug).items():
        terms.setdefault(t, src)
    drugs = drug_names(args.data / "lexicons" / "drug_ner_dictionary.tsv") | {t for t, n in drug.items() if n}
    lines = [
        "# GENERATED by scripts/build_lab_tests.py from the HPO (2023-01-27) and Chia TRAIN Measurement annotations"
        " -- do not edit: add analytes to lab_context.tsv (kind analyte)",
        "term\tkind\tsource",
    ]
    lines += [f"{t}\t{'dual_use' if t in drugs else 'analyte'}\t{src}" for t, src in sorted(terms.items())]
    args.out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"wrote {args.out}: {len(terms)} terms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
