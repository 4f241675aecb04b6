"""connect-status: Kafka Connect's REST status as gauges (a stand-in REST server here; the integration test
scrapes the exporter against the real Connect)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
from prometheus_client import REGISTRY

from extractor.stream import connect_status as cs
from extractor.stream.kafka import StopFlag

STATE: dict = {}


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - http.server API
        assert self.path == "/connectors?expand=status"
        body = json.dumps(STATE).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def connect_url() -> Iterator[str]:
    server = HTTPServer(("127.0.0.1", 0), _Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def _value(name: str, **labels: str) -> float | None:
    return REGISTRY.get_sample_value(name, labels)


def _status(connector: str, *tasks: str) -> dict:
    return {"status": {"connector": {"state": connector},
                       "tasks": [{"id": i, "state": s} for i, s in enumerate(tasks)]}}


def test_task_states_become_gauges(connect_url: str) -> None:
    STATE.clear()
    STATE["mongo-sink"] = _status("RUNNING", "RUNNING", "FAILED")
    assert cs.run_loop(connect_url, 0.0, StopFlag(), max_polls=1) == 1
    assert _value("extractor_connect_up") == 1.0
    assert _value("extractor_connect_connector_running", connector="mongo-sink") == 1.0
    assert _value("extractor_connect_task_running", connector="mongo-sink", task="0") == 1.0
    assert _value("extractor_connect_task_running", connector="mongo-sink", task="1") == 0.0
    # a connector that is deleted disappears from the metrics, and a paused one reads 0
    STATE.clear()
    STATE["other"] = _status("PAUSED", "PAUSED")
    cs.run_loop(connect_url, 0.0, StopFlag(), max_polls=1)
    assert _value("extractor_connect_task_running", connector="mongo-sink", task="0") is None
    assert _value("extractor_connect_connector_running", connector="other") == 0.0


def test_unreachable_connect_reads_down() -> None:
    cs.run_loop("http://127.0.0.1:9", 0.0, StopFlag(), max_polls=1)  # port 9: nothing listens
    assert _value("extractor_connect_up") == 0.0
