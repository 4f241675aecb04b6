"""Where the local servers live and which ports they use.

Everything is read once from flags and the environment into a frozen :class:`ServiceConfig`:

==========================  ==============  ==========================================
environment variable        default         meaning
==========================  ==============  ==========================================
``SERVICES_DIR``            ``<repo>/.services``  binaries, jars, data, logs, pid files
``SERVICES_KAFKA_PORT``     9092            broker (PLAINTEXT) listener
``SERVICES_CONTROLLER_PORT`` 9093           KRaft controller listener
``SERVICES_MONGO_PORT``     27017           FerretDB 2 (MongoDB wire protocol)
``SERVICES_POSTGRES_PORT``  5433            PostgreSQL + DocumentDB under FerretDB
``SERVICES_KAFKA_SECURITY`` ``plaintext``   ``sasl_ssl``: the broker and Connect speak SASL/SCRAM-SHA-512 over TLS
``SERVICES_CONNECT_PORT``   8083            Kafka Connect REST API
==========================  ==============  ==========================================
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent

# every SERVICES_* variable, for the generated settings reference (docs/settings.md): name, default, meaning
ENV_VARS: tuple[tuple[str, str, str], ...] = (
    ("SERVICES_DIR", "`<repo>/.services`", "binaries, jars, data, logs, pid files and secrets of the local servers"),
    ("SERVICES_KAFKA_PORT", "`9092`", "Kafka broker listener"),
    ("SERVICES_CONTROLLER_PORT", "`9093`", "Kafka KRaft controller listener"),
    ("SERVICES_MONGO_PORT", "`27017`", "FerretDB 2 (the MongoDB wire protocol)"),
    ("SERVICES_POSTGRES_PORT", "`5433`", "PostgreSQL + DocumentDB under FerretDB"),
    ("SERVICES_CONNECT_PORT", "`8083`", "Kafka Connect REST API"),
    ("SERVICES_PROMETHEUS_PORT", "`9090`", "Prometheus with the alert rules of deploy/monitoring"),
    ("SERVICES_KAFKA_SECURITY", "`plaintext`",
     "`sasl_ssl`: the broker and Connect speak SASL/SCRAM-SHA-512 over TLS only (wipe Kafka's data to switch)"),
    ("SERVICES_APT_INSTALL", "`1`", "`0`: never run apt-get (print the command to run instead)"),
    ("SERVICES_VENDOR_DIR", "`../shared/vendor` when present",
     "where the DocumentDB and pgvector source archives are; without it they are downloaded once from upstream"),
    ("SERVICES_STOP_AFTER_TESTS", "unset", "`1`: the tests stop the servers they started"),
)
POM = Path(__file__).resolve().parent / "pom.xml"
CONNECTOR_FILE = REPO_ROOT / "connectors" / "mongo-sink.json"
FERRETDB_VERSION = "v2.7.0"
FERRETDB_MODULE = "github.com/FerretDB/FerretDB/v2"
HOST = "127.0.0.1"  # never localhost: clients may try ::1 first


def pom_property(name: str) -> str:
    """A ``<properties>`` value of services/pom.xml (the single source of the jar versions)."""
    m = re.search(rf"<{re.escape(name)}>([^<]+)</{re.escape(name)}>", POM.read_text(encoding="utf-8"))
    if not m:
        raise ValueError(f"{POM}: property <{name}> not found")
    return m.group(1).strip()


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError:
        raise ValueError(f"{name}={raw!r} is not a port number") from None


def _security(value: str) -> str:
    v = value.strip().lower()
    if v not in ("plaintext", "sasl_ssl"):
        raise ValueError(f"SERVICES_KAFKA_SECURITY={value!r}: choose plaintext or sasl_ssl")
    return v


@dataclass(frozen=True)
class ServiceConfig:
    data_dir: Path
    kafka_port: int = 9092
    controller_port: int = 9093
    mongo_port: int = 27017
    connect_port: int = 8083
    postgres_port: int = 5433
    kafka_security: str = "plaintext"  # or "sasl_ssl"

    @classmethod
    def from_env(
        cls,
        data_dir: str | Path | None = None,
        kafka_port: int | None = None,
        controller_port: int | None = None,
        mongo_port: int | None = None,
        connect_port: int | None = None,
        postgres_port: int | None = None,
    ) -> ServiceConfig:
        """Flags (non-None arguments) win over the environment, which wins over the defaults."""
        d = data_dir or os.environ.get("SERVICES_DIR") or REPO_ROOT / ".services"
        return cls(
            data_dir=Path(d).expanduser().resolve(),
            kafka_port=kafka_port or _env_int("SERVICES_KAFKA_PORT", 9092),
            controller_port=controller_port or _env_int("SERVICES_CONTROLLER_PORT", 9093),
            mongo_port=mongo_port or _env_int("SERVICES_MONGO_PORT", 27017),
            connect_port=connect_port or _env_int("SERVICES_CONNECT_PORT", 8083),
            postgres_port=postgres_port or _env_int("SERVICES_POSTGRES_PORT", 5433),
            kafka_security=_security(os.environ.get("SERVICES_KAFKA_SECURITY", "plaintext")),
        )

    @property
    def bootstrap_servers(self) -> str:
        return f"{HOST}:{self.kafka_port}"

    @property
    def mongo_uri(self) -> str:
        """With the generated credentials (created on first use; see services/secrets.py)."""
        from services import secrets

        return secrets.mongo_uri(self)

    @property
    def connect_url(self) -> str:
        return f"http://{HOST}:{self.connect_port}"

    @property
    def logs_dir(self) -> Path:
        return self.data_dir / "logs"

    @property
    def run_dir(self) -> Path:
        return self.data_dir / "run"

    @property
    def bin_dir(self) -> Path:
        return self.data_dir / "bin"

    def log_file(self, name: str) -> Path:
        return self.logs_dir / f"{name}.log"

    def pid_file(self, name: str) -> Path:
        return self.run_dir / f"{name}.pid"
