"""Rerankers: one module per model family behind `Reranker` (base.py), registered here by kind.

Nothing here imports a family until it is asked for: the search path loads the shipped CROSS-JEM's torch-free
scorer (crossjem/runtime.py) without importing torch, which the families' torch modules would otherwise pull in.
"""
from __future__ import annotations

import importlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Iterator

from .spec import FAMILIES as _FAMILIES
from .spec import RerankerSpec

_EXPORTS = {"Reranker": "base:Reranker", **{path.rsplit(":", 1)[1]: path for path in _FAMILIES.values()}}


def _load(path: str):
    module, name = path.split(":")
    return getattr(importlib.import_module(f".{module}", __name__), name)


class _Families(Mapping):
    """kind -> family class, each module imported when its class is first asked for."""

    def __getitem__(self, kind: str):
        return _load(_FAMILIES[kind])

    def __contains__(self, kind: object) -> bool:  # Mapping's would import the family to answer
        return kind in _FAMILIES

    def __iter__(self) -> Iterator[str]:
        return iter(_FAMILIES)

    def __len__(self) -> int:
        return len(_FAMILIES)


RERANKERS: Mapping[str, type] = _Families()


def __getattr__(name: str):
    if name in _EXPORTS:
        return _load(_EXPORTS[name])
    raise AttributeError(name)


MODELS_DIR = Path(__file__).resolve().parents[1] / "models"
DEFAULT_FILE = MODELS_DIR / "default.json"


def default_spec() -> dict[str, Any] | None:
    """What 'default' means, decided in one place: models/default.json, which benchmarks/ship_default.py writes
    when a model passes the ship gate ({type, model: a name or a directory under models/, combine: the stored
    feature weights and gate, or true when the model directory holds them, backend}). None when nothing ships."""
    if not DEFAULT_FILE.is_file():
        return None
    spec = json.loads(DEFAULT_FILE.read_text())["reranker"]
    shipped_dir = MODELS_DIR / spec["model"]
    return {**spec, "model": str(shipped_dir) if shipped_dir.is_dir() else spec["model"]}


def load_default(backend: str | None = None, kind: str | None = None):
    """The shipped reranker, its feature combination in `config['combine']` (Combine serves it with its features:
    combine.served), on `backend` (unset: the one it was measured on, default.json's `backend`, else torch); on
    the CPU's ONNX backends through its torch-free scorer where the family has one (crossjem/runtime.py). `kind`
    checks that it is of the family asked for."""
    spec = default_spec()
    if spec is None:
        raise FileNotFoundError("no reranker ships with this version (none has passed benchmarks/ship_default.py)")
    if kind is not None and kind != spec["type"] and not issubclass(RERANKERS[spec["type"]], RERANKERS[kind]):
        raise ValueError(f"the default reranker is a {spec['type']} model, not {kind}")
    backend = backend or spec.get("backend", "torch")
    model = _graph_scorer(spec, backend)
    if model is None:
        model = RERANKERS[spec["type"]].from_spec(RerankerSpec(spec["type"], spec["model"], backend))
        # Loaded on an ONNX backend, the torch model has just exported its graph: serve what later processes will
        model = _graph_scorer(spec, backend) or model
    if isinstance(spec.get("combine"), dict):
        model.config["combine"] = spec["combine"]
    return model


def _graph_scorer(spec: dict[str, Any], backend: str):
    """The torch-free scorer of the shipped model on `backend`, where its family has one and it can run."""
    if spec["type"] != "crossjem":
        return None
    from .crossjem.runtime import CrossJEMGraph

    return CrossJEMGraph.load_if_exported(spec["model"], backend)


def load_reranker(spec: RerankerSpec | dict[str, Any]):
    """From a `reranker:` block (a RerankerSpec, or a mapping checked as one): `model` is 'default' (the shipped
    reranker, default_spec) or a model directory or packaged name, whose family is read from it (and must match
    `type` when one is given)."""
    spec = RerankerSpec.parse(spec)
    if spec.model == "default":
        return load_default(spec.backend, spec.type)
    family = RERANKERS[spec.type] if spec.type is not None else _load(_EXPORTS["Reranker"])
    return family.from_spec(spec)


__all__ = ["Reranker", "CrossJEM", "PointwiseCrossEncoder", "MICE", "HFCrossEncoder", "LLMReranker", "OnnxCrossEncoder",
           "RERANKERS", "RerankerSpec", "load_reranker", "default_spec", "load_default", "MODELS_DIR"]
