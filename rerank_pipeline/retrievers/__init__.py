"""First-stage retrievers and fusion."""
from .bm25 import BM25
from .dense import Dense
from .fusion import Fusion, rrf, weighted

__all__ = ["BM25", "Dense", "Fusion", "rrf", "weighted"]
