"""The review console end to end on the real servers: a dead-lettered entry; a reviewer signs in and adds the
missing term; the evaluation delta is shown; publish; a running worker on another lexicon directory reloads
through the lexicon-updates topic; the replayed entry lands in MongoDB as resolved. Plus the queues' filters and
cursor paging on FerretDB, CSRF refusals, the reviews collection and the audit log."""

from __future__ import annotations

import json
from urllib.parse import unquote_plus

import pytest
from fastapi.testclient import TestClient

from extractor.review.app import create_app
from extractor.review.auth import read_password
from extractor.review.queues import DeadLetterMirror, Filters, page
from extractor.stream import messages as m
from extractor.stream.dlq import inspect

from .helpers import wait_for
from .review_helpers import MADE_UP, console_env, csrf_of

pytestmark = pytest.mark.integration


def _sign_in(client: TestClient, console) -> str:
    r = client.get("/login")
    token = csrf_of(r.text)
    r = client.post("/login", data={"csrf": token, "reviewer": "ann", "password": "wrong"},
                    follow_redirects=False)
    assert r.status_code == 401
    r = client.post("/login", data={"csrf": token, "reviewer": "ann",
                                    "password": read_password(console.password_file)}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/queue/dlq"
    return csrf_of(client.get("/queue/dlq").text)


def test_dead_letter_to_published_term_to_resolved_document(services, unique_name, tmp_path):
    env = console_env(services, unique_name, tmp_path)
    s = env.settings
    unresolved = [m.build_entry(f"P{i}", f"Seen today for {MADE_UP}. Follow-up in {i} weeks.", "2024-02-01",
                                "review.csv", i + 2) for i in range(1, 3)]
    resolved = [m.build_entry("P7", "Known asthma, started albuterol inhaler.", "2024-02-01", "review.csv", 9)]
    env.produce(unresolved + resolved)
    worker_env = {"EXTRACTOR_LEXICON_DIR": str(env.worker_lexicons), "EXTRACTOR_LEXICON_RELOAD_S": "1"}
    try:
        env.pipe.start("work", env=worker_env)
        env.pipe.start("sink")
        env.pipe.wait_caught_up(180)
        assert inspect(s).outstanding == 2
        first_version = env.pipe.collection().find_one({"_id": resolved[0].entry_id})["lexicon_version"]

        app = create_app(s, env.db, mirror=False, eval_data=None, eval_extra=(env.eval_file,))
        console = app.state.console
        assert DeadLetterMirror(s, env.db).sync(idle_s=3) == 2
        with TestClient(app) as client:
            assert client.get("/queue/dlq", follow_redirects=False).headers["location"] == "/login"
            assert client.post("/login", data={"reviewer": "ann", "password": "x"}).status_code == 403  # no CSRF
            token = _sign_in(client, console)
            q = client.get("/queue/dlq", params={"reason": m.R_UNRESOLVED})
            ids = sorted(d["_id"] for d in env.db[s.dead_letters_collection].find({}))
            assert all(f"/entry/dlq/{i}" in q.text for i in ids)
            entry = client.get(f"/entry/dlq/{ids[0]}")
            assert entry.status_code == 200 and MADE_UP in entry.text
            text = env.db[s.dead_letters_collection].find_one({"_id": ids[0]})["text"]
            start = text.index(MADE_UP)
            body = {"source": "dlq", "id": ids[0], "action": "add",
                    "entity": {"start": start, "end": start + len(MADE_UP), "label": "ILLNESS",
                               "canonical": "Kwazzle"}}
            assert client.post("/api/decision", json=body).status_code == 403  # no CSRF header
            assert client.post("/api/decision", json=body, headers={"X-CSRF-Token": "forged"}).status_code == 403
            r = client.post("/api/decision", json=body, headers={"X-CSRF-Token": token})
            assert r.status_code == 200, r.text
            assert r.json()["edit_id"]
            review = env.db[s.reviews_collection].find_one({"_id": r.json()["review_id"]})
            assert review["reviewer"] == "ann" and review["decision"] == "add" and review["lexicon_version"]
            assert review["entry_id"] in {e.entry_id for e in unresolved} and "text" not in review

            # publishing before an evaluation is refused
            r = client.post("/edits/publish", data={"csrf": token}, headers={"accept": "application/json"})
            assert r.status_code == 409
            console.evaluate("ann")
            ev = console.evaluation
            assert ev["state"] == "done", ev
            rows = {row["corpus"]: row for row in ev["rows"]}
            assert rows["eval"]["F1"][2] > 0  # the labelled file now finds the term
            assert rows["reviewed_entries"]["F1"][2] > 0
            assert any(c["added"] == [["ILLNESS", MADE_UP]] for c in ev["changed"])
            page_html = client.get("/edits").text
            assert 'id="deltas"' in page_html and "reviewed_entries" in page_html

            r = client.post("/edits/publish", data={"csrf": token}, follow_redirects=False)
            assert r.status_code == 303 and "published 1 row" in unquote_plus(r.headers["location"])
            published = (s.lexicon_dir / "reviewed_edits.tsv").read_text()
            assert f"{MADE_UP}\tILLNESS\tterm\tKwazzle" in published and "\tann\t" in published

            # the worker (another lexicon directory, as on another host) follows the topic and reloads
            wait_for(lambda: MADE_UP in (env.worker_lexicons / "reviewed_edits.tsv").read_text(), 60,
                     "the worker to write the published file")
            later = m.build_entry("P8", f"Follow-up of {MADE_UP}.", "2024-02-02", "review.csv", 10)
            env.produce([later])
            doc = wait_for(lambda: env.pipe.collection().find_one({"_id": later.entry_id}), 60,
                           "the new entry's document")
            assert doc["illness"] == "Kwazzle" and doc["lexicon_version"] != first_version

            r = client.post("/dlq/replay", data={"csrf": token}, follow_redirects=False)
            assert r.status_code == 303 and "2 resolved" in unquote_plus(r.headers["location"])
            for e in unresolved:
                d = wait_for(lambda e=e: env.pipe.collection().find_one({"_id": e.entry_id}), 60, "replayed doc")
                assert d["status"] in ("partial", "resolved") and d["illness"] == "Kwazzle"  # no longer unresolved
            assert page(env.db, s, "dlq", Filters()).items == []  # resolved dead letters leave the queue

            export = client.get("/export/reviews.jsonl").text
            line = json.loads(export.splitlines()[0])
            assert line["spans"] == [{"start": start, "end": start + len(MADE_UP), "label": "ILLNESS"}]
            r = client.post("/logout", data={"csrf": token}, follow_redirects=False)
            assert r.headers["location"] == "/login"
            assert client.get("/edits", follow_redirects=False).status_code == 303
        audit = list(env.db[s.review_audit_collection].find({}))
        assert {a["action"] for a in audit} >= {"sign_in", "decision:add", "evaluate", "publish", "replay", "sign_out"}
        assert not any(text in json.dumps(a) for a in audit)
    finally:
        env.pipe.stop_all()


def test_queues_filter_and_page_by_cursor_on_ferretdb(services, unique_name, tmp_path, monkeypatch):
    env = console_env(services, unique_name, tmp_path)
    s = env.settings
    docs = []
    for i in range(7):
        conf = 0.3 if i % 2 == 0 else 0.95
        docs.append({"_id": f"{i:02d}{'a' * 14}", "text": f"note {i}", "status": "resolved",
                     "timestamp": f"2024-01-0{i + 1}T00:00:00Z", "lexicon_version": "v1" if i < 5 else "v2",
                     "codes": ["illness:I10"] if i < 3 else [],
                     "illnesses": [{"label": "ILLNESS", "method": "ner" if i < 4 else "lexicon", "confidence": conf,
                                    "start": 0, "end": 4}], "medicines": []})
    env.db[s.mongo_collection].insert_many(docs)
    low = page(env.db, s, "low", Filters(), size=2)
    assert [d["_id"][:2] for d in low.items] == ["00", "02"]
    nxt = page(env.db, s, "low", Filters(), low.next_cursor, size=2)
    assert [d["_id"][:2] for d in nxt.items] == ["04", "06"] and nxt.next_cursor is None
    assert [d["_id"][:2] for d in page(env.db, s, "low", Filters(method="ner")).items] == ["00", "02"]
    assert [d["_id"][:2] for d in page(env.db, s, "low", Filters(label="MEDICINE")).items] == []
    assert [d["_id"][:2] for d in page(env.db, s, "low", Filters(code="I10")).items] == ["00", "02"]
    assert [d["_id"][:2] for d in page(env.db, s, "low", Filters(lexicon_version="v2")).items] == ["06"]
    assert [d["_id"][:2] for d in page(env.db, s, "low", Filters(since="2024-01-03", until="2024-01-06")).items] \
        == ["02", "04"]
    sample = page(env.db, s, "sample", Filters(), "0", size=3)
    assert len(sample.items) == 3 and sample.next_cursor
    rest = page(env.db, s, "sample", Filters(), sample.next_cursor, size=10)
    assert len(sample.items) + len(rest.items) == 7
    # an id that is not hex (a producer's own entry id) is found in its place, and works as a cursor; small id
    # windows (a ninth of the id space, then wider) as on a large collection
    from extractor.review import queues

    monkeypatch.setattr(queues, "WINDOW_DOCS", 1)
    queues._counts.clear()
    env.db[s.mongo_collection].insert_one({**docs[0], "_id": "P-custom-1"})
    env.db[s.mongo_collection].insert_one({**docs[0], "_id": "P-custom-2"})
    walked, cursor = [], None
    while True:
        pg = page(env.db, s, "low", Filters(), cursor, size=2)
        walked += [d["_id"][:4] for d in pg.items]
        if not pg.next_cursor:
            break
        cursor = pg.next_cursor
    assert walked == ["00aa", "02aa", "04aa", "06aa", "P-cu", "P-cu"]


def test_publishing_a_change_that_lowers_a_corpus_needs_a_confirmation(services, unique_name, tmp_path):
    env = console_env(services, unique_name, tmp_path)
    s = env.settings
    text = "Known asthma; takes albuterol."
    start = text.index("asthma")
    env.db[s.mongo_collection].insert_one({
        "_id": "ab" * 16, "entry_id": "ab" * 16, "text": text, "status": "resolved", "lexicon_version": "v1",
        "illnesses": [{"start": start, "end": start + 6, "label": "ILLNESS", "method": "lexicon", "confidence": 0.9}],
        "medicines": []})
    app = create_app(s, env.db, mirror=False, eval_data=None, eval_extra=(env.eval_file,))
    with TestClient(app) as client:
        token = _sign_in(client, app.state.console)
        r = client.post("/api/decision", headers={"X-CSRF-Token": token},
                        json={"source": "doc", "id": "ab" * 16, "action": "not_entity", "kind": "generic",
                              "entity": {"start": start, "end": start + 6, "label": "ILLNESS"}})
        assert r.status_code == 200, r.text
        app.state.console.evaluate("ann")
        assert "eval" in app.state.console.evaluation["lowered"]  # its gold has asthma: recall drops
        assert 'id="lowered"' in client.get("/edits").text
        r = client.post("/edits/publish", data={"csrf": token}, headers={"accept": "application/json"})
        assert r.status_code == 409 and "lowers eval" in r.json()["error"]
        assert not (s.lexicon_dir / "reviewed_edits.tsv").read_text().count("asthma")
        r = client.post("/edits/publish", data={"csrf": token, "confirm_lower": "yes"}, follow_redirects=False)
        assert r.status_code == 303
        assert "asthma\tILLNESS\tgeneric" in (s.lexicon_dir / "reviewed_edits.tsv").read_text()
    audit = env.db[s.review_audit_collection].find_one({"action": "publish"})
    assert audit["confirmed_lower"] == "eval"
