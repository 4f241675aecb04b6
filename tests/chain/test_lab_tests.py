"""Tests, analytes and markers are not medicines: context cues, value syntax, the analyte vocabulary."""

from __future__ import annotations

from pathlib import Path

import pytest

from extractor.chain.lab_tests import LabContextError, LabTests, load_lab_context
from extractor.chain.model import MEDICINE, Entity

LEXICONS = Path(__file__).resolve().parents[2] / "lexicons"


@pytest.fixture(scope="module")
def lab() -> LabTests:
    return LabTests.from_dir(LEXICONS)


def _ent(text: str, surface: str, nth: int = 0) -> Entity:
    start = -1
    for _ in range(nth + 1):
        start = text.index(surface, start + 1)
    return Entity(surface, start, start + len(surface), MEDICINE, "lexicon", "t", 0.9)


# (text, surface, occurrence, is a test)
CASES = [
    ("Serum calcium 11.2 mg/dL.", "calcium", 0, True),
    ("Started calcium supplements.", "calcium", 0, False),
    ("Oxygen saturation 88% on room air.", "Oxygen", 0, True),
    ("His oxygen saturation on room air was 94%.", "oxygen", 0, True),
    ("placed on 2 L/min of oxygen via nasal cannula", "oxygen", 0, False),
    ("He required 7 L/min of oxygen via a simple mask.", "oxygen", 0, False),
    ("Na 131, K 5.8", "Na", 0, True),
    ("elevated N-terminal pro-brain natriuretic peptide (>2,000 pg/mL)", "natriuretic peptide", 0, True),
    ("The B-natriuretic peptide level was 1,045 pg/mL.", "natriuretic peptide", 0, True),
    ("The serum creatine kinase activity was mildly increased", "creatine", 0, True),
    ("alanine aminotransferase 120 U/L", "alanine", 0, True),
    ("Tumour cells were positive for vimentin and desmin.", "vimentin", 0, True),
    ("free carnitine 25.2 μmol/L", "carnitine", 0, True),
    ("She was started on oral carnitine 1 g twice daily.", "carnitine", 0, False),
    ("treated with calcium channel blockers", "calcium", 0, False),
    ("Started metformin 500 bid and aspirin.", "metformin", 0, False),
    ("Hydrocortisone cream 1% every morning.", "Hydrocortisone", 0, False),
    ("Current meds: KCl 20 mEq TID.", "KCl", 0, False),
    ("Insulin and metformin were continued.", "Insulin", 0, False),  # dual use: never a test by name alone
    ("The ammonia concentration was normal.", "ammonia", 0, True),
    ("Aspirin 81 mg daily.", "Aspirin", 0, False),
    # new cues, one case each
    ("The isolates were resistant to oxacillin.", "oxacillin", 0, True),
    ("The strain was susceptible to vancomycin.", "vancomycin", 0, True),
    ("The isolate was sensitive to ceftriaxone.", "ceftriaxone", 0, True),
    ("It showed resistance to rifampicin.", "rifampicin", 0, True),
    ("Testing showed susceptibility to meropenem.", "meropenem", 0, True),
    ("The sputum cultured Pseudomonas aeruginosa.", "Pseudomonas aeruginosa", 0, True),
    ("The blood culture grew Candida albicans.", "Candida albicans", 0, True),
    ("The biopsy yielded Candida albicans.", "Candida albicans", 0, True),
    ("Cultures isolated Staphylococcus aureus.", "Staphylococcus aureus", 0, True),
    ("The area was stained by alcian blue.", "alcian blue", 0, True),
    ("Sections were stained with trichrome.", "trichrome", 0, True),
    ("Focal positivity for desmin.", "desmin", 0, True),
    ("Strong reactivity for cyclin D1.", "cyclin D1", 0, True),
    ("Diffuse expression for vimentin.", "vimentin", 0, True),
    ("CEA and NSE were all within normal ranges.", "NSE", 0, True),
    ("Cortisol and ACTH were all normal.", "ACTH", 0, True),
    ("ANA and ANCA were all negative.", "ANCA", 0, True),
    ("CK and LDH were all elevated.", "LDH", 0, True),
    ("Tumour markers within normal ranges.", "Tumour markers", 0, True),
    ("Hematoxylin and eosin-stained sections.", "eosin", 0, True),
    ("Trichrome stained sections.", "Trichrome", 0, True),
    ("HLA genotyping was performed.", "HLA", 0, True),
    # diagnostic agents and stains are not treatments
    ("Accumulation of fluorodeoxyglucose in the gallbladder.", "fluorodeoxyglucose", 0, True),
    ("Fluorescein angiography showed leakage.", "Fluorescein", 0, True),
    # a list a test cue opens: every item is a test ...
    ("positive for S-100, HMB-45, melan-A and vimentin", "vimentin", 0, True),
    # ... until a treatment cue takes the list over
    ("positive for HIV, and was started on tenofovir, emtricitabine and dolutegravir", "emtricitabine", 0, False),
    # a name built like a marker's (last word a marker_head row, or a multi-word enzyme) is a test ...
    ("Serological markers, including antinuclear antibodies, were unremarkable.", "antinuclear antibodies", 0, True),
    ("Human leukocyte antigen genotyping determined the haplotype.", "Human leukocyte antigen", 0, True),
    ("the soluble interleukin-2 receptor was raised", "interleukin-2 receptor", 0, True),
    ("The tumour had been estrogen receptor-positive.", "estrogen receptor", 0, True),
    ("complex IV, or cytochrome c oxidase, activity was 45.4", "cytochrome c oxidase", 0, True),
    # ... a one-word enzyme is a drug, and a treatment cue keeps a marker-like name a medicine
    ("She received alteplase.", "alteplase", 0, False),
    ("She was treated with a monoclonal antibody.", "monoclonal antibody", 0, False),
    # a drug class named after its target is a medicine
    ("Previous prescription of mineralocorticoid receptor antagonists", "mineralocorticoid receptor", 0, False),
    # a value followed by its reference range is a measurement, even in a dose-like unit
    ("24-hour epinephrine 13 μg (normal range: 4-20)", "epinephrine", 0, True),
    ("serum amyloid A of 7.0 μg/mL (RV: 0-8.0)", "amyloid A", 0, True),
    ("Epinephrine 1 mg (1:10,000) was given.", "Epinephrine", 0, False),  # no range: a dose
    # an amount per 24 hours is excreted, not given
    ("positive Bence-Jones protein (0.37 g/24 h) in the urine", "Bence-Jones protein", 0, True),
    ("norepinephrine 468 μg per day", "norepinephrine", 0, False),
    ("24-hour norepinephrine was raised", "norepinephrine", 0, True),
    ("The 13C urea breath test was negative.", "13C urea", 0, True),
    ("undetectable thyroglobulin antibodies", "thyroglobulin", 0, True),
]


