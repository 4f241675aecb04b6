#!/usr/bin/env python
"""Train, package and evaluate the project's NER pipeline (models/ner-clinical).

One command reproduces the shipped model (fixed seeds; CPU; ~15-25 min on 2 cores):

    .venv/bin/python scripts/train_ner.py

Steps:
 1. convert   /work/shared/data/train/*.spans.jsonl -> <work-dir>/corpus/*.spacy  (alignment stats reported)
              train = BC5CDR train (ILLNESS + MEDICINE) + NCBI disease train (ILLNESS only, drug-dictionary
              tokens marked MISSING, see scripts/ner_data.py); dev = BC5CDR dev (early stopping)
 2. train     spacy train models/configs/ner.cfg  -> <work-dir>/training/model-best
 3. package   model-best -> models/ner-clinical (meta.json: name, version, sources, licences, performance)
 4. evaluate  per-label P/R/F1 on BC5CDR dev and NCBI dev, size, load time, docs/s -> models/ner-report.json

``--skip-train`` re-runs 3-4 on an existing <work-dir>/training/model-best.

Gazetteer-feature variant (experiment, not the shipped model): ``--config models/configs/ner_gaz.cfg`` adds the
``clinical_gazetteer`` component (extractor/chain/ner_features.py) whose dictionary marks the tok2vec embeds; the
dictionary is built in step 1 from NON-corpus sources only (scripts/ner_data.py ``build_gazetteer``) and saved
inside the pipeline. Such a pipeline loads through ``extractor.chain.ner.load_ner_model`` (which registers the factory).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(REPO))

import ner_data  # noqa: E402  (also registers the tokenizer callback used by the config)
import spacy  # noqa: E402
from spacy.tokens import DocBin  # noqa: E402
from spacy.training import Example  # noqa: E402

import extractor.chain.ner_features  # noqa: E402,F401  (registers the "clinical_gazetteer" factory)

DATA = Path("/work/shared/data")
SOURCES = [
    {
        "name": "BioCreative V CDR corpus (BC5CDR): train split (ILLNESS + MEDICINE); dev for early stopping",
        "url": "https://biocreative.bioinformatics.udel.edu/tasks/biocreative-v/track-3-cdr/",
        "license": "free for research use / public-domain mark (see corpus terms)",
    },
    {
        "name": "NCBI disease corpus, train split (ILLNESS only; drug-dictionary tokens marked missing)",
        "url": "https://www.ncbi.nlm.nih.gov/CBBresearch/Dogan/DISEASE/",
        "license": "US Government work, public domain",
    },
    {
        "name": "drug-named-entity-recognition 2.0.9 dictionary (only to mask drug tokens in NCBI train)",
        "url": "https://pypi.org/project/drug-named-entity-recognition/",
        "license": "MIT; rows from DrugBank open vocabulary (CC0), MeSH, MedlinePlus, Wikipedia (CC BY-SA)",
    },
]
GAZETTEER_SOURCE = {
    "name": (
        "gazetteer features (clinical_gazetteer): ICD-10-CM 2026 (chapters A-U), Disease Ontology labels + "
        "synonyms, drug-named-entity-recognition 2.0.9 dictionary, FDA UNII names; no corpus mention lists"
    ),
    "url": "https://www.cdc.gov/nchs/icd/icd-10-cm/ ; https://disease-ontology.org/ ; "
    "https://pypi.org/project/drug-named-entity-recognition/ ; https://precision.fda.gov/uniisearch",
    "license": "public domain (ICD-10-CM, UNII); CC0 (Disease Ontology, DrugBank open); MIT / CC BY-SA (drug-NER)",
}


def log(msg: str) -> None:
    print(f"[train_ner {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def _holdout(entry_id: str, percent: int) -> bool:
    """Early-stopping documents taken out of TRAIN (by abstract / trial, so no document is in both)."""
    import hashlib

    from evaluation.splits import document_key

    return int(hashlib.sha1(document_key(entry_id).encode()).hexdigest(), 16) % 100 < percent


def convert(args: argparse.Namespace, corpus: Path) -> dict:
    from extractor.chain.non_entities import NonEntities

    nlp = ner_data.blank_nlp()
    tr = DATA / "train"
    stats: dict[str, dict] = {}
    non = NonEntities.from_dir(REPO / "lexicons")
    skip = {lab: non.terms(lab) for lab in ("ILLNESS", "MEDICINE")}

    def rows(name: str) -> list[dict]:
        return ner_data.read_spans(tr / f"{name}.spans.jsonl")

    def split(name: str) -> tuple[list[dict], list[dict]]:
        rs = rows(name)
        if args.early_stop != "holdout":
            return rs, []
        return [r for r in rs if not _holdout(r["entry_id"], args.holdout_percent)], [
            r for r in rs if _holdout(r["entry_id"], args.holdout_percent)
        ]

    both = {"ILLNESS", "MEDICINE"}
    st = Counter()
    cdr_train, cdr_hold = split("bc5cdr_train")
    train_docs = ner_data.to_docs(nlp, cdr_train, both, st, non_entities=skip)
    hold_docs = ner_data.to_docs(nlp, cdr_hold, both, Counter(), non_entities=skip)
    stats["bc5cdr_train"] = dict(st)

    if args.ncbi != "none":
        st = Counter()
        ncbi_rows, ncbi_hold = split("ncbi_disease_train")
        matcher = None
        if args.ncbi == "dict-missing":
            cdr_meds = []
            for r in rows("bc5cdr_train"):
                cdr_meds += [r["text"][s["start"] : s["end"]] for s in r["spans"] if s["label"] == "MEDICINE"]
            terms = ner_data.load_drug_terms(args.lexicon, extra=cdr_meds)
            matcher = ner_data.make_drug_matcher(nlp, terms)
            ncbi_docs = ner_data.to_docs(nlp, ncbi_rows, {"ILLNESS"}, st, missing_matcher=matcher, non_entities=skip)
        elif args.ncbi == "all-missing":
            ncbi_docs = []
            for doc in ner_data.to_docs(nlp, ncbi_rows, {"ILLNESS"}, st):
                ents = list(doc.ents)
                doc.set_ents(ents, default="missing")
                ncbi_docs.append(doc)
        else:  # "as-is": every non-illness token "O" (teaches that drugs are not medicines; for comparison)
            ncbi_docs = ner_data.to_docs(nlp, ncbi_rows, {"ILLNESS"}, st)
        stats["ncbi_disease_train"] = dict(st)
        train_docs += ncbi_docs
        # NCBI's held-out part is not used for early stopping: its medicines are unlabelled

    if args.chia != "none":
        st = Counter()
        chia_train, chia_hold = split("chia_train")
        chia_docs = ner_data.to_docs(nlp, chia_train, both, st, non_entities=skip)
        hold_docs += ner_data.to_docs(nlp, chia_hold, both, Counter(), non_entities=skip)
        stats["chia_train"] = dict(st)
        train_docs += chia_docs * args.chia_repeat

    random.Random(args.seed).shuffle(train_docs)
    ner_data.write_docbin(train_docs, corpus / "train.spacy")

    st = Counter()
    cdr_dev = ner_data.to_docs(nlp, rows("bc5cdr_dev"), both, st, non_entities=skip)
    ner_data.write_docbin(cdr_dev, corpus / "bc5cdr_dev.spacy")
    stats["bc5cdr_dev"] = dict(st)
    st = Counter()
    chia_dev_docs = ner_data.to_docs(nlp, rows("chia_dev"), both, st, non_entities=skip)
    ner_data.write_docbin(chia_dev_docs, corpus / "chia_dev.spacy")
    stats["chia_dev"] = dict(st)
    # early stopping: documents held out of TRAIN (default), or BC5CDR dev as the first model did
    ner_data.write_docbin(hold_docs if args.early_stop == "holdout" else cdr_dev, corpus / "dev.spacy")
    n_stop = len(hold_docs) if args.early_stop == "holdout" else len(cdr_dev)
    stats["early_stopping"] = {"set": args.early_stop, "n_docs": n_stop}
    st = Counter()
    # NCBI dev: ILLNESS gold, everything else "O" -> only the ILLNESS row of its scores is meaningful
    ner_data.write_docbin(
        ner_data.to_docs(nlp, rows("ncbi_disease_dev"), {"ILLNESS"}, st), corpus / "ncbi_dev.spacy"
    )
    stats["ncbi_disease_dev"] = dict(st)
    stats["n_train_docs"] = len(train_docs)
    entries, gst = ner_data.build_gazetteer(nlp, args.lexicon.parent)
    from extractor.chain.ner_features import write_terms

    write_terms(entries, corpus / "gazetteer.tsv.gz")
    stats["gazetteer"] = gst
    for k, v in stats.items():
        log(f"convert {k}: {v}")
    return stats


def train(args: argparse.Namespace, corpus: Path, out: Path) -> float:
    from spacy.cli.train import train as spacy_train

    overrides = {
        "paths.train": str(corpus / "train.spacy"),
        "paths.dev": str(corpus / "dev.spacy"),
        "system.seed": args.seed,
        "training.max_steps": args.max_steps,
        "training.patience": args.patience,
        "training.eval_frequency": args.eval_frequency,
    }
    if "[initialize.components.gazetteer]" in args.config.read_text(encoding="utf-8"):
        overrides["paths.gazetteer"] = str(corpus / "gazetteer.tsv.gz")
    for item in args.set or []:
        key, _, value = item.partition("=")
        try:
            overrides[key] = json.loads(value)
        except json.JSONDecodeError:
            overrides[key] = value
    t0 = time.time()
    spacy_train(args.config, out, overrides=overrides, use_gpu=-1)
    return time.time() - t0


def evaluate(nlp, path: Path) -> dict:
    refs = list(DocBin().from_disk(path).get_docs(nlp.vocab))
    examples = [Example(nlp.make_doc(d.text), d) for d in refs]
    scores = nlp.evaluate(examples, batch_size=256)
    per = {
        lab: {k: round(v, 4) for k, v in prf.items()}
        for lab, prf in (scores.get("ents_per_type") or {}).items()
    }
    return {
        "ents_p": round(scores["ents_p"], 4),
        "ents_r": round(scores["ents_r"], 4),
        "ents_f": round(scores["ents_f"], 4),
        "ents_per_type": per,
        "n_docs": len(refs),
    }


def dir_size_mb(path: Path) -> float:
    return round(sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 1e6, 2)


def load_time(path: Path, repeats: int = 3) -> dict:
    """Median seconds, in fresh processes, for ``import spacy`` and for ``spacy.load(path)`` + one call."""
    code = (
        f"import sys, time; sys.path.insert(0, {str(REPO)!r}); t0=time.perf_counter(); import spacy; "
        "t1=time.perf_counter(); import extractor.chain.ner_features; "
        f"nlp=spacy.load({str(path)!r}); nlp('warm up'); t2=time.perf_counter(); print(t1-t0, t2-t1)"
    )
    runs = [
        tuple(map(float, subprocess.check_output([sys.executable, "-c", code], text=True).split()))
        for _ in range(repeats)
    ]
    imp = sorted(r[0] for r in runs)[len(runs) // 2]
    load = sorted(r[1] for r in runs)[len(runs) // 2]
    return {"import_spacy_s": round(imp, 3), "load_s": round(load, 3)}


def short_texts(n: int = 2000) -> list[str]:
    rows = ner_data.read_spans(DATA / "train" / "bc5cdr_dev.spans.jsonl")
    short = [r["text"] for r in rows if len(r["text"]) <= 120]
    return (short * (n // max(1, len(short)) + 1))[:n]


def speed(nlp, texts: list[str], batch_size: int = 256) -> dict:
    list(nlp.pipe(texts[:200], batch_size=batch_size))  # warm-up
    t = time.perf_counter()
    n_tok = sum(len(d) for d in nlp.pipe(texts, batch_size=batch_size))
    dt = time.perf_counter() - t
    return {
        "docs_per_s": round(len(texts) / dt),
        "words_per_s": round(n_tok / dt),
        "n_docs": len(texts),
        "mean_chars": round(sum(map(len, texts)) / len(texts), 1),
        "batch_size": batch_size,
        "n_process": 1,
    }


def stage_metrics(model: Path) -> dict:
    """What the chain sees: extractor.chain.ner.NerStage, exact char offsets, both score modes, NER-only speed."""
    import ner_eval

    from extractor.chain.ner import NerStage, load_ner_model

    nlp = load_ner_model(model)
    texts = short_texts()
    out: dict = {}
    for mode in ("none", "action_probs"):
        stage = NerStage(nlp, score_mode=mode)
        stage.extract_many(texts[:200])  # warm-up
        t = time.perf_counter()
        stage.extract_many(texts)
        out[f"{mode}/short_texts_docs_per_s"] = round(len(texts) / (time.perf_counter() - t))
        for name in ("bc5cdr_dev", "ncbi_disease_dev"):
            rows = ner_data.read_spans(DATA / "train" / f"{name}.spans.jsonl")
            labels = {"ILLNESS"} if name.startswith("ncbi") else {"ILLNESS", "MEDICINE"}
            res = ner_eval.evaluate(stage, rows, labels)
            res.pop("docs_per_s", None)
            out[f"{mode}/{name}"] = res
    log(
        f"stage speed: none {out['none/short_texts_docs_per_s']} docs/s, "
        f"action_probs {out['action_probs/short_texts_docs_per_s']} docs/s"
    )
    return out


def package(args: argparse.Namespace, best: Path, corpus: Path, train_s: float | None, conv: dict | None):
    nlp = spacy.load(best)
    # Only tok2vec + ner are in the pipeline; the tokenizer rules live in the tokenizer file.
    # The training-time callback is not needed to load: drop it from the shipped config.
    nlp.config["initialize"]["before_init"] = None
    # the gazetteer terms are saved inside the pipeline (gazetteer/terms.tsv.gz): drop the build path
    if "gazetteer" in nlp.config["initialize"].get("components", {}):
        nlp.config["initialize"]["components"]["gazetteer"]["terms_path"] = None
    if "gazetteer" in nlp.config["paths"]:
        nlp.config["paths"]["gazetteer"] = None
    perf_cdr = evaluate(nlp, corpus / "bc5cdr_dev.spacy")
    perf_ncbi = evaluate(nlp, corpus / "ncbi_dev.spacy")
    perf_chia = evaluate(nlp, corpus / "chia_dev.spacy")
    log(f"Chia dev:   {json.dumps(perf_chia)}")
    perf_ncbi["note"] = (
        "NCBI labels illnesses only: read the ILLNESS row; MEDICINE predictions are not gold-checked"
    )
    log(f"BC5CDR dev: {json.dumps(perf_cdr)}")
    log(f"NCBI dev:   {json.dumps(perf_ncbi)}")
    sources = list(SOURCES)
    extra_desc = ""
    if "gazetteer" in nlp.pipe_names:
        sources.append(GAZETTEER_SOURCE)
        extra_desc = (
            " Gazetteer features: dictionary IOB marks (ICD-10-CM, Disease Ontology, drug-NER dictionary, "
            "FDA UNII; no corpus-derived terms) embedded as token TAG."
        )
    nlp.meta.update(
        {
            "name": "ner-clinical",
            "version": args.version,
            "description": (
                "Small CPU NER for illnesses (ILLNESS) and medicines/chemicals (MEDICINE) in English "
                "biomedical text. Hash-embedding CNN tok2vec (width 128, depth 4, no static vectors) + "
                "transition-based NER. Trained on BC5CDR train + NCBI disease train (illness only)."
                + extra_desc
            ),
            "author": "clinical-extractor project",
            "license": (
                "Apache-2.0 (code); weights derived from BC5CDR (research use) "
                "and NCBI disease (public domain)"
            ),
            "sources": sources,
            "labels": {"ner": ["ILLNESS", "MEDICINE"]},
            "performance": {
                "bc5cdr_dev": perf_cdr,
                "ncbi_disease_dev": perf_ncbi,
                "chia_dev": perf_chia,
            },
        }
    )
    out = args.output
    if out.exists():
        shutil.rmtree(out)
    nlp.to_disk(out)
    report = {
        "model": str(out.relative_to(REPO)) if out.is_relative_to(REPO) else str(out),
        "version": args.version,
        "size_mb": dir_size_mb(out),
        "load_time_median_fresh_process": load_time(out),
        "speed_short_texts_ner_only": speed(spacy.load(out), short_texts()),
        "bc5cdr_dev": perf_cdr,
        "ncbi_disease_dev": perf_ncbi,
        "chia_dev": perf_chia,
        "args": {k: str(v) for k, v in vars(args).items()},
    }
    report["stage"] = stage_metrics(out)
    if train_s is not None:
        report["train_seconds"] = round(train_s)
    if conv is not None:
        report["conversion"] = conv
    rp = out.parent / "ner-report.json"
    prev = json.loads(rp.read_text()) if rp.exists() else {}
    for k in ("train_seconds", "conversion"):
        if k not in report and k in prev:
            report[k] = prev[k]
    rp.write_text(json.dumps(report, indent=2) + "\n")
    log(
        f"report -> {rp}: size {report['size_mb']} MB, load {report['load_time_median_fresh_process']}, "
        f"speed {report['speed_short_texts_ner_only']}"
    )
    return report


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", type=Path, default=REPO / "models" / "configs" / "ner.cfg")
    ap.add_argument(
        "--output", type=Path, default=REPO / "models" / "ner-clinical", help="packaged pipeline dir"
    )
    ap.add_argument("--work-dir", type=Path, default=REPO / "out" / "ner", help="corpus + training outputs")
    ap.add_argument("--lexicon", type=Path, default=DATA / "lexicons" / "drug_ner_dictionary.tsv")
    ap.add_argument(
        "--ncbi",
        choices=["dict-missing", "all-missing", "as-is", "none"],
        default="dict-missing",
        help="how NCBI train (illness-only labels) is mixed in (default: drug-dictionary tokens missing)",
    )
    ap.add_argument("--chia", choices=["train", "none"], default="train", help="add Chia train (both labels)")
    ap.add_argument("--chia-repeat", type=int, default=1, help="copies of the Chia train docs in the mix")
    ap.add_argument(
        "--early-stop",
        choices=["holdout", "bc5cdr-dev"],
        default="holdout",
        help="early-stopping set: documents held out of BC5CDR + Chia TRAIN (default) or BC5CDR dev",
    )
    ap.add_argument("--holdout-percent", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--max-steps", type=int, default=6000)
    ap.add_argument("--patience", type=int, default=1600)
    ap.add_argument("--eval-frequency", type=int, default=400)
    ap.add_argument("--version", default="0.2.0")
    ap.add_argument(
        "--set",
        action="append",
        metavar="KEY=JSON",
        help="extra spaCy config override, e.g. components.tok2vec.model.encode.width=128 (repeatable)",
    )
    ap.add_argument(
        "--skip-train", action="store_true", help="only package + evaluate <work-dir>/training/model-best"
    )
    args = ap.parse_args(argv)

    random.seed(args.seed)
    os.environ.setdefault("PYTHONHASHSEED", str(args.seed))
    corpus = args.work_dir / "corpus"
    training = args.work_dir / "training"
    conv = None
    train_s = None
    if not args.skip_train:
        log(f"converting data -> {corpus} (ncbi mode {args.ncbi})")
        conv = convert(args, corpus)
        log(f"training {args.config} -> {training}")
        train_s = train(args, corpus, training)
        log(f"training took {train_s:.0f} s")
    elif not (corpus / "chia_dev.spacy").exists():
        conv = convert(args, corpus)
    package(args, training / "model-best", corpus, train_s, conv)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
