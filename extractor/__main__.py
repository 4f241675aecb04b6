"""``python -m extractor COMMAND --help``: every command of the service.

Each command lives in its own module that exposes ``configure_parser(parser)`` and ``run(args) -> int``;
modules are imported only when their command runs, so ``--help`` stays fast and a worker does not pay for
the evaluation code.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

COMMANDS: dict[str, tuple[str, str]] = {
    "extract": ("extractor.tools.extract", "extract illnesses and medicines from a text or a CSV, print JSON"),
    "lexicon": ("extractor.tools.lexicon_check", "check the lexicon files (malformed, duplicate, conflicting rows)"),
    "generate": ("extractor.tools.generate", "write a labelled CSV of synthetic clinical-style entries"),
    "bench": ("extractor.tools.bench", "benchmarks that print figures: `bench chain|pipeline|store|soak|backfill`"),
    "topics": ("extractor.stream.topics", "create the Kafka topics (idempotent)"),
    "produce": ("extractor.stream.producer", "publish a CSV of entries to Kafka"),
    "work": ("extractor.stream.worker", "run an extractor worker (Kafka consumer group member)"),
    "sink": ("extractor.stream.sink", "write processed entries from Kafka to MongoDB"),
    "archive": ("extractor.stream.archive", "archive raw Kafka records as Parquet in gs://, file:// or s3:// storage"),
    "review": ("extractor.review.cli", "the review console: a web page to review entries, edit and publish lexicons"),
    "dlq": ("extractor.stream.dlq", "inspect or replay the dead-letter topic"),
    "connect-status": ("extractor.stream.connect_status", "export Kafka Connect task states as Prometheus metrics"),
    "db": ("extractor.tools.db", "create the MongoDB indexes the queries use (`db init`)"),
    "backfill": ("extractor.batch.backfill", "re-extract files of entries on Apache Spark into Parquet (+ MongoDB)"),
    "query": ("extractor.tools.query", "query MongoDB: a patient's entries, entries with a code, counts per code"),
}


def build_parser(argv: list[str]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m extractor", description=__doc__.splitlines()[0])
    parser.add_argument("--log-level", default=None, help="logging level (default: EXTRACTOR_LOG_LEVEL or INFO)")
    parser.add_argument("--config", default=None, help="optional settings file (TOML, YAML or JSON)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (module_name, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(_module=module_name)
        # configure only the command actually requested (keeps --help fast and a worker free of eval code)
        if name in argv:
            importlib.import_module(module_name).configure_parser(p)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser(argv).parse_args(argv)
    level = args.log_level or __import__("os").environ.get("EXTRACTOR_LOG_LEVEL", "INFO")
    logging.basicConfig(level=level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s")
    module = importlib.import_module(args._module)
    return int(module.run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
