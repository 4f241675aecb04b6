"""The NER stage on the shipped model (models/ner-clinical): loads in about a second, no downloads."""

from __future__ import annotations

from pathlib import Path

import pytest

from extractor.chain.model import ILLNESS, MEDICINE, ExtractionError
from extractor.chain.ner import (
    DEFAULT_LABEL_MAP,
    ModelNotFoundError,
    NerStage,
    load_ner_model,
    map_labels,
)
from extractor.chain.stage import Stage
from extractor.config import DEFAULT_MODEL

SENTENCES = [
    "Patient was given haloperidol and developed tardive dyskinesia.",
    "Famotidine-associated delirium in a patient with renal failure.",
    "Naloxone reverses the antihypertensive effect of clonidine.",
    "The patient has type 2 diabetes and takes metformin 500 mg twice daily.",
    "No complaints today.",
    "Cisplatin nephrotoxicity was reduced by magnesium supplementation.",
]


@pytest.fixture(scope="module")
def nlp():
    return load_ner_model(DEFAULT_MODEL)


@pytest.fixture(scope="module")
def stage(nlp):
    return NerStage(nlp, batch_size=4)


def _ents(stage, text):
    return {(e.surface, e.label) for e in stage.extract(text)}


def test_shipped_model_meta(nlp):
    assert Path(DEFAULT_MODEL).is_dir()
    assert set(nlp.get_pipe("ner").labels) == {"ILLNESS", "MEDICINE"}
    assert nlp.meta["version"]
    assert "bc5cdr_dev" in nlp.meta.get("performance", {})
    assert not nlp.vocab.vectors.shape[0]  # no static vectors


def test_is_a_stage(stage):
    assert isinstance(stage, Stage)
    assert stage.method == "ner"
    assert stage.source == f"{stage.nlp.meta['name']}@{stage.nlp.meta['version']}"
    assert stage.components == ["tok2vec", "ner"]


def test_known_sentence(stage):
    ents = _ents(stage, SENTENCES[0])
    assert ("haloperidol", MEDICINE) in ents
    assert ("tardive dyskinesia", ILLNESS) in ents


def test_hyphenated_mention_is_split(stage):
    ents = _ents(stage, SENTENCES[1])
    assert ("Famotidine", MEDICINE) in ents
    assert ("delirium", ILLNESS) in ents


def test_two_medicines(stage):
    ents = _ents(stage, SENTENCES[2])
    assert ("Naloxone", MEDICINE) in ents
    assert ("clonidine", MEDICINE) in ents


def test_entity_fields_and_offsets(stage):
    for text, ents in zip(SENTENCES, stage.extract_many(SENTENCES), strict=True):
        for e in ents:
            assert text[e.start : e.end] == e.surface
            assert e.surface == e.surface.strip() and e.surface
            assert e.label in (ILLNESS, MEDICINE)
            assert e.method == "ner"
            assert e.source == stage.source
            assert e.canonical is None
            assert e.score is not None and 0.0 <= e.score <= 1.0
            assert 0.0 < e.confidence < 1.0
            d = e.details
            assert d["n_tokens"] >= 1 and d["model_label"] in ("ILLNESS", "MEDICINE")
            assert {"all_caps", "short", "min_action_prob", "score_kind"} <= d.keys()
            assert d["min_action_prob"] >= e.score - 1e-6


def test_batch_equals_single(stage):
    batch = stage.extract_many(SENTENCES)
    single = [stage.extract(t) for t in SENTENCES]
    assert batch == single


def test_scores_do_not_change_entities(nlp, stage):
    plain = NerStage(nlp, score_mode="none")
    a = [[(e.start, e.end, e.label) for e in ents] for ents in stage.extract_many(SENTENCES)]
    b = [[(e.start, e.end, e.label) for e in ents] for ents in plain.extract_many(SENTENCES)]
    assert a == b
    # the same as plain spaCy
    c = [
        [(x.start_char, x.end_char, DEFAULT_LABEL_MAP[x.label_]) for x in doc.ents]
        for doc in nlp.pipe(SENTENCES)
    ]
    assert a == c
    for ents in plain.extract_many(SENTENCES):
        for e in ents:
            assert e.score is None and e.details["score_kind"] == "none"


def _reference_probs(stage, texts):
    """The decoding as first written: every move's validity asked of spaCy at every token, softmax in numpy."""
    import numpy as np

    nlp, ner = stage.nlp, stage.ner
    moves = ner.moves
    names = [moves.get_class_name(i) for i in range(moves.n_moves)]
    docs = [nlp.make_doc(t) for t in texts]
    for name in stage.components:
        if name == stage.ner_name:
            break
        docs = list(nlp.get_pipe(name).pipe(docs))
    probs = [np.ones(len(doc)) for doc in docs]
    batch = moves.init_batch(docs)
    slot = {id(s): i for i, s in enumerate(batch)}
    states = [s for s in batch if not s.is_final()]
    step = ner.model.predict(docs)
    while states:
        scores = step.predict(states)
        for state, row in zip(states, scores, strict=True):
            b = state.B(0)
            valid = np.array([moves.is_valid(state, n) for n in names])
            if b < 0 or not valid.any():
                continue
            r = np.where(valid, row.astype("float64"), -np.inf)
            e = np.exp(r - r.max())
            probs[slot[id(state)]][b] = e.max() / e.sum()
        states = ner.transition_states(states, scores)
    step.clear_memory()
    ner.set_annotations(docs, batch)
    return docs, probs


