"""``python -m extractor bench review --docs N``: the review console's pages with N documents in the store.

A throw-away database of the configured server (FerretDB locally) is filled with N processed documents (the shape
the workers write; about a quarter hold an entity below the low-confidence threshold, methods, labels, codes,
lexicon versions and dates varied) and D dead letters. The console is served by uvicorn in this process and
asked over HTTP, signed in, one request at a time:

* ``queue_page_*``: first pages and the pages after them (following each page's cursor) of the three queues, with
  no filter and with each filter (label, method, code, lexicon version, date range, reason);
* ``entry_view_*``: entry pages of random documents and dead letters.

It prints p50 / p95 per kind and overall and, with ``--plot``, a bar chart of the p95s against the targets
(queue pages 300 ms, entry views 150 ms).
"""

from __future__ import annotations

import argparse
import hashlib
import random
import re
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from extractor.tools.bench.report import report
from extractor.tools.bench.store import CODES_ILLNESS, CODES_MEDICINE, WORDS, _pct

TARGET_QUEUE_MS, TARGET_ENTRY_MS = 300.0, 150.0
METHODS = ("regex", "lexicon", "ner")
VERSIONS = ("a1b2c3d4e5f6", "0f9e8d7c6b5a", "112233445566", "778899aabbcc")


def configure_review_parser(p: argparse.ArgumentParser) -> None:
    p.add_argument("--docs", type=int, default=1_000_000, help="documents in the store (default 1000000)")
    p.add_argument("--dead-letters", type=int, default=20_000, help="dead letters (default 20000)")
    p.add_argument("--pages", type=int, default=40, help="timed pages per queue and filter (default 40)")
    p.add_argument("--entries", type=int, default=300, help="timed entry views of each source (default 300)")
    p.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    p.add_argument("--plot", type=Path, help="a bar chart of the p95s against the targets (PNG)")
    p.add_argument("--keep", action="store_true", help="keep the bench database (default: dropped)")
    p.add_argument("--seed", type=int, default=11)


def _hex(i: int, salt: str) -> str:
    return hashlib.sha256(f"{salt}{i}".encode()).hexdigest()[:32]


def make_doc(rng: random.Random, i: int) -> dict[str, Any]:
    day = rng.randrange(0, 730)
    ts = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(1_672_531_200 + day * 86_400 + rng.randrange(86_400)))
    text = " ".join(rng.choices(WORDS, k=30))

    def ent(label: str, code: str, system: str) -> dict[str, Any]:
        s = rng.randrange(0, len(text) - 12)
        conf = rng.random() ** 0.25  # about 12 % below 0.6 per entity
        return {"text": text[s:s + 10], "start": s, "end": s + 10, "label": label, "canonical": f"{label} {code}",
                "code": code, "code_system": system, "method": rng.choice(METHODS), "source": "illnesses.tsv:1",
                "confidence": round(conf, 3), "negated": False, "hypothetical": False}

    ill = [ent("ILLNESS", c, "ICD-10-CM") for c in rng.sample(CODES_ILLNESS, rng.randint(1, 3))]
    med = [ent("MEDICINE", c, "DrugBank") for c in rng.sample(CODES_MEDICINE, rng.randint(0, 2))]
    _id = _hex(i, "doc")
    return {"_id": _id, "entry_id": _id, "patient_id": f"P{rng.randrange(50_000):06d}", "text": text,
            "timestamp": ts, "status": "resolved", "illness": ill[0]["canonical"],
            "medicine": med[0]["canonical"] if med else None, "illnesses": ill, "medicines": med,
            "codes": sorted({f"illness:{e['code']}" for e in ill} | {f"medicine:{e['code']}" for e in med}),
            "stages_run": ["regex", "lexicon", "ner"], "extractor_version": "0.1.0",
            "lexicon_version": rng.choice(VERSIONS), "chain_version": "bench"}


