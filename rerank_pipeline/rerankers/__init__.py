"""Rerankers: one module per model family behind `Reranker` (base.py)."""
import json
from typing import Any

from .base import Reranker
from .cross_encoder import OnnxCrossEncoder
from .crossjem import DEFAULT_MODEL_DIR, CrossJEM
from .hf import HFCrossEncoder
from .llm import LLMReranker
from .mice import MICE
from .pointwise import PointwiseCrossEncoder

RERANKERS: dict[str, type[Reranker]] = {"crossjem": CrossJEM, "pointwise": PointwiseCrossEncoder, "mice": MICE,
                                       "hf-cross-encoder": HFCrossEncoder, "llm-reranker": LLMReranker,
                                       "cross-encoder": OnnxCrossEncoder}


def _shipped_reranker_config() -> dict[str, Any] | None:
    """A shipped model reranks by default once it is present in the package (only after passing
    benchmarks/ship_default.py, which stores its dev-fitted feature weights and gate with it); configs/default.yaml
    names it too, and a test keeps the two equal."""
    if not (DEFAULT_MODEL_DIR / "model.safetensors").is_file():
        return None
    stored = json.loads((DEFAULT_MODEL_DIR / "rerank_config.json").read_text())
    return {"type": "crossjem", "model": "default", **({"combine": True} if "combine" in stored else {})}


DEFAULT_RERANKER_CONFIG: dict[str, Any] | None = _shipped_reranker_config()


def load_reranker(spec: dict[str, Any]) -> Reranker:
    """From a YAML `reranker:` block or the CLI: `model` is 'default' (the shipped model of `type`, CROSS-JEM when
    no type is given) or a model directory, whose family is read from it (and must match `type` when one is given)."""
    return (RERANKERS[spec["type"]] if "type" in spec else Reranker).from_spec(spec)


__all__ = ["Reranker", "CrossJEM", "PointwiseCrossEncoder", "MICE", "HFCrossEncoder", "LLMReranker", "OnnxCrossEncoder",
           "RERANKERS",
           "load_reranker",
           "DEFAULT_MODEL_DIR"]
