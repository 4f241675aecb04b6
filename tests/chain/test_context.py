"""ConText step: negation, hypothetical, historical, experiencer, discontinued, allergy, sections (editable files)."""

from __future__ import annotations

from pathlib import Path

import pytest

from extractor.chain.context import (
    CONTEXT_FILE,
    SECTIONS_FILE,
    ContextAnnotator,
    ContextError,
    load_sections,
    load_triggers,
)
from extractor.chain.model import Entity

LEXICONS = Path(__file__).resolve().parents[2] / "lexicons"
TRIGGERS = load_triggers(LEXICONS / CONTEXT_FILE)
SECTIONS = load_sections(LEXICONS / SECTIONS_FILE)


@pytest.fixture(scope="module")
def ctx() -> ContextAnnotator:
    return ContextAnnotator.from_dir(LEXICONS)


def _ent(text: str, surface: str, label: str = "ILLNESS") -> Entity:
    start = text.index(surface)
    return Entity(surface, start, start + len(surface), label, "lexicon", "t", 0.9)  # type: ignore[arg-type]


def _flags(e: Entity) -> set[str]:
    keys = ("negated", "hypothetical", "historical", "discontinued", "allergy", "uncertain", "held")
    out = {k for k in keys if getattr(e, k)}
    if e.experiencer != "patient":
        out.add(e.experiencer)
    return out


