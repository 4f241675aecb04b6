"""Evaluation harness: ``python -m evaluation labelled.csv``."""
