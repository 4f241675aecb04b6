"""The archive of raw entries against the real servers: Kafka and the GCS emulator (fake-gcs-server).

Every test checks the same thing at the end: the objects hold exactly the topic's records, each offset of each
partition once, with the bytes Kafka holds, and the group's committed offsets never pass what the objects hold.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from extractor.config import REPO_ROOT, Settings
from extractor.storage import filesystem
from extractor.stream.archive import Archiver
from extractor.stream.producer import produce_file
from extractor.stream.topics import ensure_topics
from extractor.tools.generate import generate, write_csv
from extractor.tools.harness import end_offsets, isolated_settings
from services import gcs, manager

from .helpers import wait_for

pytestmark = pytest.mark.integration

POISON = [b"\xff\xfe not utf-8", b'{"broken', b""]


def _settings(unique_name: str, services, **kw) -> Settings:
    s = isolated_settings(unique_name, bootstrap_servers=services.bootstrap_servers, mongo_uri=services.mongo_uri,
                          archive_url=f"gs://{gcs.bucket()}/{unique_name}", archive_topics=f"{unique_name}-entries",
                          archive_group_id=f"{unique_name}-archiver", gcs_endpoint=gcs.url(), **kw)
    ensure_topics(s)
    return s


def _produce(s: Settings, tmp_path: Path, rows: int, seed: int) -> int:
    path = tmp_path / f"entries-{seed}.csv"
    with path.open("w", encoding="utf-8", newline="") as fh:
        write_csv(iter(generate(rows, seed=seed)), fh)
    summary = produce_file(s, path, progress=False)
    assert summary.delivery_errors == 0
    from confluent_kafka import Producer

    p = Producer(s.kafka_common())
    for value in POISON:  # malformed records are archived too, byte for byte
        p.produce(s.input_topic, value=value, key=b"poison", headers=[("source", b"test")])
    assert p.flush(10) == 0
    return summary.sent + len(POISON)


def _objects(s: Settings) -> list[dict]:
    import pyarrow.parquet as pq

    fs, root = filesystem(s.archive_url, s)
    rows = []
    for path in sorted(fs.glob(f"{root}/raw/topic={s.input_topic}/date=*/partition=*/offsets-*.parquet")):
        with fs.open(path, "rb") as fh:
            table = pq.read_table(fh)
        got = table.to_pylist()
        first, last = (int(x) for x in path.rsplit("offsets-", 1)[1].removesuffix(".parquet").split("-"))
        assert [r["offset"] for r in got] == list(range(first, last + 1)), path  # a run of offsets, as named
        rows += got
    return rows


def _assert_exact(s: Settings, produced: int) -> list[dict]:
    rows = _objects(s)
    ends = end_offsets(s, s.input_topic)
    assert sum(ends.values()) == produced
    for p, end in ends.items():
        offs = sorted(r["offset"] for r in rows if r["partition"] == p)
        assert offs == list(range(end)), f"partition {p}: {len(offs)} records archived, {end} in the topic"
    values = [r["value"] for r in rows]
    for v in POISON:
        assert (v if v else None) in values or v in values
    assert all(r["topic"] == s.input_topic and r["timestamp_ms"] > 0 for r in rows)
    return rows


def _committed(s: Settings) -> dict[int, int]:
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer({**s.kafka_common(), "group.id": s.archive_group_id})
    try:
        parts = end_offsets(s, s.input_topic)
        return {tp.partition: tp.offset for tp in c.committed([TopicPartition(s.input_topic, p) for p in parts],
                                                               timeout=10)}
    finally:
        c.close()


def test_the_archive_holds_exactly_the_topics_records(services, unique_name: str, tmp_path: Path) -> None:
    s = _settings(unique_name, services, archive_flush_bytes=20_000, archive_max_object_bytes=5_000)
    produced = _produce(s, tmp_path, 400, seed=1)
    t0 = time.monotonic()
    stats = Archiver(s).run(max_idle_s=3)
    assert time.monotonic() - t0 < 60  # no 60 s gRPC probe of the bucket (gcsfs's plain class)
    assert stats.records == produced and stats.objects > 3 and stats.failures == 0
    rows = _assert_exact(s, produced)
    assert {r["key"] for r in rows if r["value"] in (b'{"broken',)} == {b"poison"}
    assert any(h["key"] == "source" and h["value"] == b"test" for r in rows for h in r["headers"])
    assert _committed(s) == end_offsets(s, s.input_topic)
    # a second run finds nothing new: no object is written twice
    again = Archiver(s).run(max_idle_s=2)
    assert again.records == 0 and len(_objects(s)) == produced


def test_a_killed_archiver_resumes_without_loss_or_duplicates(services, unique_name: str, tmp_path: Path) -> None:
    s = _settings(unique_name, services)
    produced = _produce(s, tmp_path, 1500, seed=2)
    env = {**os.environ, "EXTRACTOR_BOOTSTRAP_SERVERS": s.bootstrap_servers, "PYTHONUNBUFFERED": "1"}
    argv = [sys.executable, "-m", "extractor", "archive", "--url", s.archive_url, "--topics", s.input_topic,
            "--group-id", s.archive_group_id, "--flush-bytes", "4000", "--batch-size", "20", "--max-idle-s", "4"]
    env["EXTRACTOR_GCS_ENDPOINT"] = gcs.url()
    fs, root = filesystem(s.archive_url, s)
    proc = subprocess.Popen(argv, env=env, cwd=REPO_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_for(lambda: len(fs.glob(f"{root}/raw/**/offsets-*.parquet")) >= 3, 60, "the first objects")
        fs.invalidate_cache()
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    fs.invalidate_cache()
    assert len(_objects(s)) < produced  # killed mid-run
    done = subprocess.run(argv, env=env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-2000:]
    fs.invalidate_cache()
    _assert_exact(s, produced)
    assert _committed(s) == end_offsets(s, s.input_topic)


def test_storage_down_mid_run_retries_commits_nothing_and_loses_nothing(
    services, services_config, unique_name: str, tmp_path: Path
) -> None:
    s = _settings(unique_name, services, archive_flush_bytes=5_000, archive_flush_s=0.5)
    produced = _produce(s, tmp_path, 200, seed=3)
    archiver = Archiver(s)
    result: dict = {}
    thread = threading.Thread(target=lambda: result.setdefault("stats", archiver.run(max_idle_s=8)), daemon=True)
    try:
        thread.start()
        wait_for(lambda: archiver.stats.objects >= 1, 60, "a first object")
        manager.down(services_config, ["gcs"])
        produced += _produce(s, tmp_path, 200, seed=4)
        # gcsfs retries a request itself for about 30 s before our retry loop sees a failure
        wait_for(lambda: archiver.stats.failures >= 1, 120, "a failed upload while the emulator is down")
        committed = _committed(s)
        fs, root = filesystem(s.archive_url, s)
        held = archiver.resume  # first offset not yet in an object, per partition
        assert all(committed.get(p, 0) <= held.get((s.input_topic, p), 0) for p in committed)
    finally:
        manager.up(services_config, ["gcs"])
    thread.join(180)
    assert not thread.is_alive() and result["stats"].failures >= 1
    _assert_exact(s, produced)


def test_a_broker_restart_mid_run_neither_holds_the_archiver_nor_loses_a_record(
    services, services_config, unique_name: str, tmp_path: Path
) -> None:
    """A synchronous commit held a sink for good after a broker restart; the archiver commits like the sink now
    (asynchronously, one in flight): after the restart it archives what comes next and its group's committed
    offsets reach the topic's end."""
    s = _settings(unique_name, services, archive_flush_bytes=5_000, archive_flush_s=0.5)
    produced = _produce(s, tmp_path, 300, seed=5)
    archiver = Archiver(s)
    result: dict = {}
    thread = threading.Thread(target=lambda: result.setdefault("stats", archiver.run(max_idle_s=15)), daemon=True)
    thread.start()
    wait_for(lambda: archiver.stats.objects >= 1, 60, "a first object")
    manager.down(services_config, ["kafka"])
    manager.up(services_config, ["kafka"])  # same data dir: topics and committed offsets survive
    produced += _produce(s, tmp_path, 300, seed=6)
    wait_for(lambda: _committed(s) == end_offsets(s, s.input_topic), 120,
             "the archiver's committed offsets at the topic's end after the restart")
    thread.join(120)
    assert not thread.is_alive()
    _assert_exact(s, produced)


