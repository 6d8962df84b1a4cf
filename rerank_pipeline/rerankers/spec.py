"""A `reranker:` block, typed and validated here, where it is defined: what YAML configs, the CLI and Python name
a reranking stage with.

    reranker: {type: crossjem, model: default, combine: true, backend: auto, cutoff: 100,
               windows: {size: 128, stride: 64}}
"""
from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any, Mapping

from ..graphs.runtime import BACKENDS
from .combine import FEATURES, MODEL_SCALES

# What `type:` may name, and where each family lives (imported only when asked for: rerankers/__init__.py).
FAMILIES = {"crossjem": "crossjem.reranker:CrossJEM", "pointwise": "pointwise:PointwiseCrossEncoder",
            "mice": "mice:MICE", "hf-cross-encoder": "hf:HFCrossEncoder", "llm-reranker": "llm:LLMReranker",
            "cross-encoder": "cross_encoder:OnnxCrossEncoder"}


class ConfigError(ValueError):
    """A pipeline config, or a reranker block of one, that cannot be built: the message says where and what."""


def positive_int(value: Any, where: str) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ConfigError(f"{where}: must be a positive integer, got {value!r}")


@dataclass(frozen=True)
class RerankerSpec:
    """`type`: the family (checked against the model when given); `model`: 'default' (the shipped stage), a model
    directory or a packaged model's name; `backend`: torch, onnx, onnx-int8 or auto (None: the family's own
    default); `cutoff`: the reranked ranking cut to that many; `interpolate` (an alpha in [0, 1]) or `combine`
    (true: the weights stored with the model; or {weights, gate, features}); `prompt`: an LLM reranker's;
    `windows`: {size, stride, max}, long documents read as passages (MaxP)."""
    type: str | None = None
    model: str = "default"
    backend: str | None = None
    cutoff: int | None = None
    interpolate: float | None = None
    combine: bool | dict | None = None
    prompt: dict | None = None
    windows: dict | None = None

    @classmethod
    def parse(cls, block: Any, where: str = "reranker", require_type: bool = False) -> "RerankerSpec":
        """A spec from a mapping (YAML, the CLI), or a one-line ConfigError naming the field."""
        if isinstance(block, RerankerSpec):
            return block
        if not isinstance(block, Mapping) or (require_type or "type" in block) and block.get("type") not in FAMILIES:
            raise ConfigError(f"{where}.type must be one of {sorted(FAMILIES)}, got {block!r}")
        unknown = set(block) - {f.name for f in fields(cls)}
        if unknown:
            raise ConfigError(f"{where}: unknown key(s) {sorted(unknown)}")
        spec = cls(**block)
        if not isinstance(spec.model, str) or not spec.model:
            raise ConfigError(f"{where}.model must be 'default', a model directory or a packaged model's name")
        if spec.cutoff is not None:
            positive_int(spec.cutoff, f"{where}.cutoff")
        if spec.backend is not None and spec.backend not in BACKENDS:
            raise ConfigError(f"{where}.backend must be one of {list(BACKENDS)}, got {spec.backend!r}")
        alpha = spec.interpolate
        if alpha is not None and (isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0 <= alpha <= 1):
            raise ConfigError(f"{where}.interpolate must be a number in [0, 1], got {alpha!r}")
        if spec.windows is not None:
            if not isinstance(spec.windows, dict) or set(spec.windows) - {"size", "stride", "max"} \
                    or "size" not in spec.windows:
                raise ConfigError(f"{where}.windows must be a mapping of size (and stride, max), got {spec.windows!r}")
            for key, value in spec.windows.items():
                positive_int(value, f"{where}.windows.{key}")
        if spec.combine is not None:
            _check_combine(spec.combine, f"{where}.combine")
            if spec.interpolate is not None:
                raise ConfigError(f"{where}: use either interpolate or combine, not both")
        return spec


def _check_combine(block: Any, where: str) -> None:
    if block is True:
        return
    if not isinstance(block, dict) or set(block) - {"weights", "gate", "features", "dense_encoder", "model_scale"}:
        raise ConfigError(f"{where} must be true (the model's stored weights) or a mapping of weights, gate, features,"
                          f" dense_encoder, model_scale; got {block!r}")
    if block.get("model_scale", "raw") not in MODEL_SCALES:
        raise ConfigError(f"{where}.model_scale must be one of {list(MODEL_SCALES)}, got {block['model_scale']!r}")
    if not isinstance(block.get("dense_encoder", ""), str):
        raise ConfigError(f"{where}.dense_encoder must be an encoder name, got {block['dense_encoder']!r}")
    weights = block.get("weights", {})
    if not isinstance(weights, dict) or set(weights) - set(FEATURES) or not all(
            isinstance(w, (int, float)) and not isinstance(w, bool) and w >= 0 for w in weights.values()):
        raise ConfigError(f"{where}.weights must map features {list(FEATURES)} to non-negative numbers, got {weights!r}")
    gate = block.get("gate", 0.0)
    if isinstance(gate, bool) or not isinstance(gate, (int, float)) or not math.isfinite(gate):
        raise ConfigError(f"{where}.gate must be a number, got {gate!r}")
    features = block.get("features", list(FEATURES))
    if not isinstance(features, list) or set(features) - set(FEATURES):
        raise ConfigError(f"{where}.features must be a list of {list(FEATURES)}, got {features!r}")
