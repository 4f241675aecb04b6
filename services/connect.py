"""Kafka Connect in standalone mode running the MongoDB sink connector (connectors/mongo-sink.json)."""

from __future__ import annotations

import functools
import json
import logging
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from services.config import CONNECTOR_FILE, HOST, ServiceConfig
from services.errors import ServiceError
from services.jars import CREDENTIAL_CLASS, java_argv, plugin_path
from services.process import ManagedProcess, java_command

log = logging.getLogger(__name__)

NAME = "connect"
MAIN_CLASS = "org.apache.kafka.connect.cli.ConnectStandalone"
START_TIMEOUT_S = 120.0


def _dir(cfg: ServiceConfig) -> Path:
    return cfg.data_dir / "connect"


@functools.cache  # one instance per config: it remembers the Popen of a process started here
def process(cfg: ServiceConfig) -> ManagedProcess:
    return ManagedProcess(NAME, cfg, MAIN_CLASS)


def secrets_file(cfg: ServiceConfig) -> Path:
    return cfg.data_dir / "secrets" / "connect-secrets.properties"


def connector_spec(cfg: ServiceConfig | None = None) -> dict[str, Any]:
    """connectors/mongo-sink.json; with ``cfg``, pointed at the local FerretDB with its credentials.

    The user and password come from the worker's FileConfigProvider (the REST API and the logs show only the
    ``${file:...}`` placeholders) and reach the connector through our credential provider
    (connectors/credentials/), not the URI: with a user in the URI the connector asks the server for the user's
    privileges, which FerretDB does not report, and refuses to start."""
    spec: dict[str, Any] = json.loads(CONNECTOR_FILE.read_text(encoding="utf-8"))
    if cfg is not None:
        secret = secrets_file(cfg)
        spec["config"].update({
            "connection.uri": f"mongodb://{HOST}:{cfg.mongo_port}/?authSource=admin",
            "mongo.custom.auth.mechanism.enable": "true",
            "mongo.custom.auth.mechanism.providerClass": CREDENTIAL_CLASS,
            "mongo.custom.auth.scram.username": f"${{file:{secret}:mongo.user}}",
            "mongo.custom.auth.scram.password": f"${{file:{secret}:mongo.password}}",
        })
    return spec


def _security_properties(cfg: ServiceConfig) -> str:
    """The worker's own clients and those of its connectors (producer., consumer., admin.) on SASL_SSL."""
    if cfg.kafka_security != "sasl_ssl":
        return ""
    from services import secrets, tls

    cred = secrets.kafka_credentials(cfg)
    jaas = ('org.apache.kafka.common.security.scram.ScramLoginModule required '
            f'username="{cred["user"]}" password="{cred["password"]}";')
    lines = ["security.protocol=SASL_SSL", "sasl.mechanism=SCRAM-SHA-512", f"sasl.jaas.config={jaas}",
             "ssl.truststore.type=PEM", f"ssl.truststore.location={tls.ca_file(cfg)}"]
    return "".join(f"{prefix}{line}\n" for prefix in ("", "producer.", "consumer.", "admin.") for line in lines)


def worker_properties(cfg: ServiceConfig) -> str:
    return _security_properties(cfg) + f"""\
# written by python -m services on every start; edit services/connect.py instead
bootstrap.servers={cfg.bootstrap_servers}
key.converter=org.apache.kafka.connect.storage.StringConverter
value.converter=org.apache.kafka.connect.json.JsonConverter
value.converter.schemas.enable=false
offset.storage.file.filename={_dir(cfg) / "connect.offsets"}
offset.flush.interval.ms=2000
listeners=http://{HOST}:{cfg.connect_port}
plugin.path={plugin_path(cfg)}
plugin.discovery=only_scan
consumer.auto.offset.reset=earliest
# secrets (the MongoDB URI with its password) are read from files under .services/secrets/ at task start
config.providers=file
config.providers.file.class=org.apache.kafka.common.config.provider.FileConfigProvider
config.providers.file.param.allowed.paths={secrets_file(cfg).parent}
"""


def _http(
    cfg: ServiceConfig, method: str, path: str, body: Any = None, timeout: float = 2.0
) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(
        cfg.connect_url + path, data=data, method=method, headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310 - local URL
            raw = resp.read()
            return resp.status, json.loads(raw) if raw else None
    except urllib.error.HTTPError as e:
        raw = e.read()
        try:
            return e.code, json.loads(raw)
        except ValueError:
            return e.code, raw.decode(errors="replace")


def connector_status(cfg: ServiceConfig) -> dict[str, Any] | None:
    """GET /connectors/<name>/status, or None when the REST API does not answer or knows no such connector."""
    name = connector_spec()["name"]
    try:
        code, body = _http(cfg, "GET", f"/connectors/{name}/status")
    except (OSError, ValueError):
        return None
    return body if code == 200 and isinstance(body, dict) else None


def ready(cfg: ServiceConfig) -> bool:
    st = connector_status(cfg)
    if not st:
        return False
    tasks = st.get("tasks") or []
    for t in tasks:
        if t.get("state") == "FAILED":
            raise ServiceError(f"connector task failed:\n{t.get('trace', '')[:3000]}")
    if st.get("connector", {}).get("state") == "FAILED":
        raise ServiceError(f"connector failed:\n{st['connector'].get('trace', '')[:3000]}")
    return (
        st.get("connector", {}).get("state") == "RUNNING"
        and bool(tasks)
        and all(t.get("state") == "RUNNING" for t in tasks)
    )


def sync_connector_config(cfg: ServiceConfig) -> None:
    """On a reused worker: PUT the connector config when it differs from connectors/mongo-sink.json."""
    spec = connector_spec(cfg)
    code, current = _http(cfg, "GET", f"/connectors/{spec['name']}/config")
    wanted = {**spec["config"], "name": spec["name"]}
    if code == 200 and current == wanted:
        return
    log.info("connect: updating connector %s from %s", spec["name"], CONNECTOR_FILE)
    code, body = _http(cfg, "PUT", f"/connectors/{spec['name']}/config", wanted, timeout=30)
    if code not in (200, 201):
        raise ServiceError(f"connect: PUT connector config failed ({code}): {body}")


def start(cfg: ServiceConfig) -> int:
    java = java_command()
    proc = process(cfg)
    proc.check_port_free(cfg.connect_port, "REST", "SERVICES_CONNECT_PORT")
    d = _dir(cfg)
    d.mkdir(parents=True, exist_ok=True)
    worker = d / "worker.properties"
    from services.secrets import write_private

    write_private(worker, worker_properties(cfg))  # 0600: holds the SASL password in sasl_ssl mode
    connector = d / "mongo-sink.json"
    connector.write_text(json.dumps(connector_spec(cfg), indent=2) + "\n")
    argv = [*java_argv(java, cfg), MAIN_CLASS, str(worker), str(connector)]
    return proc.start(argv, cwd=d)


def wait(cfg: ServiceConfig) -> None:
    process(cfg).wait_ready(lambda: ready(cfg), START_TIMEOUT_S, f"connector on {cfg.connect_url}")
