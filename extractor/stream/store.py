"""MongoDB as the pipeline's store: the client, the indexes users query by, and the everyday queries.

Both writers (Kafka Connect's MongoDB sink, the reference design's; or ``python -m extractor sink``) write the
same document with ``_id`` = entry id. Whichever runs, :func:`ensure_indexes` (``python -m extractor db init``,
also run by ``python -m services up`` and ``make demo``) creates the indexes the queries below need:

* ``patient_id`` + ``timestamp``: one patient's entries in time order;
* ``codes`` + ``timestamp``: entries with an illness or medicine code in a time range (``codes`` is the document's
  flat ``kind:code`` list, e.g. ``illness:I10``);
* ``timestamp``: counts per code in a time range.

Every index costs the database CPU on each write (measured on FerretDB 2 / DocumentDB: about 0.017 ms per document
each with the composite operator class the local server uses, 0.055 with the single-path one), so there is no
index a query does not use. Earlier versions also had
``illness_code_timestamp``, ``medicine_code_timestamp`` and ``status``; :func:`ensure_indexes` drops them, and
``db init`` adds ``codes`` to documents written before it existed.

``timestamp`` is the entry's own time (ISO 8601 from the CSV), so string order is time order.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from extractor.config import Settings

log = logging.getLogger(__name__)

# (name, keys): names are stable so that creating them again is a no-op on MongoDB and FerretDB alike
INDEXES: tuple[tuple[str, tuple[tuple[str, int], ...]], ...] = (
    ("patient_id_timestamp", (("patient_id", 1), ("timestamp", 1))),
    ("codes_timestamp", (("codes", 1), ("timestamp", 1))),
    ("timestamp", (("timestamp", 1),)),
)
OBSOLETE_INDEXES = ("illness_code_timestamp", "medicine_code_timestamp", "status")
CODE_FIELDS = {"illness": "illnesses", "medicine": "medicines"}


def mongo_client(settings: Settings, **kw: Any) -> Any:
    from pymongo import MongoClient

    opts: dict[str, Any] = {"serverSelectionTimeoutMS": 3000, "connectTimeoutMS": 3000,
                            "socketTimeoutMS": 30000, "appname": "clinical-extractor"}
    opts.update(kw)
    return MongoClient(settings.mongo_uri.get_secret_value(), **opts)


def collection(settings: Settings, client: Any = None) -> Any:
    client = client if client is not None else mongo_client(settings)
    return client[settings.mongo_database][settings.mongo_collection]


WRITE_CHUNK = 500  # ReplaceOne statements per bulk command


DUPLICATE_KEY = 11000


def upsert_documents(coll: Any, docs: list[dict[str, Any]], chunk: int = WRITE_CHUNK,
                     insert_first: bool = False) -> None:
    """The project's one idempotent MongoDB write: ``ReplaceOne({_id}, doc, upsert=True)`` per document, unordered,
    in bulk commands of ``chunk``; each document gets ``written_at_ms``. Used by the sink and the backfill.

    ``insert_first`` (the sink: nearly every document is new): an unordered ``insert_many`` first, and the
    replace only for the documents whose ``_id`` is already there (a redelivery, a replay). The end state is the
    same; an insert costs the database less than an upsert's look-up (measured on FerretDB 2 / DocumentDB:
    0.03 ms of PostgreSQL CPU per document). Any other write error is raised as it came."""
    import time

    from pymongo import ReplaceOne
    from pymongo.errors import BulkWriteError

    now = int(time.time() * 1000)
    for d in docs:
        d["written_at_ms"] = now
    for i in range(0, len(docs), chunk):
        part = docs[i:i + chunk]
        if insert_first:
            try:
                coll.insert_many(part, ordered=False)
                continue
            except BulkWriteError as exc:
                errors = exc.details.get("writeErrors", [])
                if any(e.get("code") != DUPLICATE_KEY for e in errors):
                    raise
                part = [part[e["index"]] for e in errors]
        coll.bulk_write([ReplaceOne({"_id": d["_id"]}, d, upsert=True) for d in part], ordered=False)


def ensure_indexes(settings: Settings, coll: Any = None, *, migrate: bool = False) -> list[str]:
    """Create the query indexes (idempotent) and drop the obsolete ones; returns the index names. ``migrate``
    (``python -m extractor db init``) also gives documents written before ``codes`` existed their ``codes``: a
    scan of the collection, so not on every sink start."""
    from pymongo import IndexModel

    coll = coll if coll is not None else collection(settings)
    models = [IndexModel(list(keys), name=name) for name, keys in INDEXES]
    names = list(coll.create_indexes(models))
    present = set(coll.index_information())
    for name in OBSOLETE_INDEXES:
        if name in present:
            coll.drop_index(name)
            log.info("dropped obsolete index %s", name)
    if migrate:
        add_codes(coll)
    return names


def add_codes(coll: Any, batch: int = 1000) -> int:
    """Set ``codes`` on documents written before the field existed; returns how many were updated."""
    from pymongo import UpdateOne

    from extractor.stream.messages import entity_codes

    n = 0
    while True:
        docs = list(coll.find({"codes": {"$exists": False}}, {"illnesses.code": 1, "medicines.code": 1}).limit(batch))
        if not docs:
            return n
        coll.bulk_write([UpdateOne({"_id": d["_id"]}, {"$set": {"codes": entity_codes(
            d.get("illnesses") or [], d.get("medicines") or [])}}) for d in docs], ordered=False)
        n += len(docs)
        log.info("added codes to %d older documents", n)


# --- the everyday queries -------------------------------------------------------------------------------


@dataclass(frozen=True)
class TimeRange:
    since: str | None = None  # inclusive, ISO 8601 (a date alone is fine: "2024-01-01")
    until: str | None = None  # exclusive

    def filter(self) -> dict[str, Any]:
        cond: dict[str, Any] = {}
        if self.since:
            cond["$gte"] = self.since
        if self.until:
            cond["$lt"] = self.until
        return {"timestamp": cond} if cond else {}


SUMMARY_FIELDS = {"_id": 1, "patient_id": 1, "timestamp": 1, "status": 1, "illness": 1, "medicine": 1,
                  "illnesses.code": 1, "illnesses.canonical": 1, "medicines.code": 1, "medicines.canonical": 1}


def patient_documents(coll: Any, patient_id: str, when: TimeRange = TimeRange(), limit: int = 100,
                      with_text: bool = False) -> Iterator[dict[str, Any]]:
    """One patient's documents, oldest first (index ``patient_id_timestamp``)."""
    projection = None if with_text else SUMMARY_FIELDS
    cursor = coll.find({"patient_id": patient_id, **when.filter()}, projection)
    return iter(cursor.sort([("timestamp", 1)]).limit(limit))


