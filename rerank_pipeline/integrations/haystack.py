"""Haystack: `CrossJEMRanker`, a ranker component (connect a retriever's `documents` to it in a Pipeline).
Needs `pip install 'rerank-pipeline[haystack]'`."""
from __future__ import annotations

from dataclasses import replace
from typing import Any, List, Optional

from haystack import Document, component

from .scoring import TextScorer


@component
class CrossJEMRanker:
    """Reorders documents by a reranker of rerank_pipeline (or a remote /v1/rerank URL) and keeps the best `top_k`,
    their `score` set to the reranker's."""

    def __init__(self, reranker: Any, top_k: Optional[int] = 10, model: Optional[str] = None, score_mode: str = "raw"):
        self.scorer, self.top_k = TextScorer(reranker, model, score_mode=score_mode), top_k

    @component.output_types(documents=List[Document])
    def run(self, query: str, documents: List[Document], top_k: Optional[int] = None) -> dict:
        ranked = self.scorer.top(query, [d.content or "" for d in documents], top_k or self.top_k)
        return {"documents": [replace(documents[i], score=score) for i, score in ranked]}