@pytest.mark.parametrize(
    ("text", "surface", "label", "flags"),
    [
        ("No signs of flu.", "flu", "ILLNESS", {"negated"}),
        ("Patient denies chest pain.", "chest pain", "ILLNESS", {"negated"}),
        ("Rule out pneumonia.", "pneumonia", "ILLNESS", {"hypothetical"}),
        ("Negative for influenza.", "influenza", "ILLNESS", {"negated"}),
        ("Influenza was ruled out.", "Influenza", "ILLNESS", {"negated"}),
        ("Shows signs of flu.", "flu", "ILLNESS", set()),
        ("No fever. Has cough.", "cough", "ILLNESS", set()),  # scope ends at the sentence
        ("No fever but has cough.", "cough", "ILLNESS", set()),  # terminated by "but"
        ("No increase in seizures.", "seizures", "ILLNESS", set()),  # pseudo-trigger
        ("Return if fever develops.", "fever", "ILLNESS", {"hypothetical"}),
        ("Nociception is impaired.", "impaired", "ILLNESS", set()),  # "no" only on word boundaries
        ("no signs of flu or pneumonia", "pneumonia", "ILLNESS", {"negated"}),
        # issue 9's examples
        ("i stopped lipitor because of muscle aches", "lipitor", "MEDICINE", {"discontinued"}),
        ("i stopped lipitor because of muscle aches", "muscle aches", "ILLNESS", set()),
        ("Mother had breast cancer.", "breast cancer", "ILLNESS", {"family"}),
        ("Was on warfarin, stopped last year.", "warfarin", "MEDICINE", {"historical", "discontinued"}),
        ("Started metformin 500 mg PO BID for type 2 DM.", "metformin", "MEDICINE", set()),
        ("Started metformin 500 mg PO BID for type 2 DM.", "type 2 DM", "ILLNESS", set()),
        ("h/o MI", "MI", "ILLNESS", {"historical"}),
        # "s/p" names a past procedure: its scope is the procedure and its date, not the disease behind it
        # or the next item of a list ("s/p CABG 2015, AFib on apixaban": AFib is current)
        ("s/p CABG for CAD", "CAD", "ILLNESS", set()),
        ("s/p CABG 2015, AFib on apixaban", "AFib", "ILLNESS", set()),
        ("72F w/ hx of HTN, DM2 and CKD presents w/ SOB x3d", "SOB", "ILLNESS", set()),
        ("72F w/ hx of HTN, DM2 and CKD presents w/ SOB x3d", "CKD", "ILLNESS", {"historical"}),
        ("Apixaban held.", "Apixaban", "MEDICINE", {"held"}),
        ("Holding metformin for the procedure.", "metformin", "MEDICINE", {"held"}),
        ("Suspect CAP.", "CAP", "ILLNESS", {"uncertain"}),
        ("Findings suggestive of pneumonia.", "pneumonia", "ILLNESS", {"uncertain"}),
        # a pathologist's or radiologist's conclusion is asserted, not hedged
        ("Biopsy consistent with melanoma.", "melanoma", "ILLNESS", set()),
        ("Findings compatible with sarcoidosis.", "sarcoidosis", "ILLNESS", set()),
        # negation wins over a hedge inside its scope
        ("Biopsy showed no signs suggesting myocarditis.", "myocarditis", "ILLNESS", {"negated"}),
        # new prose negation triggers, one case each
        ("CSF was negative for enterovirus.", "enterovirus", "ILLNESS", {"negated"}),
        ("Cultures were negative for MRSA.", "MRSA", "ILLNESS", {"negated"}),
        ("The swab is negative for influenza.", "influenza", "ILLNESS", {"negated"}),
        ("Both samples are negative for HIV.", "HIV", "ILLNESS", {"negated"}),
        ("Serology was also negative for hepatitis C.", "hepatitis C", "ILLNESS", {"negated"}),
        ("Blood cultures remained negative for candidemia.", "candidemia", "ILLNESS", {"negated"}),
        ("CT excluded pulmonary embolism.", "pulmonary embolism", "ILLNESS", {"negated"}),
        ("Troponin was normal, thereby ruling out acute coronary syndrome.", "acute coronary syndrome", "ILLNESS",
         {"negated"}),
        ("Criteria: exclusion of cognitive decline.", "cognitive decline", "ILLNESS", {"negated"}),
        ("By day 4 his fever subsided.", "fever", "ILLNESS", {"negated"}),
        ("By day 4 his fever had subsided.", "fever", "ILLNESS", {"negated"}),
        ("Liver dysfunction did not appear.", "Liver dysfunction", "ILLNESS", {"negated"}),
        ("The hemoptysis did not recur.", "hemoptysis", "ILLNESS", {"negated"}),
        ("There was no further bleeding.", "bleeding", "ILLNESS", {"negated"}),
        ("She has been free from hemoptysis for three years.", "hemoptysis", "ILLNESS", {"negated"}),
        ("The patient was not infected with HIV.", "HIV", "ILLNESS", {"negated"}),
        ("The pain was relieved by anteflexion.", "pain", "ILLNESS", {"negated"}),
        ("The symptoms were relieved after diuresis.", "symptoms", "ILLNESS", {"negated"}),
        ("Hypoglycemia and hypothermia were reversed.", "hypothermia", "ILLNESS", {"negated"}),
        ("The margin was tumor negative.", "tumor", "ILLNESS", {"negated"}),
        ("Wound closed without obvious external signs of infection.", "infection", "ILLNESS", {"negated"}),
        ("Malignancy could not be excluded.", "Malignancy", "ILLNESS", {"uncertain"}),
        ("He had neither purpura nor bleeding.", "bleeding", "ILLNESS", {"negated"}),
        ("Breast cancer in her mother.", "Breast cancer", "ILLNESS", {"family"}),
        ("His wife has the flu.", "flu", "ILLNESS", {"other"}),
        ("Allergic to penicillin.", "penicillin", "MEDICINE", {"allergy"}),
        ("Metformin d/c'd.", "Metformin", "MEDICINE", {"discontinued"}),
        ("Stopped warfarin, started apixaban.", "apixaban", "MEDICINE", set()),  # "started" ends the scope
        ("No family history of diabetes.", "diabetes", "ILLNESS", {"negated", "family"}),
        ("Family history of diabetes.", "diabetes", "ILLNESS", {"family"}),
        ("stopped having seizures", "seizures", "ILLNESS", set()),  # discontinued is for medicines only
        ("allergic to cats with asthma", "asthma", "ILLNESS", set()),  # allergy is for medicines only
        # sections
        ("FH: breast cancer.", "breast cancer", "ILLNESS", {"family"}),
        ("Family history:\nbreast cancer\ndiabetes\n\nAssessment: diabetes", "breast cancer", "ILLNESS", {"family"}),
        ("PMH: HTN, DM. Started metformin.", "HTN", "ILLNESS", {"historical"}),
        ("PMH: HTN, DM. Started metformin.", "metformin", "MEDICINE", set()),  # inline header: one sentence
        ("Allergies:\n- penicillin\n- sulfa\nMedications:\n- amoxicillin", "penicillin", "MEDICINE", {"allergy"}),
        ("Allergies:\n- penicillin\n- sulfa\nMedications:\n- amoxicillin", "amoxicillin", "MEDICINE", set()),
        ("Pt stable. FH: mother with MI", "MI", "ILLNESS", {"family"}),
        ("Family history: no diabetes.", "diabetes", "ILLNESS", {"family", "negated"}),
        ("The FH clinic saw diabetes.", "diabetes", "ILLNESS", set()),  # no colon: not a header
    ],
)
def test_context_table(ctx: ContextAnnotator, text: str, surface: str, label: str, flags: set[str]) -> None:
    (e,) = ctx.annotate(text, [_ent(text, surface, label)])
    assert _flags(e) == flags


