"""First-stage retrievers (fusion of several is `Fusion`, in pipeline.py, built by `|`)."""
from .bm25 import BM25
from .dense import Dense

__all__ = ["BM25", "Dense"]
