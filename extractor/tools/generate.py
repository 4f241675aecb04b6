"""``python -m extractor generate --rows N [--seed S] [--out FILE]``: labelled synthetic clinical entries.

Columns: ``patient_id,medical_entry,timestamp`` (the reference design's input) plus ``entry_id``,
``illnesses``, ``medicines`` (``|``-separated gold surface strings exactly as written in the entry,
deduplicated) and ``negated_illnesses``, ``negated_medicines`` (mentions the entry denies or rules out).

Labelling decisions:
- negated mentions ("No signs of pneumonia", "Denies chest pain", "Not on warfarin") are NOT gold: the chain
  must not report them as findings. They are listed in the ``negated_*`` columns so negation can be checked;
- misspellings ("ibuprofin", "pnuemonia", "diabetis") and abbreviations ("HTN", "DM2", "ASA") are gold as
  written;
- a dose, route or frequency is not part of the medicine's surface ("lisinopril" in "lisinopril 10 mg daily");
- a capitalised sentence start is the surface as written ("Pneumonia, improving.").

The vocabulary (about 90 illnesses and 90 medicines with rough relative frequencies of primary care) ships in
this module; nothing is read at run time. Output is deterministic for a seed; 100k rows take about 2 s.
"""

from __future__ import annotations

import argparse
import csv
import io
import logging
import random
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

log = logging.getLogger(__name__)

COLUMNS: tuple[str, ...] = (
    "patient_id",
    "medical_entry",
    "timestamp",
    "entry_id",
    "illnesses",
    "medicines",
    "negated_illnesses",
    "negated_medicines",
)

