"""YAML pipeline configs. A config names first-stage retrievers, how they are fused, a cutoff, and an optional
reranker; `build_pipeline` turns it into the same Stage expression one would write in Python:

    retrievers: [{type: bm25, k: 100}, {type: dense, k: 100}]
    fusion: {method: rrf, k: 60}          # or {method: weighted, weights: [0.3, 0.7], norm: zscore}
    cutoff: 100
    reranker: {type: crossjem, model: default, interpolate: 0.8, cutoff: 100}
    # == (BM25(idx) % 100 | Dense(idx) % 100) % 100 >> Interpolate(CrossJEM.default(), 0.8) % 100
    reranker: {type: crossjem, model: default, combine: true}   # the feature weights and gate stored with the model
    # == ... >> Combine(model, model.config["combine"]["weights"], model.config["combine"]["gate"], idx)
    reranker: {type: crossjem, model: DIR, combine: {weights: {run: 0.2, bm25: 0.3, dense: 0.5}, gate: 0.5,
                                                    features: [run, bm25]}}   # features: skip the others

AXN retrieves with a reranker of its own (retrievers/axn.py):
    retrievers: [{type: axn, k: 10, budget: 100, rounds: 5, blend: 0.0, first: dense,
                  reranker: {type: crossjem, model: runs/crossjem}}]
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Sequence

import yaml

from .pipeline import Stage

DEFAULT_CONFIG: dict[str, Any] = {
    "retrievers": [{"type": "bm25", "k": 100}, {"type": "dense", "k": 100}],
    "fusion": {"method": "rrf", "k": 60},
    "cutoff": 100,
}
_TOP_KEYS = {"name", "retrievers", "fusion", "cutoff", "reranker"}
_RERANKER_KEYS = {"type", "model", "cutoff", "interpolate", "combine", "backend", "prompt", "windows"}
_RETRIEVER_KEYS = {"bm25": {"type", "k"}, "dense": {"type", "k"},
                   "axn": {"type", "k", "budget", "rounds", "blend", "first", "reranker"}}


class ConfigError(ValueError):
    pass


def load_config(path: str | Path | None) -> dict[str, Any]:
    """Read and check a YAML config; None gives the built-in default (identical to configs/default.yaml)."""
    if path is None:
        return default_config()
    path = Path(path)
    try:
        cfg = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: invalid YAML: {e}") from None
    validate_config(cfg, str(path))
    return cfg


def default_config() -> dict[str, Any]:
    """The first stage, reranked by the shipped reranker with its feature combination when one ships."""
    import copy

    from .rerankers import default_spec

    cfg = copy.deepcopy(DEFAULT_CONFIG)
    spec = default_spec()
    if spec is not None:
        cfg["reranker"] = {"type": spec["type"], "model": "default", "combine": True,
                           **({"backend": spec["backend"]} if "backend" in spec else {})}
    return cfg


def _positive_int(value: Any, where: str) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ConfigError(f"{where}: must be a positive integer, got {value!r}")


def validate_config(cfg: Any, source: str = "config") -> None:
    if not isinstance(cfg, dict):
        raise ConfigError(f"{source}: expected a mapping at the top level")
    unknown = set(cfg) - _TOP_KEYS
    if unknown:
        raise ConfigError(f"{source}: unknown key(s) {sorted(unknown)} (allowed: {sorted(_TOP_KEYS)})")
    retrievers = cfg.get("retrievers")
    if not isinstance(retrievers, list) or not retrievers:
        raise ConfigError(f"{source}: field 'retrievers' must be a non-empty list")
    for i, r in enumerate(retrievers):
        where = f"{source}: retrievers[{i}]"
        if not isinstance(r, dict) or r.get("type") not in _RETRIEVER_KEYS:
            raise ConfigError(f"{where}.type must be one of {sorted(_RETRIEVER_KEYS)}, got {r!r}")
        if set(r) - _RETRIEVER_KEYS[r["type"]]:
            raise ConfigError(f"{where}: unknown key(s) {sorted(set(r) - _RETRIEVER_KEYS[r['type']])}")
        _positive_int(r.get("k", 1000), f"{where}.k")
        if r["type"] == "axn":
            for key in ("budget", "rounds"):
                if key in r:
                    _positive_int(r[key], f"{where}.{key}")
            if r.get("budget", 100) < r.get("rounds", 5):
                raise ConfigError(f"{where}: budget must be at least rounds")
            blend = r.get("blend", 0.0)
            if isinstance(blend, bool) or not isinstance(blend, (int, float)) or not 0 <= blend <= 1:
                raise ConfigError(f"{where}.blend must be a number in [0, 1], got {blend!r}")
            if r.get("first", "dense") not in ("dense", "bm25"):
                raise ConfigError(f"{where}.first must be 'dense' or 'bm25'")
            _validate_reranker(r.get("reranker"), f"{where}.reranker")
    fusion = cfg.get("fusion", {"method": "rrf"})
    if not isinstance(fusion, dict) or fusion.get("method") not in ("rrf", "weighted"):
        raise ConfigError(f"{source}: fusion.method must be 'rrf' or 'weighted'")
    if set(fusion) - {"method", "k", "weights", "norm"}:
        raise ConfigError(f"{source}: fusion: unknown key(s) {sorted(set(fusion) - {'method', 'k', 'weights', 'norm'})}")
    if "weights" in fusion and (not isinstance(fusion["weights"], list) or len(fusion["weights"]) != len(retrievers)):
        raise ConfigError(f"{source}: fusion.weights must list one weight per retriever ({len(retrievers)})")
    if "cutoff" in cfg:
        _positive_int(cfg["cutoff"], f"{source}: cutoff")
    if cfg.get("reranker") is not None:
        _validate_reranker(cfg["reranker"], f"{source}: reranker")


def _validate_reranker(reranker: Any, where: str) -> None:
    from .rerankers import RERANKERS

    if not isinstance(reranker, dict) or reranker.get("type") not in RERANKERS:
        raise ConfigError(f"{where}.type must be one of {sorted(RERANKERS)}, got {reranker!r}")
    if set(reranker) - _RERANKER_KEYS:
        raise ConfigError(f"{where}: unknown key(s) {sorted(set(reranker) - _RERANKER_KEYS)}")
    if "cutoff" in reranker:
        _positive_int(reranker["cutoff"], f"{where}.cutoff")
    from .graphs.runtime import BACKENDS

    if reranker.get("backend", "torch") not in BACKENDS:
        raise ConfigError(f"{where}.backend must be one of {list(BACKENDS)}, got {reranker['backend']!r}")
    alpha = reranker.get("interpolate", 1.0)
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0 <= alpha <= 1:
        raise ConfigError(f"{where}.interpolate must be a number in [0, 1], got {alpha!r}")
    if "windows" in reranker:
        windows = reranker["windows"]
        if not isinstance(windows, dict) or set(windows) - {"size", "stride", "max"} or "size" not in windows:
            raise ConfigError(f"{where}.windows must be a mapping of size (and stride, max), got {windows!r}")
        for key, value in windows.items():
            _positive_int(value, f"{where}.windows.{key}")
    if "combine" in reranker:
        _validate_combine(reranker["combine"], f"{where}.combine")
        if "interpolate" in reranker:
            raise ConfigError(f"{where}: use either interpolate or combine, not both")


def _validate_combine(block: Any, where: str) -> None:
    from .rerankers.combine import FEATURES

    if block is True:
        return
    if not isinstance(block, dict) or set(block) - {"weights", "gate", "features"}:
        raise ConfigError(f"{where} must be true (the model's stored weights) or a mapping of weights, gate, features;"
                          f" got {block!r}")
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


def build_pipeline(cfg: dict[str, Any], index, reranker=None) -> Stage:
    """The Stage a config describes, over `index`. `reranker` overrides the config's reranker (e.g. a loaded model)."""
    from .pipeline import Fusion

    validate_config(cfg)
    members = [_retriever(r, index) for r in cfg["retrievers"]]
    fusion = cfg.get("fusion", {"method": "rrf"})
    if len(members) == 1:
        stage: Stage = members[0]
    else:
        stage = Fusion(members, method=fusion["method"], weights=fusion.get("weights"), rrf_k=fusion.get("k", 60),
                       norm=fusion.get("norm", "minmax"))
    if "cutoff" in cfg:
        stage = stage % cfg["cutoff"]
    spec = cfg.get("reranker")
    if reranker is not None or spec is not None:
        stage = stage >> reranker_stage(spec or {}, index, reranker)
        if spec and "cutoff" in spec:
            stage = stage % spec["cutoff"]
    return stage


