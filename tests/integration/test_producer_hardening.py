"""No input can crash the producer (real broker): a row larger than the broker accepts, a broker that refuses a
row after sending, random bytes as CSV files (hypothesis); only a failure of the whole run stops it."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from extractor.config import REPO_ROOT
from extractor.stream import messages as m
from extractor.stream.kafka import producer_config
from extractor.stream.producer import produce_file
from extractor.stream.topics import ensure_topics
from extractor.tools.harness import end_offsets, isolated_settings, read_topic, subprocess_env

pytestmark = pytest.mark.integration

HEADER = b"patient_id,medical_entry,timestamp\n"


def _settings(services, name: str, **kw):
    s = isolated_settings(name, bootstrap_servers=services.bootstrap_servers, mongo_uri=services.mongo_uri, **kw)
    ensure_topics(s)
    return s


def test_two_megabyte_row_then_a_normal_row(services, unique_name, tmp_path):
    s = _settings(services, unique_name)
    big_row = b'P1,"' + b"signs of flu " * 160_000 + b'",2024-01-01T00:00:00Z\n'  # ~2 MB
    path = tmp_path / "pasted.csv"
    path.write_bytes(HEADER + big_row + b"P2,Patient shows signs of flu. Prescribed ibuprofen.,2024-01-01T00:00:00Z\n")
    out = subprocess.run([sys.executable, "-m", "extractor", "produce", str(path), "--no-progress"],
                         env=subprocess_env(s), cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "rows=2 sent=1 dead_lettered=1 (too_large=1)" in out.stdout and "reconciled=yes" in out.stdout
    assert sum(end_offsets(s, s.input_topic).values()) == 1
    [(headers, value)] = read_topic(s, s.dlq_topic)
    assert headers["reason"] == m.R_TOO_LARGE and headers["source_file"] == "pasted.csv"
    assert headers["source_row"] == "2" and headers["size"] == str(len(big_row))
    assert headers["sha256"] == hashlib.sha256(big_row).hexdigest()
    assert len(value) < 1000 and json.loads(value)["sha256"] == headers["sha256"]


def test_a_row_the_broker_refuses_after_sending_is_dead_lettered(services, unique_name, tmp_path):
    """The topic's limit is lower than the client's and nobody told the producer: the broker's refusal comes in
    the delivery report, and the row still ends in the DLQ as too_large."""
    s = isolated_settings(unique_name, bootstrap_servers=services.bootstrap_servers)
    admin = AdminClient(s.kafka_common())
    fs = admin.create_topics([NewTopic(s.input_topic, 1, 1, config={"max.message.bytes": "5000"}),
                              NewTopic(s.dlq_topic, 1, 1)])
    for f in fs.values():
        f.result(30)
    path = tmp_path / "in.csv"
    noise = base64.b64encode(os.urandom(9000))  # incompressible: the producer's lz4 cannot shrink it below 5000
    path.write_bytes(HEADER + b"P1,signs of flu " + noise + b",2024-01-01\n" + b"P2,fine entry,2024-01-01\n")
    summary = produce_file(s, path, producer=Producer(producer_config(s)), progress=False)  # limit not read
    assert summary.dlq_reasons == {m.R_TOO_LARGE: 1} and summary.sent == 1 and summary.reconciles()
    assert summary.delivery_errors == 0
    assert [h["reason"] for h, _ in read_topic(s, s.dlq_topic)] == [m.R_TOO_LARGE]


def test_whole_run_failures_stop_with_a_clear_message(services, tmp_path):
    path = tmp_path / "in.csv"
    path.write_bytes(HEADER + b"P1,signs of flu,2024-01-01\n")
    env = {**subprocess_env(isolated_settings("unused")), "EXTRACTOR_BOOTSTRAP_SERVERS": "127.0.0.1:9",
           "EXTRACTOR_PRODUCER_UNREACHABLE_TIMEOUT_S": "3"}
    out = subprocess.run([sys.executable, "-m", "extractor", "produce", str(path), "--no-progress"], env=env,
                         cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 3 and "no Kafka broker answered at 127.0.0.1:9" in out.stderr
    assert "Traceback" not in out.stderr
    out = subprocess.run([sys.executable, "-m", "extractor", "produce", str(tmp_path / "missing.csv")], env=env,
                         cwd=REPO_ROOT, capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "no such file" in out.stderr


@pytest.fixture(scope="module")
def fuzz_settings(services):
    import uuid

    return _settings(services, f"it-fuzz-{uuid.uuid4().hex[:8]}", max_message_bytes=4096)


LINE = st.one_of(
    st.binary(max_size=300),
    st.builds(lambda p, t, ts: b",".join([p, t, ts]), st.binary(max_size=8),
              st.binary(max_size=6000), st.sampled_from([b"2024-01-01", b"not-a-date", b""])),
    st.just(b'P1,"unterminated quote'),
    st.just(b"P1,signs of flu,2024-01-01"),
)


@hsettings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow])
@given(lines=st.lists(LINE, max_size=12), crlf=st.booleans())
def test_random_bytes_reconcile_against_the_broker(fuzz_settings, tmp_path_factory, lines, crlf):
    s = fuzz_settings
    path = Path(tmp_path_factory.mktemp("fuzz")) / "random.csv"
    nl = b"\r\n" if crlf else b"\n"
    path.write_bytes(HEADER + nl.join(lines) + (nl if lines else b""))
    before_in, before_dlq = sum(end_offsets(s, s.input_topic).values()), sum(end_offsets(s, s.dlq_topic).values())
    summary = produce_file(s, path, progress=False)
    assert summary.delivery_errors == 0
    assert summary.reconciles(), summary.line()
    assert sum(end_offsets(s, s.input_topic).values()) - before_in == summary.sent
    assert sum(end_offsets(s, s.dlq_topic).values()) - before_dlq == summary.dead_lettered