# ----------------------------------------------------------------------------------------------------
# Vocabulary. Illness: (name, weight, abbreviations, misspellings).
ILLNESSES: tuple[tuple[str, int, tuple[str, ...], tuple[str, ...]], ...] = (
    ("hypertension", 100, ("HTN",), ("hypertention", "hypertenson")),
    ("type 2 diabetes", 70, ("DM2", "T2DM"), ("type 2 diabetis",)),
    ("diabetes", 30, ("DM",), ("diabetis", "diabetes melitus")),
    ("hyperlipidemia", 50, ("HLD",), ("hyperlipidaemia",)),
    ("high cholesterol", 20, (), ("high cholestrol",)),
    ("flu", 40, (), ()),
    ("influenza", 20, (), ("influenze",)),
    ("common cold", 25, (), ()),
    ("upper respiratory infection", 30, ("URI",), ("upper respiratory infecton",)),
    ("pneumonia", 35, (), ("pnuemonia", "pneumona")),
    ("bronchitis", 25, (), ("bronchitus",)),
    ("asthma", 40, (), ("asthama", "astma")),
    ("chronic obstructive pulmonary disease", 15, ("COPD",), ()),
    ("sinusitis", 20, (), ("sinusitus",)),
    ("pharyngitis", 12, (), ("pharingitis",)),
    ("strep throat", 12, (), ()),
    ("otitis media", 12, (), ()),
    ("COVID-19", 20, (), ()),
    ("urinary tract infection", 30, ("UTI",), ("urinary tract infecton",)),
    ("gastroesophageal reflux disease", 20, ("GERD",), ()),
    ("acid reflux", 10, (), ()),
    ("gastroenteritis", 15, (), ("gastroenteritus",)),
    ("irritable bowel syndrome", 10, ("IBS",), ()),
    ("constipation", 15, (), ("constipaton",)),
    ("diarrhea", 18, (), ("diarrhoea", "diarhea")),
    ("nausea", 18, (), ()),
    ("abdominal pain", 18, (), ("abdominal pian",)),
    ("chest pain", 30, (), ("chest pian",)),
    ("headache", 30, (), ("headach", "hedache")),
    ("migraine", 20, (), ("migrane",)),
    ("back pain", 30, (), ()),
    ("low back pain", 15, ("LBP",), ()),
    ("osteoarthritis", 25, ("OA",), ("osteoarthritus",)),
    ("rheumatoid arthritis", 8, ("RA",), ("rheumatoid arthritus",)),
    ("arthritis", 12, (), ("arthritus", "athritis")),
    ("gout", 10, (), ()),
    ("osteoporosis", 12, (), ("osteoperosis",)),
    ("fibromyalgia", 6, (), ()),
    ("depression", 35, (), ("depresion",)),
    ("major depressive disorder", 10, ("MDD",), ()),
    ("anxiety", 35, (), ("anxeity",)),
    ("generalized anxiety disorder", 8, ("GAD",), ()),
    ("insomnia", 18, (), ("insomina",)),
    ("bipolar disorder", 6, (), ()),
    ("schizophrenia", 4, (), ("schizophrenai",)),
    ("ADHD", 8, (), ()),
    ("dementia", 6, (), ()),
    ("Alzheimer's disease", 5, (), ("Alzheimers disease",)),
    ("Parkinson's disease", 4, (), ("Parkinsons disease",)),
    ("epilepsy", 5, (), ("epilepsey",)),
    ("seizure", 6, (), ("siezure",)),
    ("stroke", 8, ("CVA",), ()),
    ("transient ischemic attack", 4, ("TIA",), ()),
    ("congestive heart failure", 15, ("CHF",), ("congestive heart failiure",)),
    ("heart failure", 10, ("HF",), ()),
    ("coronary artery disease", 15, ("CAD",), ()),
    ("myocardial infarction", 6, ("MI",), ("myocardial infarcton",)),
    ("atrial fibrillation", 15, ("AFib", "AF"), ("atrial fibrilation",)),
    ("angina", 6, (), ()),
    ("deep vein thrombosis", 5, ("DVT",), ()),
    ("pulmonary embolism", 4, (), ()),
    ("anemia", 15, (), ("anaemia", "anemai")),
    ("iron deficiency anemia", 6, (), ()),
    ("hypothyroidism", 20, (), ("hypothyroidsm",)),
    ("hyperthyroidism", 5, (), ()),
    ("chronic kidney disease", 12, ("CKD",), ()),
    ("kidney stones", 6, (), ()),
    ("obesity", 20, (), ("obesety",)),
    ("sleep apnea", 10, ("OSA",), ("sleep apnoea",)),
    ("allergic rhinitis", 15, (), ("alergic rhinitis",)),
    ("seasonal allergies", 10, (), ()),
    ("eczema", 10, (), ("excema",)),
    ("psoriasis", 6, (), ("psoriasus",)),
    ("acne", 8, (), ()),
    ("cellulitis", 8, (), ("celulitis",)),
    ("shingles", 5, (), ()),
    ("conjunctivitis", 6, (), ("conjunctivits",)),
    ("glaucoma", 4, (), ()),
    ("benign prostatic hyperplasia", 8, ("BPH",), ()),
    ("erectile dysfunction", 5, ("ED",), ()),
    ("hepatitis C", 3, ("HCV",), ()),
    ("cirrhosis", 3, (), ("cirrosis",)),
    ("pancreatitis", 3, (), ()),
    ("appendicitis", 3, (), ("apendicitis",)),
    ("breast cancer", 4, (), ()),
    ("prostate cancer", 3, (), ()),
    ("lung cancer", 3, (), ()),
    ("fever", 25, (), ("fevr",)),
    ("cough", 30, (), ("cogh",)),
    ("shortness of breath", 18, ("SOB",), ()),
    ("dizziness", 12, (), ("diziness",)),
    ("fatigue", 15, (), ("fatige",)),
    ("rash", 10, (), ()),
    ("sore throat", 15, (), ()),
)

