"""Document-level hash halves of the dev sets: one half fits the calibration, the other measures its ECE.

Entry ids look like ``bc5cdr-dev-<pmid>-sNN``, ``ncbi-dev-<pmid>-sNN`` and ``chia-dev-<NCT id>-exc-L001``: the
third dash-separated part names the document (abstract or trial), so all sentences of one document fall in the
same half. MACCROBAT passages (``maccrobat_<pmid>_pN``) belong to their case report. Ids without either shape
(synthetic rows) are their own document.
"""

from __future__ import annotations

import hashlib
import re

_PASSAGE = re.compile(r"^(?P<doc>[A-Za-z]+_[^_]+)_p\d+$")


def document_key(entry_id: str) -> str:
    m = _PASSAGE.match(entry_id)
    if m:
        return m.group("doc")
    parts = entry_id.split("-")
    return parts[2] if len(parts) > 3 else entry_id


def calibration_half(entry_id: str) -> bool:
    """True for the half ``scripts/calibrate.py`` fits on; False for the held-out half the suite scores."""
    return hashlib.sha256(document_key(entry_id).encode()).digest()[0] % 2 == 0
