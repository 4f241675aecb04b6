"""The chain as the stream runs it: load it (or a ``module:callable`` factory), read its versions, and run a
batch so that one entry that breaks the chain is isolated instead of failing its whole batch."""

from __future__ import annotations

import importlib
import logging
from typing import Any

import extractor
from extractor.config import Settings

log = logging.getLogger(__name__)


def load_chain(settings: Settings, factory: str | None = None) -> Any:
    """The extraction chain: ``extractor.chain.Chain.from_settings`` or ``module:callable(settings)``."""
    if factory:
        mod, _, attr = factory.partition(":")
        return getattr(importlib.import_module(mod), attr)(settings)
    from extractor.chain import Chain

    return Chain.from_settings(settings)


def chain_versions(chain: Any) -> tuple[str, str]:
    """(extractor_version, lexicon_version) of a chain; ``chain.version`` covers both when no finer field."""
    version = str(getattr(chain, "version", "") or "")
    extractor_version = str(getattr(chain, "extractor_version", None) or extractor.__version__)
    lexicon_version = str(getattr(chain, "lexicon_version", None) or version or "unknown")
    return extractor_version, lexicon_version


def extract_isolating(chain: Any, texts: list[str]) -> list[Any]:
    """``chain.extract_many``; if the batch call raises, retry one by one so that only the entry that breaks
    the chain is dead-lettered (its slot holds the exception)."""
    try:
        results = chain.extract_many(texts)
        if len(results) != len(texts):
            raise RuntimeError(f"chain returned {len(results)} results for {len(texts)} texts")
        return list(results)
    except Exception as exc:
        log.warning("batch extraction failed (%s); isolating per entry", type(exc).__name__)
    out: list[Any] = []
    for t in texts:
        try:
            out.append(chain.extract_many([t])[0])
        except Exception as exc:  # noqa: BLE001 - the exception becomes the DLQ record's error_class
            out.append(exc)
    return out
