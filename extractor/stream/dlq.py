"""``python -m extractor dlq inspect|replay``: look into the dead-letter topic and give entries a second chance.

``inspect`` reads the whole DLQ (without committing anything) and reports record counts by stage and reason,
and the number of entries **outstanding** — see ``schemas/dlq-headers.md`` for the exact rule: every
non-replayable record, plus every replayable record at or beyond the replay group's committed offset,
de-duplicated by entry id. Samples show headers only; ``--show-text`` adds the value (patient text!).

``replay`` re-runs dead-lettered *entries* (stage ``extract``: unresolved / chain error) through the current
chain — e.g. after a lexicon edit. What resolves now goes to processed-entries; what still fails is appended to
the DLQ again with ``replay_count`` + 1 and ``replay_of`` = its old coordinates. The replay consumer group commits
its offsets after those writes are acknowledged, so each DLQ record is replayed once; a run stops at the end
offsets it saw at start, so records it appends are left for the next run.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

from extractor.config import Settings, load_settings
from extractor.stream import messages as m
from extractor.stream.extraction import chain_versions, extract_isolating, load_chain
from extractor.stream.kafka import (
    DeliveryTracker,
    StopFlag,
    batch_offsets,
    commit_offsets,
    flush_all,
    produce,
    producer_config,
    seek_back,
)

log = logging.getLogger(__name__)


def replay_group(settings: Settings) -> str:
    return settings.dlq_replay_group_id or f"{settings.group_id}-dlq-replay"


def _consumer(settings: Settings, group_id: str) -> Any:
    from confluent_kafka import Consumer

    return Consumer({**settings.kafka_common(), "group.id": group_id, "enable.auto.commit": False,
                     "enable.auto.offset.store": False, "auto.offset.reset": "earliest",
                     "fetch.wait.max.ms": 50})


def _partitions(consumer: Any, topic: str) -> list[int]:
    md = consumer.list_topics(topic, timeout=10)
    t = md.topics.get(topic)
    if t is None or t.error is not None:
        return []
    return sorted(t.partitions)


def _ranges(settings: Settings, group_id: str, consumer: Any) -> dict[int, tuple[int, int, int]]:
    """partition -> (low watermark, replay group's committed offset (or low), high watermark)."""
    from confluent_kafka import TopicPartition

    topic = settings.dlq_topic
    parts = _partitions(consumer, topic)
    committed = {tp.partition: tp.offset for tp in consumer.committed(
        [TopicPartition(topic, p) for p in parts], timeout=10)} if parts else {}
    out = {}
    for p in parts:
        low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
        c = committed.get(p, -1001)
        out[p] = (low, c if c >= 0 else low, high)
    return out


def _read(consumer: Any, topic: str, start: dict[int, int], end: dict[int, int], batch: int = 500):
    """Yield batches of records in [start, end) per partition."""
    from confluent_kafka import TopicPartition

    todo = {p for p in start if start[p] < end[p]}
    if not todo:
        return
    consumer.assign([TopicPartition(topic, p, start[p]) for p in todo])
    idle_since = time.monotonic()
    while todo:
        msgs = consumer.consume(num_messages=batch, timeout=0.5)
        out = []
        for msg in msgs:
            if msg.error() is not None:
                continue
            p = msg.partition()
            if p in todo and msg.offset() < end[p]:
                out.append(msg)
            if msg.offset() >= end[p] - 1:
                todo.discard(p)
        if out:
            idle_since = time.monotonic()
            yield out
        elif time.monotonic() - idle_since > 30:  # records deleted by retention, or broker gone
            log.warning("no records for 30s with %d partitions unfinished; stopping", len(todo))
            return


def _identity(h: dict[str, str], msg: Any) -> str:
    if h.get(m.H_ENTRY_ID):
        return "entry:" + h[m.H_ENTRY_ID]
    if h.get(m.H_SOURCE_FILE) and h.get(m.H_SOURCE_ROW) and h.get(m.H_STAGE) == m.STAGE_PRODUCE:
        return f"row:{h[m.H_SOURCE_FILE]}:{h[m.H_SOURCE_ROW]}"
    if h.get(m.H_SRC_TOPIC):
        return f"msg:{h[m.H_SRC_TOPIC]}:{h.get(m.H_SRC_PARTITION)}:{h.get(m.H_SRC_OFFSET)}"
    return f"dlq:{msg.partition()}:{msg.offset()}"


@dataclass
class Inspection:
    topic: str
    records: int = 0
    by_reason: dict[str, int] = field(default_factory=dict)
    by_stage: dict[str, int] = field(default_factory=dict)
    replayable_records: int = 0
    replayed_records: int = 0  # replayable records before the replay group's committed offset
    outstanding: int = 0
    outstanding_by_reason: dict[str, int] = field(default_factory=dict)
    outstanding_entry_ids: list[str] = field(default_factory=list)
    samples: list[dict[str, Any]] = field(default_factory=list)


def inspect(settings: Settings, *, samples: int = 5, show_text: bool = False) -> Inspection:
    consumer = _consumer(settings, replay_group(settings))
    try:
        ranges = _ranges(settings, replay_group(settings), consumer)
        res = Inspection(settings.dlq_topic)
        by_reason: Counter[str] = Counter()
        by_stage: Counter[str] = Counter()
        outstanding: dict[str, str] = {}
        for msgs in _read(consumer, settings.dlq_topic, {p: r[0] for p, r in ranges.items()},
                          {p: r[2] for p, r in ranges.items()}):
            for msg in msgs:
                h = m.headers_dict(msg.headers())
                reason, stage = h.get(m.H_REASON, "?"), h.get(m.H_STAGE, "?")
                res.records += 1
                by_reason[reason] += 1
                by_stage[stage] += 1
                replayable = stage in m.REPLAYABLE_STAGES
                if replayable:
                    res.replayable_records += 1
                done = replayable and msg.offset() < ranges[msg.partition()][1]
                if done:
                    res.replayed_records += 1
                else:
                    outstanding[_identity(h, msg)] = reason
                if len(res.samples) < samples:
                    sample: dict[str, Any] = {"partition": msg.partition(), "offset": msg.offset(),
                                              "key": (msg.key() or b"").decode("utf-8", "replace"),
                                              "headers": h, "value_bytes": len(msg.value() or b"")}
                    if show_text:
                        sample["value"] = (msg.value() or b"").decode("utf-8", "replace")
                    res.samples.append(sample)
        res.by_reason = dict(by_reason)
        res.by_stage = dict(by_stage)
        res.outstanding = len(outstanding)
        res.outstanding_by_reason = dict(Counter(outstanding.values()))
        res.outstanding_entry_ids = sorted(k[6:] for k in outstanding if k.startswith("entry:"))
        return res
    finally:
        consumer.close()


@dataclass
class ReplayStats:
    read: int = 0
    replayed: int = 0
    resolved: int = 0
    still_failing: int = 0
    not_replayable: int = 0
    resolved_entry_ids: list[str] = field(default_factory=list)


def replay(settings: Settings, chain: Any, *, stop: StopFlag | None = None, producer: Any = None) -> ReplayStats:
    from confluent_kafka import Producer


    stop = stop if stop is not None else StopFlag()
    group = replay_group(settings)
    consumer = _consumer(settings, group)
    producer = producer or Producer(producer_config(settings, **{"linger.ms": 5}))
    tracker = DeliveryTracker("replay")
    ev, lv = chain_versions(chain)
    cv = str(getattr(chain, "version", "") or lv)
    stats = ReplayStats()
    try:
        ranges = _ranges(settings, group, consumer)
        log.info("replay group=%s ranges=%s", group, {p: (r[1], r[2]) for p, r in ranges.items()})
        for msgs in _read(consumer, settings.dlq_topic, {p: r[1] for p, r in ranges.items()},
                          {p: r[2] for p, r in ranges.items()}, batch=settings.batch_size):
            tracker.reset()
            todo: list[tuple[Any, dict[str, str], m.Entry]] = []
            for msg in msgs:
                stats.read += 1
                h = m.headers_dict(msg.headers())
                if h.get(m.H_STAGE) not in m.REPLAYABLE_STAGES:
                    stats.not_replayable += 1
                    continue
                try:
                    todo.append((msg, h, m.decode_entry(msg.value(), max_text_chars=settings.max_text_chars)))
                except m.PoisonMessage:
                    stats.not_replayable += 1
            results = extract_isolating(chain, [e.text for _, _, e in todo]) if todo else []
            resolved_ids = []
            for (msg, h, entry), result in zip(todo, results, strict=True):
                stats.replayed += 1
                if not isinstance(result, Exception) and result.status != "unresolved":
                    doc = m.build_processed(entry, result.to_dict(), extractor_version=ev, lexicon_version=lv,
                                            chain_version=cv)
                    doc["replayed_from"] = f"{settings.dlq_topic}:{msg.partition()}:{msg.offset()}"
                    produce(producer, settings.processed_topic, m.encode_json(doc), entry.entry_id, None,
                            tracker)
                    resolved_ids.append(entry.entry_id)
                    continue
                err_cls = type(result).__name__ if isinstance(result, Exception) else "Unresolved"
                reason = m.R_EXTRACT_ERROR if isinstance(result, Exception) else m.R_UNRESOLVED
                count = int(h.get(m.H_REPLAY_COUNT) or 0) + 1
                headers = m.dlq_headers(
                    reason=reason, stage=m.STAGE_EXTRACT, error_class=err_cls, original=msg.headers(),
                    entry_id=entry.entry_id, source_topic=h.get(m.H_SRC_TOPIC),
                    source_partition=h.get(m.H_SRC_PARTITION), source_offset=h.get(m.H_SRC_OFFSET),
                    extractor_version=ev, lexicon_version=lv, replay_count=count,
                    replay_of=f"{msg.partition()}:{msg.offset()}",
                )
                produce(producer, settings.dlq_topic, msg.value(), entry.entry_id, headers, tracker)
                stats.still_failing += 1
            first, nxt = batch_offsets(msgs)
            flush_all(producer)
            if tracker.failed:
                raise RuntimeError(f"replay: {tracker.failed} deliveries failed ({tracker.last_error}); "
                                   "nothing committed for this batch, run replay again")
            stats.resolved += len(resolved_ids)
            stats.resolved_entry_ids.extend(resolved_ids)
            if not commit_offsets(consumer, nxt, "replay", attempts=10):
                seek_back(consumer, first)
                raise RuntimeError("replay: offsets could not be committed; run replay again (idempotent)")
            if stop:
                break
    finally:
        flush_all(producer)
        consumer.close()
    log.info("replay done read=%d replayed=%d resolved=%d still_failing=%d not_replayable=%d", stats.read,
             stats.replayed, stats.resolved, stats.still_failing, stats.not_replayable)
    return stats


def configure_parser(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="dlq_command", required=True, metavar="inspect|replay")
    p = sub.add_parser("inspect", help="counts by reason, outstanding entries, samples (no text by default)")
    p.add_argument("--samples", type=int, default=5)
    p.add_argument("--show-text", action="store_true", help="include record values (PATIENT TEXT)")
    p.add_argument("--json", dest="json_path", default=None, help="write the report as JSON here ('-' = stdout)")
    r = sub.add_parser("replay", help="re-run dead-lettered entries through the current chain")
    r.add_argument("--chain-factory", default=None, help=argparse.SUPPRESS)
    r.add_argument("--json", dest="json_path", default=None)
    for q in (p, r):
        q.add_argument("--dlq-topic", default=None)
        q.add_argument("--group-id", default=None, help="worker group; the replay group is <group>-dlq-replay")
    r.add_argument("--processed-topic", default=None)


def run(args: argparse.Namespace) -> int:
    settings = load_settings(args.config, dlq_topic=args.dlq_topic, group_id=args.group_id,
                             processed_topic=getattr(args, "processed_topic", None))
    log.info("dlq settings %s", json.dumps(settings.redacted(), sort_keys=True))
    if args.dlq_command == "inspect":
        res = inspect(settings, samples=args.samples, show_text=args.show_text)
        d = asdict(res)
        if args.json_path:
            text = json.dumps(d, indent=2, ensure_ascii=False)
            if args.json_path == "-":
                print(text)
                return 0
            with open(args.json_path, "w", encoding="utf-8") as fh:
                fh.write(text)
        print(f"DLQ {res.topic}: {res.records} records, {res.replayable_records} replayable "
              f"({res.replayed_records} already replayed); outstanding entries: {res.outstanding}")
        for reason, n in sorted(res.by_reason.items(), key=lambda kv: -kv[1]):
            print(f"  {reason:<20} {n:>8} records  {res.outstanding_by_reason.get(reason, 0):>8} outstanding")
        for s in res.samples:
            print("  sample", json.dumps(s, ensure_ascii=False), file=sys.stdout)
        return 0
    stop = StopFlag().install()
    chain = load_chain(settings, args.chain_factory)
    st = replay(settings, chain, stop=stop)
    print(f"replayed {st.replayed} entries: resolved={st.resolved} still_failing={st.still_failing} "
          f"(not replayable: {st.not_replayable})")
    if args.json_path:
        d = asdict(st)
        with open(args.json_path, "w", encoding="utf-8") as fh:
            json.dump(d, fh, indent=2)
    return 0


