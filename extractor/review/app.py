"""The review console's web application (FastAPI, Jinja2 templates with autoescaping, Starlette's signed-cookie
sessions). ``create_app`` wires it to a settings object, a MongoDB database and a chain; ``cli`` serves it with
uvicorn. Patient text is shown on pages (escaped by the templates, and a Content-Security-Policy allows no inline
script) and never logged: log lines and the audit collection name entry ids, reviewers and actions only.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import secrets
import threading
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.middleware.sessions import SessionMiddleware

from extractor.chain.lexicon import REVIEWED_EDITS
from extractor.config import Settings
from extractor.review import auth, queues
from extractor.review.edits import Edit, merged, read_rows, render, row_errors, validate, write_atomic

log = logging.getLogger(__name__)
HERE = Path(__file__).parent
LABELS = ("ILLNESS", "MEDICINE")
NON_ENTITY_KINDS = ("generic", "state", "substance", "food")
ACTIONS = ("accept", "reject", "not_entity", "relabel", "bounds", "add")
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; object-src 'none'; "
       "base-uri 'none'; form-action 'self'; frame-ancestors 'none'")


def now_iso() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def segments(text: str, entities: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The text cut into plain chunks and entity chunks (overlapping entities: the first one wins)."""
    out: list[dict[str, Any]] = []
    pos = 0
    for i, e in sorted(enumerate(entities), key=lambda x: (x[1]["start"], -x[1]["end"])):
        s, t = int(e["start"]), int(e["end"])
        if s < pos or t <= s or t > len(text):
            continue
        if s > pos:
            out.append({"text": text[pos:s], "start": pos, "entity": None})
        out.append({"text": text[s:t], "start": s, "entity": i})
        pos = t
    if pos < len(text):
        out.append({"text": text[pos:], "start": pos, "entity": None})
    return out


