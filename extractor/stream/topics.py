"""``python -m extractor topics``: create the project's Kafka topics (idempotent) and list them.

The input and processed topics get ``input_partitions`` partitions (the worker group's parallelism);
the dead-letter topic gets one. A topic that already exists with fewer partitions than planned is grown to
the planned count (``grown``, with a warning: Kafka never shrinks a topic, and a key written before maps to
another partition after, so records of one patient across the change may be processed out of order, which
the documents, keyed by entry id, do not mind); one with more is left as it is.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Mapping
from typing import Any

from extractor.config import Settings, load_settings

log = logging.getLogger(__name__)


def _admin_conf(settings: Settings) -> dict[str, Any]:
    conf = settings.kafka_common()
    if not log.isEnabledFor(logging.DEBUG):
        conf["log_level"] = 0  # the failure is reported once, not as one librdkafka line per retry
    return conf


def topic_plan(settings: Settings) -> dict[str, int]:
    """Topic name -> partitions wanted, from the settings."""
    return {
        settings.input_topic: settings.input_partitions,
        settings.processed_topic: settings.input_partitions,
        settings.dlq_topic: 1,
    }


def ensure_topics(
    settings: Settings,
    replication_factor: int = 1,
    extra: Mapping[str, int] | None = None,
    timeout_s: float = 30.0,
) -> dict[str, str]:
    """Create the project's topics (plus ``extra``: name -> partitions) when missing.

    Returns topic -> ``"created"``, ``"grown"`` (it had fewer partitions than planned) or ``"exists"``.
    Raises ``RuntimeError`` on any other failure (broker unreachable, not authorised, invalid replication factor).
    """
    from confluent_kafka import KafkaError, KafkaException
    from confluent_kafka.admin import AdminClient, NewPartitions, NewTopic

    plan = {**topic_plan(settings), **(extra or {})}
    admin = AdminClient(_admin_conf(settings))
    try:
        topics = admin.list_topics(timeout=timeout_s).topics
    except KafkaException as e:
        raise RuntimeError(f"cannot reach Kafka at {settings.bootstrap_servers}: {e}") from e
    existing = set(topics)
    result = {name: "exists" for name in plan if name in existing}
    fewer = {n: len(topics[n].partitions) for n in plan if n in existing and len(topics[n].partitions) < plan[n]}
    if fewer:
        futures = admin.create_partitions([NewPartitions(n, plan[n]) for n in fewer],
                                          operation_timeout=timeout_s, request_timeout=timeout_s)
        for name, fut in futures.items():
            try:
                fut.result()
            except KafkaException as e:
                raise RuntimeError(f"growing topic {name} to {plan[name]} partitions failed: {e.args[0]}") from e
            result[name] = "grown"
            log.warning("grew topic %s from %d to %d partitions (keys written before may map to other "
                        "partitions now)", name, fewer[name], plan[name])
    missing = [
        NewTopic(n, num_partitions=p, replication_factor=replication_factor)
        for n, p in plan.items()
        if n not in existing
    ]
    if missing:
        futures = admin.create_topics(missing, operation_timeout=timeout_s, request_timeout=timeout_s)
        for name, fut in futures.items():
            try:
                fut.result()
                result[name] = "created"
                log.info("created topic %s (%d partitions)", name, plan[name])
            except KafkaException as e:
                err = e.args[0]
                if isinstance(err, KafkaError) and err.code() == KafkaError.TOPIC_ALREADY_EXISTS:
                    result[name] = "exists"
                else:
                    raise RuntimeError(f"creating topic {name} failed: {err}") from e
    return {name: result[name] for name in plan}


def describe_topics(settings: Settings, timeout_s: float = 10.0) -> dict[str, int]:
    """All non-internal topics -> partition count."""
    from confluent_kafka.admin import AdminClient

    md = AdminClient(_admin_conf(settings)).list_topics(timeout=timeout_s)
    return {n: len(t.partitions) for n, t in sorted(md.topics.items()) if not n.startswith("__")}


def configure_parser(p: argparse.ArgumentParser) -> None:
    p.add_argument("--bootstrap-servers", default=None, help="override EXTRACTOR_BOOTSTRAP_SERVERS")
    p.add_argument(
        "--partitions",
        type=int,
        default=None,
        help="partitions of the input and processed topics (default: EXTRACTOR_INPUT_PARTITIONS, 3)",
    )
    p.add_argument(
        "--replication-factor", type=int, default=1, help="replication factor of new topics (default 1)"
    )
    p.add_argument("--list", action="store_true", help="only list the existing topics and their partitions")
    p.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for the broker (default 30)")


def run(args: argparse.Namespace) -> int:
    settings = load_settings(
        getattr(args, "config", None),
        bootstrap_servers=args.bootstrap_servers,
        input_partitions=args.partitions,
    )
    try:
        if not args.list:
            for name, state in ensure_topics(
                settings, args.replication_factor, timeout_s=args.timeout
            ).items():
                print(f"{name}\t{state}")
        else:
            for name, parts in describe_topics(settings, args.timeout).items():
                print(f"{name}\t{parts} partitions")
    except Exception as e:  # noqa: BLE001 - one clear line for the CLI user
        log.error("%s", e)
        return 1
    return 0
