"""The pipeline's processes under one roof: workers and sinks as subprocesses of one isolated pipeline, and the
checks on its outcome (consumer groups caught up, reconciliation produced = documents + dead-lettered).

Used by ``make demo``, ``bench pipeline`` and the integration tests; settings travel to the subprocesses as
``EXTRACTOR_*`` variables (:func:`subprocess_env`), so each run can have its own topics, groups and collection
(:func:`isolated_settings`).
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from extractor.config import REPO_ROOT, Settings, load_settings
from extractor.stream import messages as m

log = logging.getLogger(__name__)

# settings that name the pipeline's Kafka/Mongo resources; passed to subprocesses as EXTRACTOR_* variables
RESOURCE_FIELDS = ("bootstrap_servers", "input_topic", "processed_topic", "dlq_topic", "group_id",
                   "sink_group_id", "mongo_database", "mongo_collection", "batch_size", "poll_timeout_s",
                   "lexicon_dir", "input_partitions", "lexicon_reload_s", "dlq_replay_group_id",
                   "writer", "connect_url", "connector_name", "gcs_endpoint", "lexicon_updates_topic",
                   "follow_lexicon_updates", "review_group_id", "dead_letters_collection")


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def isolated_settings(prefix: str | None = None, **overrides: Any) -> Settings:
    """Settings whose topics, groups and collection all carry ``prefix`` (fresh when None)."""
    prefix = prefix or f"run-{uuid.uuid4().hex[:8]}"
    names = dict(input_topic=f"{prefix}-entries", processed_topic=f"{prefix}-processed",
                 dlq_topic=f"{prefix}-dlq", group_id=f"{prefix}-workers", sink_group_id=f"{prefix}-sink",
                 mongo_collection=prefix.replace("-", "_"), lexicon_updates_topic=f"{prefix}-lexicon-updates",
                 review_group_id=f"{prefix}-review", dead_letters_collection=f"{prefix.replace('-', '_')}_dlq")
    names.update(overrides)
    return load_settings(**names)


def delete_topics(settings: Settings, prefix: str, timeout_s: float = 60) -> int:
    """Delete every topic whose name starts with ``prefix`` (a bench's or a test run's own) and return how many.
    A broker that keeps every run's topics restarts slower, since it reloads each partition: with 2,700 left
    behind, the lag after a broker restart took over 60 s to recover in ``bench soak``, and 25 s with 40.
    Failures are logged, never raised: the figures of the run still count."""
    from confluent_kafka.admin import AdminClient

    try:
        admin = AdminClient(settings.kafka_common())
        names = [t for t in admin.list_topics(timeout=timeout_s).topics if t.startswith(prefix)]
        if not names:
            return 0
        done = 0
        for name, fut in admin.delete_topics(names, operation_timeout=timeout_s).items():
            try:
                fut.result()
                done += 1
            except Exception as exc:  # noqa: BLE001 - one topic left behind is not worth failing for
                log.warning("could not delete topic %s: %s", name, exc)
        return done
    except Exception as exc:  # noqa: BLE001 - the broker is gone: nothing to clean
        log.warning("could not delete the %s* topics: %s", prefix, exc)
        return 0


def broker_partitions(settings: Settings, timeout_s: float = 30) -> int | None:
    """How many partitions the broker holds (what a restart reloads), or None when it cannot tell."""
    from confluent_kafka.admin import AdminClient

    try:
        topics = AdminClient(settings.kafka_common()).list_topics(timeout=timeout_s).topics
        return sum(len(t.partitions) for t in topics.values())
    except Exception as exc:  # noqa: BLE001
        log.warning("could not count the broker's partitions: %s", exc)
        return None


def subprocess_env(settings: Settings, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EXTRACTOR_")}
    for name in RESOURCE_FIELDS:
        v = getattr(settings, name)
        if v is not None:
            env[f"EXTRACTOR_{name.upper()}"] = str(v)
    env["EXTRACTOR_MONGO_URI"] = settings.mongo_uri.get_secret_value()
    env.update(extra)
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


@dataclass
class Pipeline:
    """Workers and sinks as subprocesses of one isolated pipeline, plus the checks on its outcome."""

    settings: Settings
    log_dir: Path
    procs: dict[str, subprocess.Popen] = field(default_factory=dict)
    writer_group: str | None = None  # the consumer group that writes processed-entries into MongoDB
    static_membership: bool = False  # workers and sinks get EXTRACTOR_GROUP_INSTANCE_ID=<group>-<name>
    created_connectors: list[str] = field(default_factory=list)
    # with a services config: every process started gets a metrics port, listed for the local Prometheus
    # (services/prometheus.py register_target), and a Connect writer gets a connect-status exporter
    monitor: Any = None
    metrics_ports: dict[str, int] = field(default_factory=dict)

    def start_writer(self, writer: str | None = None) -> str:
        """Start the MongoDB writer (``settings.writer`` unless given): the project's sink as a subprocess, or
        Kafka Connect's MongoDB sink connector. The connector of connectors/mongo-sink.json is used when its topic
        and collection are this pipeline's; otherwise a copy of it for this pipeline's topic, collection and its
        own dead-letter topic is created (and deleted by :meth:`stop_all`). Returns the writer's consumer group."""
        writer = writer or self.settings.writer
        if writer == "sink":
            self.start("sink")
            return self.settings.sink_group_id
        s = self.settings
        base = connect_request(s, "GET", f"/connectors/{s.connector_name}/config")
        if (base.get("topics"), base.get("database"), base.get("collection")) == (
                s.processed_topic, s.mongo_database, s.mongo_collection):
            name = s.connector_name
        else:
            name = f"{s.processed_topic}-mongo-sink"
            config = {**base, "name": name, "topics": s.processed_topic, "database": s.mongo_database,
                      "collection": s.mongo_collection,
                      "errors.deadletterqueue.topic.name": f"{s.processed_topic}-connect-dlq"}
            connect_request(s, "PUT", f"/connectors/{name}/config", config)
            self.created_connectors.append(name)
        wait_connector_running(s, name)
        self.writer_group = f"connect-{name}"
        if self.monitor is not None:
            self.start("connect-status", None, "--interval", "5")
        return self.writer_group

    def start(self, kind: str, name: str | None = None, *args: str, env: dict[str, str] | None = None
              ) -> subprocess.Popen:
        name = name or f"{kind}-{len([n for n in self.procs if n.startswith(kind)]) + 1}"
        self.log_dir.mkdir(parents=True, exist_ok=True)
        out = open(self.log_dir / f"{name}.log", "ab")  # noqa: SIM115 - lives as long as the process
        cmd = [sys.executable, "-m", "extractor", kind, *args]
        if kind == "sink":
            self.writer_group = self.settings.sink_group_id
        if kind in ("work", "sink") and self.static_membership:  # started again under its name: its partitions back
            group = self.settings.group_id if kind == "work" else self.settings.sink_group_id
            env = {"EXTRACTOR_GROUP_INSTANCE_ID": f"{group}-{name}", **(env or {})}
        if self.monitor is not None:
            port = free_port()
            env = {**(env or {}), "EXTRACTOR_METRICS_PORT": str(port)}
            self.metrics_ports[name] = port
            from services import prometheus

            prometheus.register_target(self.monitor, f"{self.settings.group_id}-{name}", port,
                                       {"process": kind})
        p = subprocess.Popen(cmd, env={**subprocess_env(self.settings), **(env or {})}, stdout=out,
                             stderr=subprocess.STDOUT, cwd=str(REPO_ROOT))
        self.procs[name] = p
        return p

    def scrape(self, name: str, timeout: float = 5) -> str:
        """The /metrics page of a monitored process."""
        import urllib.request

        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_ports[name]}/metrics", timeout=timeout) as r:
            return r.read().decode()

    def unregister_targets(self) -> None:
        if self.monitor is None:
            return
        from services import prometheus

        for name in self.metrics_ports:
            prometheus.unregister_target(self.monitor, f"{self.settings.group_id}-{name}")

    def stop(self, name: str, sig: int = signal.SIGTERM, timeout: float = 60) -> int | None:
        p = self.procs.pop(name)
        if p.poll() is None:
            p.send_signal(sig)
            try:
                p.wait(timeout)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(10)
        return p.returncode

    def stop_all(self) -> None:
        for name in list(self.procs):
            self.stop(name)
        for name in self.created_connectors:
            try:
                connect_request(self.settings, "DELETE", f"/connectors/{name}")
            except OSError as exc:
                log.warning("could not delete connector %s: %s", name, exc)
        self.created_connectors.clear()

    def log_text(self, name: str) -> str:
        p = self.log_dir / f"{name}.log"
        return p.read_text(errors="replace") if p.exists() else ""

    # --- progress ------------------------------------------------------------------------------------
    def group_lag(self, group: str, topic: str) -> int | None:
        """Sum over partitions of (high watermark - committed offset); None when the topic is unknown."""
        from confluent_kafka import Consumer, TopicPartition

        c = Consumer({**self.settings.kafka_common(), "group.id": group, "enable.auto.commit": False})
        try:
            md = c.list_topics(topic, timeout=10).topics.get(topic)
            if md is None or md.error is not None:
                return None
            tps = [TopicPartition(topic, p) for p in md.partitions]
            committed = {tp.partition: tp.offset for tp in c.committed(tps, timeout=10)}
            lag = 0
            for tp in tps:
                _low, high = watermarks(c, tp)
                done = committed.get(tp.partition, -1)
                lag += high - (done if done >= 0 else 0)
            return lag
        finally:
            c.close()

    def wait_caught_up(self, timeout_s: float = 300, sink: bool = True, poll_s: float = 0.5) -> float:
        """Wait until the workers and (``sink``) the MongoDB writer committed everything; returns the seconds
        waited. The writer is the one started (:meth:`start_writer` or ``start("sink")``), else the sink."""
        s = self.settings
        writer_group = self.writer_group or s.sink_group_id
        t0 = time.monotonic()
        while True:
            try:
                lw = self.group_lag(s.group_id, s.input_topic)
                ls = self.group_lag(writer_group, s.processed_topic) if sink else 0
            except Exception as exc:  # broker restarting
                log.debug("lag check failed: %s", exc)
                lw = ls = None
            if lw == 0 and ls == 0:
                return time.monotonic() - t0
            if time.monotonic() - t0 > timeout_s:
                raise TimeoutError(f"pipeline not caught up after {timeout_s:.0f}s (worker lag {lw}, sink lag {ls})")
            time.sleep(poll_s)

    # --- outcome -------------------------------------------------------------------------------------
    def collection(self) -> Any:
        from extractor.stream.store import collection, mongo_client

        return collection(self.settings, mongo_client(self.settings, serverSelectionTimeoutMS=5000))

    def dlq_records(self, start: dict[int, int] | None = None) -> list[tuple[dict[str, str], bytes]]:
        """Every DLQ record (headers, value) from ``start`` offsets (default: the beginning) to the end now."""
        return read_topic(self.settings, self.settings.dlq_topic, start)

    def dlq_end_offsets(self) -> dict[int, int]:
        return end_offsets(self.settings, self.settings.dlq_topic)

    def reconcile(self, produced_ids: Iterable[str], dlq_start: dict[int, int] | None = None) -> dict[str, Any]:
        """Where each produced entry ended: documents, DLQ, both or neither (lost)."""
        ids = set(produced_ids)
        coll = self.collection()
        in_mongo: set[str] = set()
        id_list = sorted(ids)
        for i in range(0, len(id_list), 5000):
            in_mongo.update(d["_id"] for d in coll.find({"_id": {"$in": id_list[i:i + 5000]}}, {"_id": 1}))
        dlq = self.dlq_records(dlq_start)
        dlq_ids = {h.get(m.H_ENTRY_ID) for h, _ in dlq if h.get(m.H_ENTRY_ID)} & ids
        reasons: dict[str, int] = {}
        for h, _ in dlq:
            reasons[h.get(m.H_REASON, "?")] = reasons.get(h.get(m.H_REASON, "?"), 0) + 1
        return {
            "produced": len(ids),
            "documents": len(in_mongo),
            "dead_lettered_entries": len(dlq_ids - in_mongo),
            "in_both": len(dlq_ids & in_mongo),
            "lost": sorted(ids - in_mongo - dlq_ids),
            "dlq_records": len(dlq),
            "dlq_reasons": reasons,
            "collection_count": coll.count_documents({}),
        }


