"""Interpolation of a reranker's scores with the scores of the run it reranks, as an explicit stage.

    (BM25(idx) | Dense(idx)) % 100 >> Interpolate(CrossJEM.default(), alpha=0.8)

Per query, both score lists are z-normalised and mixed: alpha * reranker + (1 - alpha) * first stage. alpha = 1
is the reranker alone, alpha = 0 the first stage alone, so a fitted alpha can only lose to the first stage by what
separates dev from test. `fit_alpha` picks alpha on dev judgments (never on test).
"""
from __future__ import annotations

from typing import Mapping

import numpy as np

from ..pipeline import Stage
from ..fusion import weighted
from ..types import Queries, Run


class Interpolate(Stage):
    def __init__(self, reranker: Stage, alpha: float):
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"interpolation alpha must be in [0, 1], got {alpha!r}")
        self.reranker, self.alpha = reranker, float(alpha)
        self.name = f"{reranker.name} ~ {alpha:g}"

    def mix(self, first: Run, reranked: Run) -> Run:
        return weighted([first, reranked], [1.0 - self.alpha, self.alpha], norm="zscore")

    def transform(self, queries: Queries, run: Run | None = None) -> Run:
        if run is None:
            raise ValueError(f"{self.name} needs candidates: put a retriever before it (retriever >> reranker)")
        return self.mix(run, self.reranker.transform(queries, run))

    def trace(self, queries: Queries, run: Run | None = None) -> list[tuple[str, Run]]:
        reranked = self.reranker.transform(queries, run)
        return [(self.reranker.name, reranked), (self.name, self.mix(run, reranked))]


def fit_alpha(first: Run, reranked: Run, qrels: Mapping[str, Mapping[str, int]], measure: str = "nDCG@10",
              grid: int = 21) -> tuple[float, dict[float, float]]:
    """The alpha in {0, 1/(grid-1), ..., 1} with the best mean `measure` on `qrels` (judged queries only), and the
    whole curve. Ties go to the larger alpha (more reranker)."""
    import ir_measures

    m = ir_measures.parse_measure(measure)
    judged = {q: r for q, r in qrels.items() if any(v > 0 for v in r.values())}
    curve = {}
    for alpha in np.linspace(0.0, 1.0, grid):
        run = Interpolate(Stage(), float(alpha)).mix(first, reranked).to_dict()
        curve[round(float(alpha), 4)] = float(ir_measures.calc_aggregate([m], judged, run)[m])
    best = max(curve, key=lambda a: (curve[a], a))
    return best, curve
