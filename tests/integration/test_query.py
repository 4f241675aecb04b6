"""The query indexes and the everyday queries (``python -m extractor db init`` / ``query``) on the real server."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from extractor.config import REPO_ROOT
from extractor.stream import store
from extractor.tools.harness import isolated_settings, subprocess_env

from .helpers import wait_for

pytestmark = pytest.mark.integration


def _doc(i: int, patient: str, ts: str, illnesses: list[tuple[str, bool]], medicines: list[str]) -> dict:
    return {"_id": f"e{i}", "patient_id": patient, "timestamp": ts, "status": "resolved", "text": "synthetic",
            "illnesses": [{"canonical": c.lower(), "code": c, "negated": neg} for c, neg in illnesses],
            "medicines": [{"canonical": c.lower(), "code": c, "negated": False} for c in medicines]}


@pytest.fixture
def settings(services, unique_name):
    s = isolated_settings(unique_name, bootstrap_servers=services.bootstrap_servers, mongo_uri=services.mongo_uri,
                          mongo_database="it_tests")
    coll = store.collection(s)
    coll.insert_many([
        _doc(1, "P1", "2024-01-05T10:00:00Z", [("E11", False)], ["DB00331"]),
        _doc(2, "P1", "2024-03-01T10:00:00Z", [("E11", False), ("I10", False)], ["DB00331", "DB00722"]),
        _doc(3, "P2", "2024-02-10T10:00:00Z", [("I10", False)], ["DB00722"]),
        _doc(4, "P3", "2024-02-11T10:00:00Z", [("E11", True)], []),  # negated: not counted by default
        _doc(5, "P3", "2023-12-31T23:00:00Z", [("J11", False)], []),
    ])
    yield s
    coll.drop()


def test_indexes_and_queries(settings):
    coll = store.collection(settings)
    coll.create_index([("status", 1)], name="status")  # an index of an earlier version
    names = store.ensure_indexes(settings, migrate=True)
    assert names == store.ensure_indexes(settings, migrate=True)  # idempotent
    assert set(coll.index_information()) == {"_id_"} | {n for n, _ in store.INDEXES}  # no unused index left
    # documents written before `codes` existed get it
    assert coll.find_one({"_id": "e2"})["codes"] == ["illness:E11", "illness:I10", "medicine:DB00331",
                                                    "medicine:DB00722"]
    docs = list(store.patient_documents(coll, "P1"))
    assert [d["_id"] for d in docs] == ["e1", "e2"] and "text" not in docs[0]
    jan_feb = store.TimeRange("2024-01-01", "2024-03-01")
    assert [d["_id"] for d in store.documents_with_code(coll, "illness", "E11", jan_feb)] == ["e1", "e4"]
    assert [d["_id"] for d in store.documents_with_code(coll, "medicine", "DB00722")] == ["e3", "e2"]
    counts = {r["code"]: (r["entries"], r["patients"]) for r in store.counts_per_code(coll, "illness")}
    assert counts == {"E11": (2, 1), "I10": (2, 2), "J11": (1, 1)}
    with_negated = {r["code"]: r["entries"] for r in store.counts_per_code(coll, "illness", include_negated=True)}
    assert with_negated["E11"] == 3
    in_2024 = {r["code"] for r in store.counts_per_code(coll, "illness", store.TimeRange("2024-01-01"))}
    assert in_2024 == {"E11", "I10"}


def test_local_indexes_use_the_composite_class_and_older_ones_are_rebuilt(settings, services_config):
    """The local server builds the query indexes with DocumentDB's composite operator class (2.5x less database
    CPU per write, services/postgres.py); `services up` rebuilds the ones an earlier version built without it."""
    from services import manager, postgres

    def single_path() -> list[str]:
        return postgres.single_path_indexes(services_config, settings.mongo_database, settings.mongo_collection)

    assert postgres.psql(services_config, "SHOW documentdb.defaultUseCompositeOpClass").strip() == "on"
    coll = store.collection(settings)
    try:  # an index as an earlier version of the server config built it
        postgres.psql(services_config, "ALTER SYSTEM SET documentdb.defaultUseCompositeOpClass = false")
        postgres.psql(services_config, "SELECT pg_reload_conf()")
        wait_for(lambda: postgres.psql(services_config, "SHOW documentdb.defaultUseCompositeOpClass").strip()
                 == "off", 10, "the reload")
        import time

        time.sleep(0.5)  # FerretDB's pooled connections read the reloaded setting at their next statement
        coll.create_index([("timestamp", 1)], name="timestamp")
    finally:
        postgres.psql(services_config, "ALTER SYSTEM RESET documentdb.defaultUseCompositeOpClass")
        postgres.psql(services_config, "SELECT pg_reload_conf()")
    assert single_path() == ["timestamp"]
    manager.ensure_indexes(services_config, settings)
    assert single_path() == []
    assert set(coll.index_information()) == {"_id_"} | {n for n, _ in store.INDEXES}
    assert [d["_id"] for d in store.patient_documents(coll, "P1")] == ["e1", "e2"]


def test_query_command_json(settings):
    store.ensure_indexes(settings, migrate=True)  # what `python -m extractor db init` does

    def run(*args: str) -> list[dict]:
        out = subprocess.run([sys.executable, "-m", "extractor", "query", *args, "--json"], cwd=REPO_ROOT,
                             env=subprocess_env(settings), capture_output=True, text=True, timeout=120, check=True)
        return [json.loads(line) for line in out.stdout.splitlines()]

    assert [r["entry_id"] for r in run("patient", "P1")] == ["e1", "e2"]
    assert [r["entry_id"] for r in run("code", "I10", "--since", "2024-02-01")] == ["e3", "e2"]
    assert run("counts", "--kind", "medicine")[0] == {"code": "DB00331", "canonical": "db00331", "entries": 2,
                                                      "patients": 1}