# Medicine: (name, weight, doses, abbreviations, misspellings).
MEDICINES: tuple[tuple[str, int, tuple[str, ...], tuple[str, ...], tuple[str, ...]], ...] = (
    ("lisinopril", 80, ("5 mg", "10 mg", "20 mg", "40 mg"), (), ("lisinipril", "lisinopirl")),
    ("atorvastatin", 80, ("10 mg", "20 mg", "40 mg", "80 mg"), (), ("atorvastatine", "atorvastin")),
    ("metformin", 70, ("500 mg", "850 mg", "1000 mg"), (), ("metforman", "metfromin")),
    ("levothyroxine", 60, ("25 mcg", "50 mcg", "75 mcg", "100 mcg"), (), ("levothyroxin",)),
    ("amlodipine", 55, ("2.5 mg", "5 mg", "10 mg"), (), ("amlodipene",)),
    ("metoprolol", 50, ("25 mg", "50 mg", "100 mg"), (), ("metropolol",)),
    ("omeprazole", 50, ("20 mg", "40 mg"), (), ("omeprazol",)),
    ("simvastatin", 30, ("20 mg", "40 mg"), (), ()),
    ("losartan", 40, ("25 mg", "50 mg", "100 mg"), (), ("losarten",)),
    ("albuterol", 40, ("90 mcg", "2 puffs"), (), ("albuterl",)),
    ("gabapentin", 30, ("100 mg", "300 mg", "600 mg"), (), ("gabapentine",)),
    ("hydrochlorothiazide", 30, ("12.5 mg", "25 mg"), ("HCTZ",), ("hydrochlorthiazide",)),
    ("sertraline", 30, ("25 mg", "50 mg", "100 mg"), (), ("sertaline",)),
    ("furosemide", 25, ("20 mg", "40 mg"), (), ("furosemid",)),
    (
        "acetaminophen",
        45,
        ("325 mg", "500 mg", "650 mg", "1 g"),
        ("APAP",),
        ("acetaminophin", "acetominophen"),
    ),
    ("ibuprofen", 50, ("200 mg", "400 mg", "600 mg", "800 mg"), (), ("ibuprofin", "ibuprofine")),
    ("aspirin", 45, ("81 mg", "325 mg"), ("ASA",), ("asprin",)),
    ("naproxen", 15, ("250 mg", "500 mg"), (), ("naproxin",)),
    ("amoxicillin", 45, ("250 mg", "500 mg", "875 mg"), (), ("amoxicilin", "amoxicillan")),
    ("amoxicillin-clavulanate", 10, ("875 mg",), (), ()),
    ("azithromycin", 30, ("250 mg", "500 mg"), (), ("azithromicin",)),
    ("doxycycline", 15, ("100 mg",), (), ("doxycyline",)),
    ("cephalexin", 15, ("250 mg", "500 mg"), (), ("cefalexin",)),
    ("ciprofloxacin", 12, ("250 mg", "500 mg"), (), ("ciprofloxacine",)),
    ("nitrofurantoin", 10, ("100 mg",), (), ()),
    ("trimethoprim-sulfamethoxazole", 8, ("800/160 mg",), ("TMP-SMX",), ()),
    ("clindamycin", 5, ("300 mg",), (), ()),
    ("penicillin", 8, ("500 mg",), (), ("penicilin",)),
    ("oseltamivir", 12, ("75 mg",), (), ("oseltamavir",)),
    ("prednisone", 25, ("5 mg", "10 mg", "20 mg", "40 mg"), (), ("predisone",)),
    ("montelukast", 15, ("10 mg",), (), ("montelucast",)),
    ("fluticasone", 15, ("50 mcg", "2 sprays"), (), ("fluticazone",)),
    ("budesonide-formoterol", 6, ("160/4.5 mcg",), (), ()),
    ("tiotropium", 6, ("18 mcg",), (), ()),
    ("cetirizine", 15, ("10 mg",), (), ("cetirizene",)),
    ("loratadine", 12, ("10 mg",), (), ("loratidine",)),
    ("diphenhydramine", 8, ("25 mg", "50 mg"), (), ()),
    ("insulin glargine", 20, ("10 units", "20 units", "30 units"), (), ("insulin glargene",)),
    ("insulin lispro", 10, ("5 units", "8 units"), (), ()),
    ("insulin", 15, ("10 units",), (), ("insuline",)),
    ("glipizide", 12, ("5 mg", "10 mg"), (), ()),
    ("sitagliptin", 10, ("100 mg",), (), ()),
    ("empagliflozin", 8, ("10 mg", "25 mg"), (), ()),
    ("semaglutide", 10, ("0.25 mg", "0.5 mg", "1 mg"), (), ()),
    ("warfarin", 15, ("2 mg", "5 mg"), (), ("warfarine", "warfrin")),
    ("apixaban", 15, ("2.5 mg", "5 mg"), (), ("apixiban",)),
    ("rivaroxaban", 8, ("10 mg", "20 mg"), (), ()),
    ("clopidogrel", 15, ("75 mg",), (), ("clopidogral",)),
    ("carvedilol", 12, ("3.125 mg", "6.25 mg", "12.5 mg"), (), ()),
    ("spironolactone", 8, ("25 mg",), (), ()),
    ("diltiazem", 8, ("120 mg", "180 mg"), (), ()),
    ("nitroglycerin", 6, ("0.4 mg",), ("NTG",), ("nitroglycerine",)),
    ("digoxin", 4, ("0.125 mg",), (), ()),
    ("pantoprazole", 20, ("20 mg", "40 mg"), (), ("pantoprazol",)),
    ("famotidine", 10, ("20 mg", "40 mg"), (), ()),
    ("ondansetron", 12, ("4 mg", "8 mg"), (), ("ondansatron",)),
    ("loperamide", 5, ("2 mg",), (), ()),
    ("docusate", 5, ("100 mg",), (), ()),
    ("polyethylene glycol", 6, ("17 g",), (), ()),
    ("escitalopram", 20, ("10 mg", "20 mg"), (), ("escitalopam",)),
    ("fluoxetine", 15, ("20 mg", "40 mg"), (), ("fluoxitine",)),
    ("citalopram", 10, ("20 mg",), (), ()),
    ("bupropion", 12, ("150 mg", "300 mg"), (), ("buproprion",)),
    ("trazodone", 15, ("50 mg", "100 mg"), (), ("trazadone",)),
    ("duloxetine", 10, ("30 mg", "60 mg"), (), ()),
    ("venlafaxine", 6, ("75 mg",), (), ()),
    ("alprazolam", 8, ("0.25 mg", "0.5 mg"), (), ("alprazalam",)),
    ("lorazepam", 8, ("0.5 mg", "1 mg"), (), ()),
    ("clonazepam", 6, ("0.5 mg",), (), ()),
    ("zolpidem", 6, ("5 mg", "10 mg"), (), ()),
    ("quetiapine", 5, ("25 mg", "50 mg"), (), ("quetiapene",)),
    ("aripiprazole", 4, ("5 mg",), (), ()),
    ("lithium", 3, ("300 mg",), (), ()),
    ("methylphenidate", 5, ("10 mg", "20 mg"), (), ()),
    ("donepezil", 4, ("5 mg", "10 mg"), (), ()),
    ("levetiracetam", 4, ("500 mg",), (), ()),
    ("sumatriptan", 6, ("50 mg", "100 mg"), (), ("sumatriptin",)),
    ("tramadol", 10, ("50 mg",), (), ("tramadal",)),
    ("oxycodone", 8, ("5 mg",), (), ()),
    ("hydrocodone-acetaminophen", 6, ("5/325 mg",), (), ()),
    ("cyclobenzaprine", 10, ("5 mg", "10 mg"), (), ("cyclobenzaprene",)),
    ("meloxicam", 12, ("7.5 mg", "15 mg"), (), ("meloxicame",)),
    ("allopurinol", 8, ("100 mg", "300 mg"), (), ("allopurinal",)),
    ("colchicine", 4, ("0.6 mg",), (), ()),
    ("alendronate", 6, ("70 mg",), (), ()),
    ("tamsulosin", 10, ("0.4 mg",), (), ("tamsulosine",)),
    ("finasteride", 5, ("5 mg",), (), ()),
    ("sildenafil", 4, ("50 mg",), (), ()),
    ("vitamin D", 20, ("1000 IU", "2000 IU", "50000 IU"), (), ("vitamine D",)),
    ("ferrous sulfate", 8, ("325 mg",), (), ("ferrous sulphate",)),
    ("folic acid", 5, ("1 mg",), (), ()),
    ("potassium chloride", 6, ("10 mEq", "20 mEq"), ("KCl",), ()),
    ("hydrocortisone cream", 6, ("1%",), (), ()),
    ("triamcinolone", 4, ("0.1%",), (), ()),
    ("mupirocin", 3, ("2%",), (), ()),
    ("valacyclovir", 5, ("1 g",), (), ("valacyclovor",)),
    ("methotrexate", 3, ("15 mg",), ("MTX",), ()),
    ("adalimumab", 2, ("40 mg",), (), ()),
)

