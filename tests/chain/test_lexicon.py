"""Lexicon stage: matching tables on fixture lexicons, validation errors, index == brute force, check CLI."""

from __future__ import annotations

import random
import string
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rapidfuzz import fuzz, process

from extractor.chain.lexicon import Lexicon, LexiconError, LexiconStage, number_variant, tokenize
from extractor.chain.lexicon_index import QGramIndex, bench_index
from extractor.chain.stage import Stage
from extractor.tools.lexicon_check import check

REPO = Path(__file__).resolve().parents[2]

ILL = (
    "term\tcanonical\tcode\tcode_system\tsource\tterm_type\n"
    + "\n".join(
        [
            "pneumonia\tpneumonia\tDOID:552\tDOID\tDO\tlabel",
            "influenza\tinfluenza\tDOID:8469\tDOID\tDO\tlabel",
            "diabetes mellitus\tdiabetes mellitus\tDOID:9351\tDOID\tDO\tlabel",
            "diabetes\tdiabetes mellitus\tDOID:9351\tDOID\tDO\texact_synonym",
            "type 2 diabetes mellitus\ttype 2 diabetes mellitus\tE11\tICD-10-CM\tICD-10-CM\tderived",
            "hypertension\thypertension\tI10\tICD-10-CM\tICD-10-CM\tderived",
            "heart failure\theart failure\tI50.9\tICD-10-CM\tICD-10-CM\tderived",
            "congestive heart failure\tcongestive heart failure\tI50.9\tICD-10-CM\tICD-10-CM\tderived",
            "delirium\tdelirium\tF05\tICD-10-CM\tICD-10-CM\tderived",
            "cold\tcommon cold\tJ00\tICD-10-CM\tICD-10-CM\tinclusion_term",
            "common cold\tcommon cold\tJ00\tICD-10-CM\tICD-10-CM\tdescription",
            "seizure\tseizure\tR56.9\tICD-10-CM\tICD-10-CM\tderived",
        ]
    )
    + "\n"
)
MED = (
    "term\tcanonical\tcode\tcode_system\tsource\tterm_type\n"
    + "\n".join(
        [
            "ibuprofen\tIbuprofen\tDB01050\tDrugBank\tdrug-ner\tname_or_synonym",
            "famotidine\tFamotidine\tDB00927\tDrugBank\tdrug-ner\tname_or_synonym",
            "amoxicillin\tAmoxicillin\tDB01060\tDrugBank\tdrug-ner\tname_or_synonym",
            "aspirin\tAspirin\tDB00945\tDrugBank\tdrug-ner\tname_or_synonym",
            "lithium carbonate\tLithium carbonate\tDB14509\tDrugBank\tdrug-ner\tname_or_synonym",
            "lithium\tLithium\tDB01356\tDrugBank\tdrug-ner\tname_or_synonym",
            "alpha-methyldopa\tMethyldopa\tDB00968\tDrugBank\tdrug-ner\tname_or_synonym",
            "today\tSome brand\tDB99999\tDrugBank\tdrug-ner\tname_or_synonym",
            "metformin\tMetformin\tDB00331\tDrugBank\tdrug-ner\tname_or_synonym",
        ]
    )
    + "\n"
)
ABBR = (
    "abbreviation\tlabel\texpansion\tcode\tcode_system\tnote\n"
    "HTN\tILLNESS\thypertension\t\t\t\n"
    "T2DM\tILLNESS\ttype 2 diabetes mellitus\t\t\t\n"
    "ALL\tILLNESS\tacute lymphoblastic leukemia\tC91.00\tICD-10-CM\t\n"
    "ASA\tMEDICINE\taspirin\t\t\t\n"
)
MISS = (
    "misspelling\tlabel\tcorrect\tnote\nibuprofin\tMEDICINE\tibuprofen\t\npnuemonia\tILLNESS\tpneumonia\t\n"
)
STOP = "term\tlabel\tscope\treason\ntoday\t*\tall\tcommon word\ncold\tILLNESS\tall\tweather\n"
CURATED = "term\tlabel\tcanonical\tcode\tcode_system\tnote\nflu\tILLNESS\tinfluenza\tJ11.1\tICD-10-CM\t\n"


