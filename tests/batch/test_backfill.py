"""The backfill on a real Spark session (local[2]): reconciliation, the stream's dead-letter reasons, idempotent
reruns, the worker's very documents, ``--only-changed`` after a lexicon edit, JSON lines and Parquet input."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from extractor.batch import records as rec
from extractor.batch.backfill import backfill
from extractor.chain import Chain
from extractor.config import load_settings
from extractor.stream import messages as m
from extractor.stream.producer import iter_rows
from extractor.stream.worker import Worker
from tests.batch.conftest import EXPECTED_BAD, GOOD_ROWS, sample_rows, write_csv
from tests.stream.test_producer_worker_sink import FakeConsumer, FakeProducer, Msg

pytestmark = pytest.mark.slow
IGNORED = rec.VOLATILE_FIELDS  # processed_at, written_at_ms, produced_at_ms, kafka


def _documents(spark: Any, out: Path) -> dict[str, dict[str, Any]]:
    return {r["_id"]: {**r.asDict(), "document": json.loads(r["document"])}
            for r in spark.read.parquet(str(out / "documents")).collect()}


def _dead_letters(spark: Any, out: Path) -> list[dict[str, Any]]:
    return [r.asDict() for r in spark.read.parquet(str(out / "dead_letter")).collect()]


@pytest.fixture(scope="module")
def first_run(spark: Any, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Any]:
    tmp = tmp_path_factory.mktemp("backfill")
    csv_path = write_csv(tmp / "entries.csv", sample_rows())
    out = tmp / "out"
    summary = backfill(load_settings(), csv_path, out, spark=spark)
    return csv_path, out, summary


def test_reconciles_and_dead_letters_with_the_streams_reasons(spark: Any, first_run: tuple) -> None:
    csv_path, out, summary = first_run
    # every good row, the duplicate, every bad row (the blank line is skipped, as the producer skips it)
    assert summary.read == GOOD_ROWS + 1 + sum(EXPECTED_BAD.values())
    assert summary.reconciled, summary.line()
    assert summary.duplicates == 1
    assert summary.read == summary.written + summary.unchanged + summary.duplicates + summary.dead_lettered
    # the sample's unresolved entries (if any) are dead-lettered too; the bad rows each with their reason
    unresolved_in_sample = summary.reasons.get("unresolved", 0) - 1
    assert {k: v for k, v in summary.reasons.items() if k != "unresolved"} == {
        k: v for k, v in EXPECTED_BAD.items() if k != "unresolved"}
    assert summary.written == GOOD_ROWS - unresolved_in_sample
    docs, dlq = _documents(spark, out), _dead_letters(spark, out)
    assert len(docs) == summary.written and len(dlq) == summary.dead_lettered
    # produce-stage rows: the producer's parser gives the same reason for the same raw bytes
    with csv_path.open("rb") as fh:
        producer_rows = {r.raw: r.error.reason for r in iter_rows(fh, csv_path.name, patient_id_column="patient_id",
                                                                  text_column="medical_entry",
                                                                  timestamp_column="timestamp") if r.error}
    ours = {bytes(d["value"]): d["reason"] for d in dlq if d["stage"] == m.STAGE_PRODUCE}
    assert ours == producer_rows and len(ours) == 6
    for d in dlq:  # the dlq-topic's headers
        assert d["headers"]["reason"] == d["reason"] and d["headers"]["stage"] == d["stage"]
        assert d["headers"]["source_file"] == csv_path.name and int(d["headers"]["source_row"]) == d["source_row"]
    by_reason = {d["reason"]: d for d in dlq}
    assert by_reason["unresolved"]["stage"] == m.STAGE_EXTRACT and by_reason["unresolved"]["entry_id"]
    assert by_reason["text_too_long"]["stage"] == m.STAGE_VALIDATE
    # documents partitioned by date, the date of the entry's timestamp
    assert all(str(d["date"]) == d["timestamp"][:10] for d in docs.values())
    assert sorted(p.name for p in (out / "documents").iterdir() if p.name.startswith("date="))


def test_documents_equal_the_workers(spark: Any, first_run: tuple) -> None:
    """The real chain in a real Worker (Kafka replaced by in-memory queues) on the messages the producer would
    publish for the same CSV: every document equal to the backfilled one except times and Kafka coordinates."""
    csv_path, out, _ = first_run
    settings = load_settings(input_topic="in", processed_topic="out", dlq_topic="dlq", lexicon_reload_s=0)
    msgs = []
    with csv_path.open("rb") as fh:
        for r in iter_rows(fh, csv_path.name, patient_id_column="patient_id", text_column="medical_entry",
                           timestamp_column="timestamp"):
            if r.entry is not None:
                headers = [(m.H_SCHEMA_VERSION, b"1"), (m.H_SOURCE_FILE, csv_path.name.encode()),
                           (m.H_SOURCE_ROW, str(r.row).encode())]
                msgs.append(Msg(m.encode_entry(r.entry), len(msgs), headers=headers))
    producer = FakeProducer()
    worker = Worker(settings, Chain.from_settings(settings), consumer=FakeConsumer(msgs), producer=producer)
    worker.run(max_messages=len(msgs))
    streamed = {}
    for r in producer.sent:
        if r["topic"] == "out":
            d = json.loads(r["value"])
            streamed[d["_id"]] = d
    stream_dlq = {(int(r["headers"]["source_row"]), r["headers"]["reason"], r["headers"]["stage"],
                   r["headers"].get("entry_id")) for r in producer.sent if r["topic"] == "dlq"}
    docs = _documents(spark, out)
    assert set(docs) == set(streamed)
    for _id, d in docs.items():
        ours = {k: v for k, v in d["document"].items() if k not in IGNORED}
        theirs = {k: v for k, v in streamed[_id].items() if k not in IGNORED}
        assert ours == theirs
        assert d["lexicon_version"] == theirs["lexicon_version"] and d["chain_version"] == theirs["chain_version"]
    ours_dlq = {(d["source_row"], d["reason"], d["stage"], d["entry_id"]) for d in _dead_letters(spark, out)
                if d["stage"] != m.STAGE_PRODUCE}
    assert ours_dlq == stream_dlq


def test_rerun_is_idempotent(spark: Any, first_run: tuple) -> None:
    csv_path, out, first = first_run
    before = _documents(spark, out)
    again = backfill(load_settings(), csv_path, out, spark=spark)
    after = _documents(spark, out)
    assert again.reconciled and again.written == first.written and again.dead_lettered == first.dead_lettered
    assert set(after) == set(before)
    strip = lambda d: {k: v for k, v in d["document"].items() if k not in IGNORED}  # noqa: E731
    assert all(strip(after[k]) == strip(before[k]) for k in before)
    assert len(_dead_letters(spark, out)) == first.dead_lettered
    # and with --only-changed nothing at all is written
    third = backfill(load_settings(), csv_path, out, spark=spark, only_changed=True)
    assert third.written == 0 and third.unchanged == first.written and third.reconciled
    assert {k: v["document"]["processed_at"] for k, v in _documents(spark, out).items()} == {
        k: v["document"]["processed_at"] for k, v in after.items()}


def test_only_changed_after_a_lexicon_edit(spark: Any, tmp_path: Path, lexicon_copy: Path) -> None:
    rows = sample_rows()
    csv_path = write_csv(tmp_path / "entries.csv", rows, bad=False, duplicate=False)
    out = tmp_path / "out"
    s1 = load_settings(lexicon_dir=lexicon_copy)
    first = backfill(s1, csv_path, out, spark=spark)
    before = _documents(spark, out)
    # the edit: "follow-up for X" now makes X hypothetical, which changes only the entries that say it
    with (lexicon_copy / "context.tsv").open("a", encoding="utf-8") as fh:
        fh.write("follow-up for\tHYPOTHETICAL\tforward\t4\n")
    s2 = load_settings(lexicon_dir=lexicon_copy)
    second = backfill(s2, csv_path, out, spark=spark, only_changed=True)
    after = _documents(spark, out)
    expected_changed = {k for k in before if "follow-up for" in before[k]["document"]["text"].lower()}
    assert expected_changed, "the sample must hold entries the edit changes"
    rewritten = {k for k in after if after[k]["document"]["processed_at"] != before[k]["document"]["processed_at"]}
    changed = {k for k in after if after[k]["content_hash"] != before[k]["content_hash"]}
    assert second.reconciled and second.written == len(rewritten) == len(changed) > 0
    assert rewritten == changed and rewritten <= expected_changed
    assert second.unchanged == first.written - second.written
    assert {after[k]["lexicon_version"] for k in rewritten} != {before[k]["lexicon_version"] for k in rewritten}
    assert all(after[k] == before[k] for k in set(before) - rewritten)


def test_jsonl_and_parquet_inputs_give_the_same_documents(spark: Any, tmp_path: Path, first_run: tuple) -> None:
    _, out_csv, _ = first_run
    rows = sample_rows(10)
    src = tmp_path / "in"
    src.mkdir()
    with (src / "entries.jsonl").open("wb") as fh:  # the messages the producer would publish, plus poison
        for i, (pid, text, ts) in enumerate(rows[:5]):
            fh.write(m.encode_entry(m.build_entry(pid, text, ts, "entries.csv", i + 2)) + b"\n")
        fh.write(b'{"broken\n\n{"text": "no id"}\n')
    spark.createDataFrame([(pid, text, ts) for pid, text, ts in rows[5:]],
                          "patient_id string, medical_entry string, timestamp string").coalesce(1) \
        .write.parquet(str(src / "table.parquet"))
    out = tmp_path / "out"
    summary = backfill(load_settings(), src, out, spark=spark)
    assert summary.reconciled and summary.read == 12 and summary.reasons == {"not_json": 1, "schema_invalid": 1}
    ours = _documents(spark, out)
    csv_docs = _documents(spark, out_csv)
    assert set(ours) <= set(csv_docs) and len(ours) == 10  # same entry ids as the CSV's rows
    for k, d in ours.items():
        strip = {"source", "input_format"} | IGNORED
        assert {a: b for a, b in d["document"].items() if a not in strip} == {
            a: b for a, b in csv_docs[k]["document"].items() if a not in strip}


def test_chain_loaded_once_per_executor_process(spark: Any, first_run: tuple) -> None:
    counts = spark.sparkContext.parallelize(range(8), 8).map(
        lambda _: __import__("extractor.batch.records", fromlist=["x"]).loaded_chains()).collect()
    # Python workers are reused between tasks: each one that ran a backfill task still holds its chain(s),
    # one per distinct chain setting, never one per task
    assert max(counts) <= 3


def test_the_warm_up_job_and_the_backfill_share_one_python_daemon(spark: Any, first_run: tuple) -> None:
    """The backfill's background warm-up (an RDD job) starts the same daemon its SQL tasks use, so the chain
    loads once while the JVM plans: with Spark's simplified UDF tracebacks on, the two kinds of job would get a
    daemon each (their workers' environments differ)."""
    import psutil

    assert spark.conf.get("spark.sql.execution.pyspark.udf.simplifiedTraceback.enabled") == "false"
    def command(p: Any) -> str:
        try:
            return " ".join(p.cmdline())
        except (psutil.ZombieProcess, psutil.NoSuchProcess, psutil.AccessDenied):  # an ended child not yet reaped
            return ""

    jvm = psutil.Process(spark._jvm.java.lang.ProcessHandle.current().pid())
    daemons = [c for c in map(command, jvm.children()) if "extractor.batch.daemon" in c]
    assert len(daemons) == 1, daemons


def test_a_first_run_moves_the_workers_files_and_gives_the_same_documents(spark: Any, tmp_path: Path,
                                                                          first_run: tuple) -> None:
    """Without duplicates or an earlier output nothing is merged: the files the Python workers wrote become the
    output as they are. Its documents equal those of the run that went through Spark's merge (the duplicate)."""
    _, out_merged, _ = first_run
    csv_path = write_csv(tmp_path / "entries.csv", sample_rows(), duplicate=False)
    out = tmp_path / "out"
    summary = backfill(load_settings(), csv_path, out, spark=spark)
    assert summary.reconciled and summary.duplicates == 0 and summary.output_documents == summary.written
    assert [p.name for p in out.iterdir() if p.name.startswith("_staging")] == []
    assert all(f.name.startswith("part-") and len(f.name.split("-")) == 3
               for f in (out / "documents").rglob("*.parquet"))  # part-TAG-FLUSH: written by the workers
    ours, merged = _documents(spark, out), _documents(spark, out_merged)
    assert set(ours) == set(merged) and len(ours) == summary.written
    # the merged run's duplicate keeps its later row as its source
    strip = lambda d: {k: v for k, v in d["document"].items() if k not in IGNORED | {"source"}}  # noqa: E731
    for k, d in ours.items():
        assert strip(d) == strip(merged[k])
        same_row = d["document"]["source"] == merged[k]["document"]["source"]
        skip = {"document"} if same_row else {"document", "content_hash"}  # the hash covers the source too
        assert {c: v for c, v in d.items() if c not in skip} == {
            c: v for c, v in merged[k].items() if c not in skip}
