"""Fusion of several stages' runs: reciprocal rank fusion, or weighted score fusion after per-query normalisation."""
from __future__ import annotations

from collections import defaultdict
from typing import Sequence

import numpy as np

from ..pipeline import Stage
from ..types import Queries, Run


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
