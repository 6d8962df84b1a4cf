"""The search server: JSON API, Prometheus metrics, and a search page that logs impressions and clicks; and
Cohere's rerank API for documents sent in the request (rerank_api.py), with or without an index.

Limits are enforced on every parameter (query length, k, batch size, request body size); an overloaded server
answers 429. With two pipelines it runs an online experiment: A/B by session hash, or team-draft interleaving.
When the click log's store is away (PostgreSQL restarting), clicks are refused with 503 and Retry-After, never
acknowledged unwritten, and search keeps answering: its impression is not logged and the response says so
(`"logged": false`), so a later click on it answers 404.
"""
from __future__ import annotations

import asyncio
import math
import os
import random
import time
import uuid
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Sequence

from ..pipeline import Chain, Cutoff, Stage
from ..rerankers.crossjem.packing import compile_kernels
from ..types import Queries, Run
from .batcher import MicroBatcher, Overloaded
from .clicklog import ClickLogUnavailable
from .interleaving import ab_bucket, team_draft
from .page import SEARCH_PAGE


@dataclass
class Limits:
    max_query_chars: int = 512
    max_k: int = 100
    max_batch_queries: int = 64
    max_body_bytes: int = 65536
    max_batch: int = 16          # requests per micro-batch
    max_wait_ms: float = 0.0  # MicroBatcher: 0 = no waiting, a batch is what queued during the last one
    max_queue: int = 256
    queue_deadline_ms: float = 1000.0  # refuse (429) a request expected to wait longer
    max_rerank_documents: int = 1000   # per /v1/rerank request
    max_rerank_batch_documents: int = 256  # per micro-batch of rerank requests (at least one request)
    max_document_chars: int = 20000
    max_rerank_body_bytes: int = 8 * 2 ** 20
    score_cache_entries: int = 4096  # whole rerank requests remembered (rerank_api.ScoreCache); 0 = off


RERANK_PATHS = ("/v1/rerank", "/v2/rerank")


def run_timed(stage: Stage, queries: Queries) -> tuple[Run, dict[str, float]]:
    """Run a pipeline, timing each top-level stage (first stage, reranker) in milliseconds."""
    if isinstance(stage, Cutoff):
        run, timings = run_timed(stage.inner, queries)
        return run.cut(stage.k), timings
    if isinstance(stage, Chain):
        run, timings = run_timed(stage.first, queries)
        start = time.perf_counter()
        run = stage.then.transform(queries, run)
        timings[stage.then.name] = (time.perf_counter() - start) * 1000
        return run, timings
    start = time.perf_counter()
    run = stage.transform(queries)
    return run, {stage.name: (time.perf_counter() - start) * 1000}