# route and frequency phrases as clinicians write them
ORAL_ROUTES = ("by mouth", "PO", "orally", "p.o.")
ROUTES_BY_FORM = {
    "inhaled": ("inhaled", "via inhaler", "via nebulizer"),
    "nasal": ("intranasally", "in each nostril"),
    "injected": ("subcutaneously", "SC", "subQ"),
    "topical": ("topically", "to affected area"),
}
FORM_OF = {
    "albuterol": "inhaled", "budesonide-formoterol": "inhaled", "tiotropium": "inhaled",
    "fluticasone": "nasal",
    "insulin glargine": "injected", "insulin lispro": "injected", "insulin": "injected",
    "semaglutide": "injected", "adalimumab": "injected",
    "hydrocortisone cream": "topical", "triamcinolone": "topical", "mupirocin": "topical",
}  # fmt: skip
IV_OK = (
    "ondansetron", "furosemide", "ceftriaxone", "azithromycin", "ciprofloxacin", "clindamycin", "penicillin",
    "acetaminophen", "pantoprazole", "famotidine", "lorazepam", "levetiracetam", "potassium chloride",
)  # fmt: skip
FREQUENCIES = (
    "daily", "once daily", "twice daily", "BID", "TID", "QID", "q6h", "q8h", "q12h", "at bedtime", "QHS",
    "every morning", "PRN", "q4-6h PRN", "as needed for pain", "once weekly", "three times a day",
)  # fmt: skip
DURATIONS = ("x 5 days", "x 7 days", "x 10 days", "for 2 weeks", "for 3 days", "")

