"""The executor side without Spark: the worker's decisions one for one, the content hash, the cached chain."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from extractor.batch import inputs, staging
from extractor.batch import records as rec
from extractor.config import load_settings
from extractor.stream import messages as m


@pytest.fixture(scope="module")
def payload() -> dict:
    return rec.settings_payload(load_settings(stages=("regex", "lexicon")))


def _entry_record(pid: str, text: str, ts: str = "2024-01-01T00:00:00Z") -> tuple:
    e = m.build_entry(pid, text, ts, "f.csv", 2)
    return ("entry", "f.csv", 2, b"raw", (e.entry_id, e.text, e.patient_id, e.timestamp, e.source))


def test_chain_is_loaded_once_per_process(payload: dict) -> None:
    first = rec.chain_for(payload)
    assert rec.chain_for(dict(payload)) is first


def test_one_output_row_per_record_with_stream_reasons(payload: dict) -> None:
    records = [
        _entry_record("P1", "Patient shows signs of flu. Prescribed ibuprofen."),
        _entry_record("P2", "The weather was lovely."),
        ("poison", "f.csv", 3, b"P3,,x\n", ("missing_text", "produce", "PoisonMessage", "text column is empty")),
        ("message", "f.jsonl", None, b'{"broken', None),
        ("message", "f.jsonl", None, json.dumps({"text": "flu"}).encode(), None),
        ("fields", "f.parquet", None, b"{}", ("P4", "Prescribed ibuprofen for flu.", "2024-01-01 10:00")),
    ]
    out = [dict(zip(rec.OUTPUT_FIELDS, row, strict=True))
           for row in rec.process_batch(rec.chain_for(payload), records, 20_000)]
    assert [(o["kind"], o["reason"]) for o in out] == [
        ("dead_letter", "missing_text"), ("dead_letter", "not_json"), ("dead_letter", "schema_invalid"),
        ("document", None), ("dead_letter", "unresolved"), ("document", None)]
    doc = json.loads(out[3]["document"])
    assert doc["_id"] == records[0][4][0] and doc["illness"] and doc["medicine"]
    assert out[3]["date"] == "2024-01-01" and "kafka" not in doc
    assert out[0]["headers"]["reason"] == "missing_text" and "lexicon_version" not in out[0]["headers"]
    assert out[4]["headers"]["lexicon_version"] == doc["lexicon_version"]


def test_arrow_batches_give_the_same_rows_as_python_records(payload: dict, tmp_path: Path) -> None:
    """What mapInArrow runs on records Spark read (Arrow columns in, staged documents and a tally out) decides
    exactly as the record path: the tally counts each record once under the file that holds it, with its
    reason, and carries each document's id digest."""
    records = [
        _entry_record("P1", "Patient shows signs of flu. Prescribed ibuprofen."),
        _entry_record("P2", "The weather was lovely."),
        ("poison", "f.csv", 3, b"P3,,x\n", ("missing_text", "produce", "PoisonMessage", "text column is empty")),
        ("message", "f.jsonl", None, b'{"broken', None),
        ("fields", "f.parquet", None, None, ("P4", "Prescribed ibuprofen for flu.", "2024-01-01 10:00")),
    ]
    cols = [rec.record_columns(r) for r in records]
    back = [rec.record_from_columns(*c) for c in cols]
    assert back[:4] == records[:4]
    assert json.loads(back[4][3]) == {"patient_id": "P4", "text": "Prescribed ibuprofen for flu.",
                                      "timestamp": "2024-01-01 10:00"}  # a Parquet row's raw, made here
    batches = list(rec.arrow_chunks(cols, rec.record_arrow_schema(), size=2))
    assert [b.num_rows for b in batches] == [2, 2, 1]
    out = [row for b in inputs._records_to_output(iter(batches), payload, str(tmp_path), None) for row in b.to_pylist()]
    expected = [dict(zip(rec.OUTPUT_FIELDS, row, strict=True))
                for row in rec.process_batch(rec.chain_for(payload), back, 20_000)]
    assert len(expected) == 5
    counts = [o for o in out if o["ids"] is None]
    packed = [o for o in out if o["ids"] is not None]
    assert sum(o["n"] for o in counts) == 5
    assert sorted((o["kind"], o["reason"], o["n"]) for o in counts if o["kind"] == rec.KIND_DEAD_LETTER) == sorted(
        (e["kind"], e["reason"], 1) for e in expected if e["kind"] == rec.KIND_DEAD_LETTER)
    docs = [e for e in expected if e["kind"] == rec.KIND_DOCUMENT]
    assert [o["n"] for o in packed] == [len(docs)]
    assert sorted(packed[0]["ids"][i : i + rec.ID_DIGEST_BYTES] for i in range(0, len(packed[0]["ids"]),
                                                                                  rec.ID_DIGEST_BYTES)) == sorted(
        rec.id_digest(e["_id"]) for e in docs)

    # each document is in a file the tally names, with the document's columns (date: the folder)
    staged = {r["_id"]: (o["staged_file"], r) for o in counts if o["kind"] == rec.KIND_DOCUMENT
              for r in pq.read_table(staging.staged_path(str(tmp_path), o["staged_file"])).to_pylist()}
    assert sum(o["n"] for o in counts if o["kind"] == rec.KIND_DOCUMENT) == len(staged) == len(docs)
    for e in docs:
        name, doc = staged[e["_id"]]
        assert name.startswith(f"date={e['date']}/")
        assert {k: v for k, v in doc.items() if k != "document"} == {
            k: e[k] for k in rec.DOCUMENT_COLUMNS if k != "document"}
        strip = ("processed_at",)  # differs between the two runs
        assert ({k: v for k, v in json.loads(doc["document"]).items() if k not in strip}
                == {k: v for k, v in json.loads(e["document"]).items() if k not in strip})
    # the dead letters are in the files the tally names, with the dead-letter columns
    dead = [d for f in {o["staged_file"] for o in counts if o["kind"] == rec.KIND_DEAD_LETTER}
            for d in pq.read_table(staging.staged_path(str(tmp_path), f)).to_pylist()]
    assert all(o["staged_file"].startswith("dead_letter/part-") for o in counts if o["kind"] == rec.KIND_DEAD_LETTER)
    for e in expected:
        if e["kind"] == rec.KIND_DOCUMENT:
            continue
        found = [d for d in dead if (d["source_file"], d["source_row"], d["reason"])
                 == (e["source_file"], e["source_row"], e["reason"])]
        assert len(found) == 1
        assert list(found[0]) == list(rec.DEAD_LETTER_COLUMNS)
        for r in (found[0], e):  # the dead-letter time differs between the two runs
            r["headers"] = {k: v for k, v in dict(r["headers"]).items() if k != m.H_FAILED_AT} if r["headers"] else None
        assert {k: found[0][k] for k in rec.DEAD_LETTER_COLUMNS[1:]} == {k: e[k] for k in rec.DEAD_LETTER_COLUMNS[1:]}
        assert found[0]["entry_id"] == e["_id"]