def create_app(index, systems: dict[str, Stage], mode: str = "single", limits: Limits | None = None,
               click_log=None, seed: int = 0, rerankers: dict[str, Stage] | None = None):
    """`systems` maps 'A' (and 'B' for experiments) to pipelines over `index`; `mode` is single, ab or interleave.
    `rerankers` (name -> reranking stage) are served on /v1/rerank and /v2/rerank; with no index and no systems the
    server answers those routes (and /healthz, /metrics) alone."""
    from fastapi import Body, FastAPI, HTTPException, Query, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse
    from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest

    from . import rerank_api

    limits = limits or Limits()
    rerankers = rerankers or {}
    if index is None and (systems or not rerankers):
        raise ValueError("a server without an index serves rerankers only: give rerankers and no systems")
    if index is not None and (mode not in ("single", "ab", "interleave")
                              or (mode != "single" and set(systems) != {"A", "B"}) or "A" not in systems):
        raise ValueError("mode single needs system A; ab and interleave need systems A and B")
    rng = random.Random(seed)
    registry = CollectorRegistry()
    requests = Counter("rerank_requests", "Requests by endpoint and status", ["endpoint", "status"], registry=registry)
    log_unavailable = Counter("rerank_click_log_unavailable", "Click log operations refused: its store was away",
                              ["operation"], registry=registry)
    stage_latency = Histogram("rerank_stage_seconds", "Latency per pipeline stage", ["system", "stage"],
                              registry=registry, buckets=(.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5))

    def search_batch(items: Sequence[tuple[str, str, int]]) -> list[tuple[list, dict]]:
        """items: (system, query, k). One pipeline call per system for the whole micro-batch."""
        out: list = [None] * len(items)
        for system in {s for s, _, _ in items}:
            idx = [i for i, (s, _, _) in enumerate(items) if s == system]
            queries = {str(i): items[i][1] for i in idx}
            run, timings = run_timed(systems[system], queries)
            for stage, ms in timings.items():
                stage_latency.labels(system, stage).observe(ms / 1000)
            for i in idx:
                out[i] = (run.rankings.get(str(i), [])[: items[i][2]], timings)
        return out

    batcher = MicroBatcher(search_batch, limits.max_batch, limits.max_wait_ms, limits.max_queue,
                           limits.queue_deadline_ms)
    score_cache = rerank_api.ScoreCache(limits.score_cache_entries)
    cache_lookups = Counter("rerank_score_cache", "Rerank requests answered from the score cache (hit) or the model",
                            ["result"], registry=registry)

    def score_rerank_batch(batch: Sequence) -> list:
        hits, misses = score_cache.hits, score_cache.misses  # micro-batches run one at a time
        out = rerank_api.score_requests(rerankers, batch, score_cache if limits.score_cache_entries else None)
        cache_lookups.labels("hit").inc(score_cache.hits - hits)
        cache_lookups.labels("miss").inc(score_cache.misses - misses)
        return out

    rerank_batcher = MicroBatcher(score_rerank_batch, limits.max_batch,
                                  limits.max_wait_ms, limits.max_queue, limits.queue_deadline_ms,
                                  cost=lambda request: len(request.documents),
                                  max_cost=limits.max_rerank_batch_documents)

    @asynccontextmanager
    async def lifespan(app):
        # One query through every system before serving: models load and JIT code compiles now, not in the first
        # user's request (the server answers /healthz only after this).
        await asyncio.get_running_loop().run_in_executor(None, compile_kernels)  # CROSS-JEM's, for long lists
        # Queries that match (words of the index's own documents), one at a time and then as a batch, so every
        # stage runs on real candidates: a query matching nothing would skip BM25's top-k and the reranker.
        warm = index.docstore.sample_queries() if index is not None else ["warm up"]
        texts = [" ".join(q.split()[1:]) or q for q in warm]  # documents that share words with the queries
        for system in systems.values():
            for batch in [warm[:1], warm]:
                await asyncio.get_running_loop().run_in_executor(
                    None, system.search, {f"warm-up-{i}": q for i, q in enumerate(batch)})
        for stage in rerankers.values():
            await asyncio.get_running_loop().run_in_executor(None, stage.rerank_texts, warm, [texts] * len(warm))
        await batcher.start()
        await rerank_batcher.start()
        yield
        await batcher.stop()
        await rerank_batcher.stop()

    app = FastAPI(title="rerank-pipeline", lifespan=lifespan)
    app.state.systems, app.state.rerankers = systems, rerankers  # what it serves, for whoever embeds the app

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        # The default handler echoes the input, which may not be JSON-encodable (Infinity, NaN): answer 422
        # with where and what only.
        return JSONResponse({"detail": [{"loc": list(e.get("loc", ())), "msg": str(e.get("msg", ""))}
                                        for e in exc.errors()]}, status_code=422)

    @app.middleware("http")
    async def cap_body(request: Request, call_next):
        length = request.headers.get("content-length")
        cap = limits.max_rerank_body_bytes if request.url.path in RERANK_PATHS else limits.max_body_bytes
        if length is not None and (not length.isdigit() or int(length) > cap):
            requests.labels(request.url.path, "413").inc()
            return JSONResponse({"detail": f"request body over {cap} bytes"}, status_code=413)
        response = await call_next(request)
        requests.labels(request.url.path, str(response.status_code)).inc()
        return response

    def check_query(q: str) -> str:
        q = q.strip()
        if not q:
            raise HTTPException(422, "empty query")
        if len(q) > limits.max_query_chars:
            raise HTTPException(422, f"query over {limits.max_query_chars} characters")
        return q

    async def one(q: str, k: int, session: str) -> dict:
        if mode == "interleave":
            (a, timings_a), (b, timings_b) = await _submit([("A", q, k), ("B", q, k)])
            merged = team_draft([h.docid for h in a], [h.docid for h in b], k, rng)
            scores = {h.docid: h.score for h in a} | {h.docid: h.score for h in b}
            shown = [(d, scores[d], team) for d, team in merged]
            timings = {f"A:{s}": v for s, v in timings_a.items()} | {f"B:{s}": v for s, v in timings_b.items()}
            system = "interleave(A,B)"
        else:
            system = ab_bucket(session) if mode == "ab" else "A"
            ((hits, timings),) = await _submit([(system, q, k)])
            shown = [(h.docid, h.score, system) for h in hits]
        texts = index.docstore.texts([d for d, _, _ in shown])
        request_id = uuid.uuid4().hex
        results = [{"rank": r, "id": d, "score": s, "team": team, "text": t}
                   for r, ((d, s, team), t) in enumerate(zip(shown, texts), start=1)]
        logged = False
        if click_log is not None:
            try:
                await asyncio.to_thread(click_log.impression, request_id, session, q, mode, system,
                                        [{"rank": r["rank"], "id": r["id"], "team": r["team"]} for r in results],
                                        timings)
                logged = True
            except ClickLogUnavailable:
                log_unavailable.labels("impression").inc()
        return {"request_id": request_id, "query": q, "system": system, "results": results,
                "timings_ms": {s: round(v, 3) for s, v in timings.items()}, "logged": logged}

    async def log_call(operation: str, *args):
        """A click log write off the event loop (search keeps answering while the store is slow or away)."""
        if click_log is None:
            raise HTTPException(404, "click logging is off (start the server with --log)")
        try:
            return await asyncio.to_thread(getattr(click_log, operation), *args)
        except ClickLogUnavailable as e:
            log_unavailable.labels(operation).inc()
            raise HTTPException(503, f"{e}; nothing was recorded, retry later", headers={"Retry-After": "5"}) from None

    async def _submit(items, through=batcher):
        try:
            return await asyncio.gather(*(through.submit(i) for i in items))
        except Overloaded as e:
            raise HTTPException(429, str(e), headers={"Retry-After": str(max(1, math.ceil(e.retry_after_s)))}) from None

    async def submit_rerank(request):
        (scores,) = await _submit([request], rerank_batcher)
        return scores

    rerank_api.add_routes(app, rerankers, submit_rerank, limits)

    @app.get("/healthz")
    async def healthz() -> dict:
        return {"status": "ok", "pid": os.getpid(), "index": index.name if index is not None else None,
                "documents": len(index.docstore) if index is not None else 0, "mode": mode,
                "systems": {name: stage.name for name, stage in systems.items()},
                "rerankers": {name: stage.name for name, stage in rerankers.items()},
                "models": {name: rerank_api.describe(stage) for name, stage in rerankers.items()}}

    @app.get("/metrics")
    async def metrics() -> PlainTextResponse:
        return PlainTextResponse(generate_latest(registry).decode(), media_type=CONTENT_TYPE_LATEST)

    if index is None:
        return app

    @app.get("/search")
    async def search(q: str = Query(..., max_length=100_000), k: int = Query(10, ge=1),
                     session: str = Query("anonymous", max_length=128)) -> dict:
        if k > limits.max_k:
            raise HTTPException(422, f"k over the cap of {limits.max_k}")
        return await one(check_query(q), k, session)

    @app.post("/search")
    async def search_many(body: dict = Body(...)) -> dict:
        queries, k = body.get("queries"), body.get("k", 10)
        if not isinstance(queries, list) or not queries or not all(isinstance(x, str) for x in queries):
            raise HTTPException(422, "'queries' must be a non-empty list of strings")
        if len(queries) > limits.max_batch_queries:
            raise HTTPException(422, f"at most {limits.max_batch_queries} queries per request")
        if not isinstance(k, int) or isinstance(k, bool) or not 1 <= k <= limits.max_k:
            raise HTTPException(422, f"k must be an integer in 1..{limits.max_k}")
        session = str(body.get("session", "anonymous"))[:128]
        checked = [check_query(q) for q in queries]
        # Submitted together so the micro-batcher scores them in one pipeline call.
        return {"responses": list(await asyncio.gather(*(one(q, k, session) for q in checked)))}

    @app.post("/click")
    async def click(body: dict = Body(...)) -> dict:
        rid, docid = body.get("request_id"), body.get("id")
        if not isinstance(rid, str) or not isinstance(docid, str):
            raise HTTPException(422, "'request_id' and 'id' must be strings")
        rank = await log_call("click", rid, docid)
        if rank is None:
            raise HTTPException(404, "no such impression or result")
        return {"rank": rank}

    @app.post("/return")
    async def returned(body: dict = Body(...)) -> dict:
        rid, docid, dwell = body.get("request_id"), body.get("id"), body.get("dwell_s")
        if not isinstance(rid, str) or not isinstance(docid, str) or not isinstance(dwell, (int, float)) or not math.isfinite(dwell) or dwell < 0:
            raise HTTPException(422, "'request_id', 'id' (strings) and 'dwell_s' (seconds >= 0) are required")
        if not await log_call("returned", rid, docid, float(dwell)):
            raise HTTPException(404, "no such click")
        return {"ok": True}

    @app.get("/", response_class=HTMLResponse)
    async def page() -> str:
        return SEARCH_PAGE

    return app