class Console:
    """What the routes share: settings, database, the chain (loaded on first use), the evaluation job."""

    def __init__(self, settings: Settings, db: Any, chain: Any = None, *, eval_data: Path | None = None,
                 eval_limit: int = 0, eval_extra: tuple[Path, ...] = ()) -> None:
        self.settings = settings
        self.db = db
        self._chain = chain
        self._lock = threading.Lock()
        self.eval_data = eval_data
        self.eval_limit = eval_limit
        self.eval_extra = eval_extra
        self.evaluation: dict[str, Any] = {"state": "none"}
        self.password_file = auth.ensure_password(Path(settings.review_secrets_dir))

    @property
    def chain(self) -> Any:
        with self._lock:
            if self._chain is None:
                from extractor.chain import Chain

                self._chain = Chain.from_settings(self.settings)
            else:
                reload = getattr(self._chain, "reload_if_changed", None)
                if reload is not None:
                    reload()
            return self._chain

    # -------------------------------------------------------------------------------------------- collections
    @property
    def docs(self) -> Any:
        return self.db[self.settings.mongo_collection]

    @property
    def dead(self) -> Any:
        return self.db[self.settings.dead_letters_collection]

    @property
    def reviews(self) -> Any:
        return self.db[self.settings.reviews_collection]

    @property
    def edits(self) -> Any:
        return self.db[self.settings.lexicon_edits_collection]

    def audit(self, reviewer: str, action: str, **ids: Any) -> None:
        """Who changed what and when: ids and counts only, never text."""
        self.db[self.settings.review_audit_collection].insert_one(
            {"_id": uuid.uuid4().hex, "at": now_iso(), "reviewer": reviewer, "action": action, **ids})
        log.info("review %s by %s %s", action, reviewer, " ".join(f"{k}={v}" for k, v in ids.items()))

    # ------------------------------------------------------------------------------------------------ entries
    def item(self, source: str, item_id: str) -> dict[str, Any]:
        """An entry to review: text, entities, provenance. ``source`` is ``dlq`` or ``doc``."""
        if source == "dlq":
            d = self.dead.find_one({"_id": item_id})
            if d is None:
                raise HTTPException(404, "no such dead letter")
            entities: list[dict[str, Any]] = []
            if d.get("decodable") and d.get("text"):
                r = self.chain.extract(d["text"])
                entities = [e.to_dict() for e in (*r.illnesses, *r.medicines)]
            return {"source": "dlq", "id": item_id, "entry_id": d.get("entry_id"), "text": d.get("text") or "",
                    "entities": entities, "meta": d, "lexicon_version": d.get("lexicon_version"),
                    "entities_from": "the current chain (this entry was dead-lettered)"}
        if source == "doc":
            d = self.docs.find_one({"_id": item_id})
            if d is None:
                raise HTTPException(404, "no such document")
            entities = [*d.get("illnesses", []), *d.get("medicines", [])]
            return {"source": "doc", "id": item_id, "entry_id": d.get("entry_id") or item_id,
                    "text": d.get("text") or "", "entities": entities, "meta": d,
                    "lexicon_version": d.get("lexicon_version"), "entities_from": "the stored document"}
        raise HTTPException(404, "unknown source")

    def pending(self) -> list[Edit]:
        rows = self.edits.find({"status": "pending"}).sort("created_at", 1)
        return [Edit(**{k: r["row"][k] for k in Edit.__dataclass_fields__}) for r in rows]

    def published(self) -> list[Edit]:
        return read_rows(Path(self.settings.lexicon_dir) / REVIEWED_EDITS)

    # ---------------------------------------------------------------------------------------------- decisions
    def decide(self, reviewer: str, body: dict[str, Any]) -> dict[str, Any]:
        action = str(body.get("action", ""))
        if action not in ACTIONS:
            raise HTTPException(400, f"action must be one of {', '.join(ACTIONS)}")
        item = self.item(str(body.get("source", "")), str(body.get("id", "")))
        text = item["text"]
        ent = body.get("entity") or {}
        try:
            start, end = int(ent.get("start")), int(ent.get("end"))
        except (TypeError, ValueError):
            raise HTTPException(400, "entity start and end are required") from None
        if not 0 <= start < end <= len(text):
            raise HTTPException(400, "entity offsets outside the text")
        while start < end and text[start].isspace():  # a selection's surrounding spaces are not the entity's
            start += 1
        while end > start and text[end - 1].isspace():
            end -= 1
        if start >= end:
            raise HTTPException(400, "the entity is only whitespace")
        label = str(ent.get("label", ""))
        if label not in LABELS:
            raise HTTPException(400, "label must be ILLNESS or MEDICINE")
        surface = text[start:end].strip()
        at = now_iso()
        edit: Edit | None = None
        if action == "not_entity":
            kind = str(body.get("kind") or "generic")
            if kind not in NON_ENTITY_KINDS:
                raise HTTPException(400, f"kind must be one of {', '.join(NON_ENTITY_KINDS)}")
            if kind == "substance":
                label = "MEDICINE"
            edit = Edit(surface, label, kind, reviewer=reviewer, reviewed_at=at, entry_id=item["entry_id"] or "")
        elif action in ("relabel", "bounds", "add"):
            edit = Edit(surface, label, "term", canonical=str(ent.get("canonical") or "").strip(),
                        code=str(ent.get("code") or "").strip(), code_system=str(ent.get("code_system") or "").strip(),
                        reviewer=reviewer, reviewed_at=at, entry_id=item["entry_id"] or "")
        if edit is not None:
            problems = row_errors(edit)
            if problems:
                raise HTTPException(400, "; ".join(problems))
        review = {"_id": uuid.uuid4().hex, "entry_id": item["entry_id"], "source": item["source"],
                  "item_id": item["id"], "reviewer": reviewer, "at": at, "decision": action,
                  "entity": {"start": start, "end": end, "label": label,
                             "original": ent.get("original")},
                  "canonical": ent.get("canonical") or None, "code": ent.get("code") or None,
                  "lexicon_version": item["lexicon_version"] or getattr(self.chain, "lexicon_version", None),
                  "edit_id": None}
        if edit is not None:
            edit_id = uuid.uuid4().hex
            self.edits.insert_one({"_id": edit_id, "status": "pending", "created_at": at, "review_id": review["_id"],
                                   "row": edit.to_dict()})
            review["edit_id"] = edit_id
        self.reviews.insert_one(review)
        self.audit(reviewer, f"decision:{action}", entry_id=item["entry_id"], review_id=review["_id"],
                   edit_id=review["edit_id"])
        return {"review_id": review["_id"], "edit_id": review["edit_id"], "decision": action}

    def undo(self, reviewer: str) -> dict[str, Any]:
        last = next(iter(self.reviews.find({"reviewer": reviewer}).sort("at", -1).limit(1)), None)
        if last is None:
            raise HTTPException(409, "nothing to undo")
        if last.get("edit_id"):
            e = self.edits.find_one({"_id": last["edit_id"]})
            if e is not None and e.get("status") == "published":
                raise HTTPException(409, "the row of that decision is already published: add a new decision instead")
            self.edits.delete_one({"_id": last["edit_id"]})
        self.reviews.delete_one({"_id": last["_id"]})
        self.audit(reviewer, "undo", entry_id=last.get("entry_id"), review_id=last["_id"])
        return {"undone": last["_id"], "decision": last["decision"], "item_id": last["item_id"],
                "source": last["source"]}

    # ------------------------------------------------------------------------------------------------ export
    def reviewed_dataset(self) -> Any:
        """The reviewed entries as span gold (what evaluation reads): per entry the spans reviewers accepted,
        relabelled, re-bounded or added; a rejected span is left out. Later decisions on the same span win."""
        from evaluation.data import FIELD_OF_LABEL, Dataset, Example, Span

        by_entry: dict[tuple[str, str], dict[tuple[int, int], str | None]] = {}
        for r in self.reviews.find({}).sort("at", 1):
            spans = by_entry.setdefault((r["source"], r["item_id"]), {})
            e = r["entity"]
            orig = e.get("original") or {}
            if r["decision"] in ("relabel", "bounds") and orig.get("start") is not None:
                spans[(int(orig["start"]), int(orig["end"]))] = None
            key = (int(e["start"]), int(e["end"]))
            spans[key] = None if r["decision"] in ("reject", "not_entity") else e["label"]
        examples = []
        for (source, item_id), spans in by_entry.items():
            try:
                item = self.item(source, item_id) if source == "dlq" else None
                text = item["text"] if item else (self.docs.find_one({"_id": item_id}, {"text": 1}) or {}).get("text")
            except HTTPException:
                continue
            if not text:
                continue
            kept = sorted((s, t, lab) for (s, t), lab in spans.items() if lab)
            gold = {f: tuple(dict.fromkeys(text[s:t] for s, t, lab in kept if FIELD_OF_LABEL[lab] == f))
                    for f in ("illness", "medicine")}
            examples.append(Example(entry_id=item_id, text=text, gold=gold,
                                    spans=tuple(Span(s, t, lab) for s, t, lab in kept), line=len(examples) + 1))
        return Dataset("reviewed entries", "jsonl", examples)

    def export_jsonl(self) -> str:
        ds = self.reviewed_dataset()
        return "".join(json.dumps({"entry_id": ex.entry_id, "text": ex.text,
                                   "spans": [{"start": s.start, "end": s.end, "label": s.label} for s in ex.spans]},
                                  ensure_ascii=False) + "\n" for ex in ds.examples)

    # ----------------------------------------------------------------------------------- evaluate and publish
    def evaluate(self, reviewer: str) -> None:
        from extractor.review.measure import measure, staged

        self.evaluation = {"state": "running", "started": now_iso(), "by": reviewer}
        try:
            pending = self.pending()
            content = render(merged(self.published(), pending))
            errors, _ = validate(Path(self.settings.lexicon_dir), merged(self.published(), pending))
            if errors:
                self.evaluation = {"state": "invalid", "errors": errors, "finished": now_iso()}
                return
            with staged(Path(self.settings.lexicon_dir), content) as tmp:
                res = measure(self.settings, Path(tmp) / "lexicons", data_dir=self.eval_data,
                              extra=self.eval_extra, limit=self.eval_limit, reviewed=self.reviewed_dataset(),
                              chain=self.chain)
            self.evaluation = {"state": "done", "finished": now_iso(), "rows": res.rows, "changed": res.changed,
                               "lowered": res.lowered, "pending_ids": sorted(self._pending_ids())}
            self.audit(reviewer, "evaluate", pending=len(pending), lowered=",".join(res.lowered) or "-")
        except Exception as exc:  # noqa: BLE001 - shown on the page; the console keeps running
            log.exception("evaluation failed")
            self.evaluation = {"state": "failed", "error": f"{type(exc).__name__}: {exc}", "finished": now_iso()}

    def _pending_ids(self) -> list[str]:
        return [r["_id"] for r in self.edits.find({"status": "pending"}, {"_id": 1})]

    def publish(self, reviewer: str, confirm_lower: bool) -> dict[str, Any]:
        from extractor.chain.lexicon import Lexicon
        from extractor.stream.lexicon_updates import publish_file

        pending = self.pending()
        if not pending:
            raise HTTPException(409, "nothing pending to publish")
        ev = self.evaluation
        if ev.get("state") != "done" or ev.get("pending_ids") != sorted(self._pending_ids()):
            raise HTTPException(409, "evaluate the pending rows first (they changed since the last evaluation)")
        if ev.get("lowered") and not confirm_lower:
            raise HTTPException(409, "this change lowers " + ", ".join(ev["lowered"])
                                + ": confirm to publish anyway")
        rows = merged(self.published(), pending)
        errors, _ = validate(Path(self.settings.lexicon_dir), rows)
        if errors:
            raise HTTPException(400, "; ".join(errors))
        content = render(rows)
        path = Path(self.settings.lexicon_dir) / REVIEWED_EDITS
        write_atomic(path, content)
        version = Lexicon.content_version(self.settings.lexicon_dir)
        publish_file(self.settings, REVIEWED_EDITS, content.encode("utf-8"), version)
        ids = self._pending_ids()
        self.edits.update_many({"_id": {"$in": ids}},
                               {"$set": {"status": "published", "published_at": now_iso(), "version": version}})
        self.audit(reviewer, "publish", rows=len(ids), version=version,
                   confirmed_lower=",".join(ev.get("lowered") or []) or "-")
        self.evaluation = {"state": "none"}
        return {"published": len(ids), "version": version}

    def replay(self, reviewer: str) -> dict[str, Any]:
        """``dlq replay`` with the current lexicons; the entries it resolves leave the dead-letter queue."""
        from extractor.stream.dlq import replay

        stats = replay(self.settings, self.chain)
        if stats.resolved_entry_ids:
            self.dead.update_many({"entry_id": {"$in": stats.resolved_entry_ids}},
                                  {"$set": {"resolved": True, "resolved_at": now_iso()}})
        self.audit(reviewer, "replay", replayed=stats.replayed, resolved=stats.resolved,
                   still_failing=stats.still_failing)
        return {"replayed": stats.replayed, "resolved": stats.resolved, "still_failing": stats.still_failing}

    def search(self, q: str, label: str = "", limit: int = 12) -> list[dict[str, Any]]:
        """Lexicon rows for a name: the exact term first (the lexicon's own key lookup), then the closest terms by
        edit similarity (rapidfuzz over every row's term; about 0.2 s on the 300,000 shipped rows)."""
        from rapidfuzz import fuzz, process

        chain = self.chain
        stage = next((st for st in getattr(chain, "stages", ()) if getattr(st, "method", "") == "lexicon"), None)
        lex = getattr(stage, "lexicon", None) or getattr(getattr(chain, "linker", None), "lexicon", None)
        query = q.lower().strip()
        if lex is None or not query:
            return []
        rows = lex.rows
        if getattr(self, "_choices_of", None) is not lex:
            self._choices, self._choices_of = {i: r.term.lower() for i, r in enumerate(rows)}, lex
        first = lex.lookup(query)
        hits = process.extract(query, self._choices, scorer=fuzz.ratio, limit=limit * 4, score_cutoff=50)
        candidates = ([(first, 100.0)] if first is not None else []) + [(rows[i], sc) for _t, sc, i in hits]
        out, seen = [], set()
        for r, score in candidates:
            key = (r.label, r.canonical.lower(), r.code)
            if (label and r.label != label) or key in seen:
                continue
            seen.add(key)
            out.append({"term": r.term, "label": r.label, "canonical": r.canonical, "code": r.code or "",
                        "code_system": r.code_system or "", "source": r.source, "score": round(score, 1)})
            if len(out) >= limit:
                break
        return out


