"""Prometheus 2.42 (Debian's ``prometheus`` package, which ships ``promtool``) with the project's alert rules.

Installed with apt-get when this runs as root (``SERVICES_APT_INSTALL=0`` turns that off; elsewhere install
Debian/Ubuntu's ``prometheus`` package, or ``go install github.com/prometheus/prometheus/cmd/...@v2.42.0``, and put
``prometheus`` and ``promtool`` on PATH). It loads ``deploy/monitoring/alerts.yml`` and scrapes every target
listed in ``<SERVICES_DIR>/data/prometheus/targets/*.json`` (file-based service discovery: the demo and the tests
add the workers, the sink and ``connect-status`` they start, :func:`register_target`), every 5 s, on
``127.0.0.1:9090`` (``SERVICES_PROMETHEUS_PORT``).
"""

from __future__ import annotations

import functools
import json
import logging
import os
import shutil
import urllib.error
import urllib.request
from pathlib import Path

from services.config import HOST, ServiceConfig
from services.errors import ServiceError
from services.process import ManagedProcess, apt_get

log = logging.getLogger(__name__)

NAME = "prometheus"
MARKER = "prometheus"
START_TIMEOUT_S = 60.0
PACKAGE = "prometheus"
REPO = Path(__file__).resolve().parent.parent
RULES = REPO / "deploy" / "monitoring" / "alerts.yml"


def port() -> int:
    raw = os.environ.get("SERVICES_PROMETHEUS_PORT", "9090")
    try:
        return int(raw)
    except ValueError:
        raise ServiceError(f"SERVICES_PROMETHEUS_PORT={raw!r} is not a port number") from None


def url() -> str:
    return f"http://{HOST}:{port()}"


def _dir(cfg: ServiceConfig) -> Path:
    return cfg.data_dir / "prometheus"


def targets_dir(cfg: ServiceConfig) -> Path:
    return _dir(cfg) / "targets"


@functools.cache
def process(cfg: ServiceConfig) -> ManagedProcess:
    return ManagedProcess(NAME, cfg, MARKER)


def tool(name: str) -> str | None:
    """Path of ``prometheus`` or ``promtool`` when installed."""
    return shutil.which(name) or next((p for p in (f"/usr/bin/{name}",) if Path(p).is_file()), None)


def ensure_binary(cfg: ServiceConfig | None = None) -> None:
    """Install Debian's prometheus package (prometheus + promtool) once; no-op when both are on PATH."""
    if tool("prometheus") and tool("promtool"):
        return
    command = f"apt-get update && apt-get install -y --no-install-recommends {PACKAGE}"
    if os.geteuid() != 0 or os.environ.get("SERVICES_APT_INSTALL", "1") == "0":
        raise ServiceError(f"prometheus and promtool are not installed. Install them with:  sudo sh -c '{command}'")
    env = {"DEBIAN_FRONTEND": "noninteractive"}
    log.info("installing Debian package %s (apt-get, about half a minute)", PACKAGE)
    apt_get(["update", "-q"], "apt-get update", env=env)
    # no service start from the package's scripts: this manager runs its own instance
    apt_get(["install", "-y", "-q", "--no-install-recommends", PACKAGE], "apt-get install",
                env={**env, "RUNLEVEL": "1"})
    if not (tool("prometheus") and tool("promtool")):
        raise ServiceError("apt-get finished but prometheus / promtool are still missing")


def config_text(cfg: ServiceConfig) -> str:
    return "\n".join([
        "# written by python -m services up (services/prometheus.py): do not edit",
        "global:",
        "  scrape_interval: 5s",
        "  evaluation_interval: 15s",
        "rule_files:",
        f"  - {json.dumps(str(RULES))}",
        "scrape_configs:",
        "  - job_name: extractor",
        "    file_sd_configs:",
        f"      - files: [{json.dumps(str(targets_dir(cfg) / '*.json'))}]",
        "        refresh_interval: 5s",
        "",
    ])


def register_target(cfg: ServiceConfig, name: str, metrics_port: int, labels: dict[str, str] | None = None) -> Path:
    """Tell the local Prometheus to scrape ``127.0.0.1:metrics_port`` (file-based discovery, picked up in 5 s)."""
    d = targets_dir(cfg)
    d.mkdir(parents=True, exist_ok=True)
    path = d / f"{name}.json"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps([{"targets": [f"{HOST}:{metrics_port}"], "labels": {"instance_name": name,
                                                                                   **(labels or {})}}]))
    tmp.replace(path)
    return path


def unregister_target(cfg: ServiceConfig, name: str) -> None:
    (targets_dir(cfg) / f"{name}.json").unlink(missing_ok=True)


def start(cfg: ServiceConfig) -> int:
    proc = process(cfg)
    proc.check_port_free(port(), "Prometheus HTTP", "SERVICES_PROMETHEUS_PORT")
    exe = tool("prometheus")
    if exe is None:
        raise ServiceError("prometheus is not installed (python -m services up installs it)")
    d = _dir(cfg)
    targets_dir(cfg).mkdir(parents=True, exist_ok=True)
    conf = d / "prometheus.yml"
    conf.write_text(config_text(cfg))
    argv = [
        exe,
        f"--config.file={conf}",
        f"--storage.tsdb.path={d / 'tsdb'}",
        "--storage.tsdb.retention.time=2d",
        f"--web.listen-address={HOST}:{port()}",
        "--web.enable-lifecycle",
        "--log.level=warn",
    ]
    return proc.start(argv, cwd=d)


def reload(cfg: ServiceConfig) -> None:
    """Rewrite the config and ask the running Prometheus to re-read it and the rule files."""
    (_dir(cfg) / "prometheus.yml").write_text(config_text(cfg))
    req = urllib.request.Request(f"{url()}/-/reload", method="POST")
    try:
        with urllib.request.urlopen(req, timeout=5):  # noqa: S310 - local URL
            pass
    except (urllib.error.URLError, OSError) as exc:
        log.warning("prometheus reload failed: %s", exc)


def ready(cfg: ServiceConfig) -> bool:
    try:
        with urllib.request.urlopen(f"{url()}/-/ready", timeout=1) as resp:  # noqa: S310 - local URL
            return resp.status == 200
    except (urllib.error.URLError, OSError):
        return False


def wait(cfg: ServiceConfig) -> None:
    process(cfg).wait_ready(lambda: ready(cfg), START_TIMEOUT_S, f"Prometheus {url()}")


def query(expr: str, *, at: float | None = None) -> list[dict]:
    """Instant query against the local Prometheus; the ``result`` list."""
    from urllib.parse import urlencode

    params = {"query": expr} | ({"time": str(at)} if at is not None else {})
    with urllib.request.urlopen(f"{url()}/api/v1/query?{urlencode(params)}", timeout=10) as resp:  # noqa: S310
        body = json.loads(resp.read())
    if body.get("status") != "success":
        raise ServiceError(f"prometheus query failed: {body.get('error')}")
    return body["data"]["result"]


def query_range(expr: str, start: float, end: float, step: float) -> list[dict]:
    from urllib.parse import urlencode

    params = {"query": expr, "start": str(start), "end": str(end), "step": str(step)}
    with urllib.request.urlopen(f"{url()}/api/v1/query_range?{urlencode(params)}", timeout=30) as resp:  # noqa: S310
        body = json.loads(resp.read())
    if body.get("status") != "success":
        raise ServiceError(f"prometheus query failed: {body.get('error')}")
    return body["data"]["result"]
