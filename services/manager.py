"""``up`` / ``down`` / ``status`` over the servers (PostgreSQL, FerretDB, Kafka, Connect, Prometheus), in order.

Order up: install (Maven jars, PostgreSQL + DocumentDB, the FerretDB build: side by side) -> PostgreSQL and
Kafka (started together) -> FerretDB on PostgreSQL -> the project's topics and MongoDB indexes -> Kafka Connect
with the MongoDB sink. Down is the reverse.
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from services import connect, ferretdb, gcs, jars, kafka, postgres, prometheus, secrets
from services.config import ServiceConfig
from services.errors import ServiceError
from services.process import port_open

log = logging.getLogger(__name__)

SERVICES: dict[str, ModuleType] = {
    "postgres": postgres, "ferretdb": ferretdb, "kafka": kafka, "connect": connect, "prometheus": prometheus,
    "gcs": gcs,
}
# what each service needs running first
NEEDS: dict[str, tuple[str, ...]] = {"ferretdb": ("postgres",), "connect": ("postgres", "ferretdb", "kafka")}


@dataclass(frozen=True)
class Endpoints:
    """Addresses of the running servers, for tests and the demo."""

    bootstrap_servers: str
    mongo_uri: str = field(repr=False)  # carries the password
    connect_url: str
    connector_name: str
    connector_topic: str
    connector_dlq_topic: str
    mongo_database: str
    mongo_collection: str


def endpoints(cfg: ServiceConfig) -> Endpoints:
    spec = connect.connector_spec(cfg)
    c = spec["config"]
    return Endpoints(
        bootstrap_servers=cfg.bootstrap_servers,
        mongo_uri=cfg.mongo_uri,
        connect_url=cfg.connect_url,
        connector_name=spec["name"],
        connector_topic=c["topics"],
        connector_dlq_topic=c["errors.deadletterqueue.topic.name"],
        mongo_database=c["database"],
        mongo_collection=c["collection"],
    )


def install(cfg: ServiceConfig, names: list[str] | None = None) -> None:
    """First run: Maven jars, PostgreSQL + DocumentDB and the FerretDB build side by side; later runs: nothing."""
    names = names or list(SERVICES)
    cfg.data_dir.mkdir(parents=True, exist_ok=True)
    steps: list[Callable[[ServiceConfig], None]] = []
    if "kafka" in names or "connect" in names:
        steps.append(jars.ensure_jars)
    if "postgres" in names:
        steps.append(postgres.install)
    if "ferretdb" in names:
        steps.append(ferretdb.ensure_binary)
    if "prometheus" in names:
        steps.append(prometheus.ensure_binary)
    if "gcs" in names:
        steps.append(gcs.ensure_binary)
    with ThreadPoolExecutor(max_workers=3) as pool:
        futures = [pool.submit(step, cfg) for step in steps]
        errors = [f.exception() for f in futures if f.exception() is not None]
    if errors:
        raise errors[0]  # type: ignore[misc]


def _start_unless_running(name: str, cfg: ServiceConfig) -> bool:
    """Start the service unless our process is already running; True when it was started now."""
    mod = SERVICES[name]
    pid = mod.process(cfg).pid()
    if pid is not None and getattr(mod, "outdated", lambda _cfg: False)(cfg):
        log.info("%s: running pid %d is an older build; restarting it", name, pid)
        mod.process(cfg).stop()
        pid = None
    if pid is not None:
        log.info("%s: already running (pid %d), reusing", name, pid)
        return False
    mod.start(cfg)
    return True


def kafka_settings(cfg: ServiceConfig) -> dict[str, str]:
    """The extractor's Kafka settings for this broker (with SASL/TLS in sasl_ssl mode)."""
    if cfg.kafka_security == "sasl_ssl":
        return {k[len("EXTRACTOR_"):].lower(): v for k, v in secrets.kafka_client_env(cfg).items()}
    return {"bootstrap_servers": cfg.bootstrap_servers}


def ensure_topics(cfg: ServiceConfig) -> dict[str, str]:
    from extractor.config import load_settings
    from extractor.stream.topics import ensure_topics as _ensure

    settings = load_settings(**kafka_settings(cfg))
    ep = endpoints(cfg)
    # the connector's own dead-letter topic too (Connect would create it, but not before the first error)
    return _ensure(settings, extra={ep.connector_dlq_topic: 1, ep.connector_topic: settings.input_partitions})


