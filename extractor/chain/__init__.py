"""The extraction chain: finds illnesses and medicines in a plain string, with no Kafka or MongoDB in sight.

Stages (each a :class:`~extractor.chain.stage.Stage`): :mod:`.rules` (regex), :mod:`.lexicon` (exact + fuzzy, with
:mod:`.lexicon_index`), :mod:`.ner` (spaCy, with :mod:`.ner_features`). Post-steps: :mod:`.linking`,
:mod:`.abbreviations`, :mod:`.context`, :mod:`.attributes`, :mod:`.calibration`. :mod:`.engine` runs them all;
:mod:`.model` is the data model they share.
"""

from extractor.chain.engine import Chain
from extractor.chain.model import ILLNESS, MEDICINE, Entity, ExtractionError, ExtractionResult

__all__ = ["Chain", "Entity", "ExtractionError", "ExtractionResult", "ILLNESS", "MEDICINE"]
