"""Kafka Connect + MongoDB sink: processed-entries -> MongoDB, upsert by ``_id``, malformed records -> the
connector's dead-letter topic with error headers.

Each test module gets its OWN connector (a copy of connectors/mongo-sink.json as configured by ``services up``,
credentials included) on its own topics and collection, so these tests never wait behind whatever the shared
connector is still writing (the demo's documents, say) and never see another test's records.
Records here are synthetic (no patient data).
"""

from __future__ import annotations

import json
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import cast

import pytest
from confluent_kafka import Consumer, Message, Producer, TopicPartition
from pymongo import MongoClient
from pymongo.collection import Collection

from extractor.config import Settings
from extractor.stream.topics import ensure_topics
from extractor.tools.harness import connect_request, wait_connector_running
from services.manager import Endpoints

from .helpers import wait_for

pytestmark = pytest.mark.integration

DELIVERY_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class Connector:
    name: str
    topic: str
    dlq_topic: str
    collection: Collection


@pytest.fixture(scope="module")
def connector(services: Endpoints, service_settings: Settings) -> Iterator[Connector]:
    run = f"it-connect-{uuid.uuid4().hex[:8]}"
    topic, dlq = f"{run}-processed", f"{run}-dlq"
    ensure_topics(service_settings, extra={topic: 3, dlq: 1})
    base = connect_request(service_settings, "GET", f"/connectors/{services.connector_name}/config")
    config = {**base, "name": run, "topics": topic, "collection": run.replace("-", "_"),
              "errors.deadletterqueue.topic.name": dlq}
    connect_request(service_settings, "PUT", f"/connectors/{run}/config", config)
    client: MongoClient = MongoClient(services.mongo_uri, serverSelectionTimeoutMS=5000)
    coll = client[services.mongo_database][config["collection"]]
    try:
        wait_connector_running(service_settings, run)
        yield Connector(run, topic, dlq, coll)
    finally:
        connect_request(service_settings, "DELETE", f"/connectors/{run}")
        coll.drop()
        client.close()


def _produce(bootstrap: str, topic: str, key: bytes, value: bytes) -> None:
    producer = Producer({"bootstrap.servers": bootstrap})
    producer.produce(topic, key=key, value=value)
    assert producer.flush(30) == 0


def _status(services: Endpoints, name: str) -> dict:
    with urllib.request.urlopen(f"{services.connect_url}/connectors/{name}/status", timeout=5) as resp:  # noqa: S310
        return cast(dict, json.load(resp))


def test_shared_connector_is_running_with_its_password_hidden(services: Endpoints) -> None:
    status = _status(services, services.connector_name)
    assert status["connector"]["state"] == "RUNNING"
    assert status["tasks"] and all(t["state"] == "RUNNING" for t in status["tasks"])
    with urllib.request.urlopen(  # noqa: S310 - local URL
        f"{services.connect_url}/connectors/{services.connector_name}/config", timeout=5
    ) as resp:
        shown = resp.read().decode()
    password = services.mongo_uri.split("://", 1)[1].split("@", 1)[0].split(":", 1)[1]
    assert password not in shown  # only ${file:...} placeholders
    assert "${file:" in shown


def test_record_lands_in_mongo_and_is_upserted_by_id(services: Endpoints, connector: Connector) -> None:
    sink_collection = connector.collection
    doc_id = f"it-{uuid.uuid4().hex}"
    first = {"_id": doc_id, "entities": [{"label": "ILLNESS", "text": "synthetic"}], "version": 1}
    _produce(
        services.bootstrap_servers, connector.topic, doc_id.encode(), json.dumps(first).encode()
    )
    got = wait_for(
        lambda: sink_collection.find_one({"_id": doc_id}), DELIVERY_TIMEOUT_S, "the sink to write it"
    )
    assert got == first

    second = {**first, "version": 2, "note": "changed"}
    _produce(
        services.bootstrap_servers, connector.topic, doc_id.encode(), json.dumps(second).encode()
    )
    wait_for(
        lambda: (sink_collection.find_one({"_id": doc_id}) or {}).get("version") == 2,
        DELIVERY_TIMEOUT_S,
        "the sink to replace it",
    )
    assert sink_collection.count_documents({"_id": doc_id}) == 1
    assert sink_collection.find_one({"_id": doc_id}) == second


def _dlq_end_offsets(consumer: Consumer, topic: str) -> list[TopicPartition]:
    parts = consumer.list_topics(topic, timeout=10).topics[topic].partitions
    tps = []
    for p in parts:
        _low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
        tps.append(TopicPartition(topic, p, high))
    return tps


def test_malformed_record_goes_to_dead_letter_topic(services: Endpoints, connector: Connector) -> None:
    key = f"it-bad-{uuid.uuid4().hex}".encode()
    consumer = Consumer(
        {
            "bootstrap.servers": services.bootstrap_servers,
            "group.id": f"it-dlq-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
        }
    )
    try:
        consumer.assign(_dlq_end_offsets(consumer, connector.dlq_topic))  # only what comes next
        _produce(services.bootstrap_servers, connector.topic, key, b"this is {not json")

        found: Message | None = None
        deadline = time.monotonic() + DELIVERY_TIMEOUT_S
        while found is None and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is not None and msg.error() is None and msg.key() == key:
                found = msg
        assert found is not None, f"no dead letter with key {key!r} on {connector.dlq_topic}"
        assert found.value() == b"this is {not json"
        raw = cast(list[tuple[str, bytes]], found.headers() or [])
        headers = dict(raw)
        assert headers["__connect.errors.topic"].decode() == connector.topic
        assert headers["__connect.errors.connector.name"].decode() == connector.name
        assert headers["__connect.errors.stage"].decode() == "VALUE_CONVERTER"
        assert b"DataException" in headers["__connect.errors.exception.class.name"]
    finally:
        consumer.close()

    # the connector keeps running after a bad record (errors.tolerance=all)
    assert all(t["state"] == "RUNNING" for t in _status(services, connector.name)["tasks"])