@pytest.mark.parametrize(("text", "surface", "nth", "is_test"), CASES)
def test_test_or_medicine(lab: LabTests, text: str, surface: str, nth: int, is_test: bool) -> None:
    e = _ent(text, surface, nth)
    assert (lab.test_cue(text, e) is not None) is is_test, lab.test_cue(text, e)


def test_split_moves_tests_with_the_cue(lab: LabTests) -> None:
    text = "Serum calcium 11.2 mg/dL. Started calcium supplements."
    a, b = _ent(text, "calcium", 0), _ent(text, "calcium", 1)
    kept, tests = lab.split(text, [a, b])
    assert kept == [b]
    assert [t.start for t in tests] == [a.start] and tests[0].details["test"]


@pytest.mark.parametrize(
    ("text", "tests", "medicines"),
    [
        ("Tumour cells were positive for vimentin, synaptophysin and chromogranin.",
         ["vimentin", "synaptophysin", "chromogranin"], []),
        ("Carcinoembryonic antigen, cytokeratin 19 and enolase were all within normal ranges.",
         ["Carcinoembryonic antigen", "cytokeratin 19", "enolase"], []),
        ("Treated with aspirin, clopidogrel and heparin.", [], ["aspirin", "clopidogrel", "heparin"]),
        # an item with its own dose is a medicine even in a list after a test
        ("Serum calcium 11.2 mg/dL, magnesium 2 g IV given.", ["calcium"], ["magnesium"]),
        # the abbreviation defined right after a test's name is the same test
        ("Levels of neuron-specific enolase (NSE) suggested a neuroendocrine tumour.",
         ["neuron-specific enolase", "NSE"], []),
        # interferon is measured, but mostly given: its abbreviation stays a medicine with it
        ("no prior exposure to any Interferon (IFN) or ribavirin", [], ["Interferon", "IFN", "ribavirin"]),
    ],
)
def test_a_list_shares_its_test_cue(lab: LabTests, text: str, tests: list[str], medicines: list[str]) -> None:
    kept, moved = lab.split(text, [_ent(text, s) for s in tests + medicines])
    assert sorted(e.surface for e in moved) == sorted(tests)
    assert sorted(e.surface for e in kept) == sorted(medicines)


