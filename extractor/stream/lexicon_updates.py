"""Publishing reviewed lexicon edits to running workers, on this machine and across machines.

The console writes ``reviewed_edits.tsv`` into its own lexicon directory and produces the whole file to the
compacted topic ``lexicon-updates`` (key = file name, value = the file's bytes, header ``lexicon_version``).
Compaction keeps the latest value per key forever, so a worker that starts later still gets it. Every worker
follows the topic (:class:`LexiconFollower`: no consumer group, it reads the one partition from the beginning)
and writes a changed file atomically into its own lexicon directory; the worker's hot reload
(``Chain.reload_if_changed``) then loads it without a restart and the documents it writes carry the new
``lexicon_version``. Only ``reviewed_edits.tsv`` is ever written from the topic, and a file that does not parse
is refused (logged, the worker keeps its lexicons).
"""

from __future__ import annotations

import logging
import os
import tempfile
import uuid
from pathlib import Path
from typing import Any

from extractor.chain.lexicon import REVIEWED_EDITS
from extractor.config import Settings

log = logging.getLogger(__name__)

FOLLOWED_FILES = frozenset({REVIEWED_EDITS})
H_VERSION = "lexicon_version"


def ensure_updates_topic(settings: Settings, timeout_s: float = 30.0) -> str:
    """Create the compacted updates topic (one partition) when missing: ``created`` or ``exists``."""
    from confluent_kafka import KafkaError, KafkaException
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({**settings.kafka_common(), "log_level": 0})
    if settings.lexicon_updates_topic in admin.list_topics(timeout=timeout_s).topics:
        return "exists"
    topic = NewTopic(settings.lexicon_updates_topic, num_partitions=1, replication_factor=1,
                     config={"cleanup.policy": "compact", "min.cleanable.dirty.ratio": "0.1"})
    try:
        admin.create_topics([topic], operation_timeout=timeout_s)[settings.lexicon_updates_topic].result()
    except KafkaException as e:
        if e.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
            raise
    return "created"


def publish_file(settings: Settings, name: str, content: bytes, version: str, timeout_s: float = 30.0) -> None:
    """Produce one file to the updates topic and wait for the broker's acknowledgement (raises on failure)."""
    from confluent_kafka import Producer

    if name not in FOLLOWED_FILES:
        raise ValueError(f"{name} is not a file workers follow")
    ensure_updates_topic(settings)
    errors: list[str] = []
    producer = Producer({**settings.kafka_common(), "enable.idempotence": True, "acks": "all"})
    producer.produce(settings.lexicon_updates_topic, value=content, key=name.encode(),
                     headers=[(H_VERSION, version.encode())],
                     on_delivery=lambda err, _msg: errors.append(str(err)) if err else None)
    left = producer.flush(timeout_s)
    if left or errors:
        raise RuntimeError(f"publishing {name} to {settings.lexicon_updates_topic} failed: "
                           f"{errors[0] if errors else 'not acknowledged in time'}")


def _parses(lexicon_dir: Path, content: bytes) -> str | None:
    """None when the lexicon directory with this reviewed file loads, else the error."""
    from extractor.chain.lexicon import Lexicon, LexiconError
    from extractor.chain.non_entities import NonEntityError, load_reviewed
    with tempfile.TemporaryDirectory(prefix="lexicon-update-") as tmp:
        d = staged_dir(lexicon_dir, content.decode("utf-8"), Path(tmp) / "lexicons")
        try:
            load_reviewed(d / REVIEWED_EDITS)
            Lexicon.load(d, use_cache=False)
        except (LexiconError, NonEntityError, UnicodeDecodeError) as exc:
            return str(exc)
    return None


def staged_dir(lexicon_dir: Path, content: str, into: Path) -> Path:
    """A lexicon directory equal to ``lexicon_dir`` but with ``reviewed_edits.tsv`` = ``content``: every other
    file is a symbolic link (nothing is copied, the real directory is untouched)."""
    into.mkdir(parents=True, exist_ok=True)
    for p in Path(lexicon_dir).iterdir():
        if p.name == REVIEWED_EDITS or p.name.startswith("."):
            continue
        (into / p.name).symlink_to(p.resolve())
    (into / REVIEWED_EDITS).write_text(content, encoding="utf-8")
    return into


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` so that a reader sees the old file or the new one, never a part: a temporary
    file in the same directory, flushed to disk, then renamed over the target."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class LexiconFollower:
    """Follows the updates topic and writes changed files into ``lexicon_dir`` (see the module's docstring)."""

    def __init__(self, settings: Settings, lexicon_dir: Path | None = None, consumer: Any = None) -> None:
        self.settings = settings
        self.lexicon_dir = Path(lexicon_dir or settings.lexicon_dir)
        self._consumer = consumer
        self.applied = 0
        self.refused = 0

    def _open(self) -> Any:
        from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

        conf = {**self.settings.kafka_common(), "group.id": f"lexicon-follower-{uuid.uuid4().hex[:12]}",
                "enable.auto.commit": False, "auto.offset.reset": "earliest", "log_level": 0,
                "topic.metadata.refresh.interval.ms": 10_000}
        consumer = Consumer(conf)
        consumer.assign([TopicPartition(self.settings.lexicon_updates_topic, 0, OFFSET_BEGINNING)])
        return consumer

    def poll(self, timeout_s: float = 0.0, max_messages: int = 100) -> bool:
        """Apply what the topic holds now; True when a file changed here."""
        if self._consumer is None:
            self._consumer = self._open()
        latest: dict[str, bytes] = {}
        for msg in self._consumer.consume(max_messages, timeout=timeout_s):
            if msg.error():
                log.debug("lexicon updates: %s", msg.error())  # e.g. the topic does not exist yet
                continue
            name = (msg.key() or b"").decode("utf-8", "replace")
            if name not in FOLLOWED_FILES or msg.value() is None:
                log.warning("lexicon updates: ignoring a record for %r (only %s are followed)", name,
                            ", ".join(sorted(FOLLOWED_FILES)))
                continue
            latest[name] = msg.value()
        changed = False
        for name, content in latest.items():
            path = self.lexicon_dir / name
            if path.is_file() and path.read_bytes() == content:
                continue
            problem = _parses(self.lexicon_dir, content)
            if problem:
                self.refused += 1
                log.error("lexicon updates: refusing %s: %s", name, problem)
                continue
            write_atomic(path, content.decode("utf-8"))
            self.applied += 1
            changed = True
            log.info("lexicon updates: wrote %s (%d bytes)", name, len(content))
        return changed

    def close(self) -> None:
        if self._consumer is not None:
            self._consumer.close()
            self._consumer = None