def test_section_name_is_reported(ctx: ContextAnnotator) -> None:
    text = "PMH: HTN"
    (e,) = ctx.annotate(text, [_ent(text, "HTN")])
    assert e.section == "past_medical_history" and e.to_dict()["section"] == "past_medical_history"


EXPECTED = {
    "NEGATED": {"negated"},
    "HYPOTHETICAL": {"hypothetical"},
    "HISTORICAL": {"historical"},
    "FAMILY": {"family"},
    "OTHER": {"other"},
    "DISCONTINUED": {"discontinued"},
    "ALLERGY": {"allergy"},
    "UNCERTAIN": {"uncertain"},
    "HELD": {"held"},
}


@pytest.mark.parametrize("trig", [t for t in TRIGGERS if t.category in EXPECTED], ids=lambda t: f"L{t.line}:{t.phrase}")
def test_every_trigger_sets_its_flag(ctx: ContextAnnotator, trig) -> None:
    """Each row of context.tsv, in its own direction(s), flags a medicine next to it (and nothing else)."""
    expected = EXPECTED[trig.category]
    texts = []
    if trig.direction in ("forward", "both"):
        texts.append(f"{trig.phrase} aspirin")
    if trig.direction in ("backward", "both"):
        texts.append(f"aspirin {trig.phrase}")
    for text in texts:
        (e,) = ctx.annotate(text, [_ent(text, "aspirin", "MEDICINE")])
        assert _flags(e) == expected, text
        # beyond the sentence the trigger does nothing
        far = f"{text}. Ibuprofen" if text.startswith("aspirin") else f"Ibuprofen. {text}"
        (f,) = ctx.annotate(far, [_ent(far, "Ibuprofen", "MEDICINE")])
        assert _flags(f) == set(), far


def _shadowing(pseudo: str) -> bool:
    words = pseudo.split()
    return any(t.category in EXPECTED and words[: len(t.phrase.split())] == t.phrase.split() for t in TRIGGERS)


@pytest.mark.parametrize(
    "trig", [t for t in TRIGGERS if t.category == "PSEUDO" and _shadowing(t.phrase)], ids=lambda t: t.phrase
)
def test_every_pseudo_trigger_hides_the_trigger_inside_it(ctx: ContextAnnotator, trig) -> None:
    text = f"{trig.phrase} aspirin"
    (e,) = ctx.annotate(text, [_ent(text, "aspirin", "MEDICINE")])
    assert _flags(e) == set()


