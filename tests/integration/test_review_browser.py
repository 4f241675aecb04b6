"""The review console in a real headless Chromium (Debian's /usr/bin/chromium driven by Playwright): sign in,
work the queue by keyboard, an entry whose text tries to run a script (it must not run), accept and undo, add an
entity by selecting text, evaluate, publish, sign out. Screenshots go to $REVIEW_SCREENSHOTS when it is set
(docs/img/ for the README: ``REVIEW_SCREENSHOTS=docs/img pytest tests/integration/test_review_browser.py``)."""

from __future__ import annotations

import os
import shutil
import threading
import time
from pathlib import Path

import pytest

from extractor.review.app import create_app
from extractor.review.auth import read_password
from extractor.tools.harness import free_port

from .helpers import wait_for
from .review_helpers import MADE_UP, console_env

pytestmark = pytest.mark.integration

CHROMIUM = Path("/usr/bin/chromium")
EVIL = '<script>window.__xss=1</script><img src=x onerror="window.__xss=2">'
# the flags a closed network needs (no background connections at start-up)
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]


def _entity(text: str, surface: str, label: str, method: str, confidence: float) -> dict:
    s = text.index(surface)
    return {"text": surface, "start": s, "end": s + len(surface), "label": label, "method": method,
            "source": "model:ner-clinical" if method == "ner" else "illnesses.tsv:12", "confidence": confidence,
            "canonical": surface, "code": None, "code_system": None, "negated": False, "hypothetical": False,
            "historical": False, "uncertain": False, "experiencer": "patient"}


def _serve(app, port: int):
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    t = threading.Thread(target=server.run, daemon=True)
    t.start()
    wait_for(lambda: server.started, 30, "the console to listen")
    return server, t


@pytest.fixture(scope="module")
def chromium_path() -> Path:
    if not CHROMIUM.exists() and not shutil.which("chromium"):
        pytest.skip("Debian's chromium is not installed: run `apt-get install chromium` (make test does it as root)")
    return CHROMIUM if CHROMIUM.exists() else Path(shutil.which("chromium") or "")


