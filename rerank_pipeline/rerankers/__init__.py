"""Rerankers: one module per model family behind `Reranker` (base.py)."""
from typing import Any

RERANKERS: dict[str, Any] = {}
DEFAULT_RERANKER_CONFIG: dict[str, Any] | None = None


def load_reranker(spec: dict[str, Any]):
    cls = RERANKERS[spec["type"]]
    return cls.from_spec(spec)