def write_lexicon(d: Path, **override: str) -> Path:
    files = {
        "illnesses.tsv": ILL,
        "medicines.tsv": MED,
        "abbreviations.tsv": ABBR,
        "misspellings.tsv": MISS,
        "stopterms.tsv": STOP,
        "curated_terms.tsv": CURATED,
    }
    files.update(override)
    d.mkdir(parents=True, exist_ok=True)
    for name, body in files.items():
        (d / name).write_text(body, encoding="utf-8")
    return d


@pytest.fixture
def lexdir(tmp_path: Path) -> Path:
    return write_lexicon(tmp_path / "lex")


@pytest.fixture
def stage(lexdir: Path) -> LexiconStage:
    return LexiconStage(Lexicon.load(lexdir, use_cache=False))


CASES = [
    # text, [(surface, label, match, canonical)]
    (
        "Patient shows signs of flu. Prescribed ibuprofen 400 mg.",
        [("flu", "ILLNESS", "exact", "influenza"), ("ibuprofen", "MEDICINE", "exact", "Ibuprofen")],
    ),
    (
        "Famotidine-associated delirium.",
        [("Famotidine", "MEDICINE", "exact", "Famotidine"), ("delirium", "ILLNESS", "exact", "delirium")],
    ),
    (
        "Given alpha-methyldopa and alpha methyldopa.",
        [
            ("alpha-methyldopa", "MEDICINE", "exact", "Methyldopa"),
            ("alpha methyldopa", "MEDICINE", "exact", "Methyldopa"),
        ],
    ),
    (
        "Known congestive heart failure.",
        [("congestive heart failure", "ILLNESS", "exact", "congestive heart failure")],
    ),
    ("lithium carbonate toxicity", [("lithium carbonate", "MEDICINE", "exact", "Lithium carbonate")]),
    (
        "Hx of HTN and T2DM, on ASA.",
        [
            ("HTN", "ILLNESS", "abbreviation", "hypertension"),
            ("T2DM", "ILLNESS", "abbreviation", "type 2 diabetes mellitus"),
            ("ASA", "MEDICINE", "abbreviation", "aspirin"),
        ],
    ),
    ("htn and asa in lower case are not abbreviations", []),
    ("ALL in remission; all good", [("ALL", "ILLNESS", "abbreviation", "acute lymphoblastic leukemia")]),
    (
        "Took ibuprofin for pnuemonia.",
        [
            ("ibuprofin", "MEDICINE", "misspelling", "Ibuprofen"),
            ("pnuemonia", "ILLNESS", "misspelling", "pneumonia"),
        ],
    ),
    ("Started amoxicilin yesterday.", [("amoxicilin", "MEDICINE", "fuzzy", "Amoxicillin")]),
    (
        "Metfromin for hypertensoin.",
        [
            ("Metfromin", "MEDICINE", "fuzzy", "Metformin"),
            ("hypertensoin", "ILLNESS", "fuzzy", "hypertension"),
        ],
    ),
    # fuzzy targets are preferred names only ("diabetes" is a synonym); a term plus a suffix is another word
    ("diabetis; metformine", []),
    ("Seen today for a cold.", []),
    ("A common cold today.", [("common cold", "ILLNESS", "exact", "common cold")]),
    ("Recurrent seizures.", [("seizures", "ILLNESS", "inflection", "seizure")]),
    ("non-diabetes control group", []),
    ("", []),
]


@pytest.mark.parametrize("text,expected", CASES)
def test_extract_table(stage: LexiconStage, text: str, expected: list[tuple[str, str, str, str]]) -> None:
    got = stage.extract(text)
    assert [(e.surface, e.label, e.details["match"], e.canonical) for e in got] == expected
    for e in got:
        assert text[e.start : e.end] == e.surface
        assert e.method == "lexicon"
        assert 0 < e.confidence <= 1 and 0 < e.score <= 1
        assert ":" in e.source and e.source.split(":")[0].endswith(".tsv")
    for a, b in zip(got, got[1:], strict=False):
        assert a.end <= b.start  # sorted, never overlapping


def test_entity_fields(stage: LexiconStage) -> None:
    (e,) = stage.extract("ibuprofen")
    assert (e.code, e.code_system, e.source, e.score) == ("DB01050", "DrugBank", "medicines.tsv:2", 1.0)
    (h,) = stage.extract("HTN")
    assert (h.code, h.code_system) == ("I10", "ICD-10-CM")  # inherited from the expansion's row
    (f,) = stage.extract("amoxicilin")
    assert f.details == {"match": "fuzzy", "term": "amoxicillin"} and 0.85 <= f.score < 1


