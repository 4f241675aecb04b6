"""Shared fixtures. ``services`` brings the real local servers up (same code as ``python -m services up``),
or reuses the running ones, once per session; only tests that ask for it (the integration tests) pay for it.

Servers started here keep running after the session (the next run reuses them; ``make down`` stops them),
unless ``SERVICES_STOP_AFTER_TESTS=1``.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

from extractor.config import Settings
from services.config import ServiceConfig
from services.manager import Endpoints


@pytest.fixture(scope="session")
def services_config() -> ServiceConfig:
    return ServiceConfig.from_env()


@pytest.fixture(scope="session")
def services(services_config: ServiceConfig) -> Iterator[Endpoints]:
    """Addresses of the running Kafka, FerretDB and Connect; fails (never skips) if one cannot start."""
    from services import manager

    was_running = {
        name: mod.process(services_config).pid() is not None for name, mod in manager.SERVICES.items()
    }
    try:
        endpoints = manager.up(services_config)
    except Exception as e:  # noqa: BLE001 - turn any start failure into a loud test failure
        pytest.fail(
            f"local servers could not start (see `python -m services logs NAME`):\n{e}", pytrace=False
        )
    yield endpoints
    # the topics of this run's tests (unique_name: "it-..."): a broker that keeps them all restarts slower
    from extractor.config import load_settings
    from extractor.tools.harness import delete_topics

    delete_topics(load_settings(bootstrap_servers=endpoints.bootstrap_servers), "it-")
    if os.environ.get("SERVICES_STOP_AFTER_TESTS") == "1":
        started_here = [name for name, running in was_running.items() if not running]
        if started_here:
            manager.down(services_config, started_here)


@pytest.fixture
def unique_name(request: pytest.FixtureRequest) -> str:
    """A fresh name (topic, group, collection) per test: tests never see each other's data."""
    base = "".join(c if c.isalnum() else "-" for c in request.node.name)[:40]
    return f"it-{base}-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="session")
def service_settings(services: Endpoints) -> Settings:
    """The extractor's settings (defaults + EXTRACTOR_* environment) pointed at the running local servers."""
    from extractor.config import load_settings

    return load_settings(bootstrap_servers=services.bootstrap_servers, mongo_uri=services.mongo_uri)


@pytest.fixture(scope="session")
def spark() -> Iterator[object]:
    """Fails (never skips) when Spark cannot start: pyspark and Java 17 are real dependencies."""
    from extractor.batch.backfill import spark_session

    session = spark_session("local[2]", app_name="extractor-tests", conf={
        "spark.ui.enabled": "false", "spark.sql.shuffle.partitions": "2", "spark.driver.memory": "1g"})
    yield session
    session.stop()
