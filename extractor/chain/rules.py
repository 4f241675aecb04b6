"""Regex heuristics: the chain's first stage, driven by the editable file ``lexicons/rules.tsv``.

Patterns run on Google RE2 (``google-re2``), whose matching time is linear in the text: a pattern cannot
backtrack catastrophically, so every entry is processed in bounded time whatever an editor writes.
Rules are validated when loaded; an error names the file and the line.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import re2

from extractor.chain.model import ILLNESS, MEDICINE, Entity, Label, Method
from extractor.chain.segments import SpanIndex

RULES_FILE = "rules.tsv"
RULE_COLUMNS = ("id", "label", "pattern", "prior", "description")

# Macros an editor may use in a pattern (see the header of rules.tsv).
_WORD = r"[A-Za-z0-9][A-Za-z0-9'/\-]{0,39}"
_FIRST = r"[A-Za-z][A-Za-z0-9'/\-]{0,39}"
_LINKING = (
    "and|or|with|without|for|since|but|on|in|at|after|from|which|that|was|were|is|are|has|had|who|"
    "due|per|to|by|as|while|when|then|now|again|today|yesterday|x|"
    # a term ends before a time, a cause or a qualifier: "stroke within 6 months", "thrombocytopenia induced by",
    # "osteoarthritis made worse", "delirium during the prior admission", "pneumonia secondary to aspiration"
    "within|between|over|during|before|prior|until|unless|except|including|requiring|following|despite|"
    "induced|made|secondary|associated|related|caused|resulting|whose|like|"
    # a course after the term: "alcoholic cirrhosis complicated by ascites", "hypertension managed with diet"
    "complicated|managed|"
    # a time after the term: "tested positive for COVID last week", "pneumonia 2 weeks ago", "recently"
    "last|ago|recently|earlier"
)
# a number with a unit ends a term ("ibuprofen 400 mg"); a bare number does not ("type 2 diabetes")
_QUANTITY = (
    r"\d+(?:\.\d+)?\s*(?:mg|mcg|µg|g|ml|units?|iu|meq|%|x|times|tablets?|tabs?|caps?|puffs?|drops?|"
    r"hours?|hrs?|days?|weeks?|wks?|months?|years?|yrs?)\b"
)
MACROS = {
    "{END}": rf"(?:\s*[.,;:()\[\]!?]|\s*$|\s+(?:{_LINKING})\b|\s+{_QUANTITY})",
    "{ART}": r"(?:(?:a|an|the)\s+)?",
}
for _n in range(1, 6):
    MACROS[f"{{TERM{_n}}}"] = rf"(?P<entity>{_FIRST}(?:\s+{_WORD}){{0,{_n - 1}}}?){MACROS['{END}']}"

# Words that never start or make up a regex capture on their own: a cue followed by one of these is not
# an illness or a medicine ("started on the 3rd", "given that").
_NOT_A_TERM = frozenset(
    "a an the this that these those his her their its my your our any some no not all other "
    "that which who what when if it he she they we you i me him them there here then "
    "treatment therapy medication medications medicine drug drugs dose doses regimen course "
    "patient pt symptoms signs sign history day days week weeks month months year years "
    # a verb form starts an activity, not a term: "history of taking an alpha blocker", "hx of using cocaine"
    "taking using receiving use undergoing having being "
    # a stretch of time is not a term: "treated for a period with GH"
    "period periods time while duration".split()
)
# words that qualify a term but are none: a capture of nothing else is cut short of its term, by a comma inside a
# list of qualifiers ("presented with complaints of persistent, severe abdominal pain" captures "complaints of
# persistent"; "presented with severe, intermittent headaches" captures "severe") and is dropped. Only a capture
# made of these alone: "severe headache" stays a term
_QUALIFIERS = frozenset(
    "complaint complaints of mild moderate moderately severe severely persistent intermittent worsening progressive "
    "progressively acute chronic sudden recurrent ongoing constant occasional frequent significant marked slight "
    "gradual increasing decreasing new onset "
    # quantities and order: "treated for at least 3 months", "positive for more than 6 months", "history of three
    # or more failed cycles", "no history of the following:"
    "at least most more less than within following several multiple one two three four five six".split()
)
# an illness cue before a procedure ("history of gastrectomy", "history of kidney transplant", "uterine surgery",
# "positive test for ...", "hepatitis B vaccination"): no illness rule's capture ends on one (the corpora label
# them procedures or tests, and so does a clinician)
_PROCEDURE_HEAD = re.compile(
    r"(?:surgery|surgeries|procedures?|transplants?|transplantation|vaccines?|vaccinations?|tests?|testing|biops(?:y|ies)"
    r"|[a-z]+(?:ectomy|ectomies|otomy|ostomy|plasty|scopy))")
# a substance alone after an illness cue is a habit, not an illness ("no history of alcohol or tobacco use"); its
# use disorder has its own words ("alcohol abuse", "EtOH abuse"), which the lexicon knows
_SUBSTANCE = frozenset("alcohol etoh tobacco smoking cigarettes nicotine caffeine drugs marijuana cannabis".split())
# an adjective left alone by a coordination with another ("history of gastric or duodenal ulcers", "renal, hepatic
# or cardiac disease"): the term both qualify comes after the second, so the one-word capture before the coordinator
# is none. Both must look like adjectives: "history of colic or reflux" keeps "colic"
_ADJECTIVE = r"[a-z]+(?:ic|al|ous|ary|ive|ar)"
_ELLIPSIS_ADJECTIVE = re.compile(_ADJECTIVE)
_COORDINATED_ADJECTIVE = re.compile(rf"\s*(?:,\s*(?:and\s+|or\s+)?|(?:and|or|and/or)\s+|/\s*)(?i:{_ADJECTIVE})\b")


class RuleError(ValueError):
    """A rule file is malformed; the message names file and line."""


@dataclass(frozen=True, slots=True)
class Rule:
    id: str
    label: Label
    pattern: str  # as written in the file (macros not expanded)
    prior: float
    description: str
    line: int
    compiled: re2._Regexp
    group: int  # index of the `entity` group


def expand_macros(pattern: str) -> str:
    for macro, replacement in MACROS.items():
        pattern = pattern.replace(macro, replacement)
    return pattern


def load_rules(path: Path) -> list[Rule]:
    """Read and validate a rules file; raise :class:`RuleError` naming ``file:line`` on any problem."""
    if not path.is_file():
        raise RuleError(f"{path}: rules file not found")
    rules: list[Rule] = []
    seen: dict[str, int] = {}
    header_seen = False
    options = re2.Options()
    options.max_mem = 8 << 20
    with path.open(encoding="utf-8", newline="") as fh:
        for lineno, raw in enumerate(fh, start=1):
            line = raw.rstrip("\n").rstrip("\r")
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            fields = line.split("\t")
            where = f"{path}:{lineno}"
            if not header_seen:
                if tuple(fields) != RULE_COLUMNS:
                    raise RuleError(f"{where}: header must be {' | '.join(RULE_COLUMNS)}, got {fields}")
                header_seen = True
                continue
            if len(fields) != len(RULE_COLUMNS):
                raise RuleError(f"{where}: expected {len(RULE_COLUMNS)} tab-separated fields, got {len(fields)}")
            rule_id, label, pattern, prior_s, description = (f.strip() for f in fields)
            if not rule_id:
                raise RuleError(f"{where}: empty rule id")
            if rule_id in seen:
                raise RuleError(f"{where}: duplicate rule id {rule_id!r} (first on line {seen[rule_id]})")
            if label not in (ILLNESS, MEDICINE):
                raise RuleError(f"{where}: label must be ILLNESS or MEDICINE, got {label!r}")
            try:
                prior = float(prior_s)
            except ValueError:
                raise RuleError(f"{where}: prior must be a number in (0, 1], got {prior_s!r}") from None
            if not 0.0 < prior <= 1.0:
                raise RuleError(f"{where}: prior must be in (0, 1], got {prior}")
            expanded = expand_macros(pattern)
            try:
                compiled = re2.compile(expanded, options)
            except re2.error as exc:
                raise RuleError(f"{where}: rule {rule_id!r}: invalid RE2 pattern: {exc}") from None
            group = compiled.groupindex.get("entity")
            if group is None:
                raise RuleError(f"{where}: rule {rule_id!r}: pattern needs a (?P<entity>...) group or a {{TERMn}}")
            seen[rule_id] = lineno
            rules.append(Rule(rule_id, label, pattern, prior, description, lineno, compiled, group))  # type: ignore[arg-type]
    if not header_seen:
        raise RuleError(f"{path}: no header line ({' | '.join(RULE_COLUMNS)})")
    return rules


# the care given for a term is not the term: "admitted for management of DKA", "for further evaluation of syncope",
# "work-up of anemia" capture the term after it
_CARE_OF = re.compile(
    r"(?i)(?:(?:further|ongoing|continued|medical|surgical|acute|urgent)\s+)?(?:management|evaluation|work-?up|"
    r"control|care|optimi[sz]ation|monitoring|treatment|therapy)\s+(?:of|for)\s+(?:(?:his|her|their|the|a|an)\s+)?")


def _trim(text: str, start: int, end: int) -> tuple[int, int]:
    """Drop the care given before a term (:data:`_CARE_OF`) and trailing punctuation."""
    while start < end and text[end - 1] in "-'/":
        end -= 1
    m = _CARE_OF.match(text, start, end)
    if m is not None and m.end() < end:
        start = m.end()
    return start, end


class RegexStage:
    """Finds entities with cue-phrase rules. Captures are returned with the rule as their source."""

    method: Method = "regex"

    def __init__(self, rules: Sequence[Rule], source_file: str = RULES_FILE) -> None:
        self.rules = list(rules)
        self.source_file = source_file
        # one RE2 set over all patterns tells in a single linear pass which rules can match at all
        self._set = re2.Set.SearchSet(re2.Options())
        for rule in self.rules:
            self._set.Add(expand_macros(rule.pattern))
        self._set.Compile()

    @classmethod
    def from_dir(cls, lexicon_dir: Path) -> RegexStage:
        return cls(load_rules(lexicon_dir / RULES_FILE))

    def extract(self, text: str) -> list[Entity]:
        found: list[Entity] = []
        for idx in sorted(self._set.Match(text) or ()):
            rule = self.rules[idx]
            for m in rule.compiled.finditer(text):
                start, end = m.span(rule.group)
                if start < 0:
                    continue
                start, end = _trim(text, start, end)
                surface = text[start:end]
                words = surface.lower().split()
                if not words or words[0] in _NOT_A_TERM or all(w in _NOT_A_TERM or w in _QUALIFIERS for w in words):
                    continue
                if (len(words) == 1 and _ELLIPSIS_ADJECTIVE.fullmatch(words[0])
                        and _COORDINATED_ADJECTIVE.match(text, end)):
                    continue
                if rule.label == ILLNESS and _PROCEDURE_HEAD.fullmatch(words[-1].rstrip(".,;:)(")):
                    continue
                if rule.label == ILLNESS and len(words) == 1 and words[0] in _SUBSTANCE:
                    continue
                if len(surface) < 2:
                    continue
                found.append(
                    Entity(
                        surface=surface,
                        start=start,
                        end=end,
                        label=rule.label,
                        method="regex",
                        source=f"{self.source_file}:{rule.line}:{rule.id}",
                        confidence=rule.prior,
                        score=rule.prior,
                        details={"rule": rule.id},
                    )
                )
        return _drop_overlaps(found)

    def extract_many(self, texts: Sequence[str]) -> list[list[Entity]]:
        return [self.extract(t) for t in texts]


def _drop_overlaps(entities: list[Entity]) -> list[Entity]:
    """Keep the higher-prior, then longer, entity where two captures overlap."""
    kept = SpanIndex()
    for e in sorted(entities, key=lambda e: (-e.confidence, -(e.end - e.start), e.start)):
        if not kept.overlaps(e):
            kept.add(e)
    return sorted(kept, key=lambda e: e.start)
