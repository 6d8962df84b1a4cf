"""rerank-pipeline: retrieve-then-rank search with BM25, dense retrieval, fusion and the CROSS-JEM reranker."""
__version__ = "0.1.0"

from .index import Index, build_index  # noqa: E402
from .pipeline import Fusion, Stage  # noqa: E402
from .retrievers import BM25, Dense  # noqa: E402
from .types import Hit, Run  # noqa: E402

_LAZY = {"CrossJEM": "rerankers", "PointwiseCrossEncoder": "rerankers", "Reranker": "rerankers",
         "experiment": "evaluation", "compare": "evaluation"}


def __getattr__(name: str):
    """Rerankers and evaluation import torch / pandas: load them on first use, so `import rerank_pipeline` stays light."""
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'rerank_pipeline' has no attribute '{name}'")


__all__ = ["Index", "build_index", "Stage", "BM25", "Dense", "Fusion", "Hit", "Run", "CrossJEM",
           "PointwiseCrossEncoder", "Reranker", "experiment", "compare", "__version__"]
