"""The promise that patient text never reaches a log, checked on every component at its default level.

A pipeline run whose entries carry a distinctive sentinel string: good entries (to MongoDB through BOTH writers,
Kafka Connect's connector and the project's sink), an unresolved entry, a malformed CSV row and poison messages
(to the DLQ), then the DLQ tools (inspect, replay), the archiver and a reviewer's session in the review console.
Afterwards the sentinel must appear in none of: the producer's output, the workers', the sink's, the DLQ tools',
the archiver's, the review console's, and the part of the Kafka, Kafka Connect, FerretDB and PostgreSQL logs
written during the test; while the ids and counts that the logs are for do appear.
"""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from confluent_kafka import Producer

from extractor.config import REPO_ROOT
from extractor.stream.topics import ensure_topics
from extractor.tools.harness import Pipeline, isolated_settings, subprocess_env

pytestmark = pytest.mark.integration

SERVER_LOGS = ("kafka", "connect", "ferretdb", "postgres")


def _run(settings, args: list[str], log: Path) -> str:
    out = subprocess.run([sys.executable, "-m", "extractor", *args], env=subprocess_env(settings), cwd=REPO_ROOT,
                         capture_output=True, text=True, timeout=300, check=False)
    text = out.stdout + out.stderr
    log.write_text(text)
    assert out.returncode == 0, text[-3000:]
    return text


def test_sentinel_patient_text_appears_in_no_log(services, services_config, unique_name, tmp_path):
    sentinel = f"Qzxv{uuid.uuid4().hex[:10]}"  # no lexicon, rule or model knows it
    logs = tmp_path / "logs"
    logs.mkdir()
    server_logs = {n: services_config.log_file(n) for n in SERVER_LOGS}
    start = {n: p.stat().st_size if p.exists() else 0 for n, p in server_logs.items()}

    s = isolated_settings(unique_name, bootstrap_servers=services.bootstrap_servers, mongo_uri=services.mongo_uri,
                          mongo_database=unique_name.replace("-", "_")[:60])
    ensure_topics(s)
    csv = tmp_path / "entries.csv"
    csv.write_text(
        "patient_id,medical_entry,timestamp\n"
        f"P1,Patient {sentinel} shows signs of flu. Prescribed ibuprofen.,2024-03-01T10:00:00Z\n"
        f"P2,{sentinel} was seen today; follow-up in two weeks.,2024-03-01T11:00:00Z\n"  # unresolved
        f"P3,Signs of {sentinel} pneumonia,not-a-timestamp\n"  # malformed row
        f"P4,\"Hx of HTN {sentinel}. Started lisinopril 10 mg daily.\",2024-03-02T09:00:00Z\n"
    )
    pipe = Pipeline(s, logs)
    producer_out = _run(s, ["produce", str(csv)], logs / "producer.log")
    p = Producer({"bootstrap.servers": services.bootstrap_servers})
    p.produce(s.input_topic, f'{{"entry_id": "{sentinel}", "text": '.encode())  # poison: not JSON
    p.produce(s.processed_topic, f"not a document {sentinel}".encode())  # poison for both writers
    assert p.flush(30) == 0
    try:
        pipe.start("work")
        pipe.start("sink")
        pipe.start_writer("connect")
        pipe.wait_caught_up(240)
        pipe.writer_group = s.sink_group_id
        pipe.wait_caught_up(240)
    finally:
        pipe.stop_all()
    coll = pipe.collection()
    # P1 and P4 resolve; P2 is meant to stay unresolved (dead-lettered), but the NER model may take the made-up
    # sentinel word for an illness: either way the text is stored where it belongs, and nowhere else
    docs = coll.count_documents({})
    assert docs in (2, 3)
    assert coll.count_documents({"text": {"$regex": sentinel}}) == docs
    _run(s, ["dlq", "inspect"], logs / "dlq-inspect.log")
    _run(s, ["dlq", "replay"], logs / "dlq-replay.log")
    # the archiver keeps the same raw records (patient text included) in object storage, never in its log
    from services import gcs

    archive_env = s.model_copy(update={"gcs_endpoint": gcs.url()})
    archiver_out = _run(archive_env, ["archive", "--url", f"gs://{gcs.bucket()}/{unique_name}", "--topics",
                                      s.input_topic, "--group-id", f"{unique_name}-archiver", "--max-idle-s", "2"],
                        logs / "archive.log")
    assert "archived records=" in archiver_out
    _review_console_session(pipe, s, tmp_path, sentinel)

    found = {}
    for f in sorted(logs.glob("*.log")):
        if sentinel in f.read_text(errors="replace"):
            found[f.name] = True
    for name, path in server_logs.items():
        with open(path, "rb") as fh:
            fh.seek(start[name])
            if sentinel.encode() in fh.read():
                found[f"{name} (server log)"] = True
    assert found == {}, f"patient text found in: {sorted(found)}"
    # the logs are not silent: they carry ids and counts
    assert "sent=3" in producer_out and "dead_lettered=1" in producer_out
    worker_logs = "".join(pipe.log_text(n) for n in ("work-1",)) or (logs / "work-1.log").read_text()
    assert "dead_lettered" in worker_logs or "processed" in worker_logs


