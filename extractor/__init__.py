"""Clinical-text extraction: illnesses and medicines from short clinical notes.

The chain (``extractor.chain``) runs on a plain string; Kafka and MongoDB live only in the worker modules.
"""

__version__ = "0.1.0"
