"""FerretDB v2.7.0: the MongoDB wire protocol on PostgreSQL + DocumentDB (:mod:`services.postgres`).

Built once with ``go install github.com/FerretDB/FerretDB/v2/cmd/ferretdb@v2.7.0`` (Go >= 1.21; its go.mod asks
for Go 1.25, which a newer ``go`` fetches from the module proxy by itself) into ``.services/bin``. Authentication
is on, as on any real MongoDB: users are PostgreSQL roles (SCRAM-SHA-256), created by :mod:`services.postgres`
with the password in ``.services/secrets/``. The PostgreSQL URL (with that password) reaches FerretDB through its
environment, never its command line, so no process list shows it.
"""

from __future__ import annotations

import functools
import logging
import time
from pathlib import Path
from urllib.parse import quote

from services.config import FERRETDB_MODULE, FERRETDB_VERSION, HOST, ServiceConfig
from services.process import ManagedProcess, require_tool, run_checked

log = logging.getLogger(__name__)

NAME = "ferretdb"
MARKER = "bin/ferretdb"
START_TIMEOUT_S = 60.0


def binary(cfg: ServiceConfig) -> Path:
    return cfg.bin_dir / "ferretdb"


def _stamp(cfg: ServiceConfig) -> Path:
    return cfg.bin_dir / "ferretdb.version"


@functools.cache  # one instance per config: it remembers the Popen of a process started here
def process(cfg: ServiceConfig) -> ManagedProcess:
    return ManagedProcess(NAME, cfg, MARKER)


def ensure_binary(cfg: ServiceConfig) -> None:
    """Build the pinned FerretDB once; no-op when the stamped binary is present."""
    exe = binary(cfg)
    if exe.is_file() and _stamp(cfg).is_file() and _stamp(cfg).read_text().strip() == FERRETDB_VERSION:
        return
    go = require_tool("go")
    t0 = time.monotonic()
    log.info("building FerretDB %s with go install (first run only, about a minute)", FERRETDB_VERSION)
    cfg.bin_dir.mkdir(parents=True, exist_ok=True)
    env = {"CGO_ENABLED": "0", "GOBIN": str(cfg.bin_dir), "GOTOOLCHAIN": "auto", "GOFLAGS": "-modcacherw"}
    run_checked([go, "install", f"{FERRETDB_MODULE}/cmd/ferretdb@{FERRETDB_VERSION}"], "go install FerretDB", env=env)
    out = run_checked([str(exe), "--version"], "ferretdb --version")
    if FERRETDB_VERSION not in out:
        log.warning("ferretdb --version does not name %s: %s", FERRETDB_VERSION, out.splitlines()[:1])
    _stamp(cfg).write_text(FERRETDB_VERSION + "\n")
    log.info("FerretDB built in %.1fs: %s", time.monotonic() - t0, exe)


def outdated(cfg: ServiceConfig) -> bool:
    """True when the running FerretDB is a 1.x build (SQLite handler) left from an earlier version of this project."""
    from services.process import cmdline

    pid = process(cfg).pid()
    return pid is not None and "--handler=" in cmdline(pid)


def ready(cfg: ServiceConfig) -> bool:
    """Ping with the credentials (an authenticated command: proves FerretDB reaches PostgreSQL too)."""
    from pymongo import MongoClient

    client: MongoClient = MongoClient(cfg.mongo_uri, serverSelectionTimeoutMS=500, connectTimeoutMS=500)
    try:
        client.admin.command("listDatabases", nameOnly=True)
        return True
    except Exception:  # noqa: BLE001 - any failure means "not yet"
        return False
    finally:
        client.close()


def start(cfg: ServiceConfig) -> int:
    from services import secrets

    proc = process(cfg)
    proc.check_port_free(cfg.mongo_port, "MongoDB wire", "SERVICES_MONGO_PORT")
    state = cfg.data_dir / "ferretdb" / "state"
    state.mkdir(parents=True, exist_ok=True)
    cred = secrets.mongo_credentials(cfg)
    pg_url = (f"postgres://{quote(cred['user'], safe='')}:{quote(cred['password'], safe='')}@{HOST}:"
              f"{cfg.postgres_port}/postgres")
    argv = [
        str(binary(cfg)),
        f"--listen-addr={HOST}:{cfg.mongo_port}",
        f"--state-dir={state}",
        "--debug-addr=-",  # no debug HTTP server (default would take port 8088)
        "--telemetry=disable",
        "--log-level=warn",
    ]
    return proc.start(argv, cwd=state, env={"FERRETDB_POSTGRESQL_URL": pg_url})


def wait(cfg: ServiceConfig) -> None:
    from services.secrets import redact_uri

    process(cfg).wait_ready(lambda: ready(cfg), START_TIMEOUT_S, f"MongoDB wire server {redact_uri(cfg.mongo_uri)}")
