"""Kafka secured end to end: a second local broker and Kafka Connect with SASL/SCRAM-SHA-512 over TLS
(``SERVICES_KAFKA_SECURITY=sasl_ssl``; its own data dir and ports, the same jars and credentials as the main
servers), and the producer, a worker, the sink, the DLQ tools, ``topics`` and the connector all working against it
through the EXTRACTOR_* settings; clients without credentials, with a wrong password or without the CA refused;
no secret in any log or ``--help``."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

from extractor.config import REPO_ROOT, load_settings
from extractor.tools.harness import Pipeline, subprocess_env
from services import connect, kafka, manager, secrets
from services.config import ServiceConfig

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def secured(services, services_config: ServiceConfig) -> Iterator[ServiceConfig]:
    main = services_config
    cfg = dataclasses.replace(main, data_dir=main.data_dir / "secured", kafka_port=main.kafka_port + 10_000,
                              controller_port=main.controller_port + 10_000,
                              connect_port=main.connect_port + 10_000, kafka_security="sasl_ssl")
    for sub in ("kafka/lib", "connect/plugins", "secrets"):  # same jars and credentials, nothing to install
        link = cfg.data_dir / sub
        link.parent.mkdir(parents=True, exist_ok=True)
        if not link.exists():
            link.symlink_to(main.data_dir / sub, target_is_directory=True)
    try:
        if kafka.process(cfg).pid() is None:
            kafka.start(cfg)
        kafka.wait(cfg)
        secrets.write_kafka_client_env(cfg)
        manager.ensure_topics(cfg)
        if connect.process(cfg).pid() is None:
            connect.start(cfg)
        connect.wait(cfg)
        yield cfg
    finally:
        connect.process(cfg).stop()
        kafka.process(cfg).stop(timeout_s=30)


def _settings(cfg: ServiceConfig, services, name: str, **kw):
    env = secrets.kafka_client_env(cfg)
    base = {k[len("EXTRACTOR_"):].lower(): v for k, v in env.items()}
    return load_settings(**base, mongo_uri=services.mongo_uri, input_topic=f"{name}-entries",
                         processed_topic=f"{name}-processed", dlq_topic=f"{name}-dlq", group_id=f"{name}-workers",
                         sink_group_id=f"{name}-sink", mongo_database="it_secured",
                         mongo_collection=name.replace("-", "_"),
                         connect_url=f"http://127.0.0.1:{cfg.connect_port}", **kw)


def _cli(settings, *args: str) -> subprocess.CompletedProcess:
    env = {**subprocess_env(settings), "EXTRACTOR_SASL_PASSWORD": settings.sasl_password.get_secret_value(),
           "EXTRACTOR_SECURITY_PROTOCOL": settings.security_protocol, "EXTRACTOR_SASL_MECHANISM": "SCRAM-SHA-512",
           "EXTRACTOR_SASL_USERNAME": settings.sasl_username, "EXTRACTOR_SSL_CA_LOCATION": settings.ssl_ca_location}
    return subprocess.run([sys.executable, "-m", "extractor", *args], env=env, cwd=REPO_ROOT, capture_output=True,
                          text=True, timeout=300)


def test_pipeline_over_sasl_ssl(secured, services, tmp_path):
    name = f"it-sec-{uuid.uuid4().hex[:8]}"
    s = _settings(secured, services, name)
    out = _cli(s, "topics")
    assert out.returncode == 0, out.stderr[-2000:]
    csv = tmp_path / "in.csv"
    csv.write_text("patient_id,medical_entry,timestamp\n"
                   "P1,Patient shows signs of flu. Prescribed ibuprofen.,2024-01-01T10:00:00Z\n"
                   "P2,Hx of HTN. Started lisinopril 10 mg daily.,2024-01-02T10:00:00Z\n"
                   "P3,Seen today; follow-up in two weeks.,2024-01-03T10:00:00Z\n"
                   "P4,bad row,not-a-time\n")
    out = _cli(s, "produce", str(csv), "--no-progress")
    assert out.returncode == 0 and "sent=3 dead_lettered=1" in out.stdout, out.stderr[-2000:]
    pipe = Pipeline(s, tmp_path / "logs")
    env = {"EXTRACTOR_SASL_PASSWORD": s.sasl_password.get_secret_value(), "EXTRACTOR_SECURITY_PROTOCOL": "SASL_SSL",
           "EXTRACTOR_SASL_MECHANISM": "SCRAM-SHA-512", "EXTRACTOR_SASL_USERNAME": s.sasl_username,
           "EXTRACTOR_SSL_CA_LOCATION": s.ssl_ca_location}
    try:
        pipe.start("work", env=env)
        pipe.start("sink", env=env)
        pipe.start_writer("connect")  # a copy of the secured Connect's connector, on this run's topic
        pipe.wait_caught_up(180)
        pipe.writer_group = s.sink_group_id
        pipe.wait_caught_up(180)
    finally:
        pipe.stop_all()
    assert pipe.collection().count_documents({}) == 2
    out = _cli(s, "dlq", "inspect")
    assert out.returncode == 0 and "2 records" in out.stdout, out.stdout + out.stderr[-2000:]
    out = _cli(s, "dlq", "replay")
    assert out.returncode == 0, out.stderr[-2000:]
    pipe.collection().drop()
    # no secret in any log of this run or of the secured servers, nor in --help
    cred = secrets.kafka_credentials(secured)
    texts = [p.read_text(errors="replace") for p in (tmp_path / "logs").glob("*.log")]
    texts += [secured.log_file(n).read_text(errors="replace") for n in ("kafka", "connect")]
    texts += [_cli(s, cmd, "--help").stdout for cmd in ("produce", "work", "sink", "dlq", "topics")]
    for secret in (cred["password"], cred["admin_password"], cred["keystore_password"]):
        assert not any(secret in t for t in texts)


def _refused(conf: dict) -> None:
    admin = AdminClient({**conf, "log_level": 0})
    with pytest.raises(KafkaException):
        admin.list_topics(timeout=5)


def test_clients_without_credentials_wrong_password_or_ca_are_refused(secured):
    good = kafka.client_conf(secured)
    assert AdminClient({**good, "log_level": 0}).list_topics(timeout=10).brokers  # the right settings work
    _refused({"bootstrap.servers": secured.bootstrap_servers})  # plaintext client
    _refused({k: v for k, v in good.items() if not k.startswith("sasl.")} | {"security.protocol": "SSL"})
    _refused({**good, "sasl.password": "not-the-password"})
    _refused({k: v for k, v in good.items() if k != "ssl.ca.location"})  # does not trust our CA


def test_secrets_files_are_private(secured):
    import stat

    for p in (Path(secured.data_dir / "secrets" / "kafka.json"), secured.data_dir / "tls" / "broker.p12",
              secured.data_dir / "tls" / "ca.key", secured.data_dir / "kafka" / "server.properties",
              secured.data_dir / "connect" / "worker.properties"):
        assert stat.S_IMODE(p.stat().st_mode) == 0o600, p
