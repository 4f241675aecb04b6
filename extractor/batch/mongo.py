"""Executor side of ``backfill --mongo``: upsert a partition's documents with the sink's idempotent writer.

One MongoDB client per Python worker process (kept between tasks, like the chain); writes are
``store.upsert_documents`` (ReplaceOne by ``_id``, upsert), retried with backoff while the server is unreachable,
so a task that Spark retries, or a whole rerun, leaves the same documents.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterable
from typing import Any

from extractor.batch.records import settings_from_payload
from extractor.stream import store
from extractor.stream.sink import _is_transient

ATTEMPTS = 6
_lock = threading.Lock()
_clients: dict[str, Any] = {}


def _collection(payload: dict[str, Any]) -> Any:
    uri = payload["mongo_uri"]
    with _lock:
        client = _clients.get(uri)
        if client is None:
            settings = settings_from_payload(payload)
            client = store.mongo_client(settings, appname="clinical-extractor-backfill")
            _clients[uri] = client
    return client[payload["mongo_database"]][payload["mongo_collection"]]


def upsert_rows(rows: Iterable[Any], payload: dict[str, Any], chunk: int = store.WRITE_CHUNK) -> int:
    """Upsert the documents of ``rows`` (each with a ``document`` JSON string); returns how many."""
    coll = _collection(payload)
    n = 0
    batch: list[dict[str, Any]] = []
    for row in rows:
        batch.append(json.loads(row["document"]))
        if len(batch) >= chunk:
            n += _write(coll, batch)
            batch = []
    if batch:
        n += _write(coll, batch)
    return n


def _write(coll: Any, docs: list[dict[str, Any]]) -> int:
    delay = 0.2
    for attempt in range(1, ATTEMPTS + 1):
        try:
            store.upsert_documents(coll, docs)
            return len(docs)
        except Exception as exc:
            if attempt == ATTEMPTS or not _is_transient(exc):
                raise
            time.sleep(delay)
            delay = min(delay * 2, 10.0)
    return 0  # pragma: no cover
