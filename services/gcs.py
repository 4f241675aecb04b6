"""A Google Cloud Storage emulator: fake-gcs-server v1.56.1, for the archive of raw entries.

Built once with ``go install github.com/fsouza/fake-gcs-server@v1.56.1`` into ``.services/bin`` (about 90 s the
first time, like FerretDB), it serves the GCS JSON API over plain HTTP on ``127.0.0.1:4443``
(``SERVICES_GCS_PORT``), keeping objects under ``.services/data/gcs`` (``-backend filesystem``). The bucket
``clinical-extractor-archive`` (``SERVICES_GCS_BUCKET``) exists from the start. Clients reach it through
``EXTRACTOR_GCS_ENDPOINT`` / ``STORAGE_EMULATOR_HOST`` (``http://127.0.0.1:4443``), anonymously.
"""

from __future__ import annotations

import functools
import logging
import os
import time
import urllib.error
import urllib.request
from pathlib import Path

from services.config import HOST, ServiceConfig
from services.errors import ServiceError
from services.process import ManagedProcess, require_tool, run_checked

log = logging.getLogger(__name__)

NAME = "gcs"
MARKER = "bin/fake-gcs-server"
MODULE = "github.com/fsouza/fake-gcs-server"
VERSION = "v1.56.1"
START_TIMEOUT_S = 30.0
DEFAULT_BUCKET = "clinical-extractor-archive"


def port() -> int:
    raw = os.environ.get("SERVICES_GCS_PORT", "4443")
    try:
        return int(raw)
    except ValueError:
        raise ServiceError(f"SERVICES_GCS_PORT={raw!r} is not a port number") from None


def url() -> str:
    return f"http://{HOST}:{port()}"


def bucket() -> str:
    return os.environ.get("SERVICES_GCS_BUCKET", DEFAULT_BUCKET)


def root(cfg: ServiceConfig) -> Path:
    return cfg.data_dir / "data" / "gcs"


def binary(cfg: ServiceConfig) -> Path:
    return cfg.bin_dir / "fake-gcs-server"


def _stamp(cfg: ServiceConfig) -> Path:
    return cfg.bin_dir / "fake-gcs-server.version"


@functools.cache
def process(cfg: ServiceConfig) -> ManagedProcess:
    return ManagedProcess(NAME, cfg, MARKER)


def ensure_binary(cfg: ServiceConfig) -> None:
    """Build the pinned fake-gcs-server once; no-op when the stamped binary is present."""
    exe = binary(cfg)
    if exe.is_file() and _stamp(cfg).is_file() and _stamp(cfg).read_text().strip() == VERSION:
        return
    go = require_tool("go")
    t0 = time.monotonic()
    log.info("building fake-gcs-server %s with go install (first run only, about 90 s)", VERSION)
    cfg.bin_dir.mkdir(parents=True, exist_ok=True)
    env = {"CGO_ENABLED": "0", "GOBIN": str(cfg.bin_dir), "GOTOOLCHAIN": "auto", "GOFLAGS": "-modcacherw"}
    run_checked([go, "install", f"{MODULE}@{VERSION}"], "go install fake-gcs-server", env=env)
    _stamp(cfg).write_text(VERSION + "\n")
    log.info("fake-gcs-server built in %.1fs: %s", time.monotonic() - t0, exe)


def ready(cfg: ServiceConfig | None = None) -> bool:
    """The bucket list answers (the emulator's JSON API is up)."""
    try:
        with urllib.request.urlopen(f"{url()}/storage/v1/b", timeout=1) as resp:  # noqa: S310 - our own server
            return bool(resp.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def start(cfg: ServiceConfig) -> int:
    proc = process(cfg)
    proc.check_port_free(port(), "GCS emulator", "SERVICES_GCS_PORT")
    data = root(cfg)
    (data / bucket()).mkdir(parents=True, exist_ok=True)  # a folder of the filesystem backend is a bucket
    argv = [
        str(binary(cfg)), "-scheme", "http", "-host", HOST, "-port", str(port()),
        "-public-host", f"{HOST}:{port()}", "-external-url", url(),
        "-backend", "filesystem", "-filesystem-root", str(data), "-log-level", "warn",
    ]
    return proc.start(argv, cwd=data)


def wait(cfg: ServiceConfig) -> None:
    process(cfg).wait_ready(lambda: ready(cfg), START_TIMEOUT_S, f"GCS emulator {url()}")
