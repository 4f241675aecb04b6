"""The review console's queues, each filtered and paged by cursor (``_id`` greater than the last one shown),
never by offset, so a page costs the same at the millionth document as at the first.

* ``dlq``: the dead-letter topic's records. The console keeps a copy in MongoDB (``dead_letters``, one document per
  record, ``_id`` = ``PPPP:OOOOOOOOOOOO`` partition and offset) written by :class:`DeadLetterMirror`, a consumer
  group of its own that commits only after the copy is written; filters: reason, stage, date.
* ``low``: processed documents holding an entity below ``review_low_confidence``; filters: label, method, code,
  lexicon version, date.
* ``sample``: a uniform random sample of resolved documents for precision audits. Entry ids are SHA-256
  prefixes, so the documents after a random id are a random sample; a page's cursor continues it.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass, field
from typing import Any

from extractor.config import Settings
from extractor.stream import messages as m

log = logging.getLogger(__name__)

QUEUES = ("dlq", "low", "sample")
PAGE = 25


@dataclass
class Filters:
    reason: str = ""
    stage: str = ""
    label: str = ""
    method: str = ""
    code: str = ""
    lexicon_version: str = ""
    since: str = ""
    until: str = ""

    @classmethod
    def from_query(cls, q: Any) -> Filters:
        return cls(**{k: str(q.get(k, "") or "").strip()[:100] for k in cls.__dataclass_fields__})

    def as_query(self) -> dict[str, str]:
        return {k: v for k, v in self.__dict__.items() if v}


@dataclass
class Page:
    queue: str
    items: list[dict[str, Any]]
    next_cursor: str | None
    filters: Filters = field(default_factory=Filters)


def _time_range(f: Filters, key: str) -> dict[str, Any]:
    rng: dict[str, str] = {}
    if f.since:
        rng["$gte"] = f.since
    if f.until:
        rng["$lt"] = f.until
    return {key: rng} if rng else {}


def low_confidence_query(f: Filters, threshold: float) -> dict[str, Any]:
    elem: dict[str, Any] = {"confidence": {"$lt": threshold}}
    if f.method:
        elem["method"] = f.method
    lists = {"ILLNESS": ["illnesses"], "MEDICINE": ["medicines"]}.get(f.label.upper(), ["illnesses", "medicines"])
    q: dict[str, Any] = {"$or": [{name: {"$elemMatch": elem}} for name in lists]}
    if f.code:
        q["codes"] = f.code if ":" in f.code else {"$in": [f"illness:{f.code}", f"medicine:{f.code}"]}
    if f.lexicon_version:
        q["lexicon_version"] = f.lexicon_version
    q.update(_time_range(f, "timestamp"))
    return q


def dead_letter_query(f: Filters, include_resolved: bool = False) -> dict[str, Any]:
    q: dict[str, Any] = {}
    if f.reason:
        q["reason"] = f.reason
    if f.stage:
        q["stage"] = f.stage
    if f.lexicon_version:
        q["lexicon_version"] = f.lexicon_version
    if not include_resolved:
        q["resolved"] = {"$ne": True}
    q.update(_time_range(f, "failed_at"))
    return q


ID_DIGITS = 32  # entry ids: the first 32 hex digits of a SHA-256 (extractor/stream/messages.py)
ID_SPACE = 16**ID_DIGITS
WINDOW_DOCS = 2_000  # documents a first id window is expected to hold
_counts: dict[int, tuple[float, int]] = {}


def _estimated_count(coll: Any) -> int:
    """The collection's size, from the server's estimate, refreshed once a minute."""
    import time

    key = id(coll)
    now = time.monotonic()
    hit = _counts.get(key)
    if hit is None or now - hit[0] > 60:
        hit = (now, int(coll.estimated_document_count()))
        _counts[key] = hit
    return max(1, hit[1])


def _id_value(cursor: str) -> int | None:
    try:
        return int(cursor[:ID_DIGITS].ljust(ID_DIGITS, "0"), 16) if cursor else 0
    except ValueError:
        return None


def windowed(coll: Any, q: dict[str, Any], projection: dict[str, int], cursor: str | None, n: int) -> list[Any]:
    """The first ``n`` documents matching ``q`` after ``cursor`` in ``_id`` order, asked window by window.

    FerretDB's DocumentDB planner sorts every match of a filter before applying the limit, even when it walks the
    ``_id`` index (a low-confidence page sorted a quarter of a million documents: 1.6 s at 1,000,000). Entry ids
    are uniformly spread hex strings, so the console asks for consecutive ``_id`` ranges, the first expected to
    hold about ``WINDOW_DOCS`` documents and each next one four times wider, until the page is full. The
    ranges tile the whole string order (the last one is open), so an id that is not hex is still found in its
    place; a cursor that is not hex falls back to one open-ended query."""
    lo = _id_value(cursor or "")
    if lo is None:
        return list(coll.find({"$and": [q, {"_id": {"$gt": cursor}}]}, projection).sort("_id", 1).limit(n))
    width = max(1, ID_SPACE * WINDOW_DOCS // _estimated_count(coll))
    bound: dict[str, Any] = {"$gt": cursor} if cursor else {"$gte": ""}
    out: list[Any] = []
    while len(out) < n:
        hi = lo + width
        rng = dict(bound) if hi >= ID_SPACE else {**bound, "$lt": f"{hi:0{ID_DIGITS}x}"}
        out += coll.find({"$and": [q, {"_id": rng}]}, projection).sort("_id", 1).limit(n - len(out))
        if hi >= ID_SPACE:
            break
        bound, lo, width = {"$gte": f"{hi:0{ID_DIGITS}x}"}, hi, width * 4
    return out


def page(db: Any, settings: Settings, queue: str, f: Filters, cursor: str | None = None,
         size: int = PAGE) -> Page:
    """One page of a queue: at most ``size`` items after ``cursor`` and the cursor of the next page."""
    if queue == "dlq":
        coll, q = db[settings.dead_letters_collection], dead_letter_query(f)
        projection = {"text": 0}
    elif queue == "low":
        coll, q = db[settings.mongo_collection], low_confidence_query(f, settings.review_low_confidence)
        projection = {"text": 1, "timestamp": 1, "lexicon_version": 1, "illnesses": 1, "medicines": 1}
    elif queue == "sample":
        coll, q = db[settings.mongo_collection], {"status": "resolved"}
        if f.lexicon_version:
            q["lexicon_version"] = f.lexicon_version
        q.update(_time_range(f, "timestamp"))
        cursor = cursor or secrets.token_hex(8)
        projection = {"text": 1, "timestamp": 1, "lexicon_version": 1, "illnesses": 1, "medicines": 1}
    else:
        raise ValueError(f"unknown queue {queue!r}")
    if queue == "dlq":
        if cursor:
            q = {"$and": [q, {"_id": {"$gt": cursor}}]} if q else {"_id": {"$gt": cursor}}
        docs = list(coll.find(q, projection).sort("_id", 1).limit(size + 1))
    else:
        docs = windowed(coll, q, projection, cursor, size + 1)
    nxt = str(docs[size - 1]["_id"]) if len(docs) > size else None
    return Page(queue, docs[:size], nxt, f)


def ensure_indexes(db: Any, settings: Settings) -> list[str]:
    """The queues' indexes (idempotent): dead letters by reason and by time, each ending in ``_id`` for the
    cursor. The documents' queues use ``_id`` and the store's own indexes (extractor/stream/store.py)."""
    from pymongo import IndexModel

    coll = db[settings.dead_letters_collection]
    return list(coll.create_indexes([IndexModel([("reason", 1), ("_id", 1)], name="reason_id"),
                                     IndexModel([("failed_at", 1)], name="failed_at"),
                                     IndexModel([("entry_id", 1)], name="entry_id")]))


# ---------------------------------------------------------------------------------------------- dead letters
def dead_letter_doc(msg: Any) -> dict[str, Any]:
    """The console's copy of one dead-letter record: its headers, and the entry's text and fields when the value
    decodes as an entry (else the value as text, marked ``decodable: false``)."""
    h = m.headers_dict(msg.headers())
    value: bytes = msg.value() or b""
    doc: dict[str, Any] = {
        "_id": f"{msg.partition():04d}:{msg.offset():012d}",
        "partition": msg.partition(), "offset": msg.offset(),
        "reason": h.get(m.H_REASON, "?"), "stage": h.get(m.H_STAGE, "?"),
        "error_class": h.get(m.H_ERROR_CLASS, ""), "error": h.get(m.H_ERROR, ""),
        "entry_id": h.get(m.H_ENTRY_ID) or None, "source_file": h.get(m.H_SOURCE_FILE) or None,
        "source_row": h.get(m.H_SOURCE_ROW) or None, "lexicon_version": h.get(m.H_LEXICON_VERSION) or None,
        "failed_at": h.get(m.H_FAILED_AT) or None, "replayable": h.get(m.H_STAGE) in m.REPLAYABLE_STAGES,
    }
    try:
        entry = m.decode_entry(value, max_text_chars=1_000_000)
        doc.update(text=entry.text, patient_id=entry.patient_id, timestamp=entry.timestamp, decodable=True)
        doc["entry_id"] = doc["entry_id"] or entry.entry_id
    except m.PoisonMessage:
        doc.update(text=value[:20_000].decode("utf-8", "replace"), decodable=False)
    return doc


class DeadLetterMirror:
    """Copies the dead-letter topic into ``dead_letters`` (upserts by partition:offset, so a record copied twice
    after a crash is one document); offsets are committed after the write."""

    def __init__(self, settings: Settings, db: Any, consumer: Any = None) -> None:
        self.settings = settings
        self.coll = db[settings.dead_letters_collection]
        self._consumer = consumer
        self.copied = 0

    def _open(self) -> Any:
        from confluent_kafka import Consumer

        from extractor.stream.kafka import consumer_config

        c = Consumer(consumer_config(self.settings, self.settings.review_group_id, log_level=0,
                                     **{"session.timeout.ms": 30_000, "heartbeat.interval.ms": 3_000}))
        c.subscribe([self.settings.dlq_topic])
        return c

    def poll(self, timeout_s: float = 1.0, batch: int = 500) -> int:
        from pymongo import ReplaceOne

        from extractor.stream.kafka import batch_offsets, commit_offsets

        if self._consumer is None:
            self._consumer = self._open()
        msgs = [msg for msg in self._consumer.consume(batch, timeout=timeout_s) if msg.error() is None]
        if not msgs:
            return 0
        docs = [dead_letter_doc(msg) for msg in msgs]
        self.coll.bulk_write([ReplaceOne({"_id": d["_id"]}, d, upsert=True) for d in docs], ordered=False)
        commit_offsets(self._consumer, batch_offsets(msgs)[1], "review")
        self.copied += len(docs)
        return len(docs)

    def sync(self, idle_s: float = 2.0, max_s: float = 60.0) -> int:
        """Copy until nothing arrives for ``idle_s`` (or ``max_s`` passed)."""
        import time

        t0 = time.monotonic()
        n = 0
        last = t0
        while time.monotonic() - t0 < max_s and time.monotonic() - last < idle_s:
            got = self.poll(0.5)
            n += got
            if got:
                last = time.monotonic()
        return n

    def close(self) -> None:
        if self._consumer is not None:
            self._consumer.close()
            self._consumer = None
