"""Fit the chain's confidence calibration table (models/calibration.json) on held-out labelled data.

    python scripts/calibrate.py [--data ../shared/data/train] [--out models/calibration.json]

Every stage runs on every entry (so each method's raw output is seen), each entity is linked to the lexicons as
the chain does, and it is counted correct when its normalised surface is one of the entry's gold strings of the
same label (the evaluation harness's strict mode, with the same gold policy: lexicons/non_entities.tsv). Data,
across domains: the *calibration half* (evaluation/splits.py, by abstract or trial) of BC5CDR dev, Chia dev and
NCBI-disease dev (illnesses only: its medicines are not labelled), MACCROBAT dev (case reports, split by
report), and synthetic clinical-style entries from
``python -m extractor generate`` (the only source where the regex cue phrases are common). Buckets are also split
by the shape of the sentence an entity is in (extractor/chain/calibration.py ``length_band``, per segment as
the chain does: extractor/chain/segments.py). The other halves stay unseen, and
``python -m evaluation suite`` reports the ECE on them ("ECE held").
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tqdm import tqdm  # noqa: E402

from evaluation.data import Example, read_labelled  # noqa: E402
from evaluation.scoring import normalize  # noqa: E402
from extractor.chain import Chain  # noqa: E402
from extractor.chain.calibration import Calibrator  # noqa: E402
from extractor.chain.model import Entity  # noqa: E402
from extractor.chain.segments import Segments, extract_by_segment  # noqa: E402
from extractor.config import load_settings  # noqa: E402

FIELDS = {"ILLNESS": "illness", "MEDICINE": "medicine"}


from evaluation.splits import calibration_half  # noqa: E402  (split by document: abstract or trial)


def narrative_key(key: str) -> bool:
    """A bucket split by the narrative-report genre band (extractor/chain/calibration.py ``narrative``)."""
    return "|w" in key and key.endswith("n")


def fit_reported(calibrator: Calibrator, sets: list[tuple[str, list[Example], tuple[str, ...]]]) -> Calibrator:
    """The ``reported`` table: the same buckets, counted on what the whole chain returns with ``calibrator``
    (after overlaps, context, tests moved to substances), each entry's predicted items as the suite scores them:
    one per label and normalised surface, the most confident. Every corpus weighs the same (its items weighted by
    mean / its count): fitted with each item counting once, BC5CDR's 4,400 items set the PubMed buckets alone and
    NCBI's held-out ECE went 0.060 -> 0.085 (the two PubMed corpora disagree on what counts); weighted, every
    held-out half but MACCROBAT's is within 0.06. Corpora that mark every mention count negated and hypothetical
    ones too; the synthetic rows mark only asserted mentions. BC5CDR's medicine gold is every chemical, so its
    substances count as medicines there (evaluation/suite.py CHEMICAL_GOLD)."""
    from evaluation.scoring import counted
    from evaluation.suite import as_chemicals, chemical_gold, gold_policy_of

    reported = Calibrator(fitted_on=calibrator.fitted_on + " (whole-chain output, each corpus weighted the same)")
    chain = Chain.from_settings(load_settings())
    chain.calibrator, chain.reported = calibrator, None
    per_corpus: list[list[tuple[Entity, bool, str | None]]] = []
    for name, examples, labels in sets:
        items: list[tuple[Entity, bool, str | None]] = []
        per_corpus.append(items)
        corpus = name.split(" ")[0]
        count_all = not corpus.startswith("synthetic") and gold_policy_of(corpus) == "all"
        results = chain.extract_many([e.text for e in tqdm(examples, desc=f"{name}, whole chain")])
        if chemical_gold(corpus):
            results = as_chemicals(results)
        for ex, res in zip(examples, results, strict=True):
            segments = Segments(ex.text)
            gold = {lab: {normalize(g) for g in ex.gold.get(FIELDS[lab], ())} for lab in labels}
            seen: set[tuple[str, str]] = set()
            for e in sorted(res.entities, key=lambda e: -e.confidence):
                key = (e.label, normalize(e.surface))
                if e.label not in labels or key in seen or not key[1] or not counted(e, count_all):
                    continue
                seen.add(key)
                items.append((e, key[1] in gold[e.label], segments.band(e.start)))
    # each corpus weighs the same: BC5CDR's 4,400 items would otherwise set the PubMed buckets alone, and NCBI
    # (the other PubMed convention, 430 items) would have no say; held-out text of every kind counts
    mean = sum(len(items) for items in per_corpus) / max(1, len(per_corpus))
    for items in per_corpus:
        w = mean / len(items) if items else 0.0
        for e, correct, band in items:
            reported.add(e, correct, band=band, weight=w)
    return reported


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "train")
    ap.add_argument("--out", type=Path, default=REPO / "models" / "calibration.json")
    ap.add_argument("--synthetic-rows", type=int, default=500)
    ap.add_argument("--narrative-only", action="store_true",
                    help="refit only the narrative-report buckets (genre band 'n') of the table in --out, keeping "
                         "every other bucket as it is")
    ap.add_argument("--write-heldout", type=Path, default=None,
                    help="also write the BC5CDR dev rows the calibration does NOT use (to score ECE honestly)")
    args = ap.parse_args()
    if args.write_heldout:
        import csv

        with (args.data / "bc5cdr_dev.csv").open(encoding="utf-8", newline="") as fh:
            reader = csv.DictReader(fh)
            held = [r for r in reader if not calibration_half(r["entry_id"])]
            fields = reader.fieldnames or []
        args.write_heldout.parent.mkdir(parents=True, exist_ok=True)
        with args.write_heldout.open("w", encoding="utf-8", newline="") as out:
            w = csv.DictWriter(out, fieldnames=fields)
            w.writeheader()
            w.writerows(held)
        print(f"wrote {len(held)} held-out rows to {args.write_heldout}")

    sets: list[tuple[str, list[Example], tuple[str, ...]]] = []
    from evaluation.data import Dataset, filter_gold
    from extractor.chain.non_entities import NonEntities

    non = NonEntities.from_dir(Path(load_settings().lexicon_dir))
    drop = {"illness": non.terms("ILLNESS"), "medicine": non.terms("MEDICINE")}
    for name, labels in (
        ("bc5cdr_dev", ("ILLNESS", "MEDICINE")),
        ("chia_dev", ("ILLNESS", "MEDICINE")),
        ("ncbi_disease_dev", ("ILLNESS",)),
        ("maccrobat_dev", ("ILLNESS", "MEDICINE")),
    ):
        ds = read_labelled(args.data / f"{name}.csv")
        half = [e for e in ds.examples if calibration_half(e.entry_id)]
        ds, _ = filter_gold(Dataset(ds.path, ds.format, half), drop)
        sets.append((f"{name} (calibration half)", ds.examples, labels))
    if args.synthetic_rows:
        from extractor.tools.generate import generate, write_csv

        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "synthetic.csv"
            with out.open("w", encoding="utf-8", newline="") as fh:
                write_csv(iter(generate(args.synthetic_rows, seed=101)), fh)
            sets.append(("synthetic clinical (seed 101)", read_labelled(out).examples, ("ILLNESS", "MEDICINE")))

    chain = Chain.from_settings(load_settings())
    chain.calibrator = None  # fit on raw evidence, never on a previous table
    chain_merge = Chain.from_settings(load_settings(chain_mode="merge"))
    chain_merge.calibrator = None
    fitted_on = "; ".join(f"{name}: {len(ex)} entries" for name, ex, _ in sets)
    if args.narrative_only:
        # keep the shipped table's other buckets exactly (they decide which entities win everywhere else)
        old = Calibrator.load(args.out)
        assert old is not None
        calibrator = Calibrator({k: v for k, v in old.counts.items() if not narrative_key(k)},
                                f"{old.fitted_on} | narrative buckets: {fitted_on}")
    else:
        calibrator = Calibrator(fitted_on=fitted_on)
    wanted = (lambda band: (band or "").endswith("n")) if args.narrative_only else (lambda band: True)
    for name, examples, labels in sets:
        texts = [e.text for e in examples]
        segmented = [Segments(t) for t in texts]  # each entity's band is its sentence's, as in the chain
        for stage in tqdm(chain.stages, desc=name):
            if stage.method == "ner":  # the chain gives NER sentences, not whole entries
                outputs = extract_by_segment(stage, texts, [s.spans for s in segmented])
            else:
                outputs = stage.extract_many(texts)
            for ex, ents, segments in zip(examples, outputs, segmented, strict=True):
                gold = {lab: {normalize(g) for g in ex.gold.get(FIELDS[lab], ())} for lab in labels}
                for e in ents:
                    if e.label not in labels:
                        continue
                    if chain.linker is not None and e.code is None:
                        e = chain.linker.link(e)
                    if non.kind(e.label, e.surface, e.canonical) is not None:
                        continue  # the chain drops or moves these: they are never scored
                    band = segments.band(e.start)
                    if wanted(band):
                        calibrator.add(e, normalize(e.surface) in gold[e.label], band=band)
        # merge mode: what several methods agree on gets buckets of its own
        merged = chain_merge.extract_many(texts)
        for ex, res, segments in zip(examples, merged, segmented, strict=True):
            gold = {lab: {normalize(g) for g in ex.gold.get(FIELDS[lab], ())} for lab in labels}
            for e in res.entities:
                band = segments.band(e.start)
                if e.label in labels and e.details.get("agreed") and wanted(band):
                    calibrator.add(e, normalize(e.surface) in gold[e.label], only_agreement=True, band=band)
    reported = fit_reported(calibrator, sets)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    calibrator.save(args.out, reported)
    for key in ("regex", "lexicon", "ner"):
        c, n = calibrator.counts.get(key, (0, 0))
        print(f"{key:8s} n={int(n):6d} precision={c / n if n else float('nan'):.3f}")
    print(f"wrote {args.out} ({len(calibrator.counts)} buckets)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
