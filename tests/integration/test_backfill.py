"""``backfill --mongo`` against the real local MongoDB (FerretDB): the sink's upserts, idempotent on rerun, and
the same documents as the Parquet output."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from extractor.batch.backfill import backfill
from extractor.config import Settings
from extractor.stream.store import collection, mongo_client
from tests.batch.conftest import sample_rows, write_csv

pytestmark = pytest.mark.integration


def test_backfill_upserts_into_mongodb_idempotently(spark: Any, service_settings: Settings, unique_name: str,
                                                     tmp_path: Path) -> None:
    settings = service_settings.model_copy(update={"mongo_database": "backfill_it", "mongo_collection": unique_name})
    csv_path = write_csv(tmp_path / "entries.csv", sample_rows(30))
    out = tmp_path / "out"
    client = mongo_client(settings)
    coll = collection(settings, client)
    try:
        first = backfill(settings, csv_path, out, spark=spark, mongo=True)
        assert first.reconciled and first.mongo_upserted == first.written > 0
        assert coll.count_documents({}) == first.written
        again = backfill(settings, csv_path, out, spark=spark, mongo=True)
        assert again.mongo_upserted == first.written and coll.count_documents({}) == first.written
        unchanged = backfill(settings, csv_path, out, spark=spark, mongo=True, only_changed=True)
        assert unchanged.written == 0 and unchanged.mongo_upserted == 0
        parquet = {r["_id"]: json.loads(r["document"]) for r in spark.read.parquet(str(out / "documents")).collect()}
        for doc in coll.find({}):
            mine = parquet[doc["_id"]]
            skip = {"processed_at", "written_at_ms"}
            assert {k: v for k, v in doc.items() if k not in skip} == {k: v for k, v in mine.items() if k not in skip}
        assert "patient_id_timestamp" in coll.index_information()
    finally:
        client["backfill_it"].drop_collection(unique_name)
        client.close()