def test_a_missing_bucket_is_a_clear_error(services, unique_name: str) -> None:
    env = {**os.environ, "EXTRACTOR_GCS_ENDPOINT": gcs.url(), "EXTRACTOR_BOOTSTRAP_SERVERS": services.bootstrap_servers}
    done = subprocess.run([sys.executable, "-m", "extractor", "archive", "--url", "gs://no-such-bucket-here/x",
                           "--topics", f"{unique_name}-entries", "--max-idle-s", "1"],
                          env=env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "bucket 'no-such-bucket-here' does not exist" in done.stderr and "Traceback" not in done.stderr


def test_produce_stream_archive_backfill_round_trip(services, spark, unique_name: str, tmp_path: Path) -> None:
    """The backfill of the archive makes the stream's documents: the same _id and content_hash for every entry,
    and the same dead letters for the malformed records."""
    import json

    from extractor.batch.backfill import backfill
    from extractor.batch.records import content_hash
    from extractor.chain import Chain
    from extractor.stream.worker import Worker
    from extractor.tools.harness import read_topic

    s = _settings(unique_name, services, lexicon_reload_s=0)
    produced = _produce(s, tmp_path, 150, seed=5)
    Archiver(s).run(max_idle_s=3)
    Worker(s, Chain.from_settings(s)).run(max_idle_s=5)
    streamed = {}
    for _headers, value in read_topic(s, s.processed_topic):
        d = json.loads(value)
        streamed[d["_id"]] = content_hash(d)
    stream_dlq = sorted(h["reason"] for h, _v in read_topic(s, s.dlq_topic))
    assert len(streamed) + len(stream_dlq) == produced
    today = time.strftime("%Y-%m-%d", time.gmtime())
    summary = backfill(s, s.archive_url, tmp_path / "out", spark=spark, since=today, topic=s.input_topic)
    assert summary.reconciled and summary.read == produced
    docs = {r["_id"]: r["content_hash"] for r in spark.read.parquet(str(tmp_path / "out" / "documents")).collect()}
    assert docs == streamed  # every entry: the stream's _id and content_hash
    ours_dlq = sorted(r["reason"] for r in spark.read.parquet(str(tmp_path / "out" / "dead_letter")).collect())
    assert ours_dlq == stream_dlq
    # the date folders out of range are not read
    with pytest.raises(ValueError, match="no archived objects"):
        backfill(s, s.archive_url, tmp_path / "out2", spark=spark, since="2000-01-01", until="2000-01-02",
                 topic=s.input_topic)
