"""Evaluating on a BEIR-layout dataset: pipelines over an index, existing runs, and a reranker over a candidate run,
side by side in one `compare` table (what `rerank eval` does)."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

from ..types import Run
from .offline import DEFAULT_METRICS, EvalResult, EvaluationError, compare, experiment


def evaluate_dataset(dataset: str | Path, split: str, *, index=None, configs: Sequence[str | Path | None] = (),
                     runs: Sequence[str | Path] = (), rerank_run: str | Path | None = None,
                     reranker: str = "default", metrics: Sequence[str] = DEFAULT_METRICS, baseline: int = 0,
                     judged_only: bool = False, per_stage: bool = True, show_progress: bool = False,
                     backend: str | None = None) -> EvalResult:
    """Rows: each run in `runs`; with `rerank_run`, that run and the reranker over it; with `index`, each config's
    pipeline (the built-in default when `configs` is empty), adapted to the stages the index has, and with
    `per_stage` each of its stages; `backend` runs every reranker's transformer on torch, onnx or onnx-int8.
    Documents or queries with empty text are kept (a warning counts them)."""
    from ..config import open_pipeline
    from ..io import read_run
    from ..io.beir import BeirDataset
    from ..rerankers import load_reranker
    from ..rerankers.combine import served

    ds = BeirDataset(dataset)
    qrels = ds.qrels(split)
    queries = ds.queries
    systems: dict[str, Run] = {Path(p).stem: read_run(p) for p in runs}
    if rerank_run is not None:
        candidates = read_run(rerank_run)
        candidates = Run.from_sorted({q: h for q, h in candidates.items() if q in qrels})
        docs = ds.docs({h.docid for _, hits in candidates.items() for h in hits})
        model = load_reranker({"model": reranker, **({"backend": backend} if backend else {})})
        # A model trained as a feature residual reranks as it was trained: on top of the run's features (with no
        # index, the dense feature is encoded on the fly and BM25 is absent).
        stage = served(model, index)
        systems[Path(rerank_run).stem] = candidates
        systems[f"{Path(rerank_run).stem} >> {stage.name}"] = stage.transform(
            queries, Run.from_sorted(candidates.rankings, docs))
    if index is not None:
        pipes = {}
        for cfg in configs or [None]:
            pipe = open_pipeline(index, cfg, backend=backend)
            pipes[pipe.name] = pipe
        systems.update(experiment(pipes, queries, qrels, metrics, per_stage=per_stage,
                                  show_progress=show_progress).runs)
    if not systems:
        raise EvaluationError("nothing to evaluate: give an index (with configs), runs or a run to rerank")
    return compare(systems, qrels, metrics, baseline, judged_only, show_progress=show_progress)