def make_dead_letter(rng: random.Random, i: int) -> dict[str, Any]:
    day = rng.randrange(0, 730)
    return {"_id": f"0000:{i:012d}", "partition": 0, "offset": i,
            "reason": rng.choice(("unresolved", "unresolved", "unresolved", "bad_timestamp", "invalid_json")),
            "stage": "extract", "error_class": "Unresolved", "error": "", "entry_id": _hex(i, "dlq"),
            "source_file": "bench.csv", "source_row": str(i + 2), "lexicon_version": rng.choice(VERSIONS),
            "failed_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(1_672_531_200 + day * 86_400)),
            "replayable": True, "text": " ".join(rng.choices(WORDS, k=25)), "patient_id": "P1",
            "timestamp": "2024-01-01T00:00:00Z", "decodable": True}


def _fill(coll: Any, n: int, make: Any, rng: random.Random, desc: str) -> float:
    from tqdm import tqdm

    t0 = time.perf_counter()
    with tqdm(total=n, unit="doc", desc=desc, mininterval=2) as bar:
        for start in range(0, n, 1000):
            coll.insert_many([make(rng, i) for i in range(start, min(n, start + 1000))], ordered=False)
            bar.update(min(n, start + 1000) - start)
    return n / (time.perf_counter() - t0)


def _filters(rng: random.Random) -> dict[str, list[dict[str, str]]]:
    def month() -> dict[str, str]:
        day = rng.randrange(0, 700)
        return {"since": time.strftime("%Y-%m-%d", time.gmtime(1_672_531_200 + day * 86_400)),
                "until": time.strftime("%Y-%m-%d", time.gmtime(1_672_531_200 + (day + 30) * 86_400))}

    return {
        "low": [{}, {"label": "MEDICINE"}, {"method": "ner"}, {"code": rng.choice(CODES_ILLNESS)},
                {"lexicon_version": VERSIONS[0]}, month()],
        "sample": [{}, month()],
        "dlq": [{}, {"reason": "bad_timestamp"}, month()],
    }


