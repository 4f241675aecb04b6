"""CSV parsing and the produce loop, with an in-memory producer (no Kafka)."""

from __future__ import annotations

import io
import json

import pytest

from extractor.config import Settings
from extractor.stream import messages as m
from extractor.stream.producer import iter_rows, produce_file


class FakeProducer:
    def __init__(self, fail_topics=()):
        self.sent = []
        self._pending = []
        self.fail_topics = set(fail_topics)

    def produce(self, topic, value=None, key=None, headers=None, on_delivery=None):
        self.sent.append({"topic": topic, "value": value, "key": key, "headers": m.headers_dict(headers)})
        self._pending.append((topic, on_delivery))

    def poll(self, _t=0):
        return self.flush()

    def flush(self, _t=None):
        for topic, cb in self._pending:
            if cb:
                cb("boom" if topic in self.fail_topics else None, _Msg(topic))
        self._pending.clear()
        return 0


class _Msg:
    def __init__(self, topic):
        self._t = topic

    def topic(self):
        return self._t


def rows(data: bytes, **kw):
    kw.setdefault("patient_id_column", "patient_id")
    kw.setdefault("text_column", "medical_entry")
    kw.setdefault("timestamp_column", "timestamp")
    return list(iter_rows(io.BytesIO(data), "f.csv", **kw))


def test_quoted_commas_newlines_bom_and_raw_bytes():
    data = (b'\xef\xbb\xbfpatient_id,medical_entry,timestamp\r\n'
            b'1,"Signs of flu, fever. Prescribed ibuprofen.",2024-01-01 12:00\r\n'
            b'2,"line one\nline ""two""",2024-01-02T00:00:00Z\n'
            b'\n'
            b'3,ok,2024-01-03\n')
    out = rows(data)
    assert [r.row for r in out] == [2, 3, 4, 5]
    a, b, blank, c = out
    assert a.entry.text == "Signs of flu, fever. Prescribed ibuprofen." and a.entry.patient_id == "1"
    assert a.raw == b'1,"Signs of flu, fever. Prescribed ibuprofen.",2024-01-01 12:00\r\n'
    assert b.entry.text == 'line one\nline "two"'
    assert b.raw == b'2,"line one\nline ""two""",2024-01-02T00:00:00Z\n'
    assert blank.blank
    assert c.entry.timestamp == "2024-01-03T00:00:00Z" and c.entry.source == {"file": "f.csv", "row": 5}


def test_bad_rows_carry_reason_and_raw_bytes():
    data = (b"timestamp,patient_id,medical_entry,extra\n"
            b"2024-01-01,p1,,x\n"
            b"nonsense,p2,text,x\n"
            b"2024-01-01,p3,too,few\n"
            b"2024-01-01,p3,only\n"
            b"2024-01-01,p4,caf\xe9 signs,x\n"
            b"2024-01-01,,text,x\n"
            b"2024-01-01,p5,good,x\n")
    out = rows(data)
    reasons = [r.error.reason if r.error else "ok" for r in out]
    assert reasons == [m.R_MISSING_TEXT, m.R_BAD_TIMESTAMP, "ok", m.R_COLUMN_COUNT, m.R_UNDECODABLE,
                       m.R_MISSING_PATIENT_ID, "ok"]
    assert out[4].raw == b"2024-01-01,p4,caf\xe9 signs,x\n"
    assert out[2].entry.text == "too"  # header order is honoured


def test_configurable_columns_and_missing_column():
    data = b"pid,note,when\nx,signs of flu,2024-01-01\n"
    out = rows(data, patient_id_column="pid", text_column="note", timestamp_column="when")
    assert out[0].entry.patient_id == "x"
    with pytest.raises(ValueError, match="header has no column"):
        rows(data)


def test_headerless_reference_order():
    out = rows(b"1,signs of flu,2024-01-01 12:00\n", header=False)
    assert out[0].entry.patient_id == "1" and out[0].row == 1


def test_produce_file_routes_and_counts(tmp_path):
    p = tmp_path / "in.csv"
    p.write_bytes(b"patient_id,medical_entry,timestamp\n1,signs of flu,2024-01-01\n2,,2024-01-01\n"
                  b"3,Prescribed aspirin,2024-01-02\n")
    fp = FakeProducer()
    s = Settings(input_topic="in", dlq_topic="dlq")
    summary = produce_file(s, p, producer=fp, progress=False, keep_ids=True)
    assert (summary.sent, summary.dead_lettered, summary.delivery_errors) == (2, 1, 0)
    assert summary.dlq_reasons == {m.R_MISSING_TEXT: 1}
    ins = [x for x in fp.sent if x["topic"] == "in"]
    assert [x["key"] for x in ins] == [b"1", b"3"]
    body = json.loads(ins[0]["value"])
    assert body["entry_id"] == summary.entry_ids[0]
    assert set(body) == {"entry_id", "patient_id", "text", "timestamp", "source", "schema_version"}
    assert ins[0]["headers"]["source_row"] == "2" and ins[0]["headers"]["schema_version"] == "1"
    dlq = [x for x in fp.sent if x["topic"] == "dlq"]
    assert dlq[0]["value"] == b"2,,2024-01-01\n"
    assert dlq[0]["headers"]["reason"] == m.R_MISSING_TEXT and dlq[0]["headers"]["source_row"] == "3"
    # same file again: same ids (no duplicates downstream)
    again = produce_file(s, p, producer=FakeProducer(), progress=False, keep_ids=True)
    assert again.entry_ids == summary.entry_ids


