"""Issue 9's examples through the real chain: text -> expected entities, their attributes and the primary fields."""

from __future__ import annotations

import pytest

from extractor.chain import Chain
from extractor.config import load_settings


@pytest.fixture(scope="module")
def chain() -> Chain:
    return Chain.from_settings(load_settings())


def _flags(e) -> set[str]:  # type: ignore[no-untyped-def]
    keys = ("negated", "hypothetical", "historical", "discontinued", "allergy", "uncertain", "held")
    out = {k for k in keys if getattr(e, k)}
    if e.experiencer != "patient":
        out.add(e.experiencer)
    return out


# text, {surface: (label, flags)} that must be there, surfaces that must NOT be illnesses/medicines,
# expected primary (illness, medicine) names (None = none); "*" = not checked
CASES = [
    (
        "Liptor gave me leg cramps and joint pain.",
        {"Liptor": ("MEDICINE", set()), "leg cramps": ("ILLNESS", set()), "joint pain": ("ILLNESS", set())},
        ["pain"],
        ("*", "Atorvastatin"),
    ),
    (
        "i stopped lipitor because of muscle aches",
        {"lipitor": ("MEDICINE", {"discontinued"}), "muscle aches": ("ILLNESS", set())},
        ["aches"],
        ("myalgia", "Atorvastatin"),
    ),
    (
        "I have been on Lipitor for a year and my cholesterol is gone down",
        {"Lipitor": ("MEDICINE", set())},
        ["cholesterol", "gone"],
        (None, "Atorvastatin"),
    ),
    (
        "Started metformin 500 mg PO BID for type 2 DM.",
        {"metformin": ("MEDICINE", set()), "type 2 DM": ("ILLNESS", set())},
        ["DM"],
        ("type 2 diabetes mellitus", "Metformin"),
    ),
    (  # abbreviations as typed notes write them, in lower case (abbreviations.tsv's lowercase column)
        "Discharged on warfarin 5 mg for afib. pt w/ htn, dm2, h/o copd.",
        {"afib": ("ILLNESS", set()), "htn": ("ILLNESS", set()), "dm2": ("ILLNESS", set()),
         "copd": ("ILLNESS", {"historical"}), "warfarin": ("MEDICINE", set())},
        [],
        ("*", "Warfarin"),
    ),
    ("He has a hx of ETOH abuse.", {"ETOH abuse": ("ILLNESS", {"historical"})}, [], ("alcohol use disorder", None)),
    (  # discharge shorthand: C. diff, pip-tazo; the care before a term and the course after it are no part of it
        "Admitted for management of DKA, course complicated by C. diff colitis; started pip-tazo.",
        {"DKA": ("ILLNESS", set()), "C. diff colitis": ("ILLNESS", set()), "pip-tazo": ("MEDICINE", set())},
        ["management of DKA", "colitis"],
        ("*", "Piperacillin and Tazobactam"),
    ),
    ("Ibuprofen makes my stomach bleed.", {"stomach bleed": ("ILLNESS", set()), "Ibuprofen": ("MEDICINE", set())},
     ["bleed"], ("gastrointestinal hemorrhage", "Ibuprofen")),
    (  # notes' short forms: "ca" for cancer, abx, rhabdo, n/v; CP is chest pain after "presented w/"
        "Pt presented w/ CP. Hx of breast ca. Labs c/w rhabdo, c/o n/v; on PO abx.",
        {"CP": ("ILLNESS", set()), "breast ca": ("ILLNESS", {"historical"}), "rhabdo": ("ILLNESS", set()),
         "n/v": ("ILLNESS", set()), "abx": ("MEDICINE", set())},
        [],
        ("*", "antibiotics"),
    ),
    ("Children with CP were enrolled.", {}, ["CP"], (None, None)),  # cerebral palsy: no cue before it
    (  # a parent's post: the child's illness is not the writer's; "killing me" is pain
        "My kid has ear infections all the time. My knee has been killing me.",
        {"ear infections": ("ILLNESS", {"family"}), "knee has been killing me": ("ILLNESS", set())},
        [],
        ("knee pain", None),
    ),
    ("The patient was admitted. ECG showed ST elevation in leads II, III and aVF.",  # an ECG finding in a report
     {"ST elevation": ("ILLNESS", set())}, [], ("ST segment elevation", None)),
    # assertion cues of notes and posts: refused, switched to, cannot exclude, unlikely to be, "don't think I have"
    ("Patient refused heparin.", {"heparin": ("MEDICINE", {"negated"})}, [], (None, None)),
    ("Metformin was switched to insulin.", {"Metformin": ("MEDICINE", {"discontinued"}), "insulin": ("MEDICINE", set())},
     [], (None, "Insulin")),
    ("Cannot exclude early pneumonia.", {"pneumonia": ("ILLNESS", {"uncertain"})}, [], ("pneumonia", None)),
    ("Unlikely to be a PE.", {"PE": ("ILLNESS", {"negated"})}, [], (None, None)),
    ("I don't think I have diabetes.", {"diabetes": ("ILLNESS", {"negated"})}, [], (None, None)),
    ("He tested positive for COVID last week.", {"COVID": ("ILLNESS", set())}, ["COVID last week"], ("COVID-19", None)),
    ("She presented with a 3-month history of progressive dyspnea.", {"dyspnea": ("ILLNESS", set())}, [],
     ("*", None)),  # how long a current complaint has lasted, not a past one
    ("Treated with six cycles of R-CHOP.", {"R-CHOP": ("MEDICINE", set())}, [], (None, "*")),
    # a patient's words: "might be" is not a diagnosis; a flu shot is a vaccine, not influenza
    ("Doc thinks it might be IBS.", {"IBS": ("ILLNESS", {"uncertain"})}, [], ("irritable bowel syndrome", None)),
    ("Got the flu shot yesterday.", {"the flu shot": ("MEDICINE", set())}, ["the flu", "flu"], (None, "Influenza Vaccines")),
    ("Mother had breast cancer.", {"breast cancer": ("ILLNESS", {"family"})}, [], (None, None)),
    ("Was on warfarin, stopped last year.", {"warfarin": ("MEDICINE", {"historical", "discontinued"})}, [], ("*", "Warfarin")),
    (
        "HIV+ with brain metastases; on antibiotics and corticosteroids.",
        {
            "HIV+": ("ILLNESS", set()),
            "brain metastases": ("ILLNESS", set()),
            "antibiotics": ("MEDICINE", set()),
            "corticosteroids": ("MEDICINE", set()),
        },
        [],
        ("*", "*"),
    ),
    (
        "Labs: creatinine 1.2, bilirubin normal, glucose 140, HBsAg negative. Denies alcohol.",
        {},
        ["creatinine", "bilirubin", "glucose", "HBsAg", "alcohol"],
        ("*", None),
    ),
    (
        "Allergies: penicillin.\nStarted amoxicillin for otitis media.",
        {"penicillin": ("MEDICINE", {"allergy"}), "amoxicillin": ("MEDICINE", set()), "otitis media": ("ILLNESS", set())},
        ["Allergies"],
        ("otitis media", "Amoxicillin"),
    ),
    (
        "Family history:\nbreast cancer, diabetes\n\nPMH: HTN",
        {"breast cancer": ("ILLNESS", {"family"}), "diabetes": ("ILLNESS", {"family"}), "HTN": ("ILLNESS", {"historical"})},
        [],
        ("hypertension", None),
    ),
    ("h/o MI, high blood pressure", {"MI": ("ILLNESS", {"historical"}), "high blood pressure": ("ILLNESS", {"historical"})}, [], ("*", None)),
    ("Had a heart attack in 2019.", {"heart attack": ("ILLNESS", set())}, [], ("*", None)),
    ("Suspect CAP.", {"CAP": ("ILLNESS", {"uncertain"})}, [], ("community-acquired pneumonia", None)),
    ("Na 131, K 5.8", {}, ["Na"], (None, None)),
    ("Apixaban held. Holding metformin.", {"Apixaban": ("MEDICINE", {"held"}), "metformin": ("MEDICINE", {"held"})}, [], (None, "*")),
    ("my stomach hurts and I feel dizzy", {"stomach hurts": ("ILLNESS", set()), "dizzy": ("ILLNESS", set())}, [], ("*", None)),
    ("72F w/ hx of HTN, DM2 and CKD stage 3 presents w/ SOB x3d", {"HTN": ("ILLNESS", {"historical"}), "SOB": ("ILLNESS", set())}, [], ("shortness of breath", None)),
    ("s/p CABG 2015, AFib on apixaban 5 mg BID. Presents with melena.", {"AFib": ("ILLNESS", set()), "apixaban": ("MEDICINE", set())}, [], ("*", "Apixaban")),
    ("Serum calcium 11.2 mg/dL. Started calcium supplements.", {"calcium": ("MEDICINE", set())}, [], (None, "*")),
    # a context-gated abbreviation (abbreviations.tsv column "after"): chest pain after a symptom verb only
    ("Denies CP.", {"CP": ("ILLNESS", {"negated"})}, [], (None, None)),
    ("Pleuritic CP since yesterday.", {"CP": ("ILLNESS", set())}, [], ("chest pain", None)),
    ("Children with CP were treated with baclofen.", {"baclofen": ("MEDICINE", set())}, ["CP"], (None, "*")),
    # ASA is the anaesthesia risk score before "physical status" / a class, aspirin elsewhere
    ("ASA physical status II, on ASA 81 mg daily.", {"ASA": ("MEDICINE", set())}, [], (None, "aspirin")),
    ("Rule out pneumonia. No signs of flu.", {"pneumonia": ("ILLNESS", {"hypothetical"}), "flu": ("ILLNESS", {"negated"})}, [], (None, None)),
    # discharge-summary shorthand; a course word ("progressive") is not part of the illness a rule captured
    ("67M with HFrEF presents with progressive DOE.", {"HFrEF": ("ILLNESS", set()), "DOE": ("ILLNESS", set())}, ["progressive DOE"], ("*", None)),
    ("Admitted with NSTEMI; hx of PUD and UGIB.", {"NSTEMI": ("ILLNESS", set()), "UGIB": ("ILLNESS", {"historical"})}, [], ("*", None)),
    # a current medicine after a comma ends a history scope; a one-word status labels only the item before it
    ("Hx of T2DM, on insulin glargine 20 units at bedtime.", {"T2DM": ("ILLNESS", {"historical"}), "insulin glargine": ("MEDICINE", set())}, [], ("*", "*")),
    ("Discharge diagnosis: community acquired pneumonia, acute kidney injury, resolved.", {"community acquired pneumonia": ("ILLNESS", set()), "acute kidney injury": ("ILLNESS", {"negated"})}, [], ("*", None)),
    # note shorthand: "PMH of" is history, "CTAB" is the lung exam, "short of breath" a complaint
    ("45M with PMH of cirrhosis c/b ascites presents with hematemesis. Lungs CTAB.", {"cirrhosis": ("ILLNESS", {"historical"}), "hematemesis": ("ILLNESS", set())}, ["CTAB"], ("*", None)),
    ("Feeling better, no longer short of breath.", {"short of breath": ("ILLNESS", {"negated"})}, [], (None, None)),
    ("Found to have PNA, started on ceftriaxone.", {"PNA": ("ILLNESS", set()), "ceftriaxone": ("MEDICINE", set())}, [], ("pneumonia", "*")),
    # a patient's own words (lexicons/patient_wording.tsv, lay medicine names in curated_terms.tsv)
    ("my bp meds make me dizzy and I can't sleep", {"bp meds": ("MEDICINE", set()), "dizzy": ("ILLNESS", set()), "can't sleep": ("ILLNESS", set())}, [], ("*", "antihypertensive agents")),
    # a brand linked to an analyte's name is the medicine ("Synthroid" -> Thyroxine; "T4" stays a test); what
    # persists or is taken is not negated: "no side effects from", "no relief from"
    ("I've had no side effects from Synthroid so far.", {"Synthroid": ("MEDICINE", set())}, [], (None, "*")),
    ("Arthrotec caused bloating. No relief from arthritis pain.", {"Arthrotec": ("MEDICINE", set()), "arthritis": ("ILLNESS", set())}, [], ("*", "*")),
    ("Lipitor gave me pain in my legs, so I stopped it. No more leg cramps.", {"Lipitor": ("MEDICINE", set()), "pain in my legs": ("ILLNESS", set()), "leg cramps": ("ILLNESS", {"negated"})}, ["pain"], ("leg pain", "*")),
    ("She was started on IV vancomycin for presumed sepsis.", {"vancomycin": ("MEDICINE", set()), "sepsis": ("ILLNESS", {"uncertain"})}, ["IV vancomycin"], ("*", "*")),
    # discharge sentences and posts: "ruled out for", a stomach a drug upsets, a text's own abbreviation, a scale
    ("The patient was ruled out for MI with serial troponins and discharged.", {"MI": ("ILLNESS", {"negated"})}, [], (None, None)),
    ("My doctor put me on metformin but it upsets my stomach", {"metformin": ("MEDICINE", set()), "upsets my stomach": ("ILLNESS", set())}, [], ("dyspepsia", "*")),
    ("Labs were sent by her primary care physician (PCP); the PCP restarted lisinopril.", {"lisinopril": ("MEDICINE", set())}, ["PCP"], (None, "*")),
    ("A 70-year-old man was admitted with a Glasgow Coma Scale of 8 after a fall.", {}, ["Coma"], ("*", None)),
]


@pytest.mark.parametrize(("text", "expected", "absent", "primary"), CASES, ids=[c[0][:40] for c in CASES])
def test_clinical_example(chain: Chain, text: str, expected: dict, absent: list, primary: tuple) -> None:
    res = chain.extract(text)
    found = {e.surface: e for e in res.entities}
    for surface, (label, flags) in expected.items():
        assert surface in found, f"{surface!r} not found in {sorted(found)}"
        assert found[surface].label == label
        assert _flags(found[surface]) == flags, surface
    for surface in absent:
        assert surface not in found, f"{surface!r} must not be an illness or medicine"
    ill, med = primary
    if ill != "*":
        assert res.illness == ill
    if med != "*":
        assert res.medicine == med


def test_lab_analytes_are_substances_not_medicines(chain: Chain) -> None:
    res = chain.extract("Creatinine and bilirubin were normal; started lisinopril.")
    assert [e.surface for e in res.medicines] == ["lisinopril"]
    assert {e.surface.lower() for e in res.substances} >= {"creatinine", "bilirubin"}
    d = res.to_dict()
    assert d["medicine"] == res.medicine and {s["text"].lower() for s in d["substances"]} >= {"creatinine"}
