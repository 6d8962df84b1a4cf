"""Long documents read as passage windows, for any reranker: a document's score is its best window's (MaxP, Dai &
Callan 2019) instead of its first `max_item_tokens` word pieces' (first-P, what every model does alone).

    (BM25(idx) | Dense(idx)) % 100 >> Windows(CrossJEM.default(), size=128, stride=64)

Windows are cut from the token ids the index stored at build time (tokenized once; at most
encoders.MAX_DOC_TOKENS word pieces per document), so nothing is tokenized again per query. Every window of a
query's documents is one candidate of that query's list: CROSS-JEM packs them jointly like any candidates.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from .scorer import Scorer


def passage_windows(tokens: np.ndarray, size: int, stride: int, max_windows: int) -> list[np.ndarray]:
    """`tokens` cut into windows of `size` starting every `stride` (the last one ending at the document's end, so
    every token is read), at most `max_windows` of them from the start. A document no longer than `size` is one."""
    n = len(tokens)
    if n <= size:
        return [tokens]
    starts = list(range(0, n - size + 1, stride))
    if starts[-1] + size < n:
        starts.append(n - size)
    return [tokens[s:s + size] for s in starts[:max_windows]]


class Windows(Scorer):
    """`scorer` over passage windows of each candidate, a candidate scoring its best window's score."""

    def __init__(self, scorer: Scorer, size: int, stride: int | None = None, max_windows: int = 4):
        stride = stride or size
        if not (0 < stride <= size <= scorer.config["max_item_tokens"]) or max_windows < 1:
            raise ValueError(f"windows need 0 < stride ({stride}) <= size ({size}) <= the model's max_item_tokens "
                             f"({scorer.config['max_item_tokens']}) and max_windows >= 1 ({max_windows})")
        self.scorer, self.size, self.stride, self.max_windows = scorer, size, stride, max_windows
        self.tokenizer, self.device = scorer.tokenizer, scorer.device
        self.config = {**scorer.config, "windows": {"size": size, "stride": stride, "max": max_windows}}
        self.kind, self.backend, self.source = scorer.kind, scorer.backend, scorer.source
        self.name = f"maxp({scorer.name}, {size}/{stride})"

    @property
    def fingerprint(self) -> str:
        return self.scorer.fingerprint

    def tokenize_queries(self, texts: Sequence[str]) -> list[np.ndarray]:
        return self.scorer.tokenize_queries(texts)

    def score_ids(self, query_ids: Sequence[np.ndarray], candidates: Sequence[Sequence[np.ndarray]]) -> list[np.ndarray]:
        windows, starts = [], []
        for items in candidates:
            per_item = [passage_windows(np.asarray(t), self.size, self.stride, self.max_windows) for t in items]
            windows.append([w for ws in per_item for w in ws])
            starts.append(np.cumsum([0] + [len(ws) for ws in per_item[:-1]]))
        scores = self.scorer.score_ids(query_ids, windows)
        return [np.maximum.reduceat(s, first) if len(s) else s for s, first in zip(scores, starts)]
