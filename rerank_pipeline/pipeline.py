"""Stages and their composition: `a >> b` chains, `a | b` fuses (RRF), `a % k` cuts each ranking to k.

Every stage is batch-first: `transform(queries, run)` takes many queries (and the previous stage's run) and returns
a run. `search(...)` is the entry point for many queries; calling a stage with one string returns its hits.
`trace(...)` returns every intermediate run, named, which the evaluation uses for per-stage tables.
"""
from __future__ import annotations

import asyncio
import copy
from typing import Sequence

import numpy as np

from .documents import TextDocs
from .fusion import rrf, weighted
from .types import Hit, Queries, QueryInput, Run, as_queries


SCORE_MODES = ("raw", "sigmoid", "minmax")


def scaled_scores(scores: np.ndarray, mode: str = "raw") -> np.ndarray:
    """One query's scores as asked: `raw` (the stage's own scores: logits, or a feature combination), `sigmoid`
    (1 / (1 + e^-s): a probability for a model trained pointwise, such as the MS MARCO cross-encoder) or `minmax`
    (rescaled to [0, 1] within the query; all equal -> all 1). Order is never changed."""
    s = np.asarray(scores, dtype=np.float64)
    if mode == "raw":
        return s
    if mode == "sigmoid":
        return 1.0 / (1.0 + np.exp(-s))
    if mode == "minmax":
        span = s.max() - s.min() if len(s) else 0.0
        return (s - s.min()) / span if span > 0 else np.ones_like(s)
    raise ValueError(f"unknown score_mode {mode!r} (use one of {', '.join(SCORE_MODES)})")


class Stage:
    name: str = "stage"

    def transform(self, queries: Queries, run: Run | None = None) -> Run:
        raise NotImplementedError

    def trace(self, queries: Queries, run: Run | None = None) -> list[tuple[str, Run]]:
        """[(stage name, output run), ...] in execution order; the last entry is this stage's output."""
        return [(self.name, self.transform(queries, run))]

    def candidates(self, queries: Queries, run: Run | None) -> tuple[list[str], list[list[str]], list[str]]:
        """What a reranking stage reads from its input run: the queries that have candidates, their doc ids and the
        query texts; a clear error when there are no candidates, no document texts or no query text."""
        if run is None:
            raise ValueError(f"{self.name} needs candidates: put a retriever before it (retriever >> reranker)")
        if run.docs is None:
            raise ValueError(f"{self.name}: the run carries no document source; use rerank(queries, run, docs=...)")
        qids = [q for q in run if run[q]]
        missing = [q for q in qids if q not in queries]
        if missing:
            raise ValueError(f"{len(missing)} run query ids have no query text (first: {missing[0]!r})")
        return qids, [[h.docid for h in run[q]] for q in qids], [queries[q] for q in qids]

    def search(self, queries: QueryInput, run: Run | None = None) -> Run:
        return self.transform(as_queries(queries), run)

    def __call__(self, query: str) -> list[Hit]:
        return self.search({"1": query}).rankings.get("1", [])

    async def asearch(self, queries: QueryInput, run: Run | None = None) -> Run:
        """`search` in a worker thread: an event loop (a web app, an agent) keeps serving while it runs."""
        return await asyncio.to_thread(self.search, queries, run)

    def rerank_texts(self, queries: Sequence[str], documents: Sequence[Sequence[str]]) -> list[np.ndarray]:
        """A reranking stage's scores for raw texts (no index): each query's documents, scored as one candidate run,
        in the order given. Batch-first: many queries' lists go through the stage in one call."""
        texts = {f"{i}:{j}": d for i, docs in enumerate(documents) for j, d in enumerate(docs)}
        run = Run.from_sorted({str(i): [Hit(f"{i}:{j}", 0.0) for j in range(len(docs))]
                               for i, docs in enumerate(documents) if len(docs)}, TextDocs(texts))
        out = self.transform({str(i): q for i, q in enumerate(queries)}, run)
        scores = []
        for i, docs in enumerate(documents):
            by_id = {h.docid: h.score for h in out.rankings.get(str(i), [])}
            scores.append(np.array([by_id[f"{i}:{j}"] for j in range(len(docs))], dtype=np.float32))
        return scores

    def rank(self, query: str, documents: Sequence[str], top_k: int | None = None,
             score_mode: str = "raw") -> list[dict]:
        """sentence-transformers style, for any reranking stage: one query's raw texts scored, best first, as
        {corpus_id, score, text}; `score_mode` raw, sigmoid or minmax (scaled_scores)."""
        scores = scaled_scores(self.rerank_texts([query], [list(documents)])[0], score_mode)
        order = np.argsort(-scores, kind="stable")[:top_k]
        return [{"corpus_id": int(i), "score": float(scores[i]), "text": documents[i]} for i in order]

    async def arank(self, query: str, documents: Sequence[str], top_k: int | None = None,
                    score_mode: str = "raw") -> list[dict]:
        """`rank` in a worker thread, so the caller's event loop is not blocked while the model runs."""
        return await asyncio.to_thread(self.rank, query, documents, top_k, score_mode)

    def __rshift__(self, other: "Stage") -> "Stage":
        return Chain(self, other)

    def __or__(self, other: "Stage") -> "Stage":
        left = self.stages if isinstance(self, Fusion) and self.method == "rrf" else [self]
        right = other.stages if isinstance(other, Fusion) and other.method == "rrf" else [other]
        return Fusion(left + right)

    def __mod__(self, k: int) -> "Stage":
        return Cutoff(self, k)

    def __repr__(self) -> str:
        return self.name


