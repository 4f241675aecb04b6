"""A review console wired to an isolated pipeline on the real servers (Kafka, FerretDB), for the console's
integration and browser tests."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from confluent_kafka import Producer

from extractor.config import DEFAULT_LEXICON_DIR, Settings
from extractor.review.edits import render
from extractor.stream import messages as m
from extractor.stream.lexicon_updates import staged_dir
from extractor.stream.topics import ensure_topics
from extractor.tools.harness import Pipeline, isolated_settings

MADE_UP = "kwazzle"  # made up; the NER model guesses at "-itis" words, so none of those


@dataclass
class ConsoleEnv:
    settings: Settings
    pipe: Pipeline
    db: Any
    worker_lexicons: Path
    eval_file: Path

    def produce(self, entries: list[m.Entry]) -> None:
        p = Producer({"bootstrap.servers": self.settings.bootstrap_servers})
        for e in entries:
            p.produce(self.settings.input_topic, m.encode_entry(e), key=e.patient_id)
        assert p.flush(30) == 0


def console_env(services: Any, unique_name: str, tmp_path: Path) -> ConsoleEnv:
    """Settings for one test: its own topics, collections, consumer groups and updates topic; the console's lexicon
    directory and the worker's are two staged copies of the shipped one (symbolic links + an empty reviewed file),
    as if they ran on two hosts."""
    console_lex = staged_dir(DEFAULT_LEXICON_DIR, render([]), tmp_path / "console-lexicons")
    worker_lex = staged_dir(DEFAULT_LEXICON_DIR, render([]), tmp_path / "worker-lexicons")
    s = isolated_settings(unique_name, bootstrap_servers=services.bootstrap_servers, mongo_uri=services.mongo_uri,
                          mongo_database=unique_name.replace("-", "_")[:60], lexicon_dir=console_lex,
                          review_secrets_dir=tmp_path / "secrets", lexicon_reload_s=1.0,
                          reviews_collection=f"{unique_name}-reviews".replace("-", "_"),
                          lexicon_edits_collection=f"{unique_name}-edits".replace("-", "_"),
                          review_audit_collection=f"{unique_name}-audit".replace("-", "_"))
    ensure_topics(s)
    from extractor.stream.store import mongo_client

    db = mongo_client(s)[s.mongo_database]
    eval_file = tmp_path / "eval.csv"
    eval_file.write_text("text,illnesses,medicines\n"
                         f"Pt seen for {MADE_UP}.,{MADE_UP},\n"
                         "Known asthma; takes albuterol.,asthma,albuterol\n")
    return ConsoleEnv(s, Pipeline(s, tmp_path / "logs"), db, worker_lex, eval_file)


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf-token" content="([^"]+)"', html)
    assert found, "no CSRF token on the page"
    return found.group(1)
