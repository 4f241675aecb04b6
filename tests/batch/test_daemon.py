"""The Python daemon that loads the chain before Spark forks its workers (extractor.batch.daemon)."""

from __future__ import annotations

from typing import Any

import pytest

from extractor.batch import daemon
from extractor.batch import records as rec


def test_preload_puts_the_settings_chain_in_the_workers_cache(capfd: pytest.CaptureFixture[str]) -> None:
    assert daemon.preload() is True
    assert rec.loaded_chains() >= 1
    assert capfd.readouterr().out == ""  # stdout is the daemon's channel to the JVM


def test_preload_failure_is_reported_on_stderr_and_not_fatal(monkeypatch: pytest.MonkeyPatch,
                                                              capfd: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("EXTRACTOR_STAGES", '["nonsense"]')
    assert daemon.preload() is False
    out = capfd.readouterr()
    assert out.out == "" and "chain not preloaded" in out.err


def test_preload_can_be_turned_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EXTRACTOR_BACKFILL_PRELOAD_CHAIN", "false")
    assert daemon.preload() is False


def test_spark_workers_start_with_the_chain(spark: Any) -> None:
    """A fresh Python worker of the session's daemon holds the chain before any backfill task asks for it."""
    assert spark.conf.get("spark.python.daemon.module") == "extractor.batch.daemon"
    counts = spark.sparkContext.parallelize(range(2), 2).map(
        lambda _: __import__("extractor.batch.records", fromlist=["x"]).loaded_chains()).collect()
    assert min(counts) >= 1
