"""Apache Kafka 4.x, one node in KRaft combined mode (broker + controller), from the Maven jars."""

from __future__ import annotations

import functools
import logging
from pathlib import Path
from typing import Any

from services import secrets, tls
from services.config import HOST, ServiceConfig
from services.errors import ServiceError
from services.jars import java_argv
from services.process import ManagedProcess, java_command, run_checked

log = logging.getLogger(__name__)

NAME = "kafka"
MAIN_CLASS = "kafka.Kafka"
START_TIMEOUT_S = 90.0


def _dir(cfg: ServiceConfig) -> Path:
    return cfg.data_dir / "kafka"


@functools.cache  # one instance per config: it remembers the Popen of a process started here
def process(cfg: ServiceConfig) -> ManagedProcess:
    return ManagedProcess(NAME, cfg, MAIN_CLASS)


def client_conf(cfg: ServiceConfig) -> dict[str, Any]:
    """librdkafka settings that reach this broker (SASL_SSL + SCRAM-SHA-512 with the CA in sasl_ssl mode)."""
    conf: dict[str, Any] = {"bootstrap.servers": cfg.bootstrap_servers}
    if cfg.kafka_security == "sasl_ssl":
        env = secrets.kafka_client_env(cfg)
        conf.update({"security.protocol": "SASL_SSL", "sasl.mechanism": "SCRAM-SHA-512",
                     "sasl.username": env["EXTRACTOR_SASL_USERNAME"], "sasl.password": env["EXTRACTOR_SASL_PASSWORD"],
                     "ssl.ca.location": env["EXTRACTOR_SSL_CA_LOCATION"]})
    return conf


def _jaas(user: str, password: str) -> str:
    return f'org.apache.kafka.common.security.scram.ScramLoginModule required username="{user}" password="{password}";'


def _listener_properties(cfg: ServiceConfig) -> str:
    if cfg.kafka_security != "sasl_ssl":
        return f"""listeners=PLAINTEXT://{HOST}:{cfg.kafka_port},CONTROLLER://{HOST}:{cfg.controller_port}
advertised.listeners=PLAINTEXT://{HOST}:{cfg.kafka_port}
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
"""
    cred = secrets.kafka_credentials(cfg)
    return f"""listeners=SASL_SSL://{HOST}:{cfg.kafka_port},CONTROLLER://{HOST}:{cfg.controller_port}
advertised.listeners=SASL_SSL://{HOST}:{cfg.kafka_port}
inter.broker.listener.name=SASL_SSL
listener.security.protocol.map=CONTROLLER:PLAINTEXT,SASL_SSL:SASL_SSL
sasl.enabled.mechanisms=SCRAM-SHA-512
sasl.mechanism.inter.broker.protocol=SCRAM-SHA-512
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config={_jaas(cred["admin_user"], cred["admin_password"])}
ssl.keystore.type=PKCS12
ssl.keystore.location={tls.keystore_file(cfg)}
ssl.keystore.password={cred["keystore_password"]}
ssl.truststore.type=PEM
ssl.truststore.location={tls.ca_file(cfg)}
"""


def server_properties(cfg: ServiceConfig) -> str:
    # auto-create is off so a mistyped topic name fails instead of silently creating a topic; the
    # project's topics are created by `python -m extractor topics` / `services up`, and Connect creates
    # its dead-letter topic through the admin API. The controller listener stays on loopback, PLAINTEXT.
    return f"""\
# written by python -m services on every start (mode 0600: it holds passwords); edit services/kafka.py instead
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@{HOST}:{cfg.controller_port}
{_listener_properties(cfg)}controller.listener.names=CONTROLLER
log.dirs={_dir(cfg) / "data"}
num.partitions=1
default.replication.factor=1
auto.create.topics.enable=false
offsets.topic.replication.factor=1
offsets.topic.num.partitions=10
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
min.insync.replicas=1
group.initial.rebalance.delay.ms=0
log.retention.hours=168
"""


def ready(cfg: ServiceConfig) -> bool:
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({**client_conf(cfg), "log_level": 0})
    try:
        md = admin.list_topics(timeout=1)
    except Exception:  # noqa: BLE001 - any failure means "not yet"
        return False
    return bool(md.brokers)


def start(cfg: ServiceConfig) -> int:
    """Write the config, format the storage on first use, start the broker (does not wait)."""
    java = java_command()
    proc = process(cfg)
    proc.check_port_free(cfg.kafka_port, "broker", "SERVICES_KAFKA_PORT")
    proc.check_port_free(cfg.controller_port, "controller", "SERVICES_CONTROLLER_PORT")
    if cfg.kafka_security == "sasl_ssl":
        tls.ensure_certificates(cfg)
    props = _dir(cfg) / "server.properties"
    props.parent.mkdir(parents=True, exist_ok=True)
    secrets.write_private(props, server_properties(cfg))
    base = java_argv(java, cfg)
    data = _dir(cfg) / "data"
    mode_file = _dir(cfg) / "security.mode"
    if (data / "meta.properties").is_file() and (mode_file.read_text().strip() if mode_file.is_file()
                                                 else "plaintext") != cfg.kafka_security:
        raise ServiceError(f"kafka: the storage in {data} was formatted for another security mode; switching to "
                           f"{cfg.kafka_security} needs a fresh one: python -m services down --wipe kafka")
    if not (data / "meta.properties").is_file():
        cluster_id = run_checked(
            [*base, "kafka.tools.StorageTool", "random-uuid"], "Kafka cluster id"
        ).split()[-1]
        # static voters (controller.quorum.voters) => format WITHOUT --standalone
        scram: list[str] = []
        if cfg.kafka_security == "sasl_ssl":  # SCRAM users must exist before the broker authenticates itself
            cred = secrets.kafka_credentials(cfg)
            for user, pw in ((cred["admin_user"], cred["admin_password"]), (cred["user"], cred["password"])):
                scram += ["--add-scram", f"SCRAM-SHA-512=[name={user},password={pw}]"]
        run_checked(
            [*base, "kafka.tools.StorageTool", "format", "-t", cluster_id, "-c", str(props), "--ignore-formatted",
             *scram],
            "formatting Kafka storage", show_argv=not scram,
        )
        mode_file.write_text(cfg.kafka_security + "\n")
        log.info("kafka: formatted %s (cluster id %s)", data, cluster_id)
    return proc.start([*base, MAIN_CLASS, str(props)], cwd=_dir(cfg))


def wait(cfg: ServiceConfig) -> None:
    process(cfg).wait_ready(lambda: ready(cfg), START_TIMEOUT_S, f"broker {cfg.bootstrap_servers}")
