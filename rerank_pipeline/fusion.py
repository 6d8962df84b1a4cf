"""Fusing runs: reciprocal rank fusion, or weighted score fusion after per-query normalisation (pure functions over
runs; the `Fusion` stage that `|` builds lives in pipeline.py)."""
from __future__ import annotations

from collections import defaultdict
from typing import Sequence

import numpy as np

from .types import Run


def rrf(runs: Sequence[Run], k: int = 60, weights: Sequence[float] | None = None) -> Run:
    """Cormack et al. 2009: score(d) = sum_r w_r / (k + rank_r(d)), ranks from 1."""
    weights = weights or [1.0] * len(runs)
    fused: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for run, w in zip(runs, weights):
        for qid, hits in run.items():
            scores = fused[qid]
            for rank, h in enumerate(hits, start=1):
                scores[h.docid] += w / (k + rank)
    return Run.from_dict(fused, runs[0].docs if runs else None)


def _normalise(scores: np.ndarray, method: str) -> np.ndarray:
    if method == "minmax":
        span = scores.max() - scores.min()
        return (scores - scores.min()) / span if span > 0 else np.ones_like(scores)
    if method == "zscore":
        std = scores.std()
        return (scores - scores.mean()) / std if std > 0 else np.zeros_like(scores)
    raise ValueError(f"unknown normalisation '{method}' (use minmax or zscore)")


def weighted(runs: Sequence[Run], weights: Sequence[float] | None = None, norm: str = "minmax") -> Run:
    """Sum of weighted, per-query-normalised scores. A doc missing from a run gets that run's minimum (minmax: 0)."""
    weights = weights or [1.0] * len(runs)
    fused: dict[str, dict[str, float]] = defaultdict(dict)
    qids = {q for run in runs for q in run}
    for qid in qids:
        per_run = []
        for run in runs:
            hits = run.rankings.get(qid, [])
            normed = _normalise(np.array([h.score for h in hits]), norm) if hits else np.array([])
            per_run.append(({h.docid: s for h, s in zip(hits, normed)}, normed.min() if len(normed) else 0.0))
        docids = set().union(*(m for m, _ in per_run))
        fused[qid] = {d: float(sum(w * m.get(d, floor) for (m, floor), w in zip(per_run, weights))) for d in docids}
    return Run.from_dict(fused, runs[0].docs if runs else None)
