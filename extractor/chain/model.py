"""The data model every stage of the extraction chain shares.

Nothing here knows about Kafka, MongoDB or spaCy: stages produce :class:`Entity` objects, the chain
assembles an :class:`ExtractionResult`, and the worker serialises it with :meth:`ExtractionResult.to_dict`.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from operator import attrgetter
from typing import Any, Literal

Label = Literal["ILLNESS", "MEDICINE"]
Method = Literal["regex", "lexicon", "ner"]
Status = Literal["resolved", "partial", "unresolved"]
Experiencer = Literal["patient", "family", "other"]

ILLNESS: Label = "ILLNESS"
MEDICINE: Label = "MEDICINE"
METHODS: tuple[Method, ...] = ("regex", "lexicon", "ner")

# Code systems an entity's code may come from.
CODE_SYSTEMS = ("ICD-10-CM", "DOID", "MeSH", "DrugBank", "UNII", "MedlinePlus", "HPO")


@dataclass(slots=True)
class Entity:
    """One illness or medicine mention found in a text.

    ``start``/``end`` are Python character offsets into the original text (end exclusive), so
    ``text[start:end] == surface`` always holds.

    Treat it as immutable: change an entity by making a copy (:meth:`with_`). It is not ``frozen``: a frozen
    dataclass sets each of its 24 fields through ``object.__setattr__``, 2.4 µs per entity against 0.3, and the
    chain makes a few copies of every entity (a sixth of its CPU on short entries, py-spy in bench pipeline).
    """

    surface: str
    start: int
    end: int
    label: Label
    method: Method
    source: str  # the rule id, lexicon "file:line", or model name that matched
    confidence: float  # calibrated probability that the entity is correct, in [0, 1]
    canonical: str | None = None
    code: str | None = None  # e.g. "J11.1", "DOID:8469", "DB01050", "D007052"
    code_system: str | None = None  # one of CODE_SYSTEMS
    negated: bool = False
    hypothetical: bool = False
    # medicine attributes, when the text gives them ("500 mg", "by mouth", "twice daily")
    dose: str | None = None
    route: str | None = None
    frequency: str | None = None
    # raw score before calibration and anything else a stage wants to explain itself with
    score: float | None = None
    details: dict[str, Any] = field(default_factory=dict)
    # assertion (extractor/chain/context.py): past history ("h/o", "was on", "PMH:"), whose condition it is,
    # and for medicines: stopped ("d/c'd", "stopped"; not a negation) or listed as an allergy ("Allergies:")
    historical: bool = False
    experiencer: Experiencer = "patient"
    discontinued: bool = False
    allergy: bool = False
    section: str | None = None  # the section header's name ("family_history") when the entity is in one
    # not certain: suspected, possible, "consistent with", "could not be excluded", a differential diagnosis
    uncertain: bool = False
    # medicines only: withheld for now ("apixaban held", "holding metformin"); not stopped for good
    held: bool = False

    def with_(self, **changes: Any) -> Entity:
        """A copy with some fields changed (``dataclasses.replace``, without its per-call field introspection:
        the chain makes a few copies of every entity, so this is on the hot path)."""
        values = list(_entity_values(self))
        for name, value in changes.items():
            i = _ENTITY_INDEX.get(name)
            if i is None:
                raise TypeError(f"Entity has no field {name!r}")
            values[i] = value
        return Entity(*values)

    @property
    def asserted(self) -> bool:
        """Present in this patient: not negated, not hypothetical, not someone else's, not an allergy."""
        return not (self.negated or self.hypothetical or self.allergy) and self.experiencer == "patient"

    @property
    def name(self) -> str:
        """Canonical name when known, else the surface text."""
        return self.canonical or self.surface

    def overlaps(self, other: Entity) -> bool:
        return self.start < other.end and other.start < self.end

    def to_dict(self) -> dict[str, Any]:
        # written out rather than dataclasses.asdict: asdict deep-copies, and this runs for every entity a
        # worker publishes (it was a fifth of the worker's time)
        d: dict[str, Any] = {
            "text": self.surface,
            "start": self.start,
            "end": self.end,
            "label": self.label,
            "method": self.method,
            "source": self.source,
            "confidence": self.confidence,
            "canonical": self.canonical,
            "code": self.code,
            "code_system": self.code_system,
            "negated": self.negated,
            "hypothetical": self.hypothetical,
            "historical": self.historical,
            "uncertain": self.uncertain,
            "experiencer": self.experiencer,
        }
        if self.label == MEDICINE:
            d["dose"], d["route"], d["frequency"] = self.dose, self.route, self.frequency
            d["discontinued"], d["allergy"], d["held"] = self.discontinued, self.allergy, self.held
        if self.section is not None:
            d["section"] = self.section
        d["score"] = self.score
        if self.details:
            d["details"] = {k: list(v) if isinstance(v, (list, tuple)) else v for k, v in self.details.items()}
        return d



_ENTITY_FIELDS = tuple(f.name for f in fields(Entity))
_ENTITY_INDEX = {name: i for i, name in enumerate(_ENTITY_FIELDS)}
_entity_values = attrgetter(*_ENTITY_FIELDS)

@dataclass(slots=True)
class ExtractionResult:
    """What the chain returns for one text."""

    illnesses: list[Entity]
    medicines: list[Entity]
    status: Status
    reason: str | None = None  # why the result is unresolved / partial
    stages_run: tuple[str, ...] = ()
    # lab analytes and body substances (creatinine, glucose, HBsAg): found, but not medicines
    # (lexicons/non_entities.tsv); never in `medicines` nor the primary `medicine`
    substances: list[Entity] = field(default_factory=list)

    @property
    def entities(self) -> list[Entity]:
        return sorted(self.illnesses + self.medicines, key=lambda e: (e.start, e.end))

    @staticmethod
    def _primary(entities: list[Entity]) -> Entity | None:
        """The entry's primary entity: the most confident asserted one (see :attr:`Entity.asserted`), current
        (not historical, not discontinued, not held) before past, certain before uncertain, first in text on ties."""
        affirmed = [e for e in entities if e.asserted]
        if not affirmed:
            return None
        return max(
            affirmed,
            key=lambda e: (not (e.historical or e.discontinued or e.held), not e.uncertain, e.confidence, -e.start),
        )

    @property
    def illness(self) -> str | None:
        """The reference design's single ``illness`` field."""
        e = self._primary(self.illnesses)
        return e.name if e else None

    @property
    def medicine(self) -> str | None:
        """The reference design's single ``medicine`` field."""
        e = self._primary(self.medicines)
        return e.name if e else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "illness": self.illness,
            "medicine": self.medicine,
            "illnesses": [e.to_dict() for e in self.illnesses],
            "medicines": [e.to_dict() for e in self.medicines],
            "status": self.status,
            "reason": self.reason,
            "stages_run": list(self.stages_run),
            "substances": [e.to_dict() for e in self.substances],
        }


class ExtractionError(ValueError):
    """Typed error for input the chain refuses (e.g. not a string)."""