@pytest.mark.parametrize("trig", [t for t in TRIGGERS if t.category == "TERMINATE"], ids=lambda t: t.phrase)
def test_every_terminate_trigger_ends_a_scope(ctx: ContextAnnotator, trig) -> None:
    text = f"denies {trig.phrase} aspirin"
    (e,) = ctx.annotate(text, [_ent(text, "aspirin", "MEDICINE")])
    assert not e.negated


@pytest.mark.parametrize("sec", SECTIONS, ids=lambda s: f"L{s.line}:{s.header}")
def test_every_section_header(ctx: ContextAnnotator, sec) -> None:
    """Each row of sections.tsv, inline and as a block, sets its attributes and its name; a later header ends it."""
    for text in (f"{sec.header.upper()}: aspirin", f"{sec.header.title()}:\n- aspirin\n"):
        (e,) = ctx.annotate(text, [_ent(text, "aspirin", "MEDICINE")])
        assert e.section == sec.name, text
        assert _flags(e) == {"family" if s == "family" else "other" if s == "other" else s for s in sec.sets}, text
    other = "history of present illness" if sec.name != "history_of_present_illness" else "chief complaint"
    text = f"{sec.header}:\n- aspirin\n{other}:\n- ibuprofen"
    _, e = ctx.annotate(text, [_ent(text, "aspirin", "MEDICINE"), _ent(text, "ibuprofen", "MEDICINE")])
    assert _flags(e) == set() and e.section != sec.name


def test_bad_trigger_file(tmp_path: Path) -> None:
    p = tmp_path / "context.tsv"
    p.write_text("phrase\tcategory\tdirection\nno\tNEGATIVE\tforward\n", encoding="utf-8")
    with pytest.raises(ContextError, match=r"context.tsv:2: category must be one of"):
        load_triggers(p)


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ("fh\tfamily_history\tfamiliy", r"sections.tsv:3: sets must be among"),
        ("fh:\tfamily_history\tfamily", r"sections.tsv:3: write the header without its colon"),
        ("fh\tFamily History\tfamily", r"sections.tsv:3: section name must be"),
        ("pmh\tpast\thistorical", r"sections.tsv:3: duplicate header 'pmh' \(first on line 2\)"),
    ],
)
def test_bad_section_file(tmp_path: Path, row: str, message: str) -> None:
    p = tmp_path / "sections.tsv"
    p.write_text(f"header\tsection\tsets\npmh\tpast_medical_history\thistorical\n{row}\n", encoding="utf-8")
    with pytest.raises(ContextError, match=message):
        load_sections(p)


def test_long_note_is_linear_enough(ctx: ContextAnnotator) -> None:
    """Many triggers and entities: interval lookups, not all pairs (a regression would take seconds)."""
    import time

    text = "No fever. Mother had flu. Was on aspirin. " * 2000
    ents = []
    pos = 0
    while (i := text.find("aspirin", pos)) >= 0:
        ents.append(Entity("aspirin", i, i + 7, "MEDICINE", "lexicon", "t", 0.9))
        pos = i + 1
    t0 = time.perf_counter()
    out = ctx.annotate(text, ents)
    assert time.perf_counter() - t0 < 1.0
    assert all(e.historical and not e.negated and e.experiencer == "patient" for e in out)


def test_primary_fields_skip_negated_hypothetical_family_and_allergy() -> None:
    from extractor.chain.model import ExtractionResult

    def e(surface: str, conf: float, **kw) -> Entity:
        label = kw.pop("label", "ILLNESS")
        return Entity(surface, 0, len(surface), label, "lexicon", "t", conf, **kw)

    ills = [
        e("breast cancer", 0.99, experiencer="family"),
        e("flu", 0.98, negated=True),
        e("pneumonia", 0.97, hypothetical=True),
        e("MI", 0.96, historical=True),
        e("cough", 0.5),
    ]
    meds = [
        e("penicillin", 0.99, label="MEDICINE", allergy=True),
        e("warfarin", 0.95, label="MEDICINE", discontinued=True),
        e("apixaban", 0.6, label="MEDICINE"),
    ]
    r = ExtractionResult(ills, meds, "resolved")
    assert r.illness == "cough"  # current before historical; family / negated / hypothetical never
    assert r.medicine == "apixaban"  # an allergy is not a medicine taken; current before discontinued
    r2 = ExtractionResult(ills[:4], meds[:2], "resolved")
    assert (r2.illness, r2.medicine) == ("MI", "warfarin")  # only past ones left: still reported
    d = meds[1].to_dict()
    assert d["discontinued"] is True and d["allergy"] is False and d["experiencer"] == "patient"
    assert "discontinued" not in ills[0].to_dict() and ills[0].to_dict()["experiencer"] == "family"


