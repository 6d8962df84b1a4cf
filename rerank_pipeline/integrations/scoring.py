"""What the framework stages share: scores for one query's texts from a local reranking stage or a remote rerank API."""
from __future__ import annotations

from typing import Any, Optional, Sequence

import numpy as np
from pydantic import BaseModel, ConfigDict, PrivateAttr

from ..pipeline import SCORE_MODES, scaled_scores


class TextScorer:
    """`reranker` is a reranking stage of this library (anything with `rerank_texts`), 'default' (the shipped
    reranking stage, as `Reranker.load('default')` gives it), or the base URL of a server that speaks Cohere's
    `/v1/rerank` (then `model` names the reranker it serves)."""

    def __init__(self, reranker: Any, model: str | None = None, timeout_s: float = 60.0, score_mode: str = "raw"):
        if reranker == "default":
            from ..rerankers import Reranker

            reranker = Reranker.load("default")
        if isinstance(reranker, str):
            self.url = reranker.rstrip("/")
        elif hasattr(reranker, "rerank_texts"):
            self.url = None
        else:
            raise TypeError(f"expected a reranker of rerank_pipeline or a rerank API URL, got {type(reranker).__name__}")
        if score_mode not in SCORE_MODES:
            raise ValueError(f"unknown score_mode {score_mode!r} (use one of {', '.join(SCORE_MODES)})")
        self.reranker, self.model, self.timeout_s, self.score_mode = reranker, model, timeout_s, score_mode

    def scores(self, query: str, texts: Sequence[str]) -> np.ndarray:
        if not len(texts):
            return np.zeros(0, np.float32)
        if self.url is None:
            return self.reranker.rerank_texts([query], [list(texts)])[0]
        import httpx

        body = {"query": query, "documents": list(texts), **({"model": self.model} if self.model else {})}
        response = httpx.post(self.url + "/v1/rerank", json=body, timeout=self.timeout_s)
        response.raise_for_status()
        scores = np.full(len(texts), -np.inf, np.float32)
        for result in response.json()["results"]:
            scores[result["index"]] = result["relevance_score"]
        return scores

    def top(self, query: str, texts: Sequence[str], top_n: int | None) -> list[tuple[int, float]]:
        """(position, score) of the best `top_n` texts, best first, scores as `score_mode` says."""
        scores = scaled_scores(self.scores(query, texts), self.score_mode)
        order = np.argsort(-scores, kind="stable")[:top_n]
        return [(int(i), float(scores[i])) for i in order]


class StageSettings(BaseModel):
    """What the LangChain and LlamaIndex stages (both pydantic models) are configured with: the reranker or URL, how
    many to keep, the remote model's name; the scorer is built from them once."""

    reranker: Any
    top_n: Optional[int] = 3
    model: Optional[str] = None
    score_mode: str = "raw"  # raw, sigmoid or minmax (rerank_pipeline.pipeline.scaled_scores)
    model_config = ConfigDict(arbitrary_types_allowed=True)
    _scorer: TextScorer = PrivateAttr()

    def model_post_init(self, context: Any) -> None:
        super().model_post_init(context)
        self._scorer = TextScorer(self.reranker, self.model, score_mode=self.score_mode)
