"""Build lexicons/common_words.txt: frequent English words that are almost never part of an entity.

    python scripts/build_common_words.py [--data ../shared/data/train]

The cascade gate (extractor/chain.py) runs NER on an entry whose illness and medicine are already found only if
it still holds a word that no stage explained and that is not in this list. Words come from the TRAIN splits
only (BC5CDR, NCBI disease): kept when seen at least ``--min-count`` times outside gold spans and inside a gold
span in at most ``--max-entity-share`` of their occurrences. Lines are `word<TAB>count`; edit freely.
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
""".split()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "train")
    ap.add_argument("--out", type=Path, default=REPO / "lexicons" / "common_words.txt")
    ap.add_argument("--min-count", type=int, default=3)
    ap.add_argument("--max-entity-share", type=float, default=0.02)
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
    keep = {
        w: c for w, c in outside.items()
        if c >= args.min_count and inside[w] <= args.max_entity_share * (c + inside[w])
    }
    for w in CLINICAL:
        keep.setdefault(w, 0)
    lines = ["# Common words: never a reason to run NER on an entry (see scripts/build_common_words.py).",
             "# Built from BC5CDR and NCBI-disease TRAIN sentences (words outside gold spans) plus everyday",
             "# clinical-note words. word<TAB>count outside entities"]
    lines += [f"{w}\t{c}" for w, c in sorted(keep.items(), key=lambda kv: (-kv[1], kv[0]))]
    args.out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"wrote {args.out}: {len(keep)} words")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