def test_tally_counts_files_and_finds_repeated_ids() -> None:
    staged = [("document", "a", None, "date=2024-01-01/p.parquet"),
              ("document", "b", None, "date=2024-01-01/p.parquet"),
              ("document", "a", None, "date=2024-01-02/p.parquet"),
              ("dead_letter", None, "not_json", "dead_letter/p")]
    rows = [dict(zip(rec.TALLY_FIELDS, r, strict=True)) for r in rec.tally_rows(staged)]
    assert sorted((r["kind"], r["reason"], r["staged_file"], r["n"]) for r in rows if r["ids"] is None) == [
        ("dead_letter", "not_json", "dead_letter/p", 1), ("document", None, "date=2024-01-01/p.parquet", 2),
        ("document", None, "date=2024-01-02/p.parquet", 1)]
    packed = [r["ids"] for r in rows if r["ids"] is not None]
    assert rec.duplicate_ids(packed) == 1  # "a" twice
    # across tasks: another task's "b" twice and "c" once -> a, b, b twice more
    other = [r[4] for r in rec.tally_rows([("document", i, None, "f") for i in ("b", "c", "b")]) if r[4]]
    assert rec.duplicate_ids(packed + other) == 3
    assert rec.duplicate_ids([]) == 0


def test_tally_packs_ids_in_bounded_values(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rec, "IDS_PER_ROW", 2)
    rows = rec.tally_rows([("document", str(i), None, "f") for i in range(5)])
    packed = [r for r in rows if r[4] is not None]
    assert [r[3] for r in packed] == [2, 2, 1] and [len(r[4]) for r in packed] == [32, 32, 16]
    assert rec.duplicate_ids([r[4] for r in packed]) == 0


