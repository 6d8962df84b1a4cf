"""What the routes share: the index and its pipelines behind a micro-batcher, the rerankers behind another, the
click log, the limits and the Prometheus metrics. The routes (routes.py) only parse, check caps and call this."""
from __future__ import annotations

import asyncio
import math
import os
import random
import time
import uuid
from typing import Sequence

from fastapi import HTTPException
from prometheus_client import CollectorRegistry, Counter, Histogram

from ..pipeline import Chain, Cutoff, Stage
from ..rerankers.crossjem.packing import compile_kernels
from ..types import Queries, Run
from . import rerank_api
from .batcher import MicroBatcher, Overloaded
from .clicklog import ClickLogUnavailable
from .interleaving import ab_bucket, team_draft
from .limits import Limits

MODES = ("single", "ab", "interleave")


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


class Metrics:
    """The server's own Prometheus registry (several apps in one process never share counters)."""

    def __init__(self):
        self.registry = CollectorRegistry()
        self.requests = Counter("rerank_requests", "Requests by endpoint and status", ["endpoint", "status"],
                                registry=self.registry)
        self.log_unavailable = Counter("rerank_click_log_unavailable",
                                       "Click log operations refused: its store was away", ["operation"],
                                       registry=self.registry)
        self.stage_latency = Histogram("rerank_stage_seconds", "Latency per pipeline stage", ["system", "stage"],
                                       registry=self.registry,
                                       buckets=(.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5))
        self.cache_lookups = Counter("rerank_score_cache",
                                     "Rerank requests answered from the score cache (hit) or the model", ["result"],
                                     registry=self.registry)


