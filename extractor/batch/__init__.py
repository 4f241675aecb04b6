"""Batch processing with Apache Spark: ``python -m extractor backfill`` runs the same chain over files of entries.

Dependencies point one way, like the rest: batch -> stream (wire formats, the MongoDB writer) -> chain.

* :mod:`extractor.batch.records` — executor side, no Spark import: the chain cached once per Python worker
  process, a partition of input records turned into the stream's very documents and dead-letter records.
* :mod:`extractor.batch.inputs` — the producer's CSV, JSON lines and Parquet files as Spark RDDs of records.
* :mod:`extractor.batch.backfill` — the command: Spark session, Parquet output partitioned by date, dead-letter
  Parquet, ``--mongo`` upserts, ``--only-changed`` and the reconciliation summary.
"""
