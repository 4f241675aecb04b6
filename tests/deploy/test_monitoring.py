"""deploy/monitoring: the alert rules validate and pass their unit tests (promtool, from Debian's prometheus
package, installed by ``python -m services up`` when missing); every metric the rules and the dashboard use is one
the service exports; labels are a closed vocabulary and never carry patient text."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
import yaml
from prometheus_client import REGISTRY, generate_latest

import extractor.stream.connect_status  # noqa: F401 - registers the Connect gauges
from extractor.chain import Chain
from extractor.config import REPO_ROOT, load_settings
from extractor.stream import metrics

MONITORING = REPO_ROOT / "deploy" / "monitoring"
RULES = MONITORING / "alerts.yml"
RULE_TESTS = MONITORING / "alerts_test.yml"
DASHBOARD = MONITORING / "dashboard.json"
# every label name a metric of the service may have: closed vocabularies and versions, never ids or text
ALLOWED_LABELS = {
    "component", "stage", "reason", "method", "label", "status", "topic", "partition", "error_class", "outcome",
    "extractor_version", "lexicon_version", "model_version", "connector", "task", "le",
}
_METRIC = re.compile(r"\bextractor_[a-z_]+\b")
_RECORDED = re.compile(r"\bextractor:[a-z0-9_:]+\b")


@pytest.fixture(scope="module")
def promtool() -> str:
    from services import prometheus

    try:
        prometheus.ensure_binary()
    except Exception as exc:  # noqa: BLE001 - a missing tool is a failure, never a skip
        pytest.fail(f"promtool is not available: {exc}", pytrace=False)
    exe = prometheus.tool("promtool")
    assert exe is not None
    return exe


def _run(argv: list[str], cwd: Path | None = None) -> str:
    out = subprocess.run(argv, capture_output=True, text=True, cwd=cwd, check=False)
    assert out.returncode == 0, f"{' '.join(argv)}:\n{out.stdout}\n{out.stderr}"
    return out.stdout


def test_rules_validate(promtool: str) -> None:
    assert "SUCCESS" in _run([promtool, "check", "rules", str(RULES)])


def test_rule_unit_tests_pass(promtool: str) -> None:
    """Synthetic series: lag rises -> fires; DLQ share rises -> fires; healthy -> silent (alerts_test.yml)."""
    assert "SUCCESS" in _run([promtool, "test", "rules", RULE_TESTS.name], cwd=MONITORING)


def _rules() -> list[dict]:
    return [r for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"]]


def test_every_alert_has_a_runbook_and_a_severity() -> None:
    alerts = [r for r in _rules() if "alert" in r]
    assert len(alerts) >= 10
    for r in alerts:
        assert r["labels"]["severity"] in {"critical", "warning", "info"}, r["alert"]
        assert len(r["annotations"]["runbook"]) > 40 and "First:" in r["annotations"]["runbook"], r["alert"]
        assert r["annotations"]["summary"], r["alert"]


def test_every_alert_is_unit_tested() -> None:
    tested = {t["alertname"] for case in yaml.safe_load(RULE_TESTS.read_text())["tests"]
              for t in case.get("alert_rule_test", [])}
    assert {r["alert"] for r in _rules() if "alert" in r} - tested == set()


def _exported() -> dict[str, set[str]]:
    """name -> label names of every metric the service registers (histograms with their series suffixes)."""
    out: dict[str, set[str]] = {}
    for fam in REGISTRY.collect():
        if not fam.name.startswith("extractor_"):
            continue
        names = {fam.name}
        if fam.type == "counter":
            names = {fam.name + "_total"}
        elif fam.type == "histogram":
            names = {fam.name + s for s in ("_bucket", "_sum", "_count")}
        for s in fam.samples:
            out.setdefault(s.name, set()).update(s.labels)
        for n in names:
            out.setdefault(n, set())
    return out


def _used() -> dict[str, set[str]]:
    """metric name -> where it is used (the rules' and the dashboard's expressions)."""
    exprs = [("alerts.yml", r["expr"]) for r in _rules()]
    exprs += [("dashboard.json", t["expr"]) for p in json.loads(DASHBOARD.read_text())["panels"]
              for t in p["targets"]]
    used: dict[str, set[str]] = {}
    for where, e in exprs:
        e = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", e)  # label lists
        e = re.sub(r"\{[^}]*\}", " ", e)  # label matchers
        for name in _METRIC.findall(e):
            used.setdefault(name, set()).add(where)
    return used


def test_rules_and_dashboard_use_only_exported_metrics() -> None:
    # make every labelled family produce a sample, so histogram and counter series names are known
    metrics.count_entities([])
    exported = _exported()
    missing = {name: sorted(w) for name, w in _used().items() if name not in exported}
    assert missing == {}, f"used but never exported: {missing}"
    recorded = {r["record"] for r in _rules() if "record" in r}
    dash = " ".join(t["expr"] for p in json.loads(DASHBOARD.read_text())["panels"] for t in p["targets"])
    assert set(_RECORDED.findall(dash)) <= recorded


def test_dashboard_has_the_panels_operators_asked_for() -> None:
    titles = " | ".join(p["title"].lower() for p in json.loads(DASHBOARD.read_text())["panels"])
    for want in ("throughput", "lag per group", "dead-lettered by reason", "latency", "entities per method",
                 "confidence histogram", "versions"):
        assert want in titles, want


def test_metric_labels_are_a_closed_vocabulary() -> None:
    for fam in REGISTRY.collect():
        if fam.name.startswith("extractor_"):
            for s in fam.samples:
                assert set(s.labels) <= ALLOWED_LABELS, (s.name, s.labels)
    # and the label names declared on the metric objects themselves (families without samples yet)
    for obj in vars(metrics).values():
        names = getattr(obj, "_labelnames", None)
        if names is not None:
            assert set(names) <= ALLOWED_LABELS, names


def test_no_patient_text_in_metrics() -> None:
    """Extract real entries, count them as a worker does, and look for their words in the /metrics output."""
    import csv

    rows = list(csv.DictReader((REPO_ROOT / "data" / "sample_entries.csv").open(encoding="utf-8")))[:300]
    texts = [r["medical_entry"] for r in rows]
    chain = Chain.from_settings(load_settings())
    results = chain.extract_many(texts)
    metrics.count_entities(results)
    metrics.set_chain_info("v", "lex", chain.model_name)
    metrics.set_calibration_baseline(chain.calibrator)
    page = generate_latest(REGISTRY).decode()
    surfaces = {e.surface for r in results for e in r.entities if len(e.surface) >= 4}
    assert surfaces, "the sample yields entities"
    label_values = " ".join(re.findall(r'="([^"]*)"', page))
    leaked = sorted(s for s in surfaces if s in label_values)
    assert leaked == [], f"entity text in metric labels: {leaked[:10]}"
    for r in rows[:50]:
        assert r["patient_id"] not in label_values


def test_count_entities_counts_each_entity_once_by_method_and_label() -> None:
    from extractor.chain.model import Entity, ExtractionResult

    def ent(method: str, label: str, confidence: float) -> Entity:
        return Entity(surface="x", start=0, end=1, label=label, method=method, source="t:1", confidence=confidence)

    def value(name: str, **labels: str) -> float:
        return REGISTRY.get_sample_value(name, labels) or 0.0

    before = {(k, lab): (value("extractor_entities_total", method=k, label=lab),
                         value("extractor_entity_confidence_count", method=k, label=lab),
                         value("extractor_entity_confidence_sum", method=k, label=lab))
              for k, lab in (("regex", "ILLNESS"), ("lexicon", "MEDICINE"))}
    results = [ExtractionResult([ent("regex", "ILLNESS", 0.5), ent("regex", "ILLNESS", 0.25)],
                                [ent("lexicon", "MEDICINE", 0.75)], "resolved"),
               ExtractionResult([ent("regex", "ILLNESS", 1.0)], [], "resolved")]
    metrics.count_entities(results)
    for (k, lab), n, total in ((("regex", "ILLNESS"), 3, 1.75), (("lexicon", "MEDICINE"), 1, 0.75)):
        count0, hist0, sum0 = before[(k, lab)]
        assert value("extractor_entities_total", method=k, label=lab) - count0 == n
        assert value("extractor_entity_confidence_count", method=k, label=lab) - hist0 == n
        assert value("extractor_entity_confidence_sum", method=k, label=lab) - sum0 == pytest.approx(total)