# ----------------------------------------------------------------------------------------------------
# Templates. {I}/{I2}/{I3}: affirmed illnesses; {M}/{M2}/{M3}: medicines ({Md}: with a dose);
# {NI}, {NM}: negated mentions.
# A leading "^" capitalises the first mention when it starts the sentence.
ILLNESS_CLAUSES = (
    "Patient shows signs of {I}.",
    "Pt c/o {I}.",
    "Pt c/o {I}, hx of {I2}.",
    "Presents with {I} and {I2}.",
    "Diagnosed with {I}.",
    "Dx: {I}.",
    "Assessment: {I}.",
    "A/P: {I}, {I2}.",
    "History of {I}.",
    "Hx of {I}, {I2} and {I3}.",
    "PMH: {I}, {I2}, {I3}.",
    "Known {I}, stable.",
    "Follow-up for {I}.",
    "Seen today for {I}.",
    "Admitted for {I}.",
    "Complains of {I}.",
    "Reports {I} since last week.",
    "Symptoms consistent with {I}.",
    "^{I} worsening over the past week.",
    "^{I}, improving.",
    "^{I} well controlled.",
    "Likely {I} secondary to {I2}.",
    "Reassessed {I} today.",
    "Pt with {I} and {I2}, here for refill.",
)
MEDICINE_CLAUSES = (
    "Prescribed {M}.",
    "Prescribed {Md}.",
    "Started on {Md} {F}.",
    "Start {Md} {R} {F}.",
    "Continue {Md} {R} {F}.",
    "Continue {M}.",
    "Rx: {Md} {R} {F} {D}.",
    "Given {Md} {R}.",
    "Increase {M} to {dose} {F}.",
    "Decrease {M} to {dose}.",
    "Takes {M} and {M2}.",
    "Meds: {M}, {M2}, {M3}.",
    "Current meds: {Md} {F}, {M2d} {F2}.",
    "Switched from {M} to {M2}.",
    "Refilled {M}.",
    "Advised {M} {F}.",
    "^{Md} {F}.",
    "Recommend {M} {F}.",
    "Will add {Md} {F}.",
)
NEGATED_ILLNESS_CLAUSES = (
    "No signs of {NI}.",
    "Denies {NI}.",
    "Negative for {NI}.",
    "No evidence of {NI}.",
    "No history of {NI}.",
    "^{NI} ruled out.",
    "Pt denies any {NI}.",
    "No {NI}.",
)
NEGATED_MEDICINE_CLAUSES = (
    "Not on {NM}.",
    "Denies use of {NM}.",
    "No {NM} given.",
    "Never took {NM}.",
)
NEITHER_CLAUSES = (
    "Routine check-up, no complaints.",
    "Annual physical; labs drawn.",
    "Vitals stable. Return in 6 months.",
    "Patient doing well, no new concerns.",
    "BP 124/78, HR 72, afebrile.",
    "Discussed diet and exercise.",
    "Follow up in 2 weeks.",
    "Labs reviewed with patient.",
    "Immunizations up to date.",
    "Pt educated on medication adherence.",
    "Weight stable since last visit.",
    "Referred to cardiology.",
)


