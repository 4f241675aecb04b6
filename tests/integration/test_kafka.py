"""The local Kafka broker: topics, a produce/consume round trip, the project's topics."""

from __future__ import annotations

import pytest
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from extractor.config import Settings, load_settings
from extractor.stream.topics import ensure_topics
from services.manager import Endpoints

pytestmark = pytest.mark.integration


def _create_topic(bootstrap: str, name: str, partitions: int = 1) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1)])[name].result(
        timeout=30
    )


def test_produce_consume_round_trip(services: Endpoints, unique_name: str) -> None:
    _create_topic(services.bootstrap_servers, unique_name, partitions=2)
    producer = Producer({"bootstrap.servers": services.bootstrap_servers, "enable.idempotence": True})
    sent = {f"k{i}".encode(): f'{{"n": {i}}}'.encode() for i in range(10)}
    for k, v in sent.items():
        producer.produce(unique_name, key=k, value=v, headers=[("origin", b"test")])
    assert producer.flush(30) == 0

    consumer = Consumer(
        {
            "bootstrap.servers": services.bootstrap_servers,
            "group.id": unique_name,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([unique_name])
    got: dict[bytes, bytes] = {}
    try:
        import time

        deadline = time.monotonic() + 30
        while len(got) < len(sent) and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None:
                continue
            assert msg.error() is None, msg.error()
            got[msg.key() or b""] = msg.value() or b""
            assert dict(msg.headers() or []) == {"origin": b"test"}
        consumer.commit(asynchronous=False)
    finally:
        consumer.close()
    assert got == sent


def test_project_topics_exist_and_ensure_is_idempotent(services: Endpoints) -> None:
    settings = load_settings(bootstrap_servers=services.bootstrap_servers)
    result = ensure_topics(settings)
    assert result == {
        settings.input_topic: "exists",
        settings.processed_topic: "exists",
        settings.dlq_topic: "exists",
    }
    md = AdminClient({"bootstrap.servers": services.bootstrap_servers}).list_topics(timeout=10)
    assert len(md.topics[settings.input_topic].partitions) == settings.input_partitions
    assert services.connector_dlq_topic in md.topics


def test_ensure_topics_creates_missing(services: Endpoints, unique_name: str) -> None:
    settings = load_settings(
        bootstrap_servers=services.bootstrap_servers,
        input_topic=f"{unique_name}-in",
        processed_topic=f"{unique_name}-out",
        dlq_topic=f"{unique_name}-dlq",
        input_partitions=2,
    )
    first = ensure_topics(settings)
    assert set(first.values()) == {"created"}
    assert set(ensure_topics(settings).values()) == {"exists"}
    md = AdminClient({"bootstrap.servers": services.bootstrap_servers}).list_topics(timeout=10)
    assert len(md.topics[f"{unique_name}-in"].partitions) == 2
    assert len(md.topics[f"{unique_name}-dlq"].partitions) == 1


def test_ensure_topics_grows_a_topic_with_fewer_partitions_and_never_shrinks(services: Endpoints,
                                                                              unique_name: str) -> None:
    """A topic created with the old default (3) gets the planned 6 when `topics` runs again; one with more keeps
    them (Kafka cannot shrink a topic)."""
    def settings(partitions: int):
        return load_settings(bootstrap_servers=services.bootstrap_servers, input_topic=f"{unique_name}-in",
                             processed_topic=f"{unique_name}-out", dlq_topic=f"{unique_name}-dlq",
                             input_partitions=partitions)

    def counts() -> dict[str, int]:
        md = AdminClient({"bootstrap.servers": services.bootstrap_servers}).list_topics(timeout=10)
        return {t: len(md.topics[f"{unique_name}-{t}"].partitions) for t in ("in", "out", "dlq")}

    assert set(ensure_topics(settings(3)).values()) == {"created"}
    assert counts() == {"in": 3, "out": 3, "dlq": 1}
    grown = ensure_topics(settings(6))
    assert grown == {f"{unique_name}-in": "grown", f"{unique_name}-out": "grown", f"{unique_name}-dlq": "exists"}
    assert counts() == {"in": 6, "out": 6, "dlq": 1}
    assert set(ensure_topics(settings(2)).values()) == {"exists"}
    assert counts() == {"in": 6, "out": 6, "dlq": 1}
    AdminClient({"bootstrap.servers": services.bootstrap_servers}).delete_topics(
        [f"{unique_name}-{t}" for t in ("in", "out", "dlq")])


def test_auto_create_is_disabled(services: Endpoints, unique_name: str) -> None:
    """A mistyped topic name must fail, not silently create a topic."""
    producer = Producer({"bootstrap.servers": services.bootstrap_servers, "message.timeout.ms": 3000})
    errors: list[object] = []
    producer.produce(f"{unique_name}-typo", value=b"x", on_delivery=lambda err, _msg: errors.append(err))
    producer.flush(10)
    assert errors and errors[0] is not None
    md = AdminClient({"bootstrap.servers": services.bootstrap_servers}).list_topics(timeout=10)
    assert f"{unique_name}-typo" not in md.topics


def test_service_settings_point_at_the_servers(services: Endpoints, service_settings: Settings) -> None:
    assert service_settings.bootstrap_servers == services.bootstrap_servers
    assert service_settings.mongo_uri.get_secret_value() == services.mongo_uri
