"""End to end against the real servers: CSV -> producer -> worker (subprocess) -> MongoDB writer (Kafka Connect's
sink connector or the project's sink) -> FerretDB, with exact reconciliation; poison messages and bad rows in the
DLQ with reasons; DLQ replay after a lexicon edit; patient text in no log of any component.

Each test has its own topics, consumer groups, MongoDB database and (for Connect) its own connector.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from confluent_kafka import Producer

from extractor.config import DEFAULT_LEXICON_DIR
from extractor.stream import messages as m
from extractor.stream.dlq import inspect, replay
from extractor.stream.producer import produce_file
from extractor.stream.topics import ensure_topics
from extractor.tools.harness import Pipeline, isolated_settings

pytestmark = pytest.mark.integration

SAMPLE = Path(__file__).resolve().parents[2] / "data" / "sample_entries.csv"


def _pipeline(unique_name: str, services, tmp_path: Path, **kw) -> Pipeline:
    s = isolated_settings(unique_name, bootstrap_servers=services.bootstrap_servers, mongo_uri=services.mongo_uri,
                          mongo_database=unique_name.replace("-", "_")[:60], **kw)
    ensure_topics(s)
    return Pipeline(s, tmp_path / "logs")


def _csv(tmp_path: Path, rows: int, bad: bool = True) -> Path:
    lines = SAMPLE.read_bytes().splitlines(keepends=True)
    out = tmp_path / "in.csv"
    body = b"".join(lines[: rows + 1])
    if bad:
        body += (b'P9,"",2024-01-01T00:00:00Z,x,,,,\n'            # missing text
                 b"P9,Signs of flu,not-a-date,x,,,,\n"            # bad timestamp
                 b"P9,too,few\n"                                   # column count
                 b"P9,caf\xe9 signs of flu,2024-01-01,x,,,,\n")    # not UTF-8
    out.write_bytes(body)
    return out


@pytest.mark.parametrize("writer", ["connect", "sink"])
def test_csv_to_mongo_reconciles_exactly(services, unique_name, tmp_path, writer):
    pipe = _pipeline(unique_name, services, tmp_path)
    csv_path = _csv(tmp_path, 1000)
    summary = produce_file(pipe.settings, csv_path, keep_ids=True, progress=False)
    assert (summary.sent, summary.dead_lettered, summary.delivery_errors) == (1000, 4, 0)
    try:
        pipe.start("work")
        pipe.start_writer(writer)
        pipe.wait_caught_up(240)
    finally:
        pipe.stop_all()
    rec = pipe.reconcile(summary.entry_ids)
    assert rec["lost"] == [] and rec["in_both"] == 0
    assert rec["documents"] + rec["dead_lettered_entries"] == 1000
    assert rec["collection_count"] == rec["documents"]
    assert {k: v for k, v in rec["dlq_reasons"].items() if k != m.R_UNRESOLVED} == {
        m.R_MISSING_TEXT: 1, m.R_BAD_TIMESTAMP: 1, m.R_COLUMN_COUNT: 1, m.R_UNDECODABLE: 1}
    raw = {h["source_row"]: v for h, v in pipe.dlq_records() if h.get("stage") == "produce"}
    assert raw["1005"] == b"P9,caf\xe9 signs of flu,2024-01-01,x,,,,\n"
    doc = pipe.collection().find_one({"_id": summary.entry_ids[0]})
    assert doc["entry_id"] == doc["_id"] and doc["lexicon_version"] and doc["status"] in ("resolved", "partial")
    assert m.schema_errors(doc, "processed.schema.json") == []
    # producing the same file again creates no new document
    produce_file(pipe.settings, csv_path, progress=False)
    try:
        pipe.start("work")
        pipe.start_writer(writer)
        pipe.wait_caught_up(240)
    finally:
        pipe.stop_all()
    assert pipe.collection().count_documents({}) == rec["documents"]


def test_poison_messages_go_to_dlq_with_original_bytes(services, unique_name, tmp_path):
    pipe = _pipeline(unique_name, services, tmp_path)
    # a source is given: Entry.to_message() writes "source": null without one, which entry.schema.json rejects
    good = m.build_entry("P1", "Patient shows signs of flu. Prescribed ibuprofen.", "2024-01-01 12:00", "it.csv", 2)
    values = {
        "ok_json": m.encode_entry(good),
        "ok_text": b"2,Patient shows signs of flu. Prescribed ibuprofen.,2024-01-01 12:00",
        m.R_UNDECODABLE: b"\xff\xfe\x00bad",
        m.R_NOT_JSON: b'{"entry_id": ',
        m.R_SCHEMA: b'{"entry_id": "abc", "text": "x"}',
        m.R_EMPTY_TEXT: b"   ",
    }
    p = Producer({"bootstrap.servers": services.bootstrap_servers})
    for v in values.values():
        p.produce(pipe.settings.input_topic, v)
    assert p.flush(30) == 0
    try:
        pipe.start("work")
        pipe.start("sink")
        pipe.wait_caught_up(120)
    finally:
        pipe.stop_all()
    dlq = pipe.dlq_records()
    by_reason = {h["reason"]: (h, v) for h, v in dlq}
    for reason in (m.R_UNDECODABLE, m.R_NOT_JSON, m.R_SCHEMA, m.R_EMPTY_TEXT):
        h, v = by_reason[reason]
        assert v == values[reason]  # original bytes unchanged
        assert h["source_topic"] == pipe.settings.input_topic and h["stage"] in ("decode", "validate")
        assert h["error_class"] and h["extractor_version"] and h["lexicon_version"]
    assert len(dlq) == 4, [(h, v) for h, v in dlq]
    assert pipe.collection().count_documents({}) == 2
    assert pipe.collection().find_one({"_id": good.entry_id})["input_format"] == "json"
    rep = inspect(pipe.settings)
    assert rep.records == 4 and rep.outstanding == 4 and rep.replayable_records == 0
    assert "Patient" not in str(rep.samples)


UNKNOWN = "kwazzle"  # made up; the NER model guesses at "-itis" words, so none of those


def test_replay_after_lexicon_edit_resolves(services, unique_name, tmp_path):
    from extractor.chain import Chain

    lex = tmp_path / "lexicons"
    shutil.copytree(DEFAULT_LEXICON_DIR, lex)
    pipe = _pipeline(unique_name, services, tmp_path, lexicon_dir=lex, lexicon_reload_s=0)
    texts = [f"Seen today for {UNKNOWN}. Follow-up in {i} weeks." for i in range(1, 6)]
    chain = Chain.from_settings(pipe.settings)
    assert [r.status for r in chain.extract_many(texts)] == ["unresolved"] * 5, "pick another made-up term"
    entries = [m.build_entry(f"P{i}", t, "2024-02-01", "it.csv", i + 2) for i, t in enumerate(texts)]
    p = Producer({"bootstrap.servers": services.bootstrap_servers})
    for e in entries:
        p.produce(pipe.settings.input_topic, m.encode_entry(e), key=e.patient_id)
    assert p.flush(30) == 0
    try:
        pipe.start("work")
        pipe.wait_caught_up(120, sink=False)
    finally:
        pipe.stop_all()
    assert inspect(pipe.settings).outstanding == 5
    # the lexicon edit: the new term goes into the curated table of the temp copy
    curated = lex / "curated_terms.tsv"
    curated.write_text(curated.read_text() + f"{UNKNOWN}\tILLNESS\t{UNKNOWN}\t\t\tintegration test\n")
    chain = Chain.from_settings(pipe.settings)
    st = replay(pipe.settings, chain)
    assert (st.replayed, st.resolved, st.still_failing) == (5, 5, 0)
    assert inspect(pipe.settings).outstanding == 0
    again = replay(pipe.settings, chain)  # each record is replayed once
    assert again.read == 0
    try:
        pipe.start("sink")
        pipe.wait_caught_up(120)
    finally:
        pipe.stop_all()
    docs = list(pipe.collection().find({}))
    assert sorted(d["_id"] for d in docs) == sorted(e.entry_id for e in entries)
    assert all(d["illness"] == UNKNOWN for d in docs)
