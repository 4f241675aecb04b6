"""The local MongoDB-wire server (FerretDB): what the project relies on works through pymongo."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from pymongo import MongoClient
from pymongo.collection import Collection
from pymongo.errors import DuplicateKeyError

from services.manager import Endpoints

pytestmark = pytest.mark.integration


@pytest.fixture
def collection(services: Endpoints, unique_name: str) -> Iterator[Collection]:
    client: MongoClient = MongoClient(services.mongo_uri, serverSelectionTimeoutMS=5000)
    coll = client["it_tests"][unique_name.replace("-", "_")]
    yield coll
    coll.drop()
    client.close()


def test_ping(services: Endpoints) -> None:
    client: MongoClient = MongoClient(services.mongo_uri, serverSelectionTimeoutMS=5000)
    try:
        assert client.admin.command("ping")["ok"] == 1.0
    finally:
        client.close()


def test_insert_find_upsert(collection: Collection) -> None:
    collection.insert_many([{"_id": "a", "n": 1, "tags": ["x"]}, {"_id": "b", "n": 2, "tags": []}])
    assert collection.find_one({"n": {"$gt": 1}}) == {"_id": "b", "n": 2, "tags": []}
    assert sorted(d["_id"] for d in collection.find({"tags": "x"})) == ["a"]

    res = collection.replace_one({"_id": "c"}, {"n": 3}, upsert=True)
    assert res.upserted_id == "c"
    res = collection.replace_one({"_id": "c"}, {"n": 4}, upsert=True)
    assert res.upserted_id is None and res.modified_count == 1
    collection.update_one({"_id": "a"}, {"$set": {"n": 10}}, upsert=True)
    assert collection.count_documents({}) == 3
    assert collection.find_one({"_id": "c"}) == {"_id": "c", "n": 4}
    assert (collection.find_one({"_id": "a"}) or {}).get("n") == 10


def test_unique_index_rejects_duplicates(collection: Collection) -> None:
    collection.create_index("key", unique=True)
    collection.insert_one({"_id": 1, "key": "same"})
    with pytest.raises(DuplicateKeyError):
        collection.insert_one({"_id": 2, "key": "same"})
    with pytest.raises(DuplicateKeyError):
        collection.insert_one({"_id": 1, "key": "other"})
    assert collection.count_documents({}) == 1


def test_aggregate_group_count(collection: Collection) -> None:
    collection.insert_many([{"label": "x"}, {"label": "x"}, {"label": "y"}])
    rows = list(
        collection.aggregate([{"$group": {"_id": "$label", "n": {"$sum": 1}}}, {"$sort": {"_id": 1}}])
    )
    assert rows == [{"_id": "x", "n": 2}, {"_id": "y", "n": 1}]


def test_concurrent_small_update_commands_keep_the_server_answering(
    services: Endpoints, collection: Collection
) -> None:
    """Writers as the sink and Kafka Connect issue them (REPLACE_CHUNK statements a command, several at once).

    FerretDB 1.24 holds a pooled connection per statement until an update command ends (pool of 100): larger
    commands, or too many at once, make it stop answering every client. This guards the chunk size we chose.
    """
    import json
    import threading
    from pathlib import Path

    from pymongo import MongoClient, ReplaceOne

    from extractor.stream.sink import REPLACE_CHUNK

    connector = json.loads((Path(__file__).resolve().parents[2] / "connectors" / "mongo-sink.json").read_text())
    assert int(connector["config"]["max.batch.size"]) <= REPLACE_CHUNK
    collection.insert_many([{"_id": f"d{i}", "v": 0} for i in range(1000)])
    errors: list[str] = []

    def writer(k: int) -> None:
        client: MongoClient = MongoClient(services.mongo_uri, socketTimeoutMS=30_000)
        coll = client[collection.database.name][collection.name]
        try:
            for r in range(8):
                ids = [f"d{(k * 250 + r * REPLACE_CHUNK + i) % 1000}" for i in range(REPLACE_CHUNK)]
                coll.bulk_write([ReplaceOne({"_id": i}, {"_id": i, "v": r}, upsert=True) for i in ids], ordered=False)
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(repr(exc))
        finally:
            client.close()

    threads = [threading.Thread(target=writer, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors and not any(t.is_alive() for t in threads)
    assert collection.count_documents({}) == 1000
