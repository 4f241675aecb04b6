"""``python -m extractor connect-status``: Kafka Connect's connector and task states as Prometheus metrics.

Kafka Connect reports its connectors' health on its REST API (``GET /connectors?expand=status``), not as
Prometheus metrics. This small exporter polls it and serves, on ``--metrics-port``:

* ``extractor_connect_connector_running{connector}``: 1 when the connector is RUNNING, else 0;
* ``extractor_connect_task_running{connector,task}``: 1 per RUNNING task, 0 for FAILED / PAUSED / UNASSIGNED;
* ``extractor_connect_up``: 1 when the REST API answered the last poll.

The alert rules (deploy/monitoring/alerts.yml) use them for "Connect task failed" and, with the workers' input
rate, for "no documents written". Connector names and task ids are the only labels: a closed vocabulary.
"""

from __future__ import annotations

import argparse
import json
import logging
import urllib.error
import urllib.request
from typing import Any

from prometheus_client import Gauge

from extractor.config import load_settings
from extractor.stream import metrics
from extractor.stream.kafka import StopFlag

log = logging.getLogger(__name__)

CONNECTOR_RUNNING = Gauge("extractor_connect_connector_running", "1 when the Kafka Connect connector is RUNNING",
                          ["connector"])
TASK_RUNNING = Gauge("extractor_connect_task_running", "1 when the Kafka Connect task is RUNNING",
                     ["connector", "task"])
CONNECT_UP = Gauge("extractor_connect_up", "1 when Kafka Connect's REST API answered the last poll")


def poll(connect_url: str, timeout_s: float = 5.0) -> dict[str, Any]:
    """``GET /connectors?expand=status`` -> {name: {"connector": state, "tasks": {id: state}}}."""
    url = connect_url.rstrip("/") + "/connectors?expand=status"
    with urllib.request.urlopen(url, timeout=timeout_s) as resp:  # noqa: S310 - the configured Connect URL
        body = json.loads(resp.read())
    out: dict[str, Any] = {}
    for name, item in body.items():
        status = item.get("status", {})
        out[name] = {
            "connector": status.get("connector", {}).get("state", "UNKNOWN"),
            "tasks": {str(t.get("id")): t.get("state", "UNKNOWN") for t in status.get("tasks", [])},
        }
    return out


def update(states: dict[str, Any]) -> None:
    """Set the gauges from :func:`poll`'s result; series of connectors and tasks that are gone are removed."""
    CONNECTOR_RUNNING.clear()
    TASK_RUNNING.clear()
    for name, st in states.items():
        CONNECTOR_RUNNING.labels(name).set(1 if st["connector"] == "RUNNING" else 0)
        for task, state in st["tasks"].items():
            TASK_RUNNING.labels(name, task).set(1 if state == "RUNNING" else 0)


def run_loop(connect_url: str, interval_s: float, stop: StopFlag, max_polls: int | None = None) -> int:
    polls = 0
    while not stop:
        try:
            update(poll(connect_url))
            CONNECT_UP.set(1)
        except (urllib.error.URLError, OSError, ValueError) as exc:
            CONNECT_UP.set(0)
            log.warning("kafka connect status poll failed: %s", exc)
        polls += 1
        if max_polls is not None and polls >= max_polls:
            break
        stop.wait(interval_s)
    return polls


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--connect-url", default=None, help="Kafka Connect REST API (default: settings.connect_url)")
    parser.add_argument("--metrics-port", type=int, default=None,
                        help="port of the /metrics endpoint (default: EXTRACTOR_METRICS_PORT, else 9465)")
    parser.add_argument("--interval", type=float, default=15.0, help="seconds between polls (default 15)")
    parser.add_argument("--max-polls", type=int, default=None, help="stop after this many polls (tests)")


def run(args: argparse.Namespace) -> int:
    settings = load_settings(args.config)
    url = args.connect_url or settings.connect_url
    port = args.metrics_port or settings.metrics_port or 9465
    metrics.serve(port)
    log.info("exporting Kafka Connect status of %s on port %d every %.0f s", url, port, args.interval)
    run_loop(url, args.interval, StopFlag().install(), args.max_polls)
    return 0
