"""``python -m extractor review``: serve the review console (uvicorn) on 127.0.0.1:8088 by default.

Sign in with any reviewer name and the password in ``<review_secrets_dir>/review-password`` (generated at first
start, mode 0600; the default is ``.services/secrets/``). The page shows patient text, so listening on anything
but a loopback address needs TLS (``--tls-cert`` and ``--tls-key``) or, behind a TLS-terminating proxy you trust,
an explicit ``--insecure-public``.
"""

from __future__ import annotations

import argparse
import ipaddress
import logging
import sys
from pathlib import Path

from extractor.config import load_settings

log = logging.getLogger(__name__)


def configure_parser(p: argparse.ArgumentParser) -> None:
    p.description = __doc__.splitlines()[0]
    p.add_argument("--host", default=None, help="address to listen on (default: EXTRACTOR_REVIEW_HOST, 127.0.0.1)")
    p.add_argument("--port", type=int, default=None, help="port (default: EXTRACTOR_REVIEW_PORT, 8088)")
    p.add_argument("--tls-cert", type=Path, default=None, help="TLS certificate (PEM) to serve HTTPS")
    p.add_argument("--tls-key", type=Path, default=None, help="TLS private key (PEM)")
    p.add_argument("--insecure-public", action="store_true",
                   help="allow a non-loopback --host without TLS (only behind a TLS-terminating proxy)")
    p.add_argument("--eval-data", type=Path, default=None,
                   help="folder of *_dev.csv files the Evaluate button scores (default: the evaluation suite's)")
    p.add_argument("--eval-limit", type=int, default=0, help="first N entries of each corpus (0 = all)")
    p.add_argument("--no-dlq-copy", action="store_true",
                   help="do not copy the dead-letter topic into MongoDB (another console already does)")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_exposure(host: str, tls: bool, insecure_public: bool) -> str | None:
    """Why the console must not start on ``host``, or None."""
    if is_loopback(host) or tls or insecure_public:
        return None
    return (f"refusing to serve patient text on {host} without TLS: give --tls-cert and --tls-key, or "
            "--insecure-public behind a TLS-terminating proxy")


def run(args: argparse.Namespace) -> int:
    import uvicorn

    from evaluation.suite import DEFAULT_DATA, DEFAULT_EXTRA
    from extractor.review.app import create_app
    from extractor.review.auth import ensure_password
    from extractor.stream.store import mongo_client

    settings = load_settings(getattr(args, "config", None))
    host = args.host or settings.review_host
    port = args.port or settings.review_port
    if bool(args.tls_cert) != bool(args.tls_key):
        print("error: --tls-cert and --tls-key go together", file=sys.stderr)
        return 2
    problem = check_exposure(host, bool(args.tls_cert), args.insecure_public)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    db = mongo_client(settings)[settings.mongo_database]
    from extractor.review.queues import ensure_indexes

    try:
        ensure_indexes(db, settings)
    except Exception as exc:  # noqa: BLE001 - one clear line: the database is the console's one dependency
        print(f"error: cannot reach MongoDB ({type(exc).__name__}): start it (python -m services up) or set "
              "EXTRACTOR_MONGO_URI", file=sys.stderr)
        return 2
    app = create_app(settings, db, https=bool(args.tls_cert), mirror=not args.no_dlq_copy,
                     eval_data=args.eval_data or DEFAULT_DATA, eval_limit=args.eval_limit,
                     eval_extra=tuple(p for p in DEFAULT_EXTRA if p.is_file()))
    pw = ensure_password(Path(settings.review_secrets_dir))
    scheme = "https" if args.tls_cert else "http"
    print(f"review console on {scheme}://{host}:{port}/ (password in {pw})", flush=True)
    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False,
                ssl_certfile=str(args.tls_cert) if args.tls_cert else None,
                ssl_keyfile=str(args.tls_key) if args.tls_key else None)
    return 0
