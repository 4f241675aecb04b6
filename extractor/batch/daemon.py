"""Spark's Python daemon (``spark.python.daemon.module``) with the extraction chain loaded before it forks workers.

Spark starts one daemon per executor; the daemon forks a Python worker per concurrent task. With PySpark's own
daemon every worker imports spaCy and loads the chain itself: two seconds of CPU and some 360 MB each, once per
core. This daemon loads the chain of the executor's settings (``load_settings()``: its environment) first, then
runs PySpark's :func:`pyspark.daemon.manager`, so the workers it forks start with the chain in memory, shared
copy-on-write (the chain is frozen out of the garbage collector's generations, which would otherwise touch and
copy its pages: :func:`extractor.chain.engine.settle_heap`). A worker whose backfill asks for other settings (a
``--config`` naming another lexicon, say) loads its own, as before (:func:`extractor.batch.records.chain_for`).

``EXTRACTOR_BACKFILL_PRELOAD_CHAIN=false`` in the executor's environment turns the preload off; a preload that
fails is logged on stderr and leaves the workers to load (and report) the chain themselves.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import sys
import time

log = logging.getLogger(__name__)

WORKER_MODULES = ("pyarrow", "pyarrow.ipc", "pyarrow.parquet", "cloudpickle", "pyspark.worker",
                  "extractor.batch.inputs", "extractor.batch.staging")


def preload() -> bool:
    """Load the chain of this process's settings into :mod:`extractor.batch.records`' cache; True when it did."""
    t0 = time.monotonic()
    try:
        # stdout is the daemon's channel to the JVM (it writes its port there): nothing else may go to it
        with contextlib.redirect_stdout(sys.stderr):
            from extractor.batch import records as rec
            from extractor.config import load_settings

            settings = load_settings()
            if not settings.backfill_preload_chain:
                return False
            # what each forked worker would import before its first batch (measured: pyarrow and its IPC reader,
            # cloudpickle for the task, the backfill's own modules), imported once here and shared; before the
            # chain, whose load freezes the heap out of the garbage collector
            from extractor.chain.engine import collector_paused

            with collector_paused():  # the imports' objects all stay alive: no collection walks them meanwhile
                for name in WORKER_MODULES:
                    importlib.import_module(name)
            rec.chain_for(rec.settings_payload(settings))
    except Exception as exc:  # noqa: BLE001 - the workers load the chain themselves and report the error
        print(f"extractor daemon: chain not preloaded ({type(exc).__name__}: {exc})", file=sys.stderr)
        return False
    log.debug("chain preloaded in the Python daemon in %.1fs", time.monotonic() - t0)
    return True


def main() -> None:
    preload()
    from pyspark import daemon

    daemon.manager()


if __name__ == "__main__":
    main()
