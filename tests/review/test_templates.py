"""Patient text is escaped in every place the console shows it, and entity chunks keep the text's offsets."""

from __future__ import annotations

from fastapi.templating import Jinja2Templates
from starlette.requests import Request

from extractor.review.app import HERE, segments

EVIL = '<script>window.__xss=1</script><img src=x onerror="window.__xss=2">'


def test_segments_cover_the_text_and_skip_overlaps():
    text = "chest pain and HTN"
    ents = [{"start": 0, "end": 10, "label": "ILLNESS"}, {"start": 6, "end": 10, "label": "ILLNESS"},
            {"start": 15, "end": 18, "label": "ILLNESS"}]
    segs = segments(text, ents)
    assert "".join(s["text"] for s in segs) == text
    assert [(s["start"], s["entity"]) for s in segs] == [(0, 0), (10, None), (15, 2)]


def _render(name: str, **ctx) -> str:
    templates = Jinja2Templates(directory=str(HERE / "templates"))
    request = Request({"type": "http", "method": "GET", "path": "/", "headers": [], "query_string": b""})
    return templates.TemplateResponse(request, name, {"reviewer": "ann", "csrf": "t", **ctx}).body.decode()


def test_entry_page_escapes_text_entities_and_metadata():
    text = f"Pt with {EVIL} and asthma"
    s = text.index("asthma")
    ents = [{"start": s, "end": s + 6, "label": "ILLNESS", "method": "lexicon", "source": EVIL, "confidence": 0.9,
             "canonical": EVIL, "code": "J45", "code_system": "ICD-10-CM"}]
    item = {"source": "doc", "id": "abc", "entry_id": "abc", "text": text, "entities": ents,
            "meta": {"reason": EVIL, "stage": "extract"}, "lexicon_version": EVIL, "entities_from": "doc"}
    html = _render("entry.html", item=item, segs=segments(text, ents), queue="low", qs={}, next_id=None,
                   decisions=[], next_source="doc")
    assert "<script>window" not in html and "onerror=\"window" not in html
    assert "&lt;script&gt;window.__xss=1&lt;/script&gt;" in html


def test_queue_page_escapes_snippets():
    class Page:
        items = [{"_id": "a1", "text": EVIL, "illnesses": [], "medicines": []}]
        next_cursor = None

    from extractor.review.queues import Filters

    html = _render("queue.html", queue="low", page=Page(), filters=Filters(reason=EVIL), qs={}, threshold=0.6)
    assert "<script>window" not in html and "<img src=x" not in html
