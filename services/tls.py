"""A local certificate authority and the broker's TLS certificate, made with ``openssl`` on first use.

Files under ``.services/tls/`` (keys and keystores mode 0600): ``ca.pem`` (what clients trust:
``EXTRACTOR_SSL_CA_LOCATION``), ``broker.p12`` (the broker's key and certificate for 127.0.0.1 and localhost, a
PKCS#12 keystore Kafka reads), and the keystore password in ``.services/secrets/kafka.json``. Nothing here is logged.
"""

from __future__ import annotations

import logging
from pathlib import Path

from services import secrets
from services.config import ServiceConfig
from services.process import require_tool, run_checked

log = logging.getLogger(__name__)

DAYS = 825


def tls_dir(cfg: ServiceConfig) -> Path:
    d = cfg.data_dir / "tls"
    d.mkdir(mode=0o700, parents=True, exist_ok=True)
    return d


def ca_file(cfg: ServiceConfig) -> Path:
    return tls_dir(cfg) / "ca.pem"


def keystore_file(cfg: ServiceConfig) -> Path:
    return tls_dir(cfg) / "broker.p12"


def ensure_certificates(cfg: ServiceConfig) -> None:
    """CA + broker certificate (SAN 127.0.0.1, localhost) + PKCS#12 keystore; no-op when present."""
    d = tls_dir(cfg)
    if ca_file(cfg).is_file() and keystore_file(cfg).is_file():
        return
    openssl = require_tool("openssl")
    password = secrets.kafka_credentials(cfg)["keystore_password"]
    ca_key, ca_pem = d / "ca.key", d / "ca.pem"
    key, csr, crt, ext = d / "broker.key", d / "broker.csr", d / "broker.pem", d / "broker.ext"
    run_checked([openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(ca_key), "-out", str(ca_pem),
                 "-days", str(DAYS), "-subj", "/CN=clinical-extractor local CA"], "creating the local CA")
    run_checked([openssl, "req", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(csr),
                 "-subj", "/CN=127.0.0.1"], "creating the broker key")
    ext.write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth\n")
    run_checked([openssl, "x509", "-req", "-in", str(csr), "-CA", str(ca_pem), "-CAkey", str(ca_key),
                 "-CAcreateserial", "-out", str(crt), "-days", str(DAYS), "-extfile", str(ext)],
                "signing the broker certificate")
    run_checked([openssl, "pkcs12", "-export", "-in", str(crt), "-inkey", str(key), "-certfile", str(ca_pem),
                 "-name", "broker", "-out", str(keystore_file(cfg)), "-passout", "stdin"],
                "packing the broker keystore", stdin=password + "\n")
    for p in (ca_key, key, keystore_file(cfg)):
        p.chmod(0o600)
    for p in (csr, ext):
        p.unlink(missing_ok=True)
    log.info("tls: local CA and broker certificate written to %s", d)
