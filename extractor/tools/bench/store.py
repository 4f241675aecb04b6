"""``python -m extractor bench store --docs N``: the MongoDB store at scale, with both writers.

In one throw-away database of the configured server (``python -m services up``: FerretDB 2 on PostgreSQL +
DocumentDB), filled with N synthetic processed documents of about 1 KB (the shape the workers write):

1. ``insert_docs_per_s``: bulk inserts of the N documents (batches of 1,000, unordered);
2. the query indexes (:func:`extractor.stream.store.ensure_indexes`) built on the full collection;
3. ``find_by_id_p50_ms`` / ``_p99_ms``: ``find_one({_id})`` of random existing ids, one at a time;
4. ``upsert_p99_ms``: ``replace_one({_id}, doc, upsert=True)``, half existing ids and half new ones;
5. ``query_by_code_p99_ms``: the ``query code`` question (documents with a code in a time range, 100 at most);
6. ``connect_docs_per_s`` and ``sink_docs_per_s``: sustained write rate of Kafka Connect's MongoDB sink connector
   (a copy of the configured one, on its own topic) and of ``python -m extractor sink``, each writing M more
   documents from Kafka into the collection of N: timed from the first record produced until the writer's
   consumer group has committed the last one (the clock starts with the writer already running and caught up).

Latencies are measured one call at a time from this process, so they include the driver's round trip.
"""

from __future__ import annotations

import argparse
import json
import random
import time
import uuid
from pathlib import Path
from typing import Any

from extractor.config import Settings
from extractor.tools.bench.report import report

CODES_ILLNESS = [f"I{n:02d}.{k}" for n in range(10, 60) for k in range(10)]  # 500 codes
CODES_MEDICINE = [f"DB{n:05d}" for n in range(200, 500)]  # 300 codes
WORDS = ("patient reports chest pain shortness of breath history of hypertension started on lisinopril "
         "daily follow up in two weeks denies fever cough nausea").split()


def configure_store_parser(p: argparse.ArgumentParser) -> None:
    p.add_argument("--docs", type=int, default=100_000, help="documents in the collection (default 100000)")
    p.add_argument("--writer-docs", type=int, default=20_000,
                   help="documents each writer (Connect, sink) adds through Kafka (default 20000)")
    p.add_argument("--samples", type=int, default=2_000, help="timed lookups / upserts (default 2000)")
    p.add_argument("--queries", type=int, default=300, help="timed code queries (default 300)")
    p.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    p.add_argument("--keep", action="store_true", help="keep the bench database (default: dropped)")
    p.add_argument("--seed", type=int, default=7)


def make_doc(rng: random.Random, i: int, prefix: str) -> dict[str, Any]:
    """A processed document of about 1 KB: ids, time, text, 1-3 illnesses and 0-2 medicines with codes."""
    day = rng.randrange(0, 730)
    ts = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(1_672_531_200 + day * 86_400 + rng.randrange(86_400)))
    ill = [{"text": "x", "start": 0, "end": 1, "label": "ILLNESS", "canonical": f"illness {c}", "code": c,
            "code_system": "ICD-10-CM", "method": "lexicon", "source": "illnesses.tsv:1", "confidence": 0.9,
            "negated": False, "hypothetical": False} for c in rng.sample(CODES_ILLNESS, rng.randint(1, 3))]
    med = [{"text": "y", "start": 2, "end": 3, "label": "MEDICINE", "canonical": f"medicine {c}", "code": c,
            "code_system": "DrugBank", "method": "regex", "source": "rules.tsv:1:start", "confidence": 0.95,
            "negated": False, "hypothetical": False, "dose": "10 mg", "route": None, "frequency": "daily"}
           for c in rng.sample(CODES_MEDICINE, rng.randint(0, 2))]
    return {"_id": f"{prefix}{i:09d}", "entry_id": f"{prefix}{i:09d}", "patient_id": f"P{rng.randrange(50_000):06d}",
            "text": " ".join(rng.choices(WORDS, k=30)), "timestamp": ts, "status": "resolved",
            "illness": ill[0]["canonical"], "medicine": med[0]["canonical"] if med else None,
            "illnesses": ill, "medicines": med, "stages_run": ["regex", "lexicon"],
            "extractor_version": "0.1.0", "lexicon_version": "bench", "chain_version": "bench"}


def _pct(values: list[float], q: float) -> float:
    v = sorted(values)
    return v[min(len(v) - 1, int(round(q / 100 * (len(v) - 1))))] if v else float("nan")


def _timed(fn: Any, items: list[Any]) -> list[float]:
    out = []
    for it in items:
        t0 = time.perf_counter()
        fn(it)
        out.append((time.perf_counter() - t0) * 1000)
    return out


def _fill(coll: Any, n: int, rng: random.Random, prefix: str) -> float:
    from tqdm import tqdm

    t0 = time.perf_counter()
    with tqdm(total=n, unit="doc", desc="insert", mininterval=2) as bar:
        for start in range(0, n, 1000):
            coll.insert_many([make_doc(rng, i, prefix) for i in range(start, min(n, start + 1000))], ordered=False)
            bar.update(min(n, start + 1000) - start)
    return n / (time.perf_counter() - t0)


