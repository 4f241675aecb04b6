"""Tests of extractor.batch: the Spark backfill on a real local[2] Spark session."""
