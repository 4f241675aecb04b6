"""``python -m extractor query``: the everyday questions about the processed entries in MongoDB.

    python -m extractor query patient P123 [--since 2024-01-01] [--until 2025-01-01]
    python -m extractor query code E11.9 [--kind illness|medicine] [--since ...] [--until ...]
    python -m extractor query counts [--kind illness|medicine] [--since ...] [--top 20]

Each prints a table (or ``--json``) and uses an index made by ``python -m extractor db init``. Entry text is
shown only with ``--show-text`` (it is patient data).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from extractor.config import load_settings


def configure_parser(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="question", metavar="QUESTION", required=True)
    pat = sub.add_parser("patient", help="one patient's documents, oldest first")
    pat.add_argument("patient_id")
    code = sub.add_parser("code", help="documents holding an illness or medicine code in a time range")
    code.add_argument("code", help="e.g. E11.9 (ICD-10-CM), DB00331 (DrugBank), DOID:9352")
    counts = sub.add_parser("counts", help="entries and patients per code (an aggregation), most frequent first")
    counts.add_argument("--top", type=int, default=20)
    counts.add_argument("--include-negated", action="store_true", help="also count negated / hypothetical mentions")
    for p in (pat, code, counts):
        p.add_argument("--since", help="from this time on (ISO 8601, inclusive), e.g. 2024-01-01")
        p.add_argument("--until", help="before this time (ISO 8601, exclusive)")
        p.add_argument("--json", action="store_true", help="print JSON lines instead of a table")
    for p in (code, counts):
        p.add_argument("--kind", choices=("illness", "medicine"), default="illness")
    for p in (pat, code):
        p.add_argument("--limit", type=int, default=100)
        p.add_argument("--show-text", action="store_true", help="include the entry text (patient data)")


def _row(doc: dict[str, Any], show_text: bool) -> dict[str, Any]:
    row = {
        "entry_id": doc.get("_id"),
        "patient_id": doc.get("patient_id"),
        "timestamp": doc.get("timestamp"),
        "status": doc.get("status"),
        "illnesses": ", ".join(f"{e.get('canonical')} ({e.get('code')})" for e in doc.get("illnesses", [])),
        "medicines": ", ".join(f"{e.get('canonical')} ({e.get('code')})" for e in doc.get("medicines", [])),
    }
    if show_text:
        row["text"] = doc.get("text")
    return row


def print_table(rows: list[dict[str, Any]], out: Any = sys.stdout) -> None:
    if not rows:
        print("(no match)", file=out)
        return
    cols = list(rows[0])
    width = {c: min(max(len(c), *(len(str(r.get(c, ""))) for r in rows)), 60) for c in cols}
    print("  ".join(f"{c:<{width[c]}}" for c in cols), file=out)
    for r in rows:
        print("  ".join(f"{str(r.get(c, ''))[:60]:<{width[c]}}" for c in cols), file=out)


def run(args: argparse.Namespace) -> int:
    from extractor.stream import store

    settings = load_settings(args.config)
    coll = store.collection(settings)
    when = store.TimeRange(args.since, args.until)
    rows: list[dict[str, Any]]
    if args.question == "patient":
        rows = [_row(d, args.show_text)
                for d in store.patient_documents(coll, args.patient_id, when, args.limit, args.show_text)]
    elif args.question == "code":
        rows = [_row(d, args.show_text)
                for d in store.documents_with_code(coll, args.kind, args.code, when, args.limit, args.show_text)]
    else:
        rows = [{k: r.get(k) for k in ("code", "canonical", "entries", "patients")}
                for r in store.counts_per_code(coll, args.kind, when, args.top, args.include_negated)]
    if args.json:
        for r in rows:
            print(json.dumps(r, ensure_ascii=False, default=str))
    else:
        print_table(rows)
    return 0
