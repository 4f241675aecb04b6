"""FerretDB (MongoDB wire protocol, SQLite backend) built from its Go module.

``go install github.com/FerretDB/FerretDB/cmd/ferretdb@v1.24.2`` compiles, but the binary panics at start
("Invalid build/version/version.txt file content"): the published module carries an empty version.txt that
FerretDB's release tooling fills in. So the manager copies the module source out of the Go module cache,
writes version.txt, and runs ``go build`` there. Downloads stay in the normal Go caches.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import shutil
import stat
import time
from pathlib import Path

from services.config import FERRETDB_MODULE, FERRETDB_VERSION, ServiceConfig
from services.process import ManagedProcess, require_tool, run_checked

log = logging.getLogger(__name__)

NAME = "ferretdb"
MARKER = "bin/ferretdb"
START_TIMEOUT_S = 30.0


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
    log.info("building FerretDB %s with Go (first run only, a minute or two)", FERRETDB_VERSION)
    env = {"CGO_ENABLED": "0", "GOFLAGS": "-buildvcs=false"}
    info = json.loads(
        run_checked(
            [go, "mod", "download", "-json", f"{FERRETDB_MODULE}@{FERRETDB_VERSION}"],
            "go mod download",
            env=env,
        )
    )
    src = cfg.data_dir / "ferretdb" / "src"
    shutil.rmtree(src, ignore_errors=True)
    shutil.copytree(info["Dir"], src)
    for root, dirs, files in os.walk(src):  # module cache files are read-only
        for n in dirs + files:
            p = Path(root) / n
            p.chmod(p.stat().st_mode | stat.S_IWUSR)
    (src / "build" / "version" / "version.txt").write_text(FERRETDB_VERSION + "\n")
    cfg.bin_dir.mkdir(parents=True, exist_ok=True)
    tmp = exe.with_name("ferretdb.tmp")
    run_checked(
        [go, "build", "-trimpath", "-o", str(tmp), "./cmd/ferretdb"], "building FerretDB", cwd=src, env=env
    )
    tmp.rename(exe)
    _stamp(cfg).write_text(FERRETDB_VERSION + "\n")
    shutil.rmtree(src, ignore_errors=True)
    log.info("FerretDB built in %.1fs: %s", time.monotonic() - t0, exe)


def ready(cfg: ServiceConfig) -> bool:
    from pymongo import MongoClient

    client: MongoClient = MongoClient(cfg.mongo_uri, serverSelectionTimeoutMS=500, connectTimeoutMS=500)
    try:
        client.admin.command("ping")
        return True
    except Exception:  # noqa: BLE001 - any failure means "not yet"
        return False
    finally:
        client.close()


def start(cfg: ServiceConfig) -> int:
    proc = process(cfg)
    proc.check_port_free(cfg.mongo_port, "MongoDB wire", "SERVICES_MONGO_PORT")
    data = cfg.data_dir / "ferretdb" / "data"
    data.mkdir(parents=True, exist_ok=True)
    argv = [
        str(binary(cfg)),
        "--handler=sqlite",
        # must end with "/". Known limit of 1.24: an update command keeps one pooled SQLite connection per statement
        # until it ends and the pool has 100, so writers keep update commands small (extractor/stream/sink.py
        # REPLACE_CHUNK, connectors/mongo-sink.json max.batch.size) or the server stops answering everyone.
        f"--sqlite-url=file:{data}/",
        f"--listen-addr=127.0.0.1:{cfg.mongo_port}",
        "--state-dir=-",  # no state.json
        "--debug-addr=-",  # no debug HTTP server (default would take port 8088)
        "--telemetry=disable",
        "--log-level=warn",
    ]
    return proc.start(argv, cwd=data)


def wait(cfg: ServiceConfig) -> None:
    process(cfg).wait_ready(lambda: ready(cfg), START_TIMEOUT_S, f"MongoDB wire server {cfg.mongo_uri}")
