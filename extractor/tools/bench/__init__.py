"""``python -m extractor bench chain|pipeline|store|soak|backfill|archive|review``: benchmarks that print figures.

One module per benchmark: :mod:`extractor.tools.bench.chain` (the chain alone, in one process),
:mod:`extractor.tools.bench.pipeline` (end to end through the real Kafka and MongoDB),
:mod:`extractor.tools.bench.store` (the MongoDB store at scale, both writers), :mod:`extractor.tools.bench.soak`
(steady load with faults), :mod:`extractor.tools.bench.backfill` (the Spark backfill against one process) and
:mod:`extractor.tools.bench.archive` (Kafka into the archive's object storage); all
print with
:func:`extractor.tools.bench.report.report`.
"""

from __future__ import annotations

import argparse
import sys


def configure_parser(p: argparse.ArgumentParser) -> None:
    from extractor.tools.bench.chain import configure_chain_parser, run_chain_bench

    sub = p.add_subparsers(dest="bench", metavar="WHAT", required=True)
    c = sub.add_parser("chain", help="throughput of each stage and the whole chain, load time, RSS, index speedup")
    configure_chain_parser(c)
    c.set_defaults(_bench=run_chain_bench)
    pp = sub.add_parser("pipeline", help="end-to-end throughput and latency through Kafka and MongoDB")
    try:
        from extractor.tools.bench.pipeline import configure_pipeline_parser, run_pipeline_bench

        configure_pipeline_parser(pp)
        pp.set_defaults(_bench=run_pipeline_bench)
    except ImportError as exc:  # the module is optional for `bench chain`
        pp.set_defaults(_bench=lambda a, exc=exc: _missing(exc))


    st = sub.add_parser("store", help="MongoDB at N documents: lookups, upserts, code queries, writer rates")
    from extractor.tools.bench.store import configure_store_parser, run_store_bench

    configure_store_parser(st)
    st.set_defaults(_bench=run_store_bench)
    so = sub.add_parser("soak", help="minutes of steady load with worker SIGKILLs and a broker restart")
    from extractor.tools.bench.soak import configure_soak_parser, run_soak_bench

    configure_soak_parser(so)
    so.set_defaults(_bench=run_soak_bench)
    bf = sub.add_parser("backfill", help="Spark backfill (local[2]) against one process calling extract_many")
    from extractor.tools.bench.backfill import configure_backfill_parser, run_backfill_bench

    configure_backfill_parser(bf)
    bf.set_defaults(_bench=run_backfill_bench)
    ar = sub.add_parser("archive", help="raw entries from Kafka into the archive's object storage: entries/s, RSS")
    from extractor.tools.bench.archive import configure_archive_parser, run_archive_bench

    configure_archive_parser(ar)
    ar.set_defaults(_bench=run_archive_bench)


    rv = sub.add_parser("review", help="the review console's pages with N documents in the store: p50/p95 over HTTP")
    from extractor.tools.bench.review import configure_review_parser, run_review_bench

    configure_review_parser(rv)
    rv.set_defaults(_bench=run_review_bench)


def _missing(exc: Exception) -> int:
    print(f"error: bench pipeline unavailable: {exc}", file=sys.stderr)
    return 2


def run(args: argparse.Namespace) -> int:
    return int(args._bench(args) or 0)
