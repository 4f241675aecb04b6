"""Medicine attributes: dose/strength, route and frequency read from the words after a medicine.

"metformin 500 mg twice daily by mouth" -> dose "500 mg", route "by mouth", frequency "twice daily". A route
abbreviation right before the name is its route too, and never part of its span ("IV vancomycin" -> "vancomycin",
route "IV").
The window runs from the end of the medicine to the next entity or the end of the sentence (at most 60 chars).

A salt or ester written right after the name is part of the medicine ("metoprolol succinate", "warfarin sodium",
"adefovir dipivoxil", "mycophenolate mofetil"): the span grows to cover it (the canonical name stays), because
the salt tells products apart (metoprolol succinate is extended-release, metoprolol tartrate is not).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from extractor.chain.model import MEDICINE, Entity

WINDOW = 60

DOSE = re.compile(
    r"\b\d+(?:[.,]\d+)?(?:\s*/\s*\d+(?:[.,]\d+)?)?\s*"
    r"(?:mg|mcg|µg|ug|g|kg|ml|mL|l|units?|IU|iu|meq|mEq|mmol|%|tablets?|tabs?|capsules?|caps?|puffs?|drops?|sprays?)"
    r"(?:\s*/\s*(?:kg|day|d|dose|hr|h|ml|mL))?(?![A-Za-z])",
    re.IGNORECASE,
)
ROUTE = re.compile(
    r"\b(?:by mouth|orally|oral|per os|p\.?o\.?|intravenous(?:ly)?|i\.?v\.?|intramuscular(?:ly)?|i\.?m\.?|"
    r"subcutaneous(?:ly)?|s\.?c\.?|s\.?q\.?|topical(?:ly)?|inhaled|via inhaler|nebuli[sz]ed|"
    r"sublingual(?:ly)?|s\.?l\.?|rectal(?:ly)?|p\.?r\.?|transdermal(?:ly)?|intranasal(?:ly)?|ophthalmic)(?![A-Za-z])",
    re.IGNORECASE,
)
FREQUENCY = re.compile(
    r"\b(?:(?:once|twice|three times|four times|1x|2x|3x|4x)\s+(?:a\s+|per\s+)?(?:day|daily|week|weekly)|"
    r"once|twice|daily|nightly|weekly|monthly|every\s+(?:other\s+)?(?:day|morning|evening|night|\d+\s*(?:-\s*\d+\s*)?(?:hours?|hrs?|h|days?|weeks?))|"
    r"q\.?\s?\d+\s*(?:-\s*\d+\s*)?h(?:rs?|ours?)?|q\.?d\.?|b\.?i\.?d\.?|t\.?i\.?d\.?|q\.?i\.?d\.?|q\.?h\.?s\.?|q\.?a\.?m\.?|q\.?p\.?m\.?|"
    r"at bedtime|in the morning|in the evening|with meals|as needed|p\.?r\.?n\.?|stat)(?![A-Za-z])",
    re.IGNORECASE,
)
# a route abbreviation written before the name ("IV vancomycin", "PO amoxicillin", "i.v. furosemide"); a rule that
# takes two words after "started on" can capture it. Spelled-out routes stay: they name products ("oral
# contraceptives", "intravenous immunoglobulin").
_ROUTE_BEFORE = re.compile(r"(?:IV|PO|IM|SC|SQ|SL|PR|IVP|IVPB|i\.v\.|p\.o\.|i\.m\.|s\.c\.)[ \t]+")
_ROUTE_ENDS_BEFORE = re.compile(r"(?<![\w.])(IV|PO|IM|SC|SQ|SL|IVP|IVPB|i\.v\.|p\.o\.|i\.m\.|s\.c\.)[ \t]+$")
_SENTENCE_END = re.compile(r"[.;!?](?:\s|$)|\n")
_SALT = re.compile(
    r"[ \t]+(?:(?:sodium|potassium|calcium|magnesium|disodium)[ \t]+)?"
    r"(?:succinate|tartrate|bitartrate|hydrochloride|hcl|hydrobromide|besylate|besilate|mesylate|mesilate|maleate"
    r"|fumarate|hemifumarate|citrate|sulfate|sulphate|acetate|phosphate|bromide|chloride|dipivoxil|disoproxil"
    r"|alafenamide|mofetil|propionate|dipropionate|furoate|valerate|acetonide|decanoate|enanthate|cypionate"
    r"|hyclate|monohydrate|trihydrate|lactate|gluconate|carbonate|oxide|hydroxide|sodium|potassium|magnesium)"
    r"(?![\w-])",
    re.IGNORECASE,
)


def _first(pattern: re.Pattern[str], window: str) -> str | None:
    m = pattern.search(window)
    return " ".join(m.group(0).split()) if m else None


def _with_salts(text: str, ordered: list[Entity]) -> list[Entity]:
    """Grow each medicine over a salt or ester written right after it; a medicine entity that is only that salt
    ("succinate" found by a rule on its own) merges into the name before it."""
    out: list[Entity] = []
    skip: set[int] = set()
    for i, ent in enumerate(ordered):
        if i in skip:
            continue
        if ent.label == MEDICINE:
            salt = _SALT.match(text, ent.end)
            if salt:
                inside = [j for j in range(i + 1, len(ordered)) if ordered[j].start < salt.end()]
                if all(ordered[j].label == MEDICINE and ordered[j].end <= salt.end() for j in inside):
                    skip.update(inside)
                    ent = ent.with_(end=salt.end(), surface=text[ent.start : salt.end()])
        out.append(ent)
    return out


def add_medicine_attributes(text: str, entities: Sequence[Entity]) -> list[Entity]:
    """Return ``entities`` with dose/route/frequency filled in for medicines where the text gives them (and each
    medicine's span grown over a salt written after it)."""
    ordered = _with_salts(text, sorted(entities, key=lambda e: e.start))
    out: list[Entity] = []
    for i, ent in enumerate(ordered):
        if ent.label != MEDICINE:
            out.append(ent)
            continue
        lead = _ROUTE_BEFORE.match(ent.surface)
        if lead and ent.surface[lead.end() :].strip() and ent.start + lead.end() < ent.end:
            ent = ent.with_(start=ent.start + lead.end(), surface=text[ent.start + lead.end() : ent.end],
                            route=ent.route or lead.group(0).strip())
        before = _ROUTE_ENDS_BEFORE.search(text, max(0, ent.start - 8), ent.start)
        if before and not ent.route:
            ent = ent.with_(route=before.group(1))
        limit = min(len(text), ent.end + WINDOW)
        if i + 1 < len(ordered):
            limit = min(limit, ordered[i + 1].start)
        window = text[ent.end : limit]
        end = _SENTENCE_END.search(window)
        if end:
            window = window[: end.start()]
        dose, route, freq = _first(DOSE, window), _first(ROUTE, window), _first(FREQUENCY, window)
        if dose or route or freq:
            ent = ent.with_(dose=ent.dose or dose, route=ent.route or route, frequency=ent.frequency or freq)
        out.append(ent)
    return out
