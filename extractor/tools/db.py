"""``python -m extractor db init``: create the MongoDB indexes the queries use (idempotent).

Run by ``python -m services up`` and ``make demo`` for the local server; run it once against any other MongoDB
(Atlas, docker-compose) before querying, whichever writer (Kafka Connect or ``sink``) fills the collection.
"""

from __future__ import annotations

import argparse

from extractor.config import load_settings


def configure_parser(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="db_command", metavar="ACTION", required=True)
    sub.add_parser("init", help="create the query indexes on the processed collection, drop obsolete ones and add "
                                "`codes` to documents written before it existed (idempotent)")


def run(args: argparse.Namespace) -> int:
    from extractor.stream.store import collection, ensure_indexes, mongo_client

    settings = load_settings(args.config)
    # no socket timeout: building an index on a large existing collection takes as long as it takes
    names = ensure_indexes(settings, collection(settings, mongo_client(settings, socketTimeoutMS=None)), migrate=True)
    print(f"{settings.mongo_database}.{settings.mongo_collection}: indexes {', '.join(names)}")
    return 0
