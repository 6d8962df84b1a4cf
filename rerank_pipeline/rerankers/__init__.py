"""Rerankers: one module per model family behind `Reranker` (base.py)."""
import json
from pathlib import Path
from typing import Any

from .base import Reranker
from .cross_encoder import OnnxCrossEncoder
from .crossjem import CrossJEM
from .hf import HFCrossEncoder
from .llm import LLMReranker
from .mice import MICE
from .pointwise import PointwiseCrossEncoder

RERANKERS: dict[str, type[Reranker]] = {"crossjem": CrossJEM, "pointwise": PointwiseCrossEncoder, "mice": MICE,
                                       "hf-cross-encoder": HFCrossEncoder, "llm-reranker": LLMReranker,
                                       "cross-encoder": OnnxCrossEncoder}


MODELS_DIR = Path(__file__).resolve().parents[1] / "models"
DEFAULT_FILE = MODELS_DIR / "default.json"


def default_spec() -> dict[str, Any] | None:
    """What 'default' means, decided in one place: models/default.json, which benchmarks/ship_default.py writes
    when a model passes the ship gate ({type, model: a name or a directory under models/, combine: the stored
    feature weights and gate, or true when the model directory holds them}). None when nothing ships."""
    if not DEFAULT_FILE.is_file():
        return None
    spec = json.loads(DEFAULT_FILE.read_text())["reranker"]
    shipped_dir = MODELS_DIR / spec["model"]
    return {**spec, "model": str(shipped_dir) if shipped_dir.is_dir() else spec["model"]}


def load_default(backend: str | None = None, family: type[Reranker] = Reranker) -> Reranker:
    """The shipped reranker, its feature combination in `config['combine']` (Combine serves it with its features:
    combine.served), on `backend` (unset: the one it was measured on, default.json's `backend`, else torch).
    `family` checks that it is of the family asked for."""
    spec = default_spec()
    if spec is None:
        raise FileNotFoundError("no reranker ships with this version (none has passed benchmarks/ship_default.py)")
    kind = RERANKERS[spec["type"]]
    if not issubclass(kind, family):
        raise ValueError(f"the default reranker is a {spec['type']} model, not {family.kind}")
    model = kind.from_spec({"model": spec["model"], "backend": backend or spec.get("backend", "torch")})
    if isinstance(spec.get("combine"), dict):
        model.config["combine"] = spec["combine"]
    return model


def load_reranker(spec: dict[str, Any]) -> Reranker:
    """From a YAML `reranker:` block or the CLI: `model` is 'default' (the shipped reranker, default_spec) or a
    model directory or packaged name, whose family is read from it (and must match `type` when one is given)."""
    family = RERANKERS[spec["type"]] if "type" in spec else Reranker
    if spec.get("model", "default") == "default":
        return load_default(spec.get("backend"), family)
    return family.from_spec(spec)


__all__ = ["Reranker", "CrossJEM", "PointwiseCrossEncoder", "MICE", "HFCrossEncoder", "LLMReranker", "OnnxCrossEncoder",
           "RERANKERS", "load_reranker", "default_spec", "load_default", "MODELS_DIR"]