def test_illnesses_are_never_tests(lab: LabTests) -> None:
    text = "elevated troponin"
    e = Entity("troponin", 9, 17, "ILLNESS", "ner", "m", 0.5)
    assert lab.split(text, [e]) == ([e], [])


@pytest.mark.parametrize(
    ("text", "surface", "measure"),
    [
        ("Her Glasgow Coma Scale was 14.", "Coma", "scale"),
        ("Serum tumor markers were normal.", "tumor", "markers"),
        ("Hamilton Depression Rating Scale scores fell.", "Depression", "rating scale"),
        ("Beck Depression Inventory score 12.", "Depression", "inventory"),
        ("Negative HIV test in 2019.", "HIV", "test"),
        ("Hepatitis C antibody was positive.", "Hepatitis C", "antibody"),
        ("Hepatitis B and C serology were negative.", "Hepatitis B", "and c serology"),
    ],
)
def test_an_illness_word_naming_a_measure_is_a_test(lab: LabTests, text: str, surface: str, measure: str) -> None:
    i = text.index(surface)
    e = Entity(surface, i, i + len(surface), "ILLNESS", "lexicon", "t", 0.8)
    kept, tests = lab.split(text, [e])
    assert kept == [] and [t.details["test"] for t in tests] == [f"part of a measure's name: {measure}"]
    other = Entity("coma", 5, 9, "ILLNESS", "lexicon", "t", 0.8)
    assert lab.split("Deep coma followed.", [other])[0] == [other]


def test_lab_context_errors_name_file_and_line(tmp_path: Path) -> None:
    p = tmp_path / "lab_context.tsv"
    p.write_text("phrase\tkind\tnote\nserum\ttest_before\nserum\tsideways\n", encoding="utf-8")
    with pytest.raises(LabContextError, match=r"lab_context.tsv:3: kind must be one of"):
        load_lab_context(p)
    p.write_text("phrase\tkind\nserum\ttest_before\nserum\ttest_before\n", encoding="utf-8")
    with pytest.raises(LabContextError, match=r":3: duplicate"):
        load_lab_context(p)


@pytest.mark.parametrize(
    ("text", "surface", "kept"),
    [
        ("She received adjuvant chemotherapy.", "chemotherapy", True),
        ("He was started on a beta-blocker and a diuretic.", "diuretic", True),
        ("Treated with antibiotics for 10 days.", "antibiotics", True),
        ("Chemotherapy-induced nausea is common.", "Chemotherapy", False),
        ("Opioid receptors in the spinal cord.", "Opioid", False),
    ],
)
def test_a_medicine_class_counts_where_it_is_given(lab: LabTests, text: str, surface: str, kept: bool) -> None:
    e = _ent(text, surface)
    assert lab.names.get(surface.lower()) == "class"
    out, tests = lab.split(text, [e])
    assert (out == [e]) is kept and tests == []


def test_class_heads_name_drug_classes(lab: LabTests) -> None:
    assert lab.is_class_name("angiotensin-converting enzyme inhibitor")
    assert lab.is_class_name("calcium channel blockers")
    assert not lab.is_class_name("inhibitor")  # one word is not a class's name
    assert not lab.is_class_name("metoprolol")


def test_marker_head_rows_are_validated(tmp_path: Path) -> None:
    (tmp_path / "lab_context.tsv").write_text("phrase\tkind\tnote\nantibody\tmarker_head\nantibody\tanalyte\n")
    with pytest.raises(LabContextError, match=r"lab_context.tsv:3: duplicate"):
        load_lab_context(tmp_path / "lab_context.tsv")


def test_no_drug_class_is_a_mined_stop_term(lab: LabTests) -> None:
    rows = (LEXICONS / "stopterms_generated.tsv").read_text(encoding="utf-8").splitlines()
    mined = [r.split("\t") for r in rows if r and not r.startswith("#")]
    assert not [r[0] for r in mined if r[1] == MEDICINE and r[2] == "all" and lab.is_class_name(r[0])]