def ensure_indexes(cfg: ServiceConfig, settings: Any = None) -> list[str]:
    """The query indexes on the local server; those built before the composite operator class (see
    services/postgres.py: 2.5x the database CPU per write) are dropped and built again, once."""
    from extractor.config import load_settings
    from extractor.stream.store import INDEXES, collection
    from extractor.stream.store import ensure_indexes as _ensure

    settings = settings or load_settings(mongo_uri=cfg.mongo_uri)
    ours = {name for name, _ in INDEXES}
    old = [n for n in postgres.single_path_indexes(cfg, settings.mongo_database, settings.mongo_collection)
           if n in ours]
    if old:
        coll = collection(settings)
        log.info("rebuilding indexes %s of %s.%s with the composite operator class (less CPU per write)",
                 ", ".join(old), settings.mongo_database, settings.mongo_collection)
        for name in old:
            coll.drop_index(name)
    return _ensure(settings)


def up(cfg: ServiceConfig, only: list[str] | None = None) -> Endpoints:
    """Bring the servers up (or reuse the running ones) and wait until each is ready."""
    names = only or list(SERVICES)
    for name in list(names):
        names = list(dict.fromkeys([*NEEDS.get(name, ()), *names]))
    names = [n for n in SERVICES if n in names]  # dependency order
    t0 = time.monotonic()
    install(cfg, names)
    t_install = time.monotonic() - t0
    for name in ("postgres", "kafka"):
        if name in names:
            _start_unless_running(name, cfg)
    if "postgres" in names:
        postgres.wait(cfg)
        secrets.write_client_files(cfg)
    if "ferretdb" in names:
        _start_unless_running("ferretdb", cfg)
        ferretdb.wait(cfg)
        log.info("mongodb indexes: %s", ", ".join(ensure_indexes(cfg)))
    if "kafka" in names:
        kafka.wait(cfg)
        if cfg.kafka_security == "sasl_ssl":
            log.info("kafka: SASL_SSL (SCRAM-SHA-512); client settings in %s", secrets.write_kafka_client_env(cfg))
        for topic, state in ensure_topics(cfg).items():
            log.info("topic %s: %s", topic, state)
    if "connect" in names:
        if not _start_unless_running("connect", cfg):
            connect.sync_connector_config(cfg)
        connect.wait(cfg)
    if "prometheus" in names:
        if not _start_unless_running("prometheus", cfg):
            prometheus.reload(cfg)  # the rule file may have changed since it started
        prometheus.wait(cfg)
    if "gcs" in names:
        _start_unless_running("gcs", cfg)
        gcs.wait(cfg)
    log.info("services up in %.1fs (install %.1fs)", time.monotonic() - t0, t_install)
    return endpoints(cfg)


def down(cfg: ServiceConfig, only: list[str] | None = None, wipe: bool = False) -> None:
    """Stop what this manager started (reverse order); ``wipe`` also deletes the servers' data."""
    names = only or list(SERVICES)
    for name in reversed(list(SERVICES)):
        if name in names:
            stopped = SERVICES[name].process(cfg).stop(timeout_s=30 if name in ("kafka", "postgres") else 15)
            log.info("%s: %s", name, "stopped" if stopped else "was not running")
    if wipe:
        for p in [cfg.data_dir / sub for sub in ("kafka/data", "ferretdb/state", "ferretdb/data",
                                                 "connect/connect.offsets")] + [postgres.data_dir(cfg), gcs.root(cfg)]:
            if p.is_dir():
                shutil.rmtree(p)
            elif p.exists():
                p.unlink()
            log.info("wiped %s", p)


@dataclass(frozen=True)
class Row:
    service: str
    pid: str
    address: str
    state: str


def status(cfg: ServiceConfig) -> list[Row]:
    checks: dict[str, tuple[str, int, Callable[[], bool]]] = {
        "postgres": (f"{cfg.postgres_port} (socket {postgres.socket_dir(cfg)})", cfg.postgres_port,
                     lambda: postgres.ready(cfg)),
        "ferretdb": (secrets.redact_uri(cfg.mongo_uri), cfg.mongo_port, lambda: ferretdb.ready(cfg)),
        "kafka": (cfg.bootstrap_servers, cfg.kafka_port, lambda: kafka.ready(cfg)),
        "connect": (cfg.connect_url, cfg.connect_port, lambda: _connect_state(cfg)),
        "prometheus": (prometheus.url(), prometheus.port(), lambda: prometheus.ready(cfg)),
        "gcs": (f"{gcs.url()} (bucket {gcs.bucket()})", gcs.port(), lambda: gcs.ready(cfg)),
    }
    rows = []
    for name, (addr, port, check) in checks.items():
        pid = SERVICES[name].process(cfg).pid()
        if pid is None:
            state = "port taken by another process" if port_open(port) else "stopped"
        else:
            try:
                state = "ready" if check() else "starting/unhealthy"
            except ServiceError as e:
                state = f"unhealthy: {str(e).splitlines()[0]}"
        rows.append(Row(name, str(pid or "-"), addr, state))
    return rows


def _connect_state(cfg: ServiceConfig) -> bool:
    return connect.ready(cfg)