def test_header_words_are_not_entities(ctx: ContextAnnotator) -> None:
    text = "Allergies: penicillin"
    out = ctx.annotate(text, [_ent(text, "Allergies"), _ent(text, "penicillin", "MEDICINE")])
    assert [e.surface for e in out] == ["penicillin"] and out[0].allergy


@pytest.mark.parametrize(
    ("text", "negated", "plain"),
    [
        ("No fever, chills, or night sweats.", ["fever", "chills", "night sweats"], []),
        ("He did not have chest pain or shortness of breath.", ["chest pain", "shortness of breath"], []),
        ("Denies nausea and vomiting. Has headache.", ["nausea", "vomiting"], ["headache"]),
        ("No cough, but has fever.", ["cough"], ["fever"]),  # "but" ends the list
        ("No cough. Fever, chills.", ["cough"], ["Fever", "chills"]),  # a sentence ends it
        # an item may carry a modifier word or two
        ("No skin rash, subcutaneous bleeding or joint swelling.", ["skin rash", "bleeding", "swelling"], []),
        # ... but not a clause: "then developed" starts one
        ("No fever, and he then developed a cough.", ["fever"], ["cough"]),
        # backward: from the list's last item to its first
        ("Toxicity, hypertension, proteinuria and rash were not observed.",
         ["Toxicity", "hypertension", "proteinuria", "rash"], []),
        ("Arthritis, and rash subsided.", ["Arthritis", "rash"], []),
        # a "no" in the gap starts its own scope: it is not carried back to the item before it
        ("Fever, no chills.", ["chills"], ["Fever"]),
        ("Cough and fever, no rash were seen.", ["rash"], ["Cough", "fever"]),
        # a one-word status after a comma or a dash labels the item before it only (a problem list)
        ("Discharge diagnosis: community acquired pneumonia, acute kidney injury, resolved.",
         ["acute kidney injury"], ["community acquired pneumonia"]),
        ("Hypertension, AKI - resolved.", ["AKI"], ["Hypertension"]),
        # ... a clause after the comma still covers the list
        ("Fever, cough and rash, which were excluded.", ["Fever", "cough", "rash"], []),
    ],
)
def test_negation_carries_along_a_list(ctx: ContextAnnotator, text: str, negated: list, plain: list) -> None:
    ents = [_ent(text, s) for s in negated + plain]
    out = {e.surface: e for e in ctx.annotate(text, ents)}
    assert [s for s in negated if out[s].negated] == negated
    assert [s for s in plain if out[s].negated] == []


def test_differential_diagnosis_list_is_uncertain(ctx: ContextAnnotator) -> None:
    text = "The differential diagnosis included encephalitis, Guillain-Barre syndrome and ADEM."
    ents = [_ent(text, s) for s in ("encephalitis", "Guillain-Barre syndrome", "ADEM")]
    assert all(e.uncertain and not e.negated for e in ctx.annotate(text, ents))
    # once excluded, the whole differential is negated, not uncertain
    text += " which were excluded"
    text = text.replace("ADEM.", "ADEM,")
    ents = [_ent(text, s) for s in ("encephalitis", "Guillain-Barre syndrome", "ADEM")]
    assert all(e.negated and not e.uncertain for e in ctx.annotate(text, ents))