def test_stage_protocol_and_many(stage: LexiconStage) -> None:
    assert isinstance(stage, Stage) and stage.method == "lexicon"
    texts = ["flu", "ibuprofen and HTN", ""]
    assert stage.extract_many(texts) == [stage.extract(t) for t in texts]


def test_longest_match_wins(stage: LexiconStage) -> None:
    got = stage.extract("type 2 diabetes mellitus")
    assert [(e.surface, e.code) for e in got] == [("type 2 diabetes mellitus", "E11")]


@given(st.text(alphabet=string.ascii_letters + " -,.()'0123456789", max_size=80))
@settings(max_examples=150, deadline=None)
def test_random_text_offsets_never_overlap(text: str) -> None:
    stage = _HYP_STAGE
    got = stage.extract(text)
    for e in got:
        assert text[e.start : e.end] == e.surface
    for a, b in zip(got, got[1:], strict=False):
        assert a.end <= b.start


def test_tokenize_offsets() -> None:
    text = "Famotidine-associated  delirium (5-FU)."
    for s, e, tok in tokenize(text):
        assert text[s:e] == tok
    assert [t for _, _, t in tokenize(text)][:3] == ["Famotidine", "associated", "delirium"]


# ------------------------------------------------------------------------------------------- validation
@pytest.mark.parametrize(
    "name,body,where",
    [
        ("illnesses.tsv", ILL + "broken row without tabs\n", "illnesses.tsv:14"),
        ("medicines.tsv", "term\tcanonical\n", "medicines.tsv:1"),
        ("abbreviations.tsv", ABBR + "XYZ\tDISEASE\tfoo\t\t\t\n", "abbreviations.tsv:6"),
        ("misspellings.tsv", MISS + "ibuprofn\tMEDICINE\tnot-a-term\t\n", "misspellings.tsv:4"),
        ("stopterms.tsv", STOP + "foo\t*\tsometimes\tbad scope\n", "stopterms.tsv:4"),
        ("curated_terms.tsv", CURATED + "zika\tILLNESS\tzika\tX1\tSNOMED\t\n", "curated_terms.tsv:3"),
        ("illnesses.tsv", ILL + " padded\tpadded\t\t\tx\ty\n", "illnesses.tsv:14"),
    ],
)
def test_malformed_rows_name_file_and_line(tmp_path: Path, name: str, body: str, where: str) -> None:
    d = write_lexicon(tmp_path / "bad", **{name: body})
    with pytest.raises(LexiconError, match=f"^{where}:"):
        Lexicon.load(d, use_cache=False)
    errors, _ = check(d)
    assert any(e.startswith(where) for e in errors), errors


def test_comments_and_blank_lines_keep_line_numbers(tmp_path: Path) -> None:
    d = write_lexicon(tmp_path / "c", **{"medicines.tsv": "# generated\n\n" + MED})
    lex = Lexicon.load(d, use_cache=False)
    (e,) = LexiconStage(lex).extract("ibuprofen")
    assert e.source == "medicines.tsv:4"


def test_cache_reused_and_invalidated(tmp_path: Path) -> None:
    d = write_lexicon(tmp_path / "cache")
    a = Lexicon.load(d)
    assert list((d / ".cache").glob("*.pkl"))
    b = Lexicon.load(d)
    assert a.version == b.version and b.n_terms == a.n_terms
    fp = Lexicon.fingerprint(d)
    (d / "curated_terms.tsv").write_text(CURATED + "zika\tILLNESS\tzika fever\t\t\t\n", encoding="utf-8")
    assert Lexicon.fingerprint(d) != fp
    c = Lexicon.load(d)
    assert c.version != a.version
    assert [e.canonical for e in LexiconStage(c).extract("zika")] == ["zika fever"]