def test_review_by_keyboard_in_chromium(services, unique_name, tmp_path, chromium_path):
    from playwright.sync_api import expect, sync_playwright

    env = console_env(services, unique_name, tmp_path)
    s = env.settings
    t1 = f"Pt reports {EVIL} wheezing at night; hx of asthma. Also {MADE_UP} noted."
    t2 = "Started metformin for type 2 diabetes."
    docs = [
        {"_id": "1" * 32, "entry_id": "1" * 32, "text": t1, "status": "resolved", "timestamp": "2024-03-01T10:00:00Z",
         "lexicon_version": "v1", "codes": [], "illness": "asthma", "medicine": None,
         "illnesses": [_entity(t1, "wheezing", "ILLNESS", "ner", 0.41),
                       _entity(t1, "asthma", "ILLNESS", "lexicon", 0.93)],
         "medicines": []},
        {"_id": "2" * 32, "entry_id": "2" * 32, "text": t2, "status": "resolved", "timestamp": "2024-03-01T11:00:00Z",
         "lexicon_version": "v1", "codes": [], "illness": "type 2 diabetes", "medicine": "metformin",
         "illnesses": [_entity(t2, "type 2 diabetes", "ILLNESS", "lexicon", 0.55)],
         "medicines": [_entity(t2, "metformin", "MEDICINE", "regex", 0.98)]},
    ]
    env.db[s.mongo_collection].insert_many(docs)
    app = create_app(s, env.db, mirror=False, eval_data=None, eval_extra=(env.eval_file,))
    console = app.state.console
    port = free_port()
    server, thread = _serve(app, port)
    base = f"http://127.0.0.1:{port}"
    shots = Path(os.environ["REVIEW_SCREENSHOTS"]) if os.environ.get("REVIEW_SCREENSHOTS") else tmp_path
    dialogs: list[str] = []
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=str(chromium_path), args=ARGS, headless=True)
            page = browser.new_page(viewport={"width": 1200, "height": 800})
            page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
            # signed out: every page leads to the sign-in form
            page.goto(f"{base}/queue/low")
            expect(page).to_have_url(f"{base}/login")
            page.fill("#reviewer", "ann")
            page.fill("#password", "wrong")
            page.click("#signin")
            expect(page.locator(".error")).to_contain_text("wrong name or password")
            page.fill("#reviewer", "ann")
            page.fill("#password", read_password(console.password_file))
            page.click("#signin")
            expect(page).to_have_url(f"{base}/queue/dlq")

            page.goto(f"{base}/queue/low")
            expect(page.locator("#queue a.item")).to_have_count(2)
            page.screenshot(path=str(shots / "review-queue.png"))
            page.keyboard.press("n")
            expect(page).to_have_url(f"{base}/entry/doc/{'1' * 32}?queue=low")
            expect(page.locator("#text mark.current")).to_have_text("wheezing")
            # the script in the text is shown as text and never runs
            expect(page.locator("#text")).to_contain_text("<script>window.__xss=1</script>")
            assert page.evaluate("window.__xss") is None and dialogs == []

            page.keyboard.press("a")  # accept the first entity
            expect(page.locator("#status")).to_have_text("accept saved")
            assert env.db[s.reviews_collection].count_documents({"decision": "accept"}) == 1
            page.keyboard.press("u")
            expect(page.locator("#status")).to_have_text("undid accept")
            assert env.db[s.reviews_collection].count_documents({}) == 0
            page.keyboard.press("j")
            page.keyboard.press("r")  # reject the second one ("asthma")
            expect(page.locator("#status")).to_have_text("reject saved")

            # select the missing term with the mouse's equivalent (a DOM range) and add it with "e"
            page.evaluate("""(term) => {
                const el = Array.from(document.querySelectorAll('#text [data-offset]'))
                    .find((n) => n.textContent.includes(term));
                const node = el.firstChild, i = node.textContent.indexOf(term);
                const r = document.createRange(); r.setStart(node, i); r.setEnd(node, i + term.length);
                const sel = window.getSelection(); sel.removeAllRanges(); sel.addRange(r);
            }""", MADE_UP)
            page.keyboard.press("e")
            expect(page.locator("#add-panel")).to_be_visible()
            expect(page.locator("#add-search")).to_have_value(MADE_UP)
            page.select_option("#add-label", "ILLNESS")
            page.fill("#add-canonical", "Kwazzle")
            page.screenshot(path=str(shots / "review-entry.png"))
            page.press("#add-canonical", "Enter")
            expect(page.locator("#status")).to_have_text("add saved (lexicon row pending)")
            added = env.db[s.reviews_collection].find_one({"decision": "add"})
            assert t1[added["entity"]["start"]:added["entity"]["end"]] == MADE_UP
            assert env.db[s.lexicon_edits_collection].count_documents({"status": "pending"}) == 1

            expect(page.locator("#add-panel")).to_be_hidden()
            page.keyboard.press("n")  # the next entry of the queue
            expect(page).to_have_url(f"{base}/entry/doc/{'2' * 32}?queue=low")
            # new boundaries: the current entity is "type 2 diabetes"; select "diabetes" and press b
            expect(page.locator("#text mark.current")).to_have_text("metformin")  # the page's script is running
            page.keyboard.press("j")
            expect(page.locator("#text mark.current")).to_have_text("type 2 diabetes")
            page.evaluate("""() => {
                const el = document.querySelector('#text mark.current'), node = el.firstChild;
                const i = node.textContent.indexOf('diabetes');
                const r = document.createRange(); r.setStart(node, i); r.setEnd(node, i + 8);
                const sel = window.getSelection(); sel.removeAllRanges(); sel.addRange(r);
            }""")
            page.keyboard.press("b")
            expect(page.locator("#add-panel")).to_be_visible()
            expect(page.locator("#add-results li").first).to_be_visible()  # the lexicon search found rows
            page.locator("#add-results button.pick").first.click()
            assert page.input_value("#add-canonical")  # picked: canonical name (and code) from a lexicon row
            page.press("#add-search", "Enter")
            expect(page.locator("#status")).to_have_text("bounds saved (lexicon row pending)")
            bounds = env.db[s.reviews_collection].find_one({"decision": "bounds"})
            assert t2[bounds["entity"]["start"]:bounds["entity"]["end"]] == "diabetes"
            assert bounds["entity"]["original"]["start"] == t2.index("type 2 diabetes")
            expect(page.locator("#add-panel")).to_be_hidden()
            page.keyboard.press("u")  # keep one pending row for the publish below
            expect(page.locator("#status")).to_have_text("undid bounds")

            page.goto(f"{base}/edits")
            expect(page.locator("#pending")).to_contain_text(MADE_UP)
            page.click("#evaluate")
            expect(page.locator("#deltas")).to_be_visible(timeout=180_000)
            expect(page.locator("#deltas")).to_contain_text("reviewed_entries")
            page.screenshot(path=str(shots / "review-evaluate.png"), full_page=True)
            if page.locator("#confirm-lower").count():
                page.check("#confirm-lower")
            page.click("#publish")
            expect(page.locator("#message")).to_contain_text("published 1 row")
            assert MADE_UP in (s.lexicon_dir / "reviewed_edits.tsv").read_text()

            page.click("#signout")
            expect(page).to_have_url(f"{base}/login")
            page.goto(f"{base}/edits")
            expect(page).to_have_url(f"{base}/login")
            assert page.evaluate("window.__xss") is None and dialogs == []
            browser.close()
    finally:
        server.should_exit = True
        thread.join(10)
        time.sleep(0.1)
