"""``python -m services up|down|status|logs``: local Kafka, FerretDB and Kafka Connect (tests, demo)."""

from __future__ import annotations

import argparse
import logging
import os
import subprocess
import sys

from services.config import ServiceConfig
from services.errors import ServiceError

NAMES = ("postgres", "ferretdb", "kafka", "connect", "prometheus", "gcs")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m services",
        description="Local real servers: Apache Kafka (KRaft), FerretDB 2 (MongoDB wire) on PostgreSQL + "
        "DocumentDB, Kafka Connect + MongoDB sink. Installed on first use into the data dir; `up` reuses running "
        "ones.",
    )
    p.add_argument(
        "--data-dir",
        default=None,
        help="binaries, jars, data, logs (env SERVICES_DIR; default <repo>/.services)",
    )
    p.add_argument(
        "--kafka-port", type=int, default=None, help="broker port (env SERVICES_KAFKA_PORT; default 9092)"
    )
    p.add_argument(
        "--controller-port",
        type=int,
        default=None,
        help="KRaft controller port (env SERVICES_CONTROLLER_PORT; default 9093)",
    )
    p.add_argument(
        "--mongo-port", type=int, default=None, help="FerretDB port (env SERVICES_MONGO_PORT; default 27017)"
    )
    p.add_argument(
        "--postgres-port", type=int, default=None,
        help="PostgreSQL port (env SERVICES_POSTGRES_PORT; default 5433)",
    )
    p.add_argument(
        "--connect-port",
        type=int,
        default=None,
        help="Kafka Connect REST port (env SERVICES_CONNECT_PORT; default 8083)",
    )
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True)

    up = sub.add_parser(
        "up",
        help="install if needed, start (or reuse) the servers, create the topics, wait until ready",
        description="Install on first use, start or reuse the servers, create topics, wait until ready.",
    )
    up.add_argument(
        "names",
        nargs="*",
        metavar="NAME",
        help=f"only these ({', '.join(NAMES)}); connect implies the other two",
    )
    down = sub.add_parser(
        "down",
        help="stop the servers this manager started (data is kept)",
        description="Stop the servers this manager started; data is kept unless --wipe.",
    )
    down.add_argument("names", nargs="*", metavar="NAME", help=f"only these ({', '.join(NAMES)})")
    down.add_argument("--wipe", action="store_true",
                      help="also delete Kafka, PostgreSQL/FerretDB and Connect data (credentials are kept)")
    sub.add_parser(
        "status", help="table of service, pid, address, state", description="Show each server's state."
    )
    logs = sub.add_parser(
        "logs", help="print the end of a server's log", description="Print the end of a server's log."
    )
    logs.add_argument("name", choices=NAMES)
    logs.add_argument("-n", "--lines", type=int, default=50, help="lines to show (default 50)")
    logs.add_argument("-f", "--follow", action="store_true", help="keep following (tail -f)")
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    unknown = [n for n in getattr(args, "names", []) if n not in NAMES]
    if unknown:
        parser.error(f"unknown service {', '.join(unknown)} (choose from {', '.join(NAMES)})")
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    from services import manager
    from services.process import tail
    from services.secrets import redact_uri

    try:
        cfg = ServiceConfig.from_env(
            args.data_dir, args.kafka_port, args.controller_port, args.mongo_port, args.connect_port,
            args.postgres_port,
        )
        if args.command == "up":
            ep = manager.up(cfg, args.names or None)
            print(
                f"kafka     {ep.bootstrap_servers}\nmongodb   {redact_uri(ep.mongo_uri)}  (full URI with the "
                f"password: {cfg.data_dir / 'secrets' / 'mongo.uri'})\nconnect   {ep.connect_url}"
                f"  (connector {ep.connector_name}: {ep.connector_topic} -> "
                f"{ep.mongo_database}.{ep.mongo_collection}, dead letters -> {ep.connector_dlq_topic})"
            )
            if not args.names or "prometheus" in args.names:
                from services import prometheus

                print(f"prometheus {prometheus.url()}  (alerts: {prometheus.url()}/alerts; rules "
                      f"deploy/monitoring/alerts.yml)")
            if not args.names or "gcs" in args.names:
                from services import gcs

                print(f"gcs       {gcs.url()}  (GCS emulator, bucket {gcs.bucket()}: "
                      f"EXTRACTOR_GCS_ENDPOINT={gcs.url()} EXTRACTOR_ARCHIVE_URL=gs://{gcs.bucket()})")
        elif args.command == "down":
            manager.down(cfg, args.names or None, wipe=args.wipe)
        elif args.command == "status":
            rows = manager.status(cfg)
            widths = [
                max(len(h), *(len(getattr(r, f)) for r in rows))
                for h, f in (
                    ("SERVICE", "service"),
                    ("PID", "pid"),
                    ("ADDRESS", "address"),
                    ("STATE", "state"),
                )
            ]
            fmt = "  ".join(f"{{:<{w}}}" for w in widths)
            print(fmt.format("SERVICE", "PID", "ADDRESS", "STATE"))
            for r in rows:
                print(fmt.format(r.service, r.pid, r.address, r.state))
            return 0 if all(r.state == "ready" for r in rows) else 3
        elif args.command == "logs":
            path = cfg.log_file(args.name)
            if args.follow:
                os.execvp("tail", ["tail", "-n", str(args.lines), "-f", str(path)])
            print(tail(path, args.lines))
    except ServiceError as e:
        logging.getLogger("services").error("%s", e)
        return 2
    except subprocess.SubprocessError as e:
        logging.getLogger("services").error("%s", e)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
