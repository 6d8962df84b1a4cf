"""Rerankers: one module per model family behind `Reranker` (base.py)."""
from typing import Any

from .base import Reranker
from .crossjem import DEFAULT_MODEL_DIR, CrossJEM
from .pointwise import PointwiseCrossEncoder

RERANKERS: dict[str, type[Reranker]] = {"crossjem": CrossJEM, "pointwise": PointwiseCrossEncoder}

# The shipped model reranks by default once it is present in the package.
DEFAULT_RERANKER_CONFIG: dict[str, Any] | None = (
    {"type": "crossjem", "model": "default"} if (DEFAULT_MODEL_DIR / "model.safetensors").is_file() else None
)


def load_reranker(spec: dict[str, Any]) -> Reranker:
    """From a YAML `reranker:` block or the CLI: `model` is 'default' (the shipped model of `type`, CROSS-JEM when
    no type is given) or a model directory, whose family is read from it (and must match `type` when one is given)."""
    return (RERANKERS[spec["type"]] if "type" in spec else Reranker).from_spec(spec)


__all__ = ["Reranker", "CrossJEM", "PointwiseCrossEncoder", "RERANKERS", "load_reranker", "DEFAULT_MODEL_DIR"]
