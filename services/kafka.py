"""Apache Kafka 4.x, one node in KRaft combined mode (broker + controller), from the Maven jars."""

from __future__ import annotations

import functools
import logging
from pathlib import Path

from services.config import HOST, ServiceConfig
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


def server_properties(cfg: ServiceConfig) -> str:
    # auto-create is off so a mistyped topic name fails instead of silently creating a topic; the
    # project's topics are created by `python -m extractor topics` / `services up`, and Connect creates
    # its dead-letter topic through the admin API.
    return f"""\
# written by python -m services on every start; edit services/kafka.py instead
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@{HOST}:{cfg.controller_port}
listeners=PLAINTEXT://{HOST}:{cfg.kafka_port},CONTROLLER://{HOST}:{cfg.controller_port}
advertised.listeners=PLAINTEXT://{HOST}:{cfg.kafka_port}
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
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

    admin = AdminClient({"bootstrap.servers": cfg.bootstrap_servers, "log_level": 0})
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
    props = _dir(cfg) / "server.properties"
    props.parent.mkdir(parents=True, exist_ok=True)
    props.write_text(server_properties(cfg))
    base = java_argv(java, cfg)
    data = _dir(cfg) / "data"
    if not (data / "meta.properties").is_file():
        cluster_id = run_checked(
            [*base, "kafka.tools.StorageTool", "random-uuid"], "Kafka cluster id"
        ).split()[-1]
        # static voters (controller.quorum.voters) => format WITHOUT --standalone
        run_checked(
            [
                *base,
                "kafka.tools.StorageTool",
                "format",
                "-t",
                cluster_id,
                "-c",
                str(props),
                "--ignore-formatted",
            ],
            "formatting Kafka storage",
        )
        log.info("kafka: formatted %s (cluster id %s)", data, cluster_id)
    return proc.start([*base, MAIN_CLASS, str(props)], cwd=_dir(cfg))


def wait(cfg: ServiceConfig) -> None:
    process(cfg).wait_ready(lambda: ready(cfg), START_TIMEOUT_S, f"broker {cfg.bootstrap_servers}")