# ---------------------------------------------------------------------------------------------------- the app
def create_app(settings: Settings, db: Any, chain: Any = None, *, https: bool = False, mirror: bool = True,
               eval_data: Path | None = None, eval_limit: int = 0, eval_extra: tuple[Path, ...] = ()) -> FastAPI:
    console = Console(settings, db, chain, eval_data=eval_data, eval_limit=eval_limit, eval_extra=eval_extra)
    templates = Jinja2Templates(directory=str(HERE / "templates"))
    stop = threading.Event()

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        """The dead-letter copy runs beside the app (a thread: the Kafka and MongoDB clients block)."""
        if mirror:
            m = queues.DeadLetterMirror(settings, db)

            def loop() -> None:
                while not stop.is_set():
                    try:
                        m.poll(1.0)
                    except Exception as exc:  # noqa: BLE001 - Kafka or MongoDB away: try again
                        log.warning("dead-letter copy: %s", exc)
                        stop.wait(5)
                m.close()

            threading.Thread(target=loop, name="dlq-mirror", daemon=True).start()
        yield
        stop.set()

    app = FastAPI(title="Review console", docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan)
    app.state.console = console

    @app.middleware("http")
    async def security_headers(request: Request, call_next: Any) -> Response:
        resp: Response = await call_next(request)
        resp.headers["Content-Security-Policy"] = CSP
        resp.headers["X-Content-Type-Options"] = "nosniff"
        resp.headers["Referrer-Policy"] = "no-referrer"
        resp.headers["Cache-Control"] = "no-store"
        return resp

    app.add_middleware(SessionMiddleware, secret_key=secrets.token_urlsafe(32), session_cookie="review_session",
                       max_age=settings.review_session_s, same_site="strict", https_only=https)
    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")

    def who(request: Request) -> str:
        reviewer = auth.reviewer_of(request.session, settings.review_session_s)
        if reviewer is None:
            raise HTTPException(401, "sign in")
        return reviewer

    async def check_csrf(request: Request) -> None:
        token = request.headers.get(auth.CSRF_HEADER)
        if token is None and request.headers.get("content-type", "").startswith(
                ("application/x-www-form-urlencoded", "multipart/form-data")):
            token = str((await request.form()).get("csrf") or "")
        if not auth.csrf_ok(request.session, token):
            raise HTTPException(403, "missing or wrong CSRF token")

    def page(request: Request, name: str, status: int = 200, **ctx: Any) -> HTMLResponse:
        ctx.update(reviewer=request.session.get("reviewer"), csrf=request.session.get("csrf", ""))
        return templates.TemplateResponse(request, name, ctx, status_code=status)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> Response:
        if exc.status_code == 401 and request.method == "GET" and not request.url.path.startswith("/api/"):
            return RedirectResponse("/login", status_code=303)
        if request.url.path.startswith("/api/") or request.headers.get("accept", "").startswith("application/json"):
            return JSONResponse({"error": exc.detail}, status_code=exc.status_code)
        return page(request, "error.html", status=exc.status_code, message=exc.detail, code=exc.status_code)

    # ------------------------------------------------------------------------------------------------ sign-in
    @app.get("/login", response_class=HTMLResponse)
    def login_form(request: Request) -> HTMLResponse:
        request.session.setdefault("csrf", secrets.token_urlsafe(24))
        return page(request, "login.html")

    @app.post("/login")
    async def login(request: Request) -> Response:
        await check_csrf(request)
        form = await request.form()
        name, password = str(form.get("reviewer") or "").strip(), str(form.get("password") or "")
        if not auth.valid_reviewer_name(name) or not auth.password_matches(
                password, auth.read_password(console.password_file)):
            log.warning("review sign-in refused")
            return page(request, "login.html", status=401, error="wrong name or password")
        auth.sign_in(request.session, name)
        console.audit(name, "sign_in")
        return RedirectResponse("/queue/dlq", status_code=303)

    @app.post("/logout")
    async def logout(request: Request) -> Response:
        await check_csrf(request)
        name = auth.reviewer_of(request.session, settings.review_session_s)
        request.session.clear()
        if name:
            console.audit(name, "sign_out")
        return RedirectResponse("/login", status_code=303)

    # ------------------------------------------------------------------------------------------------- queues
    @app.get("/")
    def home(request: Request) -> Response:
        who(request)
        return RedirectResponse("/queue/dlq", status_code=303)

    @app.get("/queue/{queue}", response_class=HTMLResponse)
    def queue_page(request: Request, queue: str, cursor: str | None = None) -> HTMLResponse:
        who(request)
        if queue not in queues.QUEUES:
            raise HTTPException(404, "unknown queue")
        f = queues.Filters.from_query(request.query_params)
        pg = queues.page(db, settings, queue, f, cursor)
        return page(request, "queue.html", queue=queue, page=pg, filters=f, qs=f.as_query(),
                    threshold=settings.review_low_confidence)

    @app.get("/entry/{source}/{item_id}", response_class=HTMLResponse)
    def entry_page(request: Request, source: str, item_id: str, queue: str = "") -> HTMLResponse:
        who(request)
        item = console.item(source, item_id)
        f = queues.Filters.from_query(request.query_params)
        nxt = None
        if queue in queues.QUEUES:
            after = queues.page(db, settings, queue, f, item_id if queue != "sample" else None, size=1)
            if after.items:
                nxt = str(after.items[0]["_id"])
        decisions = list(console.reviews.find({"source": source, "item_id": item_id}).sort("at", 1))
        return page(request, "entry.html", item=item, segs=segments(item["text"], item["entities"]),
                    queue=queue, qs=f.as_query(), next_id=nxt, decisions=decisions,
                    next_source="dlq" if queue == "dlq" else "doc")

    # ----------------------------------------------------------------------------------------------- the API
    @app.post("/api/decision")
    async def api_decision(request: Request) -> JSONResponse:
        reviewer = who(request)
        await check_csrf(request)
        try:
            body = await request.json()
        except ValueError:
            raise HTTPException(400, "expected a JSON body") from None
        if not isinstance(body, dict):
            raise HTTPException(400, "expected a JSON object")
        return JSONResponse(console.decide(reviewer, body))

    @app.post("/api/undo")
    async def api_undo(request: Request) -> JSONResponse:
        reviewer = who(request)
        await check_csrf(request)
        return JSONResponse(console.undo(reviewer))

    @app.get("/api/lexicon/search")
    def api_search(request: Request, q: str = "", label: str = "") -> JSONResponse:
        who(request)
        return JSONResponse({"results": console.search(q[:100], label if label in LABELS else "")})

    @app.get("/export/reviews.jsonl")
    def export(request: Request) -> Response:
        reviewer = who(request)
        console.audit(reviewer, "export")
        return Response(console.export_jsonl(), media_type="application/x-ndjson",
                        headers={"Content-Disposition": 'attachment; filename="reviews.jsonl"'})

    # ----------------------------------------------------------------------------------- edits and publishing
    @app.get("/edits", response_class=HTMLResponse)
    def edits_page(request: Request, message: str = "") -> HTMLResponse:
        who(request)
        pending = list(console.edits.find({"status": "pending"}).sort("created_at", 1))
        published = list(console.edits.find({"status": "published"}).sort("published_at", -1).limit(50))
        return page(request, "edits.html", pending=pending, published=published, evaluation=console.evaluation,
                    message=message[:200], version=getattr(console.chain, "lexicon_version", ""))

    @app.post("/edits/evaluate")
    async def edits_evaluate(request: Request) -> Response:
        reviewer = who(request)
        await check_csrf(request)
        if console.evaluation.get("state") != "running":
            console.evaluation = {"state": "running", "started": now_iso(), "by": reviewer}
            threading.Thread(target=console.evaluate, args=(reviewer,), daemon=True).start()
        return RedirectResponse("/edits", status_code=303)

    @app.post("/edits/publish")
    async def edits_publish(request: Request) -> Response:
        reviewer = who(request)
        await check_csrf(request)
        form = await request.form()
        res = console.publish(reviewer, confirm_lower=form.get("confirm_lower") == "yes")
        return RedirectResponse("/edits?" + urlencode({"message": f"published {res['published']} row(s), lexicon "
                                                                  f"version {res['version']}"}), status_code=303)

    @app.post("/dlq/replay")
    async def dlq_replay(request: Request) -> Response:
        reviewer = who(request)
        await check_csrf(request)
        res = console.replay(reviewer)
        msg = (f"replayed {res['replayed']} dead-lettered entr(ies): {res['resolved']} resolved, "
               f"{res['still_failing']} still unresolved")
        return RedirectResponse("/edits?" + urlencode({"message": msg}), status_code=303)

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app