def run_review_bench(args: argparse.Namespace) -> int:
    import logging

    import httpx
    import uvicorn

    from extractor.review.app import create_app
    from extractor.review.auth import read_password
    from extractor.stream import store
    from extractor.tools.harness import delete_topics, ensure_servers, free_port, isolated_settings

    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request otherwise
    base = f"bench-review-{uuid.uuid4().hex[:6]}"
    database = base.replace("-", "_")
    settings = isolated_settings(base, mongo_database=database, mongo_collection="processed_entries",
                                 review_secrets_dir=Path("out") / "bench-review-secrets")
    ensure_servers(settings)
    rng = random.Random(args.seed)
    client = store.mongo_client(settings, socketTimeoutMS=None)
    db = client[database]
    figures: dict[str, Any] = {"docs": args.docs, "dead_letters": args.dead_letters}
    print(f"bench review: {args.docs} documents and {args.dead_letters} dead letters into {database}", flush=True)
    server = None
    try:
        figures["insert_docs_per_s"] = round(_fill(db[settings.mongo_collection], args.docs, make_doc, rng, "docs"))
        _fill(db[settings.dead_letters_collection], args.dead_letters, make_dead_letter, rng, "dead letters")
        t0 = time.perf_counter()
        store.ensure_indexes(settings, db[settings.mongo_collection])
        from extractor.review.queues import ensure_indexes as review_indexes

        review_indexes(db, settings)
        figures["index_build_s"] = round(time.perf_counter() - t0, 1)
        app = create_app(settings, db, chain=_NoChain(), mirror=False)
        port = free_port()
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
        threading.Thread(target=server.run, daemon=True).start()
        while not server.started:
            time.sleep(0.05)
        http = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60, follow_redirects=True)
        token = re.search(r'name="csrf-token" content="([^"]+)"', http.get("/login").text).group(1)  # type: ignore[union-attr]
        http.post("/login", data={"csrf": token, "reviewer": "bench",
                                  "password": read_password(app.state.console.password_file)})

        def timed(url: str, params: dict[str, str] | None = None) -> tuple[float, str]:
            t = time.perf_counter()
            r = http.get(url, params=params)
            ms = (time.perf_counter() - t) * 1000
            if r.status_code != 200:
                raise RuntimeError(f"{url} {params}: HTTP {r.status_code}")
            return ms, r.text

        all_pages: list[float] = []
        for queue, filters in _filters(rng).items():
            for f in filters:
                times: list[float] = []
                cursor = None
                for i in range(args.pages):
                    params = dict(f, **({"cursor": cursor} if cursor else {}))
                    ms, html = timed(f"/queue/{queue}", params)
                    times.append(ms)
                    nxt = re.search(r'id="next-page" href="\?[^"]*cursor=([^"&]+)', html)
                    cursor = nxt.group(1) if nxt and i % 5 != 4 else None  # five pages deep, then from the top
                name = f"queue_page_{queue}_" + ("_".join(f.keys()) or "all")
                figures[f"{name}_p95_ms"] = round(_pct(times, 95), 1)
                all_pages += times
        figures["queue_page_p50_ms"] = round(_pct(all_pages, 50), 1)
        figures["queue_page_p95_ms"] = round(_pct(all_pages, 95), 1)
        entries: list[float] = []
        for _ in range(args.entries):
            entries.append(timed(f"/entry/doc/{_hex(rng.randrange(args.docs), 'doc')}")[0])
        figures["entry_view_doc_p95_ms"] = round(_pct(entries, 95), 1)
        dl: list[float] = []
        for _ in range(args.entries):
            dl.append(timed(f"/entry/dlq/0000:{rng.randrange(args.dead_letters):012d}")[0])
        figures["entry_view_dlq_p95_ms"] = round(_pct(dl, 95), 1)
        figures["entry_view_p50_ms"] = round(_pct(entries + dl, 50), 1)
        figures["entry_view_p95_ms"] = round(_pct(entries + dl, 95), 1)
        figures["targets"] = {"queue_page_p95_ms": TARGET_QUEUE_MS, "entry_view_p95_ms": TARGET_ENTRY_MS}
        if args.plot:
            _plot(figures, args.plot)
    finally:
        if server is not None:
            server.should_exit = True
        if not args.keep:
            client.drop_database(database)
            delete_topics(settings, f"{base}-")
        client.close()
    return report(figures, args.json)


class _NoChain:
    """The bench measures pages, not extraction: a dead letter's entities come from this empty chain."""

    lexicon_version = "bench"
    lexicon = None

    def extract(self, text: str) -> Any:
        from extractor.chain.model import ExtractionResult

        return ExtractionResult([], [], "unresolved")


def _plot(figures: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = [k for k in figures if k.endswith("_p95_ms") and k.startswith(("queue_page_", "entry_view_"))
            and k not in ("queue_page_p95_ms", "entry_view_p95_ms")]
    vals = [figures[k] for k in keys]
    colors = ["#1f6fb2" if k.startswith("queue") else "#c0392b" for k in keys]
    fig, ax = plt.subplots(figsize=(9, 0.32 * len(keys) + 1.4))
    ax.barh([k.removesuffix("_p95_ms") for k in keys], vals, color=colors)
    ax.axvline(TARGET_QUEUE_MS, color="#1f6fb2", ls="--", lw=1, label=f"queue page target {TARGET_QUEUE_MS:.0f} ms")
    ax.axvline(TARGET_ENTRY_MS, color="#c0392b", ls="--", lw=1, label=f"entry view target {TARGET_ENTRY_MS:.0f} ms")
    ax.invert_yaxis()
    ax.set_xlabel("p95 latency over HTTP (ms)")
    ax.set_title(f"Review console with {figures['docs']:,} documents")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