@dataclass(frozen=True, slots=True)
class _Cum:
    items: tuple
    cum: tuple[float, ...]


def _cumulative(items: tuple, weights: list[int]) -> _Cum:
    total, cum = 0.0, []
    for w in weights:
        total += w
        cum.append(total)
    return _Cum(items, tuple(cum))


class EntryGenerator:
    """Deterministic generator of labelled entries: one ``random.Random(seed)``, nothing else random."""

    def __init__(self, seed: int = 0, *, misspell_rate: float = 0.08, abbrev_rate: float = 0.35) -> None:
        self.rng = random.Random(seed)
        self.seed = seed
        self.misspell_rate = misspell_rate
        self.abbrev_rate = abbrev_rate
        self._ill = _cumulative(ILLNESSES, [x[1] for x in ILLNESSES])
        self._med = _cumulative(MEDICINES, [x[1] for x in MEDICINES])

    # -- sampling -----------------------------------------------------------------------------------------
    def _pick(self, table: _Cum, k: int, exclude: set[str]) -> list[tuple]:
        out: list[tuple] = []
        tries = 0
        while len(out) < k and tries < 50:
            tries += 1
            item = self.rng.choices(table.items, cum_weights=table.cum)[0]
            name = item[0]
            if (
                name in exclude
                or any(_related(name, o[0]) for o in out)
                or any(_related(name, e) for e in exclude)
            ):
                continue
            out.append(item)
        return out

    def _surface(self, name: str, abbrevs: tuple[str, ...], misspellings: tuple[str, ...]) -> str:
        r = self.rng.random()
        if abbrevs and r < self.abbrev_rate:
            return self.rng.choice(abbrevs)
        if misspellings and self.rng.random() < self.misspell_rate:
            return self.rng.choice(misspellings)
        return name

    def _ill_surface(self, item: tuple) -> str:
        return self._surface(item[0], item[2], item[3])

    def _med_surface(self, item: tuple) -> str:
        return self._surface(item[0], item[3], item[4])

    def _route(self, name: str) -> str:
        form = FORM_OF.get(name)
        if form:
            return self.rng.choice(ROUTES_BY_FORM[form])
        if name in IV_OK and self.rng.random() < 0.25:
            return "IV"
        return self.rng.choice(ORAL_ROUTES)

    # -- one entry ----------------------------------------------------------------------------------------
    def entry(self) -> tuple[str, list[str], list[str], list[str], list[str]]:
        """(text, illnesses, medicines, negated_illnesses, negated_medicines)."""
        rng = self.rng
        kind = rng.random()
        want_ill = kind < 0.80
        want_med = 0.25 < kind < 0.95 or rng.random() < 0.2
        if kind >= 0.95:
            want_ill = want_med = False
        clauses: list[str] = []
        ills: list[str] = []
        meds: list[str] = []
        neg_ills: list[str] = []
        neg_meds: list[str] = []
        used: set[str] = set()

        if want_ill:
            tpl = rng.choice(ILLNESS_CLAUSES)
            n = 3 if "{I3}" in tpl else 2 if "{I2}" in tpl else 1
            items = self._pick(self._ill, n, used)
            if len(items) < n:
                tpl = "Diagnosed with {I}."
                items = items[:1]
            used.update(i[0] for i in items)
            surfaces = [self._ill_surface(i) for i in items]
            surfaces[0] = _cap_if(tpl, surfaces[0])
            clauses.append(_fill(tpl, dict(zip(("I", "I2", "I3"), surfaces, strict=False))))
            ills.extend(surfaces)
        if rng.random() < 0.22:  # a negated illness
            items = self._pick(self._ill, 1, used)
            if items:
                used.add(items[0][0])
                s = items[0][0] if rng.random() < 0.7 else self._ill_surface(items[0])
                tpl = rng.choice(NEGATED_ILLNESS_CLAUSES)
                s = _cap_if(tpl, s)
                clauses.append(_fill(tpl, {"NI": s}))
                neg_ills.append(s)
        if want_med:
            tpl = rng.choice(MEDICINE_CLAUSES)
            n = 3 if "{M3}" in tpl else 2 if ("{M2}" in tpl or "{M2d}" in tpl) else 1
            items = self._pick(self._med, n, used)
            if len(items) < n:
                tpl, items = "Prescribed {M}.", items[:1]
            if items:
                used.update(i[0] for i in items)
                surfaces = [self._med_surface(i) for i in items]
                surfaces[0] = _cap_if(tpl, surfaces[0])
                doses = [rng.choice(i[2]) for i in items]
                values = {
                    "M": surfaces[0],
                    "Md": f"{surfaces[0]} {doses[0]}",
                    "dose": rng.choice(items[0][2]),
                    "R": self._route(items[0][0]),
                    "F": rng.choice(FREQUENCIES),
                    "F2": rng.choice(FREQUENCIES),
                    "D": rng.choice(DURATIONS),
                }
                if n >= 2:
                    values["M2"] = surfaces[1]
                    values["M2d"] = f"{surfaces[1]} {doses[1]}"
                if n >= 3:
                    values["M3"] = surfaces[2]
                clauses.append(_fill(tpl, values))
                meds.extend(surfaces)
        if rng.random() < 0.08:  # a negated medicine
            items = self._pick(self._med, 1, used)
            if items:
                used.add(items[0][0])
                clauses.append(_fill(rng.choice(NEGATED_MEDICINE_CLAUSES), {"NM": items[0][0]}))
                neg_meds.append(items[0][0])
        if not clauses or rng.random() < 0.3:
            clauses.append(rng.choice(NEITHER_CLAUSES))
        if len(clauses) > 1 and rng.random() < 0.3:
            # negations and remarks sometimes come first
            head = clauses.pop(rng.randrange(1, len(clauses)))
            clauses.insert(0, head)
        text = " ".join(clauses)
        text = " ".join(text.split())  # empty duration placeholders leave double spaces
        text = text.replace(" .", ".")
        return text, _dedupe(ills), _dedupe(meds), _dedupe(neg_ills), _dedupe(neg_meds)

    # -- rows ---------------------------------------------------------------------------------------------
    def rows(self, n: int, start: datetime | None = None) -> Iterator[dict[str, str]]:
        rng = self.rng
        n_patients = max(1, n // 4)
        width = max(6, len(str(n_patients + 1000)))
        ts = start or datetime(2024, 1, 1, 8, 0, 0, tzinfo=UTC)
        ewidth = max(7, len(str(n)))
        for i in range(n):
            text, ills, meds, neg_ills, neg_meds = self.entry()
            ts += timedelta(seconds=rng.randint(5, 900))
            pid = 1000 + int(n_patients * rng.random() ** 1.3)  # some patients are seen more often
            yield {
                "patient_id": f"P{pid:0{width}d}",
                "medical_entry": text,
                "timestamp": ts.isoformat(timespec="seconds").replace("+00:00", "Z"),
                "entry_id": f"E{i + 1:0{ewidth}d}",
                "illnesses": "|".join(ills),
                "medicines": "|".join(meds),
                "negated_illnesses": "|".join(neg_ills),
                "negated_medicines": "|".join(neg_meds),
            }


def _related(a: str, b: str) -> bool:
    """Terms that must not share an entry (one contains the other: 'diabetes' / 'type 2 diabetes')."""
    a, b = a.lower(), b.lower()
    return a in b or b in a


def _dedupe(xs: list[str]) -> list[str]:
    out: list[str] = []
    for x in xs:
        if x not in out:
            out.append(x)
    return out


def _cap_if(template: str, surface: str) -> str:
    """The surface as written at a sentence start ("^" templates): first letter upper-cased."""
    return surface[:1].upper() + surface[1:] if template.startswith("^") else surface


def _fill(template: str, values: dict[str, str]) -> str:
    return template.lstrip("^").format_map(_Missing(values))


class _Missing(dict):
    def __missing__(self, key: str) -> str:  # unused placeholders vanish
        return ""


def write_csv(rows: Iterator[dict[str, str]], fh: io.TextIOBase | io.TextIOWrapper) -> int:
    w = csv.DictWriter(fh, fieldnames=COLUMNS, lineterminator="\n")
    w.writeheader()
    n = 0
    for row in rows:
        w.writerow(row)
        n += 1
    return n


def generate(n: int, seed: int = 0) -> list[dict[str, str]]:
    return list(EntryGenerator(seed).rows(n))


# ----------------------------------------------------------------------------------------------------
def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--rows", type=int, default=1000, help="number of entries (default 1000)")
    parser.add_argument("--seed", type=int, default=0, help="random seed; same seed, same file (default 0)")
    parser.add_argument("--out", default="-", help="output CSV path, '-' for stdout (default)")


def run(args: argparse.Namespace) -> int:
    if args.rows < 0:
        print("error: --rows must be >= 0", file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    gen = EntryGenerator(args.seed)
    if args.out in ("-", ""):
        n = write_csv(gen.rows(args.rows), sys.stdout)
        sys.stdout.flush()
    else:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        with out.open("w", encoding="utf-8", newline="") as fh:
            n = write_csv(gen.rows(args.rows), fh)
        print(
            f"wrote {n:,} rows to {out} in {time.perf_counter() - t0:.2f}s (seed {args.seed})",
            file=sys.stderr,
        )
    log.debug("generated %d rows", n)
    return 0
