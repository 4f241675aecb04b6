"""docker-compose.yml cannot run here (no Docker engine); check that it parses and agrees with the rest
of the project: local-only ports, topic names, the shared connector file, the pinned versions."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from extractor.config import DEFAULT_MONGO_URI, Settings
from services.config import REPO_ROOT, pom_property

COMPOSE = REPO_ROOT / "docker-compose.yml"
CONNECTOR = REPO_ROOT / "connectors" / "mongo-sink.json"


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    assert isinstance(data, dict) and isinstance(data.get("services"), dict)
    return data


@pytest.fixture(scope="module")
def connector() -> dict[str, Any]:
    return json.loads(CONNECTOR.read_text(encoding="utf-8"))


def _command_text(service: dict[str, Any]) -> str:
    cmd = service.get("command", "")
    return "\n".join(cmd) if isinstance(cmd, list) else str(cmd)


def test_services_present(compose: dict[str, Any]) -> None:
    assert {"kafka", "mongo", "connect", "topics"} <= set(compose["services"])


def test_ports_bound_to_localhost_only(compose: dict[str, Any]) -> None:
    published = []
    for name, svc in compose["services"].items():
        for port in svc.get("ports", []):
            assert isinstance(port, str), f"{name}: use the 'IP:HOST:CONTAINER' string form, got {port!r}"
            assert port.startswith("127.0.0.1:"), f"{name}: port {port} is not bound to 127.0.0.1"
            published.append(int(port.split(":")[1]))
    assert sorted(published) == [4443, 8083, 9092, 27017]


def test_kafka_is_kraft_4x_matching_the_pom(compose: dict[str, Any]) -> None:
    kafka = compose["services"]["kafka"]
    assert kafka["image"] == f"apache/kafka:{pom_property('kafka.version')}"
    env = kafka["environment"]
    assert "broker" in env["KAFKA_PROCESS_ROLES"] and "controller" in env["KAFKA_PROCESS_ROLES"]
    assert "127.0.0.1:9092" in env["KAFKA_ADVERTISED_LISTENERS"]
    assert "0.0.0.0" not in env["KAFKA_ADVERTISED_LISTENERS"]
    assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"
    assert compose["services"]["mongo"]["image"].startswith("mongo:7")


def test_topics_match_the_extractor_defaults(compose: dict[str, Any], connector: dict[str, Any]) -> None:
    s = Settings.model_construct()  # the defaults, not this shell's EXTRACTOR_* environment
    created = dict(re.findall(r"([a-z][a-z0-9-]*):(\d+)", _command_text(compose["services"]["topics"])))
    assert created.get(s.input_topic) == str(s.input_partitions)
    assert s.processed_topic in created and s.dlq_topic in created
    assert connector["config"]["errors.deadletterqueue.topic.name"] in created


def test_connector_file_is_shared_and_consistent(compose: dict[str, Any], connector: dict[str, Any]) -> None:
    s = Settings.model_construct()  # the defaults, not this shell's EXTRACTOR_* environment
    c = connector["config"]
    assert connector["name"] == "mongo-sink-connector"
    assert c["connector.class"] == "com.mongodb.kafka.connect.MongoSinkConnector"
    assert c["topics"] == s.processed_topic
    assert (c["database"], c["collection"]) == (s.mongo_database, s.mongo_collection)
    assert c["connection.uri"] == DEFAULT_MONGO_URI  # real MongoDB without auth; compose rewrites it, services up too
    assert c["document.id.strategy"].endswith("ProvidedInValueStrategy")
    assert c["errors.tolerance"] == "all"
    assert c["errors.deadletterqueue.topic.replication.factor"] == "1"
    assert c["errors.deadletterqueue.context.headers.enable"] == "true"
    # never log record contents (patient data): a parse error's message quotes the record, so errors go
    # only to the dead-letter topic (with the error in its headers), not to the worker log
    assert c["errors.log.enable"] == "false"
    assert c["errors.log.include.messages"] == "false"

    connect = compose["services"]["connect"]
    mounts = {v.split(":")[1]: v.split(":")[0] for v in connect["volumes"]}
    for container_path, host_path in mounts.items():
        assert (REPO_ROOT / host_path).resolve().is_file(), (
            f"{host_path} (mounted at {container_path}) is missing"
        )
    assert mounts["/etc/connect/mongo-sink.json"] == "./connectors/mongo-sink.json"
    cmd = _command_text(connect)
    assert "connection.uri" in cmd and "MONGO_URI" in cmd
    assert connect["environment"]["MONGO_URI"] == "mongodb://mongo:27017"
    assert f"{connector['name']}/status" in " ".join(connect["healthcheck"]["test"])


def test_connect_image_matches_the_pom_and_worker(compose: dict[str, Any]) -> None:
    build = compose["services"]["connect"]["build"]
    dockerfile = (REPO_ROOT / build["context"] / build.get("dockerfile", "Dockerfile")).read_text()
    assert f"FROM apache/kafka:{pom_property('kafka.version')}" in dockerfile
    assert f"MONGO_CONNECTOR_VERSION={pom_property('mongo.connector.version')}" in dockerfile
    assert "-all.jar" in dockerfile
    worker = dict(
        line.split("=", 1)
        for line in Path(REPO_ROOT / "connectors" / "connect-worker.docker.properties")
        .read_text()
        .splitlines()
        if line and not line.startswith("#")
    )
    assert worker["plugin.path"] == "/opt/connect-plugins"
    assert "/opt/connect-plugins/mongo-kafka-connect/" in dockerfile
    assert worker["plugin.discovery"] == "only_scan"
    assert worker["value.converter.schemas.enable"] == "false"
    assert worker["bootstrap.servers"].split(":")[0] == "kafka"


def test_extractor_services_share_the_deploy_image(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert {"db-init", "worker", "sink", "produce"} <= set(services)
    builders = [n for n, s in services.items() if s.get("build", {}).get("dockerfile") == "deploy/Dockerfile"]
    assert builders == ["db-init"]
    image = services["db-init"]["image"]
    assert all(services[n]["image"] == image for n in ("worker", "sink", "produce"))
    assert (REPO_ROOT / services["db-init"]["build"]["context"] / "deploy" / "Dockerfile").is_file()
    assert services["worker"]["command"] == ["work"] and services["sink"]["command"] == ["sink"]
    assert services["db-init"]["command"] == ["db", "init"]


def test_extractor_services_reach_the_compose_servers(compose: dict[str, Any]) -> None:
    services = compose["services"]
    internal = compose["services"]["kafka"]["environment"]["KAFKA_ADVERTISED_LISTENERS"].split(",")[0].split("//")[1]
    for name in ("worker", "sink", "produce"):
        assert services[name]["environment"]["EXTRACTOR_BOOTSTRAP_SERVERS"] == internal
        assert services[name]["depends_on"]["topics"]["condition"] == "service_completed_successfully"
    for name in ("db-init", "sink"):
        assert services[name]["environment"]["EXTRACTOR_MONGO_URI"] == compose["services"]["connect"][
            "environment"]["MONGO_URI"]
    # one MongoDB writer by default (Connect); the own sink only on request
    assert services["sink"]["profiles"] == ["own-sink"] and "profiles" not in services["worker"]
    for name in ("worker", "sink"):
        assert int(services[name]["stop_grace_period"].rstrip("s")) >= 30
        assert services[name]["environment"]["EXTRACTOR_METRICS_PORT"] == "9108"


def test_the_archive_profile_runs_the_emulator_and_the_archiver(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert services["gcs"]["image"] == "fsouza/fake-gcs-server:1.56.1"  # the version services/gcs.py builds
    arch = services["archiver"]
    assert arch["image"] == services["db-init"]["image"] and arch["command"] == ["archive"]
    assert services["gcs"]["profiles"] == arch["profiles"] == ["archive"]
    env = arch["environment"]
    assert env["EXTRACTOR_ARCHIVE_URL"] == "gs://clinical-extractor-archive" and env["EXTRACTOR_GCS_ENDPOINT"] == (
        "http://gcs:4443")
