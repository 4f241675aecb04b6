"""Build lexicons/common_words.txt: frequent English words that are almost never part of an entity.

    python scripts/build_common_words.py [--data ../shared/data/train]

The cascade gate (extractor/chain/engine.py) runs NER on an entry only if it still holds a word that no earlier stage
explained and that is not in this list. Two sources:

* general English: the ``wordfreq`` package's word list (Zipf frequency >= ``--min-zipf``), so everyday words of
  clinical notes ("refilled", "vitals", "labs") do not wake the model;
* the TRAIN splits (BC5CDR, NCBI disease): words seen at least ``--min-count`` times outside gold spans.

Removed from both: words inside a gold span in more than ``--max-entity-share`` of their train occurrences, and
single-word lexicon terms that the train texts never use outside an entity (no evidence they are common).
Lines are `word<TAB>count outside entities in train`; edit freely.
"""

from __future__ import annotations

import argparse
import json
import re
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
WORD = re.compile(r"[a-z]+")
# everyday clinical-note words that PubMed sentences rarely use
CLINICAL = """patient pt pts shows showed presents presented complains complaining reports reported denies denied
prescribed prescribe started start continue continued stop stopped given take takes taking daily twice once
three four times mouth tablet tablets capsule capsules dose doses week weeks month months year years today
yesterday tomorrow morning evening night bedtime hours hour days visit follow followup return clinic seen
signs sign symptoms symptom history noted note plan advised advice rest fluids refer referred review
also with without since after before around about still mild moderate severe acute chronic worsening improving
afebrile reassessed reassess immunizations immunization vitals vital refill refilled refills labs meds subq prn
nebulizer inhaler puffs sprays topically increase decrease decreased increased secondary weight morning
""".split()


def _lexicon_words(lexicon_dir: Path) -> set[str]:
    """Single-word terms of the illness and medicine lexicons, lower-cased."""
    words: set[str] = set()
    for name in ("illnesses.tsv", "medicines.tsv", "curated_terms.tsv", "misspellings.tsv"):
        path = lexicon_dir / name
        if not path.is_file():
            continue
        for line in path.read_text(encoding="utf-8").splitlines()[1:]:
            term = line.split("\t", 1)[0].strip().lower()
            if term and " " not in term and not term.startswith("#"):
                words.add(term)
    return words


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "train")
    ap.add_argument("--out", type=Path, default=REPO / "lexicons" / "common_words.txt")
    ap.add_argument("--min-count", type=int, default=3)
    ap.add_argument("--max-entity-share", type=float, default=0.02)
    ap.add_argument("--min-zipf", type=float, default=2.5, help="wordfreq Zipf frequency floor (2.5 ~ 1 per 3M words)")
    args = ap.parse_args()
    outside: Counter[str] = Counter()
    inside: Counter[str] = Counter()
    for name in ("bc5cdr_train.spans.jsonl", "ncbi_disease_train.spans.jsonl"):
        with (args.data / name).open(encoding="utf-8") as fh:
            for line in fh:
                row = json.loads(line)
                text = row["text"].lower()
                spans = [(s["start"], s["end"]) for s in row["spans"]]
                for m in WORD.finditer(text):
                    if any(s < m.end() and m.start() < e for s, e in spans):
                        inside[m.group()] += 1
                    else:
                        outside[m.group()] += 1
    from wordfreq import top_n_list, zipf_frequency

    candidates = {w: c for w, c in outside.items() if c >= args.min_count}
    for w in top_n_list("en", 100_000):
        if WORD.fullmatch(w) and zipf_frequency(w, "en") >= args.min_zipf:
            candidates.setdefault(w, outside[w])
    terms = _lexicon_words(REPO / "lexicons")
    keep = {
        w: c for w, c in candidates.items()
        # a lexicon term never seen in train text is no evidence of a common word: leave it out
        if inside[w] <= args.max_entity_share * (outside[w] + inside[w]) and not (w in terms and outside[w] == 0)
    }
    for w in CLINICAL:  # hand-picked: kept whatever the filters say
        keep.setdefault(w, outside[w])
    lines = ["# Common words: never a reason to run NER on an entry (see scripts/build_common_words.py).",
             "# From wordfreq's English list and BC5CDR / NCBI-disease TRAIN sentences, minus entity words and",
             "# lexicon terms. word<TAB>count outside entities in train"]
    lines += [f"{w}\t{c}" for w, c in sorted(keep.items(), key=lambda kv: (-kv[1], kv[0]))]
    args.out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"wrote {args.out}: {len(keep)} words")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
