"""The wire format: entry ids, timestamps, decoding/validation of input messages, documents, DLQ headers."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from extractor.stream import messages as m


def test_entry_id_is_deterministic_and_sensitive():
    a = m.compute_entry_id("p1", "2024-01-01T12:00:00Z", "signs of flu")
    assert a == m.compute_entry_id("p1", "2024-01-01T12:00:00Z", "signs of flu")
    assert len(a) == 32 and all(c in "0123456789abcdef" for c in a)
    assert a != m.compute_entry_id("p2", "2024-01-01T12:00:00Z", "signs of flu")
    assert a != m.compute_entry_id("p1", "2024-01-01T12:00:01Z", "signs of flu")
    assert a != m.compute_entry_id("p1", "2024-01-01T12:00:00Z", "signs of flux")


@pytest.mark.parametrize("raw,expected", [
    ("2024-01-01 12:00", "2024-01-01T12:00:00Z"),
    ("2024-01-01T12:00:00Z", "2024-01-01T12:00:00Z"),
    ("2024-01-01T14:00:00+02:00", "2024-01-01T12:00:00Z"),
    ("2024-01-01", "2024-01-01T00:00:00Z"),
    (" 2024/01/31 08:15 ", "2024-01-31T08:15:00Z"),
    ("2024-01-01T12:00:00.250", "2024-01-01T12:00:00.250000Z"),
])
def test_normalize_timestamp(raw, expected):
    assert m.normalize_timestamp(raw) == expected


@given(st.datetimes(min_value=datetime(1, 1, 1, 14), max_value=datetime(9999, 12, 30),
                    timezones=st.none() | st.timezones()))
def test_normalize_timestamp_writes_the_utc_time_as_strftime_did(when: datetime) -> None:
    """Entry ids hash the normalised timestamp, so its string must never change: the same as the first
    formula (strftime, microseconds only when there are some), for naive and zoned times of any year."""
    utc = when if when.tzinfo is None else when.astimezone(UTC).replace(tzinfo=None)
    expected = utc.strftime("%Y-%m-%dT%H:%M:%S") + (f".{utc.microsecond:06d}" if utc.microsecond else "") + "Z"
    assert m.normalize_timestamp(when.isoformat()) == expected


@pytest.mark.parametrize("raw", ["", "yesterday", "2024-13-01", "31/31/2024", "12:00"])
def test_bad_timestamp(raw):
    with pytest.raises(ValueError) as exc:
        m.normalize_timestamp(raw)
    assert raw.strip() == "" or raw not in str(exc.value)  # never echo the value


def test_build_entry_and_round_trip():
    e = m.build_entry(" p7 ", " Patient shows signs of flu. ", "2024-01-01 12:00", "a.csv", 2)
    assert e.patient_id == "p7" and e.text == "Patient shows signs of flu."
    assert e.entry_id == m.compute_entry_id("p7", "2024-01-01T12:00:00Z", e.text)
    back = m.decode_entry(m.encode_entry(e))
    assert (back.entry_id, back.text, back.patient_id, back.timestamp, back.source) == (
        e.entry_id, e.text, "p7", "2024-01-01T12:00:00Z", {"file": "a.csv", "row": 2})
    assert back.input_format == "json"
    assert m.schema_errors(e.to_message()) == []


@pytest.mark.parametrize("pid,text,ts,reason", [
    ("p", "  ", "2024-01-01", m.R_MISSING_TEXT),
    ("", "x", "2024-01-01", m.R_MISSING_PATIENT_ID),
    ("p", "x", "soon", m.R_BAD_TIMESTAMP),
])
def test_build_entry_rejects(pid, text, ts, reason):
    with pytest.raises(m.PoisonMessage) as exc:
        m.build_entry(pid, text, ts)
    assert exc.value.reason == reason and exc.value.stage == m.STAGE_PRODUCE


SECRET = "Jane Roe has signs of leprosy"


@pytest.mark.parametrize("value,reason,stage", [
    (b"\xff\xfe{bad", m.R_UNDECODABLE, m.STAGE_DECODE),
    (b'{"entry_id": "abc"', m.R_NOT_JSON, m.STAGE_DECODE),
    (json.dumps({"entry_id": "0" * 32, "patient_id": "p", "timestamp": "2024-01-01T00:00:00Z",
                 "schema_version": 1}).encode(), m.R_SCHEMA, m.STAGE_VALIDATE),
    (json.dumps({"entry_id": "0" * 32, "patient_id": "p", "text": "   ", "timestamp": "2024-01-01T00:00:00Z",
                 "schema_version": 1}).encode(), m.R_EMPTY_TEXT, m.STAGE_VALIDATE),
    (json.dumps({"entry_id": "0" * 32, "patient_id": "p", "text": SECRET, "timestamp": "yesterday",
                 "schema_version": 1}).encode(), m.R_SCHEMA, m.STAGE_VALIDATE),
    (json.dumps({"entry_id": "0" * 32, "patient_id": 5, "text": SECRET, "timestamp": "2024-01-01T00:00:00Z",
                 "schema_version": 1}).encode(), m.R_SCHEMA, m.STAGE_VALIDATE),
    (b"   ", m.R_EMPTY_TEXT, m.STAGE_VALIDATE),
    (None, m.R_EMPTY_TEXT, m.STAGE_DECODE),
])
def test_poison(value, reason, stage):
    with pytest.raises(m.PoisonMessage) as exc:
        m.decode_entry(value)
    assert exc.value.reason == reason and exc.value.stage == stage
    assert reason in m.REASONS
    assert "Jane" not in str(exc.value) and "leprosy" not in exc.value.detail


def test_too_long():
    with pytest.raises(m.PoisonMessage) as exc:
        m.decode_entry(b"x" * 50, max_text_chars=10)
    assert exc.value.reason == m.R_TOO_LONG


def test_plain_text_reference_row_gets_same_id_as_json():
    e = m.decode_entry(b"1,Patient shows signs of flu. Prescribed ibuprofen.,2024-01-01 12:00")
    assert e.input_format == "text" and e.patient_id == "1" and e.timestamp == "2024-01-01T12:00:00Z"
    assert e.text == "Patient shows signs of flu. Prescribed ibuprofen."
    j = m.build_entry("1", "Patient shows signs of flu. Prescribed ibuprofen.", "2024-01-01 12:00")
    assert e.entry_id == j.entry_id


def test_plain_text_free():
    e = m.decode_entry("Fièvre, signs of flu".encode())
    assert e.text == "Fièvre, signs of flu" and e.patient_id is None
    assert e.entry_id == m.compute_entry_id(None, None, e.text)
    assert m.decode_entry("Fièvre, signs of flu".encode()).entry_id == e.entry_id


def test_build_processed_is_ferretdb_safe_and_valid():
    e = m.build_entry("p", "signs of flu", "2024-01-01")
    result = {
        "illness": "influenza", "medicine": None, "status": "partial", "reason": "no medicine",
        "stages_run": ["regex"],
        "illnesses": [{"text": "flu", "start": 9, "end": 12, "label": "ILLNESS", "method": "regex",
                       "source": "r1", "confidence": 0.9, "canonical": "influenza", "code": "J11.1",
                       "code_system": "ICD-10-CM", "negated": False, "hypothetical": False,
                       "score": float("nan"), "details": {"a.b": 1, "$x": [[1, 2]]}}],
        "medicines": [],
    }
    doc = m.build_processed(e, result, extractor_version="0.1.0", lexicon_version="abc", chain_version="c",
                            kafka={"topic": "t", "partition": 0, "offset": 5})
    assert doc["_id"] == e.entry_id == doc["entry_id"]
    ent = doc["illnesses"][0]
    assert ent["details"] == {"a_b": 1, "_x": ["[1, 2]"]}
    assert ent["score"] is None
    assert m.schema_errors(doc, "processed.schema.json") == []
    m.encode_json(doc)  # no NaN


def test_dlq_headers_keep_original_and_replace_old_dlq_headers():
    original = [("schema_version", b"1"), ("reason", b"unresolved"), ("replay_count", b"0")]
    h = m.dlq_headers(reason="unresolved", stage="extract", error_class="Unresolved", original=original,
                      entry_id="e1", source_topic="t", source_partition=2, source_offset=9, replay_count=1,
                      replay_of="0:3")
    d = m.headers_dict(h)
    assert [k for k, _ in h].count("reason") == 1
    assert d["schema_version"] == "1" and d["replay_count"] == "1" and d["source_partition"] == "2"
    assert d["replay_of"] == "0:3" and d["entry_id"] == "e1" and d["stage"] == "extract"


def test_entry_without_source_is_schema_valid() -> None:
    from extractor.stream.messages import build_entry, schema_errors

    entry = build_entry("P1", "Prescribed ibuprofen.", "2024-01-01 12:00")
    assert "source" not in entry.to_message()
    assert schema_errors(entry.to_message()) == []


def test_fast_validator_agrees_with_jsonschema() -> None:
    """The hot path (fastjsonschema) and the error walk (jsonschema) must judge every entry alike."""
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from extractor.stream.messages import _fast_validator, _validator

    value = st.one_of(st.none(), st.integers(-2, 3), st.text(max_size=40), st.just("0" * 32),
                      st.just("2024-01-01T12:00:00Z"), st.dictionaries(st.sampled_from(["file", "row"]),
                                                                        st.one_of(st.integers(-1, 3), st.text())))
    keys = st.sampled_from(["entry_id", "patient_id", "text", "timestamp", "schema_version", "source", "x"])

    @settings(max_examples=400, deadline=None)
    @given(st.dictionaries(keys, value))
    def check(doc: dict) -> None:
        fast_ok = True
        try:
            _fast_validator("entry.schema.json")(doc)
        except Exception:  # noqa: BLE001 - fastjsonschema.JsonSchemaException
            fast_ok = False
        assert fast_ok == _validator("entry.schema.json").is_valid(doc)

    check()


def test_processed_document_carries_assertion_fields_and_substances() -> None:
    """A real chain result with the issue-9 fields (assertion, substances) is a schema-valid document; the schema
    rejects a bad experiencer, so the new fields are really checked."""
    from extractor.chain.model import Entity, ExtractionResult

    text = "Mother had breast cancer. Was on warfarin, stopped. Creatinine 1.1"
    ill = Entity("breast cancer", 11, 24, "ILLNESS", "lexicon", "illnesses.tsv:1", 0.8, experiencer="family")
    med = Entity("warfarin", 33, 41, "MEDICINE", "lexicon", "medicines.tsv:1", 0.9, historical=True,
                 discontinued=True, section="medications")
    sub = Entity("Creatinine", 52, 62, "MEDICINE", "lexicon", "curated_terms.tsv:9", 0.9)
    result = ExtractionResult([ill], [med], "resolved", None, ("lexicon",), [sub]).to_dict()
    e = m.build_entry("p", text, "2024-01-01")
    doc = m.build_processed(e, result, extractor_version="0.1.0", lexicon_version="abc", chain_version="c")
    assert doc["medicine"] == "warfarin" and doc["illness"] is None  # family history is not the patient's
    assert doc["substances"][0]["text"] == "Creatinine"
    assert doc["medicines"][0]["discontinued"] is True and doc["illnesses"][0]["experiencer"] == "family"
    assert m.schema_errors(doc, "processed.schema.json") == []
    doc["illnesses"][0]["experiencer"] = "neighbour"
    assert m.schema_errors(doc, "processed.schema.json") != []


def test_encode_json_writes_what_json_dumps_writes():
    import json

    doc = {"_id": "a", "text": "Pt c/o chest pain \u2014 “Lipitor” gave me cramps 😣", "n": [1, 2.5, None, True],
           "nested": {"k": "v\u2028w"}}
    assert m.encode_json(doc) == json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    big = {"_id": "b", "n": 2**70}  # beyond orjson's 64 bits: json writes it
    assert m.encode_json(big) == b'{"_id":"b","n":1180591620717411303424}'
    assert m.decode_json(m.encode_json(big)) == big


def test_nan_is_not_json():
    value = b'{"entry_id":"x","patient_id":"P1","text":"t","timestamp":"2024-01-01T00:00:00Z","schema_version":1,' \
            b'"score":NaN}'
    with pytest.raises(m.PoisonMessage) as err:
        m.decode_entry(value)
    assert err.value.reason == m.R_NOT_JSON
    with pytest.raises(ValueError):
        m.decode_json(b'{"_id": "x", "c": Infinity}')
    with pytest.raises(TypeError):
        m.decode_json(None)


def test_utc_now_iso_is_now_to_the_millisecond(monkeypatch: pytest.MonkeyPatch) -> None:
    """The cached seconds' text follows the clock: across a second boundary, and equal to datetime's formatting."""
    import re
    import time

    for t in (1_700_000_000.999, 1_700_000_001.0, 1_700_000_001.5004, 86_399.25):
        monkeypatch.setattr(time, "time", lambda t=t: t)
        expected = datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
        assert m.utc_now_iso() == expected
    monkeypatch.undo()
    now = m.utc_now_iso()
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", now)
    assert abs(datetime.fromisoformat(now[:-1] + "+00:00").timestamp() - time.time()) < 2
