"""The local MongoDB-wire server (FerretDB 2 on PostgreSQL + DocumentDB): what the project relies on works
through pymongo, with authentication on."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from pymongo import MongoClient
from pymongo.collection import Collection
from pymongo.errors import DuplicateKeyError, OperationFailure

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


def test_concurrent_bulk_upserts_at_the_writers_size(services: Endpoints, collection: Collection) -> None:
    """Four writers at once, each sending bulk upserts of the size the sink and the connector use (500 a
    command): the server keeps answering and every document is there once."""
    import threading

    from pymongo import ReplaceOne

    from extractor.stream.sink import WRITE_CHUNK

    collection.insert_many([{"_id": f"d{i}", "v": 0} for i in range(2000)])
    errors: list[str] = []

    def writer(k: int) -> None:
        client: MongoClient = MongoClient(services.mongo_uri, socketTimeoutMS=30_000)
        coll = client[collection.database.name][collection.name]
        try:
            for r in range(3):
                ids = [f"d{(k * 500 + r * 97 + i) % 2500}" for i in range(WRITE_CHUNK)]
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
    assert collection.count_documents({}) == len(set(collection.distinct("_id"))) >= 2000


def _without_password(uri: str) -> str:
    scheme, rest = uri.split("://", 1)
    return f"{scheme}://{rest.split('@', 1)[1].split('/', 1)[0]}/"


def test_authentication_is_on(services: Endpoints) -> None:
    """As on any real MongoDB: no credentials, or a wrong password, and nothing can be read or written."""
    anonymous: MongoClient = MongoClient(_without_password(services.mongo_uri), serverSelectionTimeoutMS=5000)
    user = services.mongo_uri.split("://", 1)[1].split(":", 1)[0]
    wrong: MongoClient = MongoClient(_without_password(services.mongo_uri), username=user,
                                     password="not-the-password", authSource="admin",
                                     authMechanism="SCRAM-SHA-256", serverSelectionTimeoutMS=5000)
    try:
        with pytest.raises(OperationFailure):
            anonymous["it_tests"]["auth_probe"].insert_one({"x": 1})
        with pytest.raises(OperationFailure):
            anonymous.list_database_names()
        with pytest.raises(OperationFailure, match="(?i)auth"):
            wrong["it_tests"]["auth_probe"].find_one()
    finally:
        anonymous.close()
        wrong.close()


def test_credentials_file_is_private(services_config) -> None:
    import stat

    for name in ("mongo.json", "mongo.uri", "connect-secrets.properties"):
        mode = stat.S_IMODE((services_config.data_dir / "secrets" / name).stat().st_mode)
        assert mode == 0o600, (name, oct(mode))


def test_the_sinks_insert_first_write_replaces_what_is_there(collection: Collection) -> None:
    """upsert_documents(insert_first=True), as the sink writes: new documents inserted, the ids already there
    (FerretDB answers E11000 for them) replaced; the end state is what ReplaceOne upserts give."""
    from extractor.stream.store import upsert_documents

    upsert_documents(collection, [{"_id": "a", "v": 1}, {"_id": "b", "v": 1}], insert_first=True)
    upsert_documents(collection, [{"_id": "b", "v": 2}, {"_id": "c", "v": 1}, {"_id": "a", "v": 3}],
                     insert_first=True)
    docs = {d["_id"]: d["v"] for d in collection.find()}
    assert docs == {"a": 3, "b": 2, "c": 1}