def connect_request(settings: Settings, method: str, path: str, body: Any = None, timeout: float = 30) -> Any:
    """One call to Kafka Connect's REST API; raises OSError (with the server's message) unless it succeeds."""
    import urllib.error
    import urllib.request

    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(settings.connect_url + path, data=data, method=method,
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310 - the configured Connect URL
            raw = resp.read()
    except urllib.error.HTTPError as exc:
        raise OSError(f"Kafka Connect {method} {path}: {exc.code} {exc.read()[:500]!r}") from None
    return json.loads(raw) if raw else None


def wait_connector_running(settings: Settings, name: str, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    state: Any = None
    while time.monotonic() < deadline:
        try:
            state = connect_request(settings, "GET", f"/connectors/{name}/status")
            tasks = state.get("tasks") or []
            if state["connector"]["state"] == "RUNNING" and tasks and all(t["state"] == "RUNNING" for t in tasks):
                return
            if any(t["state"] == "FAILED" for t in tasks):
                raise RuntimeError(f"connector {name} task failed: {tasks[0].get('trace', '')[:2000]}")
        except (OSError, KeyError) as exc:
            state = str(exc)
        time.sleep(0.5)
    raise TimeoutError(f"connector {name} not running after {timeout_s:.0f}s: {state}")


def watermarks(consumer: Any, tp: Any, attempts: int = 40) -> tuple[int, int]:
    """get_watermark_offsets, retried while a fresh or restarting partition has no leader yet."""
    from confluent_kafka import KafkaException

    for i in range(attempts):
        try:
            return consumer.get_watermark_offsets(tp, timeout=10)
        except KafkaException:
            if i == attempts - 1:
                raise
            time.sleep(0.25)
    raise AssertionError("unreachable")


def end_offsets(settings: Settings, topic: str) -> dict[int, int]:
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer({**settings.kafka_common(), "group.id": f"probe-{uuid.uuid4().hex[:8]}"})
    try:
        md = c.list_topics(topic, timeout=10).topics.get(topic)
        if md is None or md.error is not None:
            return {}
        return {p: watermarks(c, TopicPartition(topic, p))[1] for p in md.partitions}
    finally:
        c.close()


def read_topic(settings: Settings, topic: str, start: dict[int, int] | None = None
               ) -> list[tuple[dict[str, str], bytes]]:
    from confluent_kafka import Consumer, TopicPartition

    end = end_offsets(settings, topic)
    start = start or {}
    todo = {p: (start.get(p, 0), e) for p, e in end.items() if start.get(p, 0) < e}
    if not todo:
        return []
    c = Consumer({**settings.kafka_common(), "group.id": f"reader-{uuid.uuid4().hex[:8]}",
                  "enable.auto.commit": False, "auto.offset.reset": "earliest"})
    out = []
    try:
        c.assign([TopicPartition(topic, p, s) for p, (s, _e) in todo.items()])
        remaining = dict(todo)
        deadline = time.monotonic() + 60
        while remaining and time.monotonic() < deadline:
            for msg in c.consume(1000, timeout=0.5):
                if msg.error() is not None:
                    continue
                p = msg.partition()
                if p in remaining and msg.offset() < remaining[p][1]:
                    out.append((m.headers_dict(msg.headers()), msg.value() or b""))
                    if msg.offset() >= remaining[p][1] - 1:
                        remaining.pop(p)
        return out
    finally:
        c.close()


def servers_reachable(settings: Settings) -> bool:
    from confluent_kafka.admin import AdminClient

    try:
        AdminClient(settings.kafka_common()).list_topics(timeout=3)
        return True
    except Exception:
        return False


def ensure_servers(settings: Settings) -> None:
    if servers_reachable(settings):
        return
    print("servers not reachable; running `python -m services up` ...", flush=True)
    from services import manager
    from services.config import ServiceConfig

    manager.up(ServiceConfig.from_env())