def test_remembered_validity_equals_asking_every_time(nlp, stage):
    """The decoder asks spaCy which moves are valid once per situation; this asks at every token and compares
    entities and per-token probabilities, on texts with line breaks, runs of spaces, one-token and empty docs."""
    texts = [*SENTENCES, "Hx:\n  HTN,  DM2 \n\n on lisinopril 10 mg.", "aspirin", "Asthma. COPD. CHF.", " ",
             "Seizures  after   bupropion\tand tramadol; denies chest pain.\n- metformin\n- insulin glargine"]
    fresh = NerStage(nlp, batch_size=3)
    docs, want = _reference_probs(fresh, texts)
    got = fresh._greedy_parse_with_probs([d.copy() for d in _prepared_docs(fresh, texts)])
    for w, g in zip(want, got, strict=True):
        assert list(g) == pytest.approx(list(w), abs=1e-6)
    assert [[(e.start_char, e.end_char, e.label_) for e in d.ents] for d in docs] == [
        [(e.start_char, e.end_char, e.label_) for e in d.ents] for d in _annotated(fresh, texts)
    ]
    assert fresh._valid_cache  # remembered, and far fewer situations than tokens
    assert len(fresh._valid_cache) < sum(len(d) for d in docs)


def _prepared_docs(stage, texts):
    docs = [stage.nlp.make_doc(t) for t in texts]
    for name in stage.components:
        if name == stage.ner_name:
            break
        docs = list(stage.nlp.get_pipe(name).pipe(docs))
    return docs


def _annotated(stage, texts):
    docs = _prepared_docs(stage, texts)
    stage._greedy_parse_with_probs(docs)
    return docs


def test_garbage_input(stage):
    assert stage.extract("") == []
    assert stage.extract("   \n\t ") == []
    assert stage.extract_many([]) == []
    out = stage.extract_many(["", SENTENCES[0], "  "])
    assert out[0] == [] and out[2] == [] and out[1]
    assert isinstance(stage.extract("@@@ ### 123 !!!"), list)
    with pytest.raises(ExtractionError):
        stage.extract(None)  # type: ignore[arg-type]


def test_label_mapping():
    assert map_labels(["DISEASE", "CHEMICAL", "GENE"]) == {"DISEASE": ILLNESS, "CHEMICAL": MEDICINE}
    assert map_labels(["ILLNESS", "MEDICINE"]) == {"ILLNESS": ILLNESS, "MEDICINE": MEDICINE}


def test_other_labels_are_mapped_or_ignored(nlp):
    # a stage that maps only ILLNESS (as another model's DISEASE would be) drops the rest
    stage = NerStage(nlp, label_map={"ILLNESS": ILLNESS})
    ents = stage.extract(SENTENCES[0])
    assert ents and all(e.label == ILLNESS for e in ents)


def test_missing_model_clear_error(tmp_path):
    with pytest.raises(ModelNotFoundError) as ei:
        load_ner_model("en_no_such_model_xyz")
    msg = str(ei.value)
    assert "en_no_such_model_xyz" in msg and "train_ner.py" in msg and "never downloaded" in msg
    assert isinstance(ei.value, FileNotFoundError)
    with pytest.raises(ModelNotFoundError, match="no directory"):
        load_ner_model(str(tmp_path / "nope"))
    with pytest.raises(ModelNotFoundError, match="config.cfg"):
        load_ner_model(str(tmp_path))


def test_shipped_tokenizer_rules_load_without_project_code(nlp):
    # the extra split rules are stored in the pipeline's tokenizer file (plain spacy.load restores them)
    text = "(PAN)-induced nephrosis; [3H]spiperone; Diazepam- and lithium-induced"
    words = [t.text for t in nlp.make_doc(text)]
    assert words[:5] == ["(", "PAN", ")", "-", "induced"]
    assert "spiperone" in words and "Diazepam" in words and "lithium" in words


# ---------------------------------------------------------------------------------------------------------
# gazetteer feature component (extractor/chain/ner_features.py; used by models/configs/ner_gaz.cfg)
# ---------------------------------------------------------------------------------------------------------
def _gazetteer_nlp():
    import spacy

    import extractor.chain.ner_features  # noqa: F401  (registers the factory)

    nlp = spacy.blank("en")
    gaz = nlp.add_pipe("clinical_gazetteer", name="gazetteer")
    gaz.set_entries(
        [("ILLNESS", "renal failure"), ("ILLNESS", "renal failure acute"), ("ILLNESS", "failure"),
         ("MEDICINE", "haloperidol"), ("MEDICINE", "renal")]
    )
    return nlp


def test_gazetteer_marks_longest_matches_per_label():
    nlp = _gazetteer_nlp()
    doc = nlp("Haloperidol given in Renal failure acute ; failure .")
    tags = [t.tag_ for t in doc]
    # haloperidol MED-B; "Renal failure acute" one ILLNESS match (longest), "renal" also a MEDICINE match
    assert tags == ["GOB", "GOO", "GOO", "GBB", "GIO", "GIO", "GOO", "GBO", "GOO"]
    assert [t.tag_ for t in nlp("")] == []


def test_gazetteer_round_trip_and_ner_stage_runs_it(tmp_path):
    import spacy

    nlp = _gazetteer_nlp()
    ner = nlp.add_pipe("ner")
    ner.add_label("ILLNESS")
    ner.add_label("MEDICINE")
    nlp.initialize()
    nlp.to_disk(tmp_path / "m")
    assert (tmp_path / "m" / "gazetteer" / "terms.tsv.gz").is_file()
    loaded = load_ner_model(tmp_path / "m")
    assert loaded.get_pipe("gazetteer").entries == nlp.get_pipe("gazetteer").entries
    assert spacy.load(tmp_path / "m").pipe_names == ["gazetteer", "ner"]  # plain load works after import
    stage = NerStage(loaded, score_mode="none")
    assert "gazetteer" in stage.components
    stage.extract("haloperidol for renal failure")  # runs (untrained model: any output)