def _review_console_session(pipe: Pipeline, s, tmp_path: Path, sentinel: str) -> None:
    """The review console (a subprocess at its default log level) shows the sentinel's entries to a signed-in
    reviewer, who opens a dead letter and a document, decides, undoes, exports and signs out: its log must not
    carry the text it served."""
    import re

    import httpx

    from extractor.tools.harness import free_port
    from tests.integration.helpers import wait_for

    port = free_port()
    secrets = tmp_path / "review-secrets"
    pipe.start("review", "review-1", "--port", str(port), "--eval-limit", "1",
               env={"EXTRACTOR_REVIEW_SECRETS_DIR": str(secrets)})
    base = f"http://127.0.0.1:{port}"
    try:
        def up() -> bool:
            try:
                return httpx.get(f"{base}/healthz", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(up, 60, "the review console")
        with httpx.Client(base_url=base, timeout=30, follow_redirects=True) as c:
            token = re.search(r'name="csrf-token" content="([^"]+)"', c.get("/login").text).group(1)
            assert c.post("/login", data={"csrf": token, "reviewer": "ann", "password": "wrong"}).status_code == 401
            pw = (secrets / "review-password").read_text().strip()
            assert c.post("/login", data={"csrf": token, "reviewer": "ann", "password": pw}).status_code == 200
            token = re.search(r'name="csrf-token" content="([^"]+)"', c.get("/queue/dlq").text).group(1)
            ids = wait_for(lambda: re.findall(r"/entry/dlq/([0-9]+:[0-9]+)", c.get("/queue/dlq").text), 60,
                           "the dead letters in the console")
            assert any(sentinel in c.get(f"/entry/dlq/{i}").text for i in ids)
            doc = pipe.collection().find_one({"illnesses.0": {"$exists": True}})
            assert sentinel in c.get(f"/entry/doc/{doc['_id']}").text
            ent = doc["illnesses"][0]
            r = c.post("/api/decision", headers={"X-CSRF-Token": token},
                       json={"source": "doc", "id": doc["_id"], "action": "accept",
                             "entity": {"start": ent["start"], "end": ent["end"], "label": "ILLNESS"}})
            assert r.status_code == 200, r.text
            assert c.post("/api/undo", headers={"X-CSRF-Token": token}).status_code == 200
            c.get("/export/reviews.jsonl")
            c.post("/logout", data={"csrf": token})
    finally:
        pipe.stop("review-1")
    log = pipe.log_text("review-1")
    assert "sign_in by ann" in log and "decision:accept by ann" in log  # it logs ids and actions