def test_delivery_errors_are_counted(tmp_path):
    p = tmp_path / "in.csv"
    p.write_bytes(b"patient_id,medical_entry,timestamp\n1,signs of flu,2024-01-01\n")
    summary = produce_file(Settings(input_topic="in"), p, producer=FakeProducer({"in"}), progress=False)
    assert summary.delivery_errors == 1


def test_rate_limit(tmp_path):
    p = tmp_path / "in.csv"
    p.write_bytes(b"patient_id,medical_entry,timestamp\n" + b"".join(
        f"{i},signs of flu,2024-01-01\n".encode() for i in range(20)))
    summary = produce_file(Settings(), p, producer=FakeProducer(), progress=False, rate=100)
    assert summary.seconds >= 0.18


def test_a_row_too_large_is_dead_lettered_without_its_bytes_and_the_run_goes_on(tmp_path):
    import hashlib

    big_text = "signs of flu " * 2000  # ~26 KB: over a 10 KB limit
    big_row = f'P1,"{big_text}",2024-01-01T00:00:00Z\n'.encode()
    path = tmp_path / "in.csv"
    path.write_bytes(b"patient_id,medical_entry,timestamp\n" + big_row
                     + b"P2,Patient shows signs of flu.,2024-01-01T00:00:00Z\n"
                     + b"P3,x,not-a-time\n")
    p = FakeProducer()
    s = Settings(input_topic="in", dlq_topic="dlq", max_message_bytes=10_000, max_text_chars=100_000)
    summary = produce_file(s, path, producer=p, progress=False)
    assert (summary.rows, summary.sent, summary.dead_lettered, summary.skipped_blank) == (3, 1, 2, 0)
    assert summary.reconciles() and "reconciled=yes" in summary.line()
    assert summary.dlq_reasons == {m.R_TOO_LARGE: 1, m.R_BAD_TIMESTAMP: 1}
    big = next(r for r in p.sent if r["headers"].get("reason") == m.R_TOO_LARGE)
    assert big["topic"] == "dlq"
    assert b"signs of flu" not in big["value"]  # the oversized bytes are not in the record
    facts = json.loads(big["value"])
    assert facts == {"reason": "too_large", "source_file": "in.csv", "source_row": 2, "size": len(big_row),
                     "sha256": hashlib.sha256(big_row).hexdigest()}
    assert big["headers"]["sha256"] == facts["sha256"] and big["headers"]["size"] == str(len(big_row))
    assert big["headers"]["source_row"] == "2" and big["headers"]["stage"] == "produce"
    assert [r["topic"] for r in p.sent].count("in") == 1


def test_a_bad_row_too_large_for_the_dlq_becomes_too_large(tmp_path):
    path = tmp_path / "in.csv"
    path.write_bytes(b"patient_id,medical_entry,timestamp\n" + b"P1," + b"x" * 20_000 + b",not-a-time\n")
    p = FakeProducer()
    summary = produce_file(Settings(dlq_topic="dlq", max_message_bytes=10_000), path, producer=p, progress=False)
    assert summary.dlq_reasons == {m.R_TOO_LARGE: 1} and summary.reconciles()
    assert b"xxxx" not in p.sent[0]["value"] and "bad_timestamp" in p.sent[0]["headers"]["error"]


def test_a_row_the_client_refuses_is_dead_lettered_not_fatal(tmp_path):
    from confluent_kafka import KafkaError, KafkaException

    class Refusing(FakeProducer):
        def produce(self, topic, value=None, key=None, headers=None, on_delivery=None):
            if topic == "in" and b"refuse-me" in (value or b""):
                raise KafkaException(KafkaError(KafkaError._INVALID_ARG, "refused"))
            super().produce(topic, value, key, headers, on_delivery)

    path = tmp_path / "in.csv"
    path.write_bytes(b"patient_id,medical_entry,timestamp\nP1,refuse-me,2024-01-01\nP2,fine,2024-01-01\n")
    p = Refusing()
    summary = produce_file(Settings(input_topic="in", dlq_topic="dlq"), path, producer=p, progress=False)
    assert (summary.sent, summary.dead_lettered) == (1, 1) and summary.dlq_reasons == {m.R_PRODUCE_FAILED: 1}
    assert summary.reconciles()
