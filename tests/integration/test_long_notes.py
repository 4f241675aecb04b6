"""A worker on 20,000-character notes stays in its group: no poll-interval timeout, no rebalance, nothing lost.

The worker runs with ``max.poll.interval.ms`` at its floor (10 s) and a batch of long notes that takes far longer
than that to extract; it must keep its membership by polling with paused partitions between chunks."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from confluent_kafka import Producer

from extractor.stream import messages as m
from extractor.stream.topics import ensure_topics
from extractor.tools.harness import Pipeline, isolated_settings

pytestmark = pytest.mark.integration

SAMPLE = Path(__file__).resolve().parents[2] / "data" / "sample_entries.csv"


def long_notes(n: int, chars: int = 19_000) -> list[str]:
    with SAMPLE.open(encoding="utf-8", newline="") as fh:
        texts = [r["medical_entry"] for r in csv.DictReader(fh)]
    notes, i = [], 0
    for _ in range(n):
        parts: list[str] = []
        while sum(map(len, parts)) < chars:
            parts.append(texts[i % len(texts)])
            i += 1
        notes.append(" ".join(parts)[:chars])
    return notes


def test_worker_keeps_its_group_through_a_batch_of_long_notes(services, unique_name, tmp_path):
    s = isolated_settings(unique_name, bootstrap_servers=services.bootstrap_servers, mongo_uri=services.mongo_uri,
                          mongo_database="it_tests", input_partitions=1, max_poll_interval_ms=10_000,
                          max_batch_chars=40_000)
    ensure_topics(s)
    notes = long_notes(40)
    p = Producer({"bootstrap.servers": services.bootstrap_servers, "message.max.bytes": 2_000_000})
    ids = []
    for i, text in enumerate(notes):
        e = m.build_entry(f"P{i}", text, "2024-05-01T10:00:00Z", "long.csv", i + 2)
        ids.append(e.entry_id)
        p.produce(s.input_topic, m.encode_entry(e), key=e.patient_id)
    assert p.flush(30) == 0
    pipe = Pipeline(s, tmp_path / "logs")
    env = {"EXTRACTOR_MAX_POLL_INTERVAL_MS": "10000", "EXTRACTOR_MAX_BATCH_CHARS": "40000",
           "EXTRACTOR_LOG_LEVEL": "INFO"}
    try:
        pipe.start("work", env=env)
        pipe.start("sink")
        pipe.wait_caught_up(600)
    finally:
        pipe.stop_all()
    rec = pipe.reconcile(ids)
    pipe.collection().drop()
    assert rec["lost"] == [] and rec["documents"] + rec["dead_lettered_entries"] == len(notes)
    log = pipe.log_text("work-1")
    # one assignment, no loss: a poll-interval timeout would have revoked the partition and assigned it again
    assert log.count(" assigned [") == 1 and "lost [" not in log, log[-3000:]
    revoked_at = log.find(" revoked [")
    assert revoked_at == -1 or revoked_at > log.rfind("progress consumed=40"), log[-3000:]  # only at shutdown
    assert "MAX_POLL_EXCEEDED" not in log and "max.poll.interval" not in log