class Retriever(Stage):
    """A first stage: ignores any incoming run and retrieves `k` hits per query."""

    k: int

    def __mod__(self, k: int) -> Stage:
        # Cutting a retriever is retrieving fewer: no need to fetch and then drop.
        if not isinstance(k, int) or k < 1:
            raise ValueError(f"cutoff must be a positive integer, got {k!r}")
        cut = copy.copy(self)
        cut.k = min(k, self.k)
        return cut


class Chain(Stage):
    def __init__(self, first: Stage, then: Stage):
        self.first, self.then = first, then
        self.name = f"{first.name} >> {then.name}"

    def transform(self, queries: Queries, run: Run | None = None) -> Run:
        return self.then.transform(queries, self.first.transform(queries, run))

    def trace(self, queries: Queries, run: Run | None = None) -> list[tuple[str, Run]]:
        steps = self.first.trace(queries, run)
        return steps + [(self.name, self.then.transform(queries, steps[-1][1]))]


class Cutoff(Stage):
    def __init__(self, inner: Stage, k: int):
        if not isinstance(k, int) or k < 1:
            raise ValueError(f"cutoff must be a positive integer, got {k!r}")
        self.inner, self.k = inner, k
        self.name = f"({inner.name}) % {k}" if isinstance(inner, (Chain,)) else f"{inner.name} % {k}"

    def transform(self, queries: Queries, run: Run | None = None) -> Run:
        return self.inner.transform(queries, run).cut(self.k)

    def trace(self, queries: Queries, run: Run | None = None) -> list[tuple[str, Run]]:
        steps = self.inner.trace(queries, run)
        return steps[:-1] + [(self.name, steps[-1][1].cut(self.k))]


class Fusion(Stage):
    """Runs each member on the same input and fuses their outputs."""

    def __init__(self, stages: Sequence[Stage], method: str = "rrf", weights: Sequence[float] | None = None,
                 rrf_k: int = 60, norm: str = "minmax"):
        if method not in ("rrf", "weighted"):
            raise ValueError(f"unknown fusion method '{method}' (use rrf or weighted)")
        if weights is not None and len(weights) != len(stages):
            raise ValueError(f"{len(weights)} weights for {len(stages)} stages")
        self.stages, self.method, self.weights, self.rrf_k, self.norm = list(stages), method, weights, rrf_k, norm
        self.name = f"{method}(" + ", ".join(s.name for s in self.stages) + ")"

    def _fuse(self, runs: list[Run]) -> Run:
        if self.method == "rrf":
            return rrf(runs, self.rrf_k, self.weights)
        return weighted(runs, self.weights, self.norm)

    def transform(self, queries: Queries, run: Run | None = None) -> Run:
        return self._fuse([s.transform(queries, run) for s in self.stages])

    def trace(self, queries: Queries, run: Run | None = None) -> list[tuple[str, Run]]:
        member_traces = [s.trace(queries, run) for s in self.stages]
        steps = [step for t in member_traces for step in t]
        return steps + [(self.name, self._fuse([t[-1][1] for t in member_traces]))]
