"""rerank-pipeline: retrieve-then-rank search with BM25, dense retrieval, fusion and the CROSS-JEM reranker."""
__version__ = "0.1.0"

# Every export loads on first use: `import rerank_pipeline.types` (or the CLI's --help) pulls in nothing else, and
# torch / pandas come only with the rerankers and evaluation.
_LAZY = {"Index": "index", "build_index": "index", "Stage": "pipeline", "Fusion": "pipeline", "BM25": "retrievers",
         "Dense": "retrievers", "Hit": "types", "Run": "types", "CrossJEM": "rerankers",
         "PointwiseCrossEncoder": "rerankers", "MICE": "rerankers", "Reranker": "rerankers", "experiment": "evaluation",
         "compare": "evaluation"}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'rerank_pipeline' has no attribute '{name}'")


__all__ = [*_LAZY, "__version__"]
