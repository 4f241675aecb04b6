"""Clinical-text extraction: illnesses and medicines from clinical notes and patients' own words.

Three packages, dependencies pointing one way (tools -> stream -> chain):

* :mod:`extractor.chain` — the extraction chain on plain strings (regex -> lexicon -> NER, then linking, context,
  attributes, calibration); imports no Kafka or MongoDB client.
* :mod:`extractor.stream` — the service around it: message formats, producer, workers, sink, DLQ, topics, metrics.
* :mod:`extractor.tools` — commands for people: extract, lexicon check, generate, bench, demo.

A library user needs one import::

    from extractor import Chain, load_settings
    chain = Chain.from_settings(load_settings())

Both names load on first use, so ``import extractor`` stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["Chain", "Settings", "load_settings", "__version__"]

if TYPE_CHECKING:
    from extractor.chain import Chain
    from extractor.config import Settings, load_settings


def __getattr__(name: str) -> Any:
    if name == "Chain":
        from extractor.chain import Chain

        return Chain
    if name in ("Settings", "load_settings"):
        from extractor import config

        return getattr(config, name)
    raise AttributeError(f"module 'extractor' has no attribute {name!r}")
