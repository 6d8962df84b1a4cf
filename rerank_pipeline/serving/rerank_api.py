"""Cohere's rerank API (`POST /v1/rerank`, `POST /v2/rerank`), the wire format Jina, Infinity, TEI, vLLM and LiteLLM
speak: a query and the documents to rerank go in (no index), `{id, results: [{index, relevance_score, document?}],
meta}` comes out, best first. Requests share the search routes' micro-batcher and admission control (429 with
Retry-After); errors use the same `{"detail": ...}` JSON shape.
"""
from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from ..memory import Recent
from ..pipeline import scaled_scores
from .limits import Limits
from .schemas import RerankBody


@dataclass
class RerankRequest:
    model: str
    query: str
    documents: list[str]
    top_n: int
    return_documents: bool
    max_tokens_per_doc: int | None
    score_mode: str = "raw"  # an extension of Cohere's format: raw, sigmoid or minmax (pipeline.scaled_scores)


class RerankError(ValueError):
    """A request that cannot be served: `status` is the HTTP status to answer with."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def parse_request(body: RerankBody, version: int, models: Sequence[str], limits: Limits) -> RerankRequest:
    """A validated body (schemas.RerankBody) checked against this server's caps and models: `model` must name a
    served reranker (v2 requires it; v1 falls back to the first)."""
    model = body.model if body.model is not None else (models[0] if version == 1 and models else None)
    if model is None:
        raise RerankError(422, "'model' must be a string: the name of a served reranker")
    if model not in models:
        raise RerankError(404, f"no reranker named {model!r} is served (available: {', '.join(models) or 'none'})")
    if len(body.query) > limits.max_query_chars:
        raise RerankError(422, f"'query' over {limits.max_query_chars} characters")
    if len(body.documents) > limits.max_rerank_documents:
        raise RerankError(413, f"{len(body.documents)} documents: at most {limits.max_rerank_documents} per request")
    texts = [doc if isinstance(doc, str) else doc.text for doc in body.documents]
    for i, text in enumerate(texts):
        if len(text) > limits.max_document_chars:
            raise RerankError(413, f"documents[{i}] over {limits.max_document_chars} characters")
    top_n = min(body.top_n or len(texts), len(texts))
    return RerankRequest(model, body.query, texts, top_n, body.return_documents, body.max_tokens_per_doc,
                         body.score_mode)


def cut_to_tokens(tokenizer, texts: Sequence[str], max_tokens: int) -> list[str]:
    """Each text cut after its first `max_tokens` word pieces (by the tokenizer's character offsets, so the kept
    text is the original's prefix, not a detokenized copy). `tokenizer`: a Hugging Face fast tokenizer or a bare
    `tokenizers.Tokenizer` (the torch-free scorers')."""
    if hasattr(tokenizer, "backend_tokenizer"):
        spans = tokenizer(list(texts), add_special_tokens=False, return_offsets_mapping=True, truncation=True,
                          max_length=max_tokens)["offset_mapping"]
    else:  # a bare tokenizer truncates nothing itself (encoders.load_fast_tokenizer)
        spans = [e.offsets[:max_tokens] for e in tokenizer.encode_batch(list(texts), add_special_tokens=False)]
    return [t[: offsets[-1][1]] if offsets else t for t, offsets in zip(texts, spans)]


class ScoreCache(Recent):
    """Scores of whole requests, the least recently used dropped first beyond `max_entries`: a repeated request
    (a retry, an agent asking again, a RAG loop re-ranking the same passages) is answered without the model.

    Keyed by the stage (its name: features, weights, gate), the model's weights digest, the query and every
    document, in order: CROSS-JEM scores a list jointly and the feature combination normalises per list, so a
    pair's score is reused only with its whole list, and a model swap never serves stale scores."""

    def __init__(self, max_entries: int = 4096):
        super().__init__(max_entries)

    @staticmethod
    def key(stage, query: str, documents: Sequence[str]) -> str:
        model = stage_model(stage)
        return hashlib.sha256(json.dumps([stage.name, model.fingerprint, query, list(documents)]).encode()).hexdigest()


def score_requests(stages: dict[str, Any], requests: Sequence[RerankRequest],
                   cache: ScoreCache | None = None) -> list[np.ndarray]:
    """One micro-batch: one `rerank_texts` call per model over the documents of its requests that `cache` (if
    any) has not seen."""
    out: list = [None] * len(requests)
    for model in {r.model for r in requests}:
        stage = stages[model]
        todo, documents, keys = [], [], []
        for i, request in enumerate(requests):
            if request.model != model:
                continue
            docs = request.documents
            if request.max_tokens_per_doc is not None:
                docs = cut_to_tokens(stage_model(stage).tokenizer, docs, request.max_tokens_per_doc)
            key = ScoreCache.key(stage, request.query, docs) if cache is not None else ""
            out[i] = cache.get(key) if cache is not None else None
            if out[i] is None:
                todo.append(i)
                documents.append(docs)
                keys.append(key)
        if todo:
            for i, key, scores in zip(todo, keys, stage.rerank_texts([requests[i].query for i in todo], documents)):
                out[i] = scores
                if cache is not None:
                    cache.put(key, scores)
    return out


def stage_model(stage):
    """The model inside a reranking stage (the stage itself, or the one it wraps)."""
    while not hasattr(stage, "tokenizer"):
        stage = stage.reranker
    return stage


def describe(stage) -> dict:
    """What a served reranking stage runs: its name, the model's family, backend and where it came from, and how
    much of each document it reads (word pieces; passage windows when it reads them)."""
    model = stage_model(stage)
    return {"stage": stage.name, "family": model.kind, "backend": model.backend, "source": model.source,
            "max_item_tokens": model.config.get("max_item_tokens"), "windows": model.config.get("windows")}


def response(request: RerankRequest, scores: np.ndarray, version: int) -> dict:
    scores = scaled_scores(scores, request.score_mode)
    order = np.argsort(-scores, kind="stable")[: request.top_n]
    results = []
    for i in order:
        result = {"index": int(i), "relevance_score": float(scores[i])}
        if request.return_documents:
            result["document"] = {"text": request.documents[i]}
        results.append(result)
    return {"id": uuid.uuid4().hex, "results": results,
            "meta": {"api_version": {"version": str(version)}, "billed_units": {"search_units": 1}}}
