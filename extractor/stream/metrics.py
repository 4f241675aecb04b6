"""Prometheus metrics of the worker, the sink and the DLQ replay (``--metrics-port`` / EXTRACTOR_METRICS_PORT).

Labels are closed vocabularies (component, reason, stage, method, label, topic, partition) — never ids or text.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from prometheus_client import Counter, Gauge, Histogram, start_http_server

log = logging.getLogger(__name__)

ENTRIES = Counter("extractor_entries_processed_total", "entries processed into documents", ["component"])
DEAD_LETTERED = Counter("extractor_dead_lettered_total", "records sent to the dead-letter topic",
                        ["component", "stage", "reason"])
ENTITIES = Counter("extractor_entities_total", "entities extracted", ["method", "label"])
STATUS = Counter("extractor_results_total", "extraction results by status", ["status"])
BATCH_SECONDS = Histogram(
    "extractor_batch_seconds", "wall time of one consumed batch, poll excluded", ["component"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
BATCH_SIZE = Histogram("extractor_batch_size", "records per consumed batch", ["component"],
                       buckets=(1, 10, 50, 100, 250, 500, 1000, 2500))
# from the moment Kafka took an entry (its record timestamp) to its document or dead letter being durable
ENTRY_LATENCY = Histogram(
    "extractor_entry_latency_seconds", "seconds from an entry's Kafka timestamp to its output being durable",
    ["component"], buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900),
)
CONSUMER_LAG = Gauge("extractor_consumer_lag", "high watermark minus position", ["component", "topic", "partition"])
DOCS_WRITTEN = Counter("extractor_sink_documents_written_total", "documents upserted into MongoDB")
SINK_RETRIES = Counter("extractor_sink_retries_total", "MongoDB batch writes retried", ["error_class"])
DELIVERY_ERRORS = Counter("extractor_delivery_errors_total", "producer delivery reports with an error",
                          ["component"])
COMMITS = Counter("extractor_offset_commits_total",
                  "offset commit results (ok, retried, lost to a rebalance; failed: not acknowledged for a minute, "
                  "or a synchronous commit out of attempts)", ["component", "outcome"])
CONSUMER_RENEWALS = Counter("extractor_consumer_renewals_total",
                            "fresh consumers made after a fatal consumer error (a fenced static member)",
                            ["component"])
LEXICON_RELOADS = Counter("extractor_lexicon_reloads_total", "lexicon hot reloads that changed the chain")
LEXICON_RELOAD_FAILURES = Counter(
    "extractor_lexicon_reload_failures_total", "lexicon edits that failed to load (the previous chain stays live)"
)
INFO = Gauge("extractor_chain_info", "1 for the chain version in use",
             ["extractor_version", "lexicon_version", "model_version"])
# what each method reports: the confidence histogram per method and label; its mean drifting away from the
# calibration baseline (the precision the table was fitted to) says the input changed (deploy/monitoring)
CONFIDENCE = Histogram(
    "extractor_entity_confidence", "calibrated confidence of the entities extracted", ["method", "label"],
    buckets=(0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 1.0),
)
CALIBRATION_BASELINE = Gauge(
    "extractor_calibration_baseline_confidence",
    "mean precision of each method on the data models/calibration.json was fitted on", ["method"],
)

_started: set[int] = set()
LAG_EVERY_S = 2.0  # how often the worker and the sink refresh the lag gauge (cached watermarks: cheap)


def serve(port: int | None) -> None:
    """Start the /metrics HTTP endpoint once per process; port 0/None = off."""
    if not port or port in _started:
        return
    start_http_server(port, addr="127.0.0.1")
    _started.add(port)
    log.info("metrics endpoint on http://127.0.0.1:%d/metrics", port)


def count_entities(results: Iterable[Any]) -> None:
    """Entity and status counters for a batch of ExtractionResult."""
    counts: dict[tuple[str, str], int] = {}
    status: dict[str, int] = {}
    histograms: dict[tuple[str, str], Any] = {}  # each label pair's histogram looked up once per batch
    for r in results:
        status[r.status] = status.get(r.status, 0) + 1
        for e in (*r.illnesses, *r.medicines):
            key = (e.method, e.label)
            counts[key] = counts.get(key, 0) + 1
            h = histograms.get(key)
            if h is None:
                h = histograms[key] = CONFIDENCE.labels(*key)
            h.observe(float(e.confidence))
    for (method, label), n in counts.items():
        ENTITIES.labels(method, label).inc(n)
    for s, n in status.items():
        STATUS.labels(s).inc(n)


def update_lag(consumer: Any, component: str) -> dict[tuple[str, int], int]:
    """Set the lag gauge for every assigned partition from cached watermarks; returns the lags."""
    lags: dict[tuple[str, int], int] = {}
    try:
        assignment = consumer.assignment()
        if not assignment:
            return lags
        positions = consumer.position(assignment)
        for tp in positions:
            _low, high = consumer.get_watermark_offsets(tp, cached=True)
            if high < 0:
                continue
            pos = tp.offset if tp.offset >= 0 else _low
            lag = max(0, high - pos)
            lags[(tp.topic, tp.partition)] = lag
            CONSUMER_LAG.labels(component, tp.topic, str(tp.partition)).set(lag)
    except Exception as exc:  # lag is best effort; never let it stop the loop
        log.debug("lag update failed: %s", exc)
    return lags


def set_chain_info(extractor_version: str, lexicon_version: str, model_version: str = "none") -> None:
    INFO.clear()
    INFO.labels(extractor_version, lexicon_version, model_version).set(1)


def set_calibration_baseline(calibrator: Any) -> None:
    """Per method, the precision the calibration table was fitted to (its ``regex`` / ``lexicon`` / ``ner``
    buckets): what the mean reported confidence should stay near while the input looks like the fitting data."""
    counts = getattr(calibrator, "counts", None) or {}
    for method in ("regex", "lexicon", "ner"):
        c, n = counts.get(method, (0, 0))
        if n:
            CALIBRATION_BASELINE.labels(method).set(round(c / n, 4))