class SearchService:
    """`systems` maps 'A' (and 'B' for experiments) to pipelines over `index`; `mode` is single, ab or interleave.
    `rerankers` (name -> reranking stage) serve the rerank API; with no index and no systems, only that."""

    def __init__(self, index, systems: dict[str, Stage], mode: str = "single", limits: Limits | None = None,
                 click_log=None, seed: int = 0, rerankers: dict[str, Stage] | None = None):
        self.limits = limits or Limits()
        self.rerankers = rerankers or {}
        if index is None and (systems or not self.rerankers):
            raise ValueError("a server without an index serves rerankers only: give rerankers and no systems")
        if index is not None and (mode not in MODES or (mode != "single" and set(systems) != {"A", "B"})
                                  or "A" not in systems):
            raise ValueError("mode single needs system A; ab and interleave need systems A and B")
        self.index, self.systems, self.mode, self.click_log = index, systems, mode, click_log
        self.rng = random.Random(seed)
        self.metrics = Metrics()
        limits = self.limits
        self.batcher = MicroBatcher(self._search_batch, limits.max_batch, limits.max_wait_ms, limits.max_queue,
                                    limits.queue_deadline_ms)
        self.score_cache = rerank_api.ScoreCache(limits.score_cache_entries)
        self.rerank_batcher = MicroBatcher(self._rerank_batch, limits.max_batch, limits.max_wait_ms,
                                           limits.max_queue, limits.queue_deadline_ms,
                                           cost=lambda request: len(request.documents),
                                           max_cost=limits.max_rerank_batch_documents)

    # ---- life ------------------------------------------------------------------------------------------------
    async def start(self) -> None:
        """One query through every system before serving: models load and JIT code compiles now, not in the first
        user's request (the server answers /healthz only after this)."""
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, compile_kernels)  # CROSS-JEM's, for long lists
        # Queries that match (words of the index's own documents), one at a time and then as a batch, so every
        # stage runs on real candidates: a query matching nothing would skip BM25's top-k and the reranker.
        warm = self.index.docstore.sample_queries() if self.index is not None else ["warm up"]
        texts = [" ".join(q.split()[1:]) or q for q in warm]  # documents that share words with the queries
        for system in self.systems.values():
            for batch in [warm[:1], warm]:
                await loop.run_in_executor(None, system.search, {f"warm-up-{i}": q for i, q in enumerate(batch)})
        for stage in self.rerankers.values():
            await loop.run_in_executor(None, stage.rerank_texts, warm, [texts] * len(warm))
        await self.batcher.start()
        await self.rerank_batcher.start()

    async def stop(self) -> None:
        await self.batcher.stop()
        await self.rerank_batcher.stop()

    # ---- the two micro-batched computations ------------------------------------------------------------------
    def _search_batch(self, items: Sequence[tuple[str, str, int]]) -> list[tuple[list, dict]]:
        """items: (system, query, k). One pipeline call per system for the whole micro-batch."""
        out: list = [None] * len(items)
        for system in {s for s, _, _ in items}:
            idx = [i for i, (s, _, _) in enumerate(items) if s == system]
            run, timings = run_timed(self.systems[system], {str(i): items[i][1] for i in idx})
            for stage, ms in timings.items():
                self.metrics.stage_latency.labels(system, stage).observe(ms / 1000)
            for i in idx:
                out[i] = (run.rankings.get(str(i), [])[: items[i][2]], timings)
        return out

    def _rerank_batch(self, batch: Sequence[rerank_api.RerankRequest]) -> list:
        cache = self.score_cache
        hits, misses = cache.hits, cache.misses  # micro-batches run one at a time
        out = rerank_api.score_requests(self.rerankers, batch, cache if self.limits.score_cache_entries else None)
        self.metrics.cache_lookups.labels("hit").inc(cache.hits - hits)
        self.metrics.cache_lookups.labels("miss").inc(cache.misses - misses)
        return out

    async def _submit(self, items, through: MicroBatcher):
        try:
            return await asyncio.gather(*(through.submit(i) for i in items))
        except Overloaded as e:
            raise HTTPException(429, str(e), headers={"Retry-After": str(max(1, math.ceil(e.retry_after_s)))}) from None

    async def rerank(self, request: rerank_api.RerankRequest):
        (scores,) = await self._submit([request], self.rerank_batcher)
        return scores

    # ---- search and the click log ----------------------------------------------------------------------------
    def check_query(self, q: str) -> str:
        q = q.strip()
        if not q:
            raise HTTPException(422, "empty query")
        if len(q) > self.limits.max_query_chars:
            raise HTTPException(422, f"query over {self.limits.max_query_chars} characters")
        return q

    def check_k(self, k: int) -> int:
        if not 1 <= k <= self.limits.max_k:
            raise HTTPException(422, f"k must be an integer in 1..{self.limits.max_k}")
        return k

    async def search(self, q: str, k: int, session: str) -> dict:
        """One query's page: ranked results (interleaved in an experiment), their texts, its impression logged."""
        if self.mode == "interleave":
            (a, timings_a), (b, timings_b) = await self._submit([("A", q, k), ("B", q, k)], self.batcher)
            merged = team_draft([h.docid for h in a], [h.docid for h in b], k, self.rng)
            scores = {h.docid: h.score for h in a} | {h.docid: h.score for h in b}
            shown = [(d, scores[d], team) for d, team in merged]
            timings = {f"A:{s}": v for s, v in timings_a.items()} | {f"B:{s}": v for s, v in timings_b.items()}
            system = "interleave(A,B)"
        else:
            system = ab_bucket(session) if self.mode == "ab" else "A"
            ((hits, timings),) = await self._submit([(system, q, k)], self.batcher)
            shown = [(h.docid, h.score, system) for h in hits]
        texts = self.index.docstore.texts([d for d, _, _ in shown])
        request_id = uuid.uuid4().hex
        results = [{"rank": r, "id": d, "score": s, "team": team, "text": t}
                   for r, ((d, s, team), t) in enumerate(zip(shown, texts), start=1)]
        logged = False
        if self.click_log is not None:
            try:
                await asyncio.to_thread(self.click_log.impression, request_id, session, q, self.mode, system,
                                        [{"rank": r["rank"], "id": r["id"], "team": r["team"]} for r in results],
                                        timings)
                logged = True
            except ClickLogUnavailable:
                self.metrics.log_unavailable.labels("impression").inc()
        return {"request_id": request_id, "query": q, "system": system, "results": results,
                "timings_ms": {s: round(v, 3) for s, v in timings.items()}, "logged": logged}

    async def log(self, operation: str, *args):
        """A click log write off the event loop (search keeps answering while the store is slow or away)."""
        if self.click_log is None:
            raise HTTPException(404, "click logging is off (start the server with --log)")
        try:
            return await asyncio.to_thread(getattr(self.click_log, operation), *args)
        except ClickLogUnavailable as e:
            self.metrics.log_unavailable.labels(operation).inc()
            raise HTTPException(503, f"{e}; nothing was recorded, retry later", headers={"Retry-After": "5"}) from None

    def health(self) -> dict:
        index = self.index
        return {"status": "ok", "pid": os.getpid(), "index": index.name if index is not None else None,
                "documents": len(index.docstore) if index is not None else 0, "mode": self.mode,
                "systems": {name: stage.name for name, stage in self.systems.items()},
                "rerankers": {name: stage.name for name, stage in self.rerankers.items()},
                "models": {name: rerank_api.describe(stage) for name, stage in self.rerankers.items()}}