def documents_with_code(coll: Any, kind: str, code: str, when: TimeRange = TimeRange(), limit: int = 100,
                        with_text: bool = False) -> Iterator[dict[str, Any]]:
    """Documents holding an illness or medicine ``code`` in a time range (index ``codes_timestamp``)."""
    if kind not in CODE_FIELDS:
        raise ValueError(f"kind must be one of {', '.join(CODE_FIELDS)}, got {kind!r}")
    projection = None if with_text else SUMMARY_FIELDS
    cursor = coll.find({"codes": f"{kind}:{code}", **when.filter()}, projection)
    return iter(cursor.sort([("timestamp", 1)]).limit(limit))


def counts_per_code(coll: Any, kind: str, when: TimeRange = TimeRange(), top: int = 20,
                    include_negated: bool = False) -> list[dict[str, Any]]:
    """Entries per code (an aggregation): ``[{code, canonical, entries, patients}]``, most frequent first.

    An entry counts once per code; negated and hypothetical mentions are left out unless ``include_negated``."""
    arr = CODE_FIELDS[kind]
    match_entity: dict[str, Any] = {f"{arr}.code": {"$ne": None}}
    if not include_negated:
        match_entity.update({f"{arr}.negated": {"$ne": True}, f"{arr}.hypothetical": {"$ne": True}})
    pipeline: list[dict[str, Any]] = []
    if when.filter():
        pipeline.append({"$match": when.filter()})
    pipeline += [
        {"$project": {"patient_id": 1, arr: 1}},
        {"$unwind": f"${arr}"},
        {"$match": match_entity},
        {"$group": {"_id": {"code": f"${arr}.code", "entry": "$_id"}, "canonical": {"$first": f"${arr}.canonical"},
                    "patient_id": {"$first": "$patient_id"}}},
        {"$group": {"_id": "$_id.code", "canonical": {"$first": "$canonical"}, "entries": {"$sum": 1},
                    "patients": {"$addToSet": "$patient_id"}}},
        {"$project": {"_id": 0, "code": "$_id", "canonical": 1, "entries": 1, "patients": {"$size": "$patients"}}},
        {"$sort": {"entries": -1, "code": 1}},
        {"$limit": top},
    ]
    return list(coll.aggregate(pipeline))