def reranker_stage(spec: dict[str, Any], index, reranker=None) -> Stage:
    """The reranking stage a `reranker:` block describes (the model, interpolated or combined with the first
    stage's features as the block says); `reranker` replaces the block's model."""
    if reranker is None:
        from .rerankers import load_reranker

        reranker = load_reranker(spec)
    if "windows" in spec:  # long documents: each read as passage windows, scored by its best (MaxP)
        from .rerankers.windows import Windows

        w = spec["windows"]
        reranker = Windows(reranker, w["size"], w.get("stride"), w.get("max", 4))
    if spec.get("interpolate", 1.0) < 1.0:
        from .rerankers.interpolate import Interpolate

        return Interpolate(reranker, spec["interpolate"])
    if spec.get("combine") is not None:
        return combine_stage(reranker, spec["combine"], index)
    return reranker


def combine_stage(reranker, block: dict[str, Any] | bool, index) -> Stage:
    """The Combine stage of a `combine:` block: true = the weights and gate stored with the model; a mapping
    overrides what it names."""
    from .rerankers.combine import Combine

    stored = getattr(reranker, "config", {}).get("combine") or {}
    block = {**stored, **(block if isinstance(block, dict) else {})}
    if "weights" not in block:
        raise ConfigError(f"reranker.combine: {reranker.name} stores no feature weights; give combine.weights")
    return Combine.from_config(reranker, block, index)