# ------------------------------------------------------------------------------------------- check CLI
def test_check_cli_exit_codes(tmp_path: Path, lexdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from extractor.__main__ import main

    assert main(["lexicon", "check", "--dir", str(lexdir)]) == 0
    bad = write_lexicon(
        tmp_path / "bad", **{"stopterms.tsv": STOP + "flu\tILLNESS\tall\tcollides with curated\n"}
    )
    assert main(["lexicon", "check", "--dir", str(bad)]) == 1
    assert "stopterms.tsv:4: collision" in capsys.readouterr().out
    dup = write_lexicon(
        tmp_path / "dup", **{"abbreviations.tsv": ABBR + "HTN\tILLNESS\thypertension\t\t\t\n"}
    )
    assert main(["lexicon", "check", "--dir", str(dup)]) == 1
    conflict = write_lexicon(
        tmp_path / "conf", **{"curated_terms.tsv": CURATED + "HTN\tMEDICINE\tsomething\t\t\t\n"}
    )
    assert main(["lexicon", "check", "--dir", str(conflict)]) == 1


# ------------------------------------------------------------------------------------------- index
def _random_terms(n: int, seed: int) -> list[str]:
    rnd = random.Random(seed)
    alphabet = "abcdeilmnoprstuy -"
    return ["".join(rnd.choice(alphabet) for _ in range(rnd.randint(1, 22))).strip() or "x" for _ in range(n)]


def _mutate(rnd: random.Random, s: str) -> str:
    s = list(s)
    for _ in range(rnd.randint(0, 3)):
        op = rnd.random()
        pos = rnd.randrange(len(s) + 1)
        if op < 0.33 and s:
            s.pop(min(pos, len(s) - 1))
        elif op < 0.66:
            s.insert(pos, rnd.choice("abcdeilmnoprstuy"))
        elif s:
            s[min(pos, len(s) - 1)] = rnd.choice("abcdeilmnoprstuy")
    return "".join(s)


@pytest.mark.parametrize("cutoff", [70.0, 80.0, 85.0, 90.0, 95.0])
def test_index_identical_to_brute_force(cutoff: float) -> None:
    terms = _random_terms(3000, seed=int(cutoff))
    idx = QGramIndex(terms)
    rnd = random.Random(7)
    queries = [_mutate(rnd, rnd.choice(terms)) for _ in range(300)] + _random_terms(100, seed=99) + ["", "a"]
    for q in queries:
        got = idx.lookup(q, cutoff)
        want = process.extractOne(q, idx.terms, scorer=fuzz.ratio, score_cutoff=cutoff)
        if want is None:
            assert got is None, q
        else:
            assert got is not None and got[:2] == (want[0], want[1]), (q, got, want)


@given(
    st.lists(st.text(alphabet="abcde", min_size=1, max_size=12), min_size=1, max_size=60),
    st.text(alphabet="abcde", max_size=12),
)
@settings(max_examples=200, deadline=None)
def test_index_lossless_property(terms: list[str], query: str) -> None:
    idx = QGramIndex(terms)
    want = process.extractOne(query, idx.terms, scorer=fuzz.ratio, score_cutoff=80.0)
    got = idx.lookup(query, 80.0)
    assert (got is None) == (want is None)
    if want is not None:
        assert got[:2] == (want[0], want[1])


def test_bench_index_reports(stage: LexiconStage) -> None:
    res = bench_index(stage.lexicon, ["ibuprofin", "pnuemonia", "zzzzzz"])
    assert res["identical"] == 1.0 and res["queries"] == 3 and res["speedup"] > 0
    res = bench_index(stage.lexicon, 50)  # a count: deterministic sampled queries
    assert res["identical"] == 1.0 and res["queries"] == 50


# ------------------------------------------------------------------------------------------- real lexicons
REAL = REPO / "lexicons"


@pytest.mark.skipif(not (REAL / "illnesses.tsv").is_file(), reason="lexicons not built")
def test_real_lexicons_load_check_and_match() -> None:
    lex = Lexicon.load(REAL)
    assert lex.n_terms >= 100_000
    stage = LexiconStage(lex)
    got = {
        (e.surface, e.label)
        for e in stage.extract(
            "Patient shows signs of flu. Prescribed ibuprofen 400 mg. "
            "Hx HTN, T2DM; took ibuprofin for pnuemonia."
        )
    }
    assert {
        ("flu", "ILLNESS"),
        ("ibuprofen", "MEDICINE"),
        ("HTN", "ILLNESS"),
        ("T2DM", "ILLNESS"),
        ("ibuprofin", "MEDICINE"),
        ("pnuemonia", "ILLNESS"),
    } <= got
    for text in ("today", "all patients may add water", "Patient met the criteria."):
        assert stage.extract(text) == [], text
    errors, _ = check(REAL)
    assert errors == []


def _make_hyp_stage() -> LexiconStage:
    import tempfile

    d = write_lexicon(Path(tempfile.mkdtemp()) / "lex")
    return LexiconStage(Lexicon.load(d, use_cache=False))


_HYP_STAGE = _make_hyp_stage()


def test_an_abbreviation_gated_by_the_words_before_it(tmp_path: Path) -> None:
    abbr = (
        "abbreviation\tlabel\texpansion\tcode\tcode_system\tnote\tafter\n"
        "HTN\tILLNESS\thypertension\t\t\t\t\n"
        "CP\tILLNESS\tchest pain\tR07.9\tICD-10-CM\t\tdenies|c/o|complains of\n"
    )
    st = LexiconStage(Lexicon.load(write_lexicon(tmp_path / "g", **{"abbreviations.tsv": abbr}), use_cache=False))
    (e,) = st.extract("Denies CP.")
    assert (e.surface, e.canonical, e.code, e.source) == ("CP", "chest pain", "R07.9", "abbreviations.tsv:3")
    assert [x.surface for x in st.extract("Pt complains of  CP")] == ["CP"]
    assert st.extract("Children with CP.") == []  # cerebral palsy: not after a cue word
    assert st.extract("Denies cp.") == []  # a short capitals-only abbreviation is case-sensitive
    assert [x.surface for x in st.extract("HTN, denies CP")] == ["HTN", "CP"]  # the other rows are untouched


def test_an_abbreviation_marked_lowercase_matches_as_notes_type_it(tmp_path: Path) -> None:
    """abbreviations.tsv's ``lowercase`` column: the all-lower-case and the capitalised spelling match too,
    exactly; other mixed casings do not ("NTg", non-transgenic, is not NTG); unmarked rows stay capitals-only."""
    abbr = (
        "abbreviation\tlabel\texpansion\tcode\tcode_system\tnote\tlowercase\n"
        "HTN\tILLNESS\thypertension\tI10\tICD-10-CM\t\tyes\n"
        "AFib\tILLNESS\tatrial fibrillation\tI48.91\tICD-10-CM\t\tyes\n"
        "NTG\tMEDICINE\tnitroglycerin\t\t\t\tyes\n"
        "CAD\tILLNESS\tcoronary artery disease\tI25.10\tICD-10-CM\t\t\n"
    )
    lex = Lexicon.load(write_lexicon(tmp_path / "lc", **{"abbreviations.tsv": abbr}), use_cache=False)
    st = LexiconStage(lex)
    found = [(e.surface, e.canonical, e.code, e.source) for e in st.extract("pt w/ htn and afib. Htn controlled.")]
    assert found == [("htn", "hypertension", "I10", "abbreviations.tsv:2"),
                     ("afib", "atrial fibrillation", "I48.91", "abbreviations.tsv:3"),
                     ("Htn", "hypertension", "I10", "abbreviations.tsv:2")]
    assert [e.surface for e in st.extract("HTN, AFib, NTG 0.4 mg")] == ["HTN", "AFib", "NTG"]
    assert st.extract("NTg and hTN mice") == []  # other casings: no
    assert st.extract("the cad drove off") == []  # not marked (an English word in lower case)
    assert lex.lookup("htn").canonical == "hypertension"  # a regex capture is linked through it too
    assert lex.lookup("cad") is None


def test_a_gated_abbreviation_needs_cue_words(tmp_path: Path) -> None:
    abbr = "abbreviation\tlabel\texpansion\tcode\tcode_system\tnote\tafter\nCP\tILLNESS\tchest pain\t\t\t\t|\n"
    with pytest.raises(LexiconError, match=r"abbreviations.tsv:2: empty 'after' list"):
        Lexicon.load(write_lexicon(tmp_path / "bad", **{"abbreviations.tsv": abbr}), use_cache=False)


def test_an_abbreviation_blocked_by_the_words_after_it(tmp_path: Path) -> None:
    abbr = (
        "abbreviation\tlabel\texpansion\tcode\tcode_system\tnote\tafter\tunless_next\n"
        "ASA\tMEDICINE\taspirin\t\t\t\t\tphysical|status|class|I|II|III\n"
    )
    med = MED + "ASA\tAspirin\tDB00945\tDrugBank\tdrug-ner\tname_or_synonym\n"  # a generated row of the same words
    d = write_lexicon(tmp_path / "u", **{"abbreviations.tsv": abbr, "medicines.tsv": med})
    st = LexiconStage(Lexicon.load(d, use_cache=False))
    assert [(e.surface, e.canonical) for e in st.extract("Continue ASA and metformin.")] == [
        ("ASA", "aspirin"), ("metformin", "Metformin")]
    for text in ("ASA physical status 1 to 3", "Healthy patients (ASA I)", "(ASA) class III"):
        assert [e.surface for e in st.extract(text)] == [], text  # the generated row is gated too


@pytest.mark.skipif(not (REAL / "illnesses.tsv").is_file(), reason="lexicons not built")
@pytest.mark.parametrize(
    ("term", "code"),
    [
        ("sepsis", "A41.9"),  # "Sepsis, unspecified organism", not "Sepsis due to streptococcus, group A"
        ("hemorrhoids", "K64.9"),  # "Unspecified hemorrhoids", not "Fourth degree hemorrhoids"
        ("back pain", "M54.9"),
    ],
)
def test_a_bare_name_gets_the_unspecified_code_not_a_narrower_one(term: str, code: str) -> None:
    """scripts/build_lexicons.py: a short form cut from an ICD-10-CM description before "due to" / "with" names a
    narrower code than its words; the form whose qualifier said "unspecified" wins."""
    row = Lexicon.load(REAL).lookup(term)
    assert row is not None and row.code == code


@pytest.mark.skipif(not (REAL / "illnesses.tsv").is_file(), reason="lexicons not built")
def test_a_symptom_stopped_in_abstracts_counts_in_clinical_text() -> None:
    """stopterms_generated.tsv scope "abstracts": a sign or symptom that PubMed and criteria leave unlabelled
    ("weight gain", "malaise", "tingling") matches, flagged, and the chain keeps it only in a case report or a
    patient's own words."""
    from extractor.chain import Chain
    from extractor.config import load_settings

    lex = Lexicon.load(REAL)
    assert any(s.scope == "abstracts" for s in lex.stops)
    (e,) = LexiconStage(lex).extract("weight gain")
    assert e.details.get("clinical_only") is True
    chain = Chain.from_settings(load_settings(stages=("lexicon",)))
    assert [e.surface for e in chain.extract("Since starting it I have had weight gain.").illnesses] == ["weight gain"]
    report = "A 45-year-old woman presented with malaise. On examination the patient was afebrile."
    assert [e.surface for e in chain.extract(report).illnesses] == ["malaise"]
    assert chain.extract("Weight gain was observed in 12% of rats.").illnesses == []  # an abstract
    assert chain.extract("Malaise and weight gain").illnesses == []  # a criterion


def test_stop_scope_must_be_known(tmp_path: Path) -> None:
    d = tmp_path / "lex"
    d.mkdir()
    for name in ("illnesses.tsv", "medicines.tsv"):
        (d / name).write_text("term\tcanonical\tcode\tcode_system\tsource\tterm_type\nflu\tflu\t\t\tx\tx\n")
    (d / "stopterms.tsv").write_text("term\tlabel\tscope\treason\nflu\tILLNESS\teverywhere\tx\n")
    with pytest.raises(LexiconError, match=r"stopterms.tsv:2: scope 'everywhere' not one of"):
        Lexicon.load(d, use_cache=False)


@pytest.mark.parametrize(
    ("key", "variant"),
    [
        ("palpitations", "palpitation"),
        ("t wave inversion", "t wave inversions"),
        ("metastasis", "metastases"),
        ("deformity", "deformities"),
        ("abscess", None),  # no plural in notes
        ("colitis", None),
        ("rash", None),  # under 5 letters
    ],
)
def test_number_variants(key: str, variant: str | None) -> None:
    assert number_variant(key) == variant


def test_the_other_number_of_an_illness_term_matches(tmp_path: Path) -> None:
    d = write_lexicon(tmp_path / "n", **{
        "illnesses.tsv": ILL + "Palpitations\tPalpitations\tR00.2\tICD-10-CM\tt\tdescription\n"
        "abnormality\tabnormality\t\t\tt\tx\n",
        "stopterms.tsv": STOP + "abnormalities\tILLNESS\tall\tnot an illness\n",
    })
    lex = Lexicon.load(d, use_cache=False)
    row = lex.lookup("palpitation")
    assert row is not None and row.code == "R00.2"
    assert lex.lookup("abnormalities") is None  # a stop-term is never brought back as a variant
