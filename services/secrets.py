"""Credentials of the local servers: generated at first start, kept under ``.services/secrets/`` (mode 0600).

``mongo.json`` holds the MongoDB user and password (a PostgreSQL role: FerretDB 2 hands authentication to
PostgreSQL); ``mongo.uri`` the full connection string, which the extractor's settings read when
``EXTRACTOR_MONGO_URI`` is not set (``EXTRACTOR_MONGO_URI_FILE``); ``connect-secrets.properties`` the same URI for
Kafka Connect's FileConfigProvider, so the connector's config (REST API, logs) only shows a placeholder.
Nothing here is ever logged; :func:`redact_uri` hides the password wherever a URI is shown.
"""

from __future__ import annotations

import json
import os
import re
import secrets as _secrets
from pathlib import Path
from urllib.parse import quote

from services.config import HOST, ServiceConfig

MONGO_USER = "extractor"


def secrets_dir(cfg: ServiceConfig) -> Path:
    d = cfg.data_dir / "secrets"
    d.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(d, 0o700)
    return d


def write_private(path: Path, text: str) -> None:
    """Create or replace a file readable by its owner only (never world-readable, not even for a moment)."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.replace(tmp, path)


def mongo_credentials(cfg: ServiceConfig) -> dict[str, str]:
    path = secrets_dir(cfg) / "mongo.json"
    if path.is_file():
        return dict(json.loads(path.read_text(encoding="utf-8")))
    cred = {"user": MONGO_USER, "password": _secrets.token_urlsafe(24)}
    write_private(path, json.dumps(cred) + "\n")
    return cred


def kafka_credentials(cfg: ServiceConfig) -> dict[str, str]:
    """SCRAM-SHA-512 users of the secured broker (the broker's own ``admin``, the clients' ``extractor``) and the
    TLS keystore password."""
    path = secrets_dir(cfg) / "kafka.json"
    if path.is_file():
        return dict(json.loads(path.read_text(encoding="utf-8")))
    cred = {"admin_user": "admin", "admin_password": _secrets.token_urlsafe(24), "user": "extractor",
            "password": _secrets.token_urlsafe(24), "keystore_password": _secrets.token_urlsafe(24)}
    write_private(path, json.dumps(cred) + "\n")
    return cred


def kafka_client_env(cfg: ServiceConfig) -> dict[str, str]:
    """The EXTRACTOR_* settings that point a client at the secured broker (SASL_SSL + SCRAM-SHA-512)."""
    cred = kafka_credentials(cfg)
    return {"EXTRACTOR_BOOTSTRAP_SERVERS": cfg.bootstrap_servers, "EXTRACTOR_SECURITY_PROTOCOL": "SASL_SSL",
            "EXTRACTOR_SASL_MECHANISM": "SCRAM-SHA-512", "EXTRACTOR_SASL_USERNAME": cred["user"],
            "EXTRACTOR_SASL_PASSWORD": cred["password"],
            "EXTRACTOR_SSL_CA_LOCATION": str(cfg.data_dir / "tls" / "ca.pem")}


def write_kafka_client_env(cfg: ServiceConfig) -> Path:
    """``.services/secrets/kafka-client.env`` (0600): ``set -a; . that-file`` points the extractor at the broker."""
    path = secrets_dir(cfg) / "kafka-client.env"
    write_private(path, "".join(f"{k}={v}\n" for k, v in kafka_client_env(cfg).items()))
    return path


def mongo_uri(cfg: ServiceConfig) -> str:
    """The local MongoDB URI with credentials (SCRAM-SHA-256, the mechanism FerretDB 2 supports)."""
    cred = mongo_credentials(cfg)
    return (f"mongodb://{quote(cred['user'], safe='')}:{quote(cred['password'], safe='')}@{HOST}:{cfg.mongo_port}/"
            "?authMechanism=SCRAM-SHA-256&authSource=admin")


def write_client_files(cfg: ServiceConfig) -> None:
    """mongo.uri for the extractor, connect-secrets.properties for Kafka Connect (both 0600)."""
    d = secrets_dir(cfg)
    uri = mongo_uri(cfg)
    write_private(d / "mongo.uri", uri + "\n")
    cred = mongo_credentials(cfg)
    write_private(d / "connect-secrets.properties",
                  f"mongo.uri={uri}\nmongo.user={cred['user']}\nmongo.password={cred['password']}\n")


def redact_uri(uri: str) -> str:
    return re.sub(r"(//[^:/@]+:)[^@]+@", r"\1****@", uri)