def rerank_stages(models: Sequence[str], index=None, backend: str | None = None) -> dict[str, Stage]:
    """The reranking stages a server offers on its rerank API, by name: each of `models` is 'NAME=DIR', 'DIR'
    (named after the directory) or 'default' (the shipped model); none given, the shipped model if one ships. A
    model trained as a feature residual is served with its feature combination (features from `index` where it
    holds the documents, dense cosine computed on the fly otherwise)."""
    from .rerankers import default_spec, load_reranker
    from .rerankers.combine import served

    stages: dict[str, Stage] = {}
    for spec in models or (["default"] if default_spec() is not None else []):
        name, path = reranker_name_and_path(spec)
        if name in stages:
            raise ConfigError(f"two rerankers named {name!r}: name them (NAME=DIR)")
        stages[name] = served(load_reranker({"model": path, **({"backend": backend} if backend else {})}), index)
    return stages


def reranker_name_and_path(spec: str) -> tuple[str, str]:
    """'NAME=DIR' -> (NAME, DIR); 'DIR' is named after the directory, 'default' after itself."""
    name, _, path = spec.rpartition("=")
    return name or (Path(path).name if path != "default" else "default"), path


def _retriever(spec: dict[str, Any], index) -> Stage:
    if spec["type"] == "axn":
        from .rerankers import load_reranker
        from .retrievers.axn import AXN

        return AXN(index, load_reranker(spec["reranker"]), budget=spec.get("budget", 100),
                   rounds=spec.get("rounds", 5), k=spec.get("k", 100), blend=spec.get("blend", 0.0),
                   first=spec.get("first", "dense"))
    return (index.bm25 if spec["type"] == "bm25" else index.dense)(k=spec.get("k", 1000))


def adapt_to_index(cfg: dict[str, Any], index) -> dict[str, Any]:
    """Drop the retrievers `index` was built without (so the default config works on a `--no-dense` index)."""
    usable = [r for r in cfg["retrievers"] if (r["type"] if r["type"] != "axn" else "dense") in index.stages]
    if not usable:
        raise ConfigError(f"config needs {[r['type'] for r in cfg['retrievers']]}, index '{index.name}' has "
                          f"{index.stages}")
    if len(usable) != len(cfg["retrievers"]):
        cfg = {**cfg, "retrievers": usable, "fusion": {k: v for k, v in cfg.get("fusion", {}).items() if k != "weights"}}
    return cfg


def open_pipeline(index, config: str | Path | dict[str, Any] | None = None, *, rerank: bool = True,
                  interpolate: float | None = None, backend: str | None = None,
                  default_backend: str = "torch") -> Stage:
    """The one way to get a pipeline over an index, for the CLI, the server and Python: the config (a path, a
    dict, or None for the built-in default) adapted to the stages the index has; `rerank=False` drops the
    reranker; `interpolate` mixes the model with the first stage at that weight instead of the config's mix;
    `backend` runs the reranker's transformer on torch, onnx, onnx-int8 or auto instead of the config's choice,
    `default_backend` where the config makes none."""
    cfg = dict(config) if isinstance(config, dict) else load_config(config)
    if cfg.get("reranker"):
        cfg["reranker"] = {**cfg["reranker"], "backend": backend or cfg["reranker"].get("backend", default_backend)}
    if not rerank:
        cfg.pop("reranker", None)
    elif interpolate is not None and cfg.get("reranker"):  # replaces the feature combination, if any
        cfg["reranker"] = {**{k: v for k, v in cfg["reranker"].items() if k != "combine"}, "interpolate": interpolate}
    return build_pipeline(adapt_to_index(cfg, index), index)
