"""rerank-pipeline: retrieve-then-rank search with BM25, dense retrieval, fusion and the CROSS-JEM reranker."""
__version__ = "0.1.0"

from .index import Index, build_index  # noqa: E402
from .pipeline import Stage  # noqa: E402
from .retrievers import BM25, Dense, Fusion  # noqa: E402
from .types import Hit, Run  # noqa: E402

__all__ = ["Index", "build_index", "Stage", "BM25", "Dense", "Fusion", "Hit", "Run", "__version__"]
