"""Kafka Connect + MongoDB sink: processed-entries -> medical.processed_entries, upsert by ``_id``,
malformed records -> the connector's dead-letter topic with error headers.

Records here are synthetic (no patient data) and carry ``it-`` ids; the documents are deleted afterwards.
"""

from __future__ import annotations

import json
import time
import urllib.request
import uuid
from collections.abc import Iterator
from typing import cast

import pytest
from confluent_kafka import Consumer, Message, Producer, TopicPartition
from pymongo import MongoClient
from pymongo.collection import Collection

from services.manager import Endpoints

from .helpers import wait_for

pytestmark = pytest.mark.integration

DELIVERY_TIMEOUT_S = 60.0


@pytest.fixture
def sink_collection(services: Endpoints) -> Iterator[Collection]:
    client: MongoClient = MongoClient(services.mongo_uri, serverSelectionTimeoutMS=5000)
    coll = client[services.mongo_database][services.mongo_collection]
    yield coll
    coll.delete_many({"_id": {"$regex": "^it-"}})
    client.close()


def _produce(bootstrap: str, topic: str, key: bytes, value: bytes) -> None:
    producer = Producer({"bootstrap.servers": bootstrap})
    producer.produce(topic, key=key, value=value)
    assert producer.flush(30) == 0


def test_connector_is_running(services: Endpoints) -> None:
    url = f"{services.connect_url}/connectors/{services.connector_name}/status"
    with urllib.request.urlopen(url, timeout=5) as resp:  # noqa: S310 - local URL
        status = json.load(resp)
    assert status["connector"]["state"] == "RUNNING"
    assert [t["state"] for t in status["tasks"]] == ["RUNNING"]


def test_record_lands_in_mongo_and_is_upserted_by_id(
    services: Endpoints, sink_collection: Collection
) -> None:
    doc_id = f"it-{uuid.uuid4().hex}"
    first = {"_id": doc_id, "entities": [{"label": "ILLNESS", "text": "synthetic"}], "version": 1}
    _produce(
        services.bootstrap_servers, services.connector_topic, doc_id.encode(), json.dumps(first).encode()
    )
    got = wait_for(
        lambda: sink_collection.find_one({"_id": doc_id}), DELIVERY_TIMEOUT_S, "the sink to write it"
    )
    assert got == first

    second = {**first, "version": 2, "note": "changed"}
    _produce(
        services.bootstrap_servers, services.connector_topic, doc_id.encode(), json.dumps(second).encode()
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


def test_malformed_record_goes_to_dead_letter_topic(services: Endpoints) -> None:
    key = f"it-bad-{uuid.uuid4().hex}".encode()
    consumer = Consumer(
        {
            "bootstrap.servers": services.bootstrap_servers,
            "group.id": f"it-dlq-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
        }
    )
    try:
        consumer.assign(_dlq_end_offsets(consumer, services.connector_dlq_topic))  # only what comes next
        _produce(services.bootstrap_servers, services.connector_topic, key, b"this is {not json")

        found: Message | None = None
        deadline = time.monotonic() + DELIVERY_TIMEOUT_S
        while found is None and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is not None and msg.error() is None and msg.key() == key:
                found = msg
        assert found is not None, f"no dead letter with key {key!r} on {services.connector_dlq_topic}"
        assert found.value() == b"this is {not json"
        raw = cast(list[tuple[str, bytes]], found.headers() or [])
        headers = dict(raw)
        assert headers["__connect.errors.topic"].decode() == services.connector_topic
        assert headers["__connect.errors.connector.name"].decode() == services.connector_name
        assert headers["__connect.errors.stage"].decode() == "VALUE_CONVERTER"
        assert b"DataException" in headers["__connect.errors.exception.class.name"]
    finally:
        consumer.close()

    # the connector keeps running after a bad record (errors.tolerance=all)
    with urllib.request.urlopen(  # noqa: S310 - local URL
        f"{services.connect_url}/connectors/{services.connector_name}/status", timeout=5
    ) as resp:
        assert json.load(resp)["tasks"][0]["state"] == "RUNNING"