def test_content_hash_ignores_times_and_versions() -> None:
    doc = {"_id": "a", "text": "t", "illnesses": [], "processed_at": "x", "lexicon_version": "1"}
    same = {**doc, "processed_at": "y", "lexicon_version": "2", "written_at_ms": 5}
    assert rec.content_hash(doc) == rec.content_hash(same)
    assert rec.content_hash(doc) != rec.content_hash({**doc, "illnesses": [{"code": "J11"}]})


@pytest.mark.parametrize("pid, text", [
    ("P1", "Patient shows signs of flu."), ("P" + "9" * 200, "flu"), ("P2", "a" * 30_000), ("P3", "flu\u0000x"),
])
def test_validated_equals_the_workers_decode_of_the_message(pid: str, text: str) -> None:
    entry = m.build_entry(pid, text, "2024-01-01 10:00", "f.csv", 7)
    try:
        expected: object = m.decode_entry(m.encode_entry(entry), max_text_chars=20_000)
    except m.PoisonMessage as exc:
        expected = (exc.reason, exc.stage)
    try:
        got: object = rec.validated(entry, 20_000)
    except m.PoisonMessage as exc:
        got = (exc.reason, exc.stage)
    assert got == expected


def test_sasl_password_from_a_mounted_file(tmp_path) -> None:
    from extractor.config import Settings

    f = tmp_path / "password"
    f.write_text("s3cret\n")
    s = Settings(sasl_password_file=f)
    assert s.sasl_password is not None and s.sasl_password.get_secret_value() == "s3cret"
    assert s.kafka_common().get("sasl.password") == "s3cret"
    with pytest.raises(ValueError):
        Settings(sasl_password_file=tmp_path / "missing")


def test_document_row_follows_output_fields() -> None:
    """``_document`` writes its tuple out by position: every column in OUTPUT_FIELDS' place."""
    doc = {"_id": "a", "patient_id": "P1", "timestamp": "2024-03-04T05:06:07Z", "status": "resolved", "illness": "flu",
           "medicine": None, "extractor_version": "e", "lexicon_version": "l", "chain_version": "c", "reason": None,
           "source": {"file": "f.csv", "row": 7}, "text": "flu"}
    row = dict(zip(rec.OUTPUT_FIELDS, rec._document(doc), strict=True))
    assert row == {"kind": rec.KIND_DOCUMENT, "_id": "a", "date": "2024-03-04", "patient_id": "P1",
                   "timestamp": "2024-03-04T05:06:07Z", "status": "resolved", "illness": "flu", "medicine": None,
                   "extractor_version": "e", "lexicon_version": "l", "chain_version": "c",
                   "content_hash": rec.content_hash(doc), "document": json.dumps(doc, separators=(",", ":")).encode(),
                   "reason": None, "stage": None, "error_class": None, "error": None, "source_file": "f.csv",
                   "source_row": 7, "value": None, "headers": None}


@pytest.mark.parametrize("extra", [{}, {"kafka": {"partition": 1, "offset": 5}}, {"ward": "B2"}])
def test_document_json_is_one_encoding_with_the_same_hash(payload: dict, extra: dict) -> None:
    """The document's JSON and hash from one encoding equal encode_json's bytes and content_hash's digest, for
    a document as build_processed makes it, with Kafka coordinates, and with an extra input field (which
    build_processed puts after the versions: encoded twice)."""
    entry = m.build_entry("P1", "Started lisinopril 10 mg daily for HTN.", "2024-01-01T00:00:00Z", "f.csv", 2)
    entry.extra.update({k: v for k, v in extra.items() if k != "kafka"})
    result = rec.chain_for(payload).extract(entry.text).to_dict()
    doc = m.build_processed(entry, result, extractor_version="1", lexicon_version="2", chain_version="3",
                            kafka=extra.get("kafka"))
    text, digest = rec.document_json(doc)
    assert text == m.encode_json(doc) and json.loads(text) == doc
    assert digest == rec.content_hash(doc)