def _writer_rate(settings: Settings, writer: str, n: int, rng: random.Random, prefix: str, log_dir: Path,
                 timeout: float = 900) -> float:
    """Documents/s that one writer sustains from its topic into the (already large) collection."""
    from confluent_kafka import Producer

    from extractor.stream.topics import ensure_topics
    from extractor.tools.harness import Pipeline

    ensure_topics(settings)
    pipe = Pipeline(settings, log_dir)
    producer = Producer({**settings.kafka_common(), "linger.ms": 20, "compression.type": "lz4"})

    def send(lo: int, hi: int) -> None:
        for i in range(lo, hi):
            d = make_doc(rng, i, prefix)
            producer.produce(settings.processed_topic, json.dumps(d).encode(), key=d["_id"])
            if i % 10_000 == 0:
                producer.poll(0)
        producer.flush(60)

    try:
        group = pipe.start_writer(writer)
        send(0, 200)  # warm-up: the writer is running, assigned and has written once before the clock starts
        _wait_lag_zero(pipe, group, settings.processed_topic, time.monotonic() + timeout)
        t0 = time.monotonic()
        send(200, 200 + n)
        _wait_lag_zero(pipe, group, settings.processed_topic, t0 + timeout)
        return n / (time.monotonic() - t0)
    finally:
        pipe.stop_all()


def _wait_lag_zero(pipe: Any, group: str, topic: str, deadline: float) -> None:
    while True:
        lag = pipe.group_lag(group, topic)
        if lag == 0:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"group {group} still {lag} records behind on {topic}")
        time.sleep(0.2)


def run_store_bench(args: argparse.Namespace) -> int:
    from extractor.stream import store
    from extractor.tools.harness import delete_topics, ensure_servers, isolated_settings

    base = f"bench-store-{uuid.uuid4().hex[:6]}"
    database = base.replace("-", "_")
    settings = isolated_settings(base, mongo_database=database, mongo_collection="processed_entries")
    ensure_servers(settings)
    rng = random.Random(args.seed)
    client = store.mongo_client(settings, socketTimeoutMS=None)  # index builds at 1M documents take minutes
    coll = store.collection(settings, client)
    figures: dict[str, Any] = {"docs": args.docs}
    print(f"bench store: {args.docs} documents into {database} (server {settings.redacted()['mongo_uri']})",
          flush=True)
    try:
        figures["insert_docs_per_s"] = round(_fill(coll, args.docs, rng, "d"))
        t0 = time.perf_counter()
        store.ensure_indexes(settings, coll)
        figures["index_build_s"] = round(time.perf_counter() - t0, 1)
        ids = [f"d{rng.randrange(args.docs):09d}" for _ in range(args.samples)]
        coll.find_one({"_id": ids[0]})  # warm the connection
        find = _timed(lambda i: coll.find_one({"_id": i}), ids)
        figures["find_by_id_p50_ms"] = round(_pct(find, 50), 2)
        figures["find_by_id_p99_ms"] = round(_pct(find, 99), 2)
        up_ids = [(i, make_doc(rng, int(i[1:]), "d")) for i in ids[: args.samples // 2]]
        up_ids += [(d["_id"], d) for d in (make_doc(rng, args.docs + k, "d") for k in range(args.samples // 2))]
        upsert = _timed(lambda pair: coll.replace_one({"_id": pair[0]}, pair[1], upsert=True), up_ids)
        figures["upsert_p50_ms"] = round(_pct(upsert, 50), 2)
        figures["upsert_p99_ms"] = round(_pct(upsert, 99), 2)
        queries = []
        for _ in range(args.queries):
            day = rng.randrange(0, 700)
            since = time.strftime("%Y-%m-%d", time.gmtime(1_672_531_200 + day * 86_400))
            until = time.strftime("%Y-%m-%d", time.gmtime(1_672_531_200 + (day + 30) * 86_400))
            queries.append((rng.choice(CODES_ILLNESS), store.TimeRange(since, until)))
        q = _timed(lambda cq: list(store.documents_with_code(coll, "illness", cq[0], cq[1], 100)), queries)
        figures["query_by_code_p50_ms"] = round(_pct(q, 50), 2)
        figures["query_by_code_p99_ms"] = round(_pct(q, 99), 2)
        logs = Path("out") / "bench-store-logs"
        for writer in ("connect", "sink"):
            ws = isolated_settings(f"{base}-{writer}", mongo_database=database, mongo_collection="processed_entries")
            rate = _writer_rate(ws, writer, args.writer_docs, rng, f"{writer[0]}", logs / writer)
            figures[f"{writer}_docs_per_s"] = round(rate)
            print(f"  {writer}: {args.writer_docs} documents into the collection of {args.docs}: "
                  f"{rate:.0f} documents/s", flush=True)
        figures["collection_docs_after"] = coll.estimated_document_count()
    finally:
        if not args.keep:
            client.drop_database(database)
            delete_topics(settings, f"{base}-")
        client.close()
    return report(figures, args.json)
