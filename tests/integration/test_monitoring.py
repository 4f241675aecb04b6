"""Monitoring against the real servers: a small run with a worker, the project's sink and the Kafka Connect
exporter, scraped by the local Prometheus (``python -m services up``) with the repository's rule files loaded.
Every metric the alert rules and the dashboard use exists on the processes that export it, with the labels the
rules group by; the healthy run fires none of the rules' alerts; Prometheus evaluates the recording rules."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest
import yaml

from extractor.config import REPO_ROOT
from extractor.stream.producer import produce_file
from extractor.stream.topics import ensure_topics
from extractor.tools.harness import Pipeline, isolated_settings

pytestmark = pytest.mark.integration

MONITORING = REPO_ROOT / "deploy" / "monitoring"
SAMPLE = REPO_ROOT / "data" / "sample_entries.csv"
_METRIC = re.compile(r"\bextractor_[a-z_]+\b")


def _used_metrics() -> set[str]:
    rules = [r for g in yaml.safe_load((MONITORING / "alerts.yml").read_text())["groups"] for r in g["rules"]]
    exprs = [r["expr"] for r in rules]
    exprs += [t["expr"] for p in json.loads((MONITORING / "dashboard.json").read_text())["panels"]
              for t in p["targets"]]
    out: set[str] = set()
    for e in exprs:
        e = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", e)
        e = re.sub(r"\{[^}]*\}", " ", e)
        out |= set(_METRIC.findall(e))
    return out


def _family(name: str) -> str:
    for suffix in ("_bucket", "_sum", "_count", "_total"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def test_real_run_exports_what_the_rules_and_dashboard_use(services, services_config, unique_name,
                                                           tmp_path: Path) -> None:
    from services import prometheus

    s = isolated_settings(unique_name, bootstrap_servers=services.bootstrap_servers, mongo_uri=services.mongo_uri,
                          mongo_database=unique_name.replace("-", "_")[:60], writer="sink")
    ensure_topics(s)
    pipe = Pipeline(s, tmp_path / "logs", monitor=services_config)
    lines = SAMPLE.read_bytes().splitlines(keepends=True)
    csv_path = tmp_path / "in.csv"
    csv_path.write_bytes(b"".join(lines[:301]) + b'P9,"",2024-01-01T00:00:00Z,x,,,,\n')  # + a dead letter
    summary = produce_file(s, csv_path, keep_ids=True, progress=False)
    assert summary.sent == 300
    pages: dict[str, str] = {}
    try:
        pipe.start("work", "worker")
        pipe.start("sink", "sink")
        pipe.start("connect-status", "connect-status", "--interval", "2")
        pipe.wait_caught_up(240)
        time.sleep(3)  # one more lag update and Connect poll
        pages = {name: pipe.scrape(name) for name in ("worker", "sink", "connect-status")}
        # the local Prometheus discovers the three targets and scrapes them (every 5 s)
        deadline = time.monotonic() + 60
        up: list[dict] = []
        while time.monotonic() < deadline:
            up = prometheus.query(f'up{{instance_name=~"{s.group_id}-.*"}} == 1')
            if len(up) == 3:
                break
            time.sleep(2)
        assert len(up) == 3, f"Prometheus scrapes {len(up)} of the 3 targets"
        time.sleep(6)
        scraped = {r["metric"]["__name__"] for r in prometheus.query(
            f'{{__name__=~"extractor_.+", instance_name=~"{s.group_id}-.*"}}')}
        read = prometheus.query(  # what the worker read: processed + dead-lettered, as the input rule counts it
            f'sum(extractor_entries_processed_total{{instance_name="{s.group_id}-worker"}})'
            f' + sum(extractor_dead_lettered_total{{instance_name="{s.group_id}-worker"}})')
        rules = prometheus.query('count(extractor:input:rate5m)')
        firing = prometheus.query(f'ALERTS{{alertstate="firing", instance_name=~"{s.group_id}-.*"}}')
    finally:
        pipe.stop_all()
        pipe.unregister_targets()
    # every metric the rules and the dashboard use is declared by the process that exports it
    declared = {m for page in pages.values() for m in re.findall(r"^# TYPE (\S+) ", page, re.M)}
    missing = sorted(n for n in _used_metrics() if n not in declared and _family(n) not in declared)
    assert missing == [], f"used by the rules / dashboard but not exported by a real run: {missing}"
    # ... and those a healthy run produces have samples in Prometheus, with the labels the rules group by
    for name in ("extractor_entries_processed_total", "extractor_entities_total", "extractor_consumer_lag",
                 "extractor_entity_confidence_bucket", "extractor_batch_seconds_bucket", "extractor_chain_info",
                 "extractor_entry_latency_seconds_bucket",
                 "extractor_calibration_baseline_confidence", "extractor_sink_documents_written_total",
                 "extractor_dead_lettered_total", "extractor_connect_task_running",
                 "extractor_lexicon_reload_failures_total"):
        assert name in scraped, name
    worker = pages["worker"]
    assert re.search(r'extractor_consumer_lag\{component="worker",partition="\d+",topic="[^"]+"\}', worker)
    assert re.search(r'extractor_entity_confidence_bucket\{label="(ILLNESS|MEDICINE)",le="0.5",method="\w+"\}',
                     worker)
    assert re.search(r'extractor_chain_info\{extractor_version="[^"]+",lexicon_version="[^"]+",'
                     r'model_version="[^"]+"\} 1.0', worker)
    assert re.search(r'extractor_dead_lettered_total\{component="worker",reason="\w+",stage="\w+"\}', worker) or \
        "extractor_dead_lettered_total" in worker
    assert re.search(r'extractor_connect_task_running\{connector="[^"]+",task="\d+"\} 1.0', pages["connect-status"])
    assert float(read[0]["value"][1]) == 300
    assert rules, "the recording rules of deploy/monitoring/alerts.yml are loaded and evaluated"
    assert firing == []
    # no entry text and no patient id in any label of any page
    label_values = " ".join(re.findall(r'="([^"]*)"', " ".join(pages.values())))
    for line in lines[1:301]:
        pid = line.split(b",", 1)[0].decode()
        assert f'"{pid}"' not in label_values
