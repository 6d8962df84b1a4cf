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

from pathlib import Path
from typing import Any, Sequence

import yaml

from .pipeline import Stage
from .rerankers.spec import ConfigError, RerankerSpec, positive_int

DEFAULT_CONFIG: dict[str, Any] = {
    "retrievers": [{"type": "bm25", "k": 100}, {"type": "dense", "k": 100}],
    "fusion": {"method": "rrf", "k": 60},
    "cutoff": 100,
}
_TOP_KEYS = {"name", "retrievers", "fusion", "cutoff", "reranker"}
_RETRIEVER_KEYS = {"bm25": {"type", "k"}, "dense": {"type", "k"},
                   "axn": {"type", "k", "budget", "rounds", "blend", "first", "reranker"}}


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
        positive_int(r.get("k", 1000), f"{where}.k")
        if r["type"] == "axn":
            for key in ("budget", "rounds"):
                if key in r:
                    positive_int(r[key], f"{where}.{key}")
            if r.get("budget", 100) < r.get("rounds", 5):
                raise ConfigError(f"{where}: budget must be at least rounds")
            blend = r.get("blend", 0.0)
            if isinstance(blend, bool) or not isinstance(blend, (int, float)) or not 0 <= blend <= 1:
                raise ConfigError(f"{where}.blend must be a number in [0, 1], got {blend!r}")
            if r.get("first", "dense") not in ("dense", "bm25"):
                raise ConfigError(f"{where}.first must be 'dense' or 'bm25'")
            RerankerSpec.parse(r.get("reranker"), f"{where}.reranker", require_type=True)
    fusion = cfg.get("fusion", {"method": "rrf"})
    if not isinstance(fusion, dict) or fusion.get("method") not in ("rrf", "weighted"):
        raise ConfigError(f"{source}: fusion.method must be 'rrf' or 'weighted'")
    if set(fusion) - {"method", "k", "weights", "norm"}:
        raise ConfigError(f"{source}: fusion: unknown key(s) {sorted(set(fusion) - {'method', 'k', 'weights', 'norm'})}")
    if "weights" in fusion and (not isinstance(fusion["weights"], list) or len(fusion["weights"]) != len(retrievers)):
        raise ConfigError(f"{source}: fusion.weights must list one weight per retriever ({len(retrievers)})")
    if "cutoff" in cfg:
        positive_int(cfg["cutoff"], f"{source}: cutoff")
    if cfg.get("reranker") is not None:
        RerankerSpec.parse(cfg["reranker"], f"{source}: reranker", require_type=True)


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
    block = cfg.get("reranker")
    if reranker is not None or block is not None:
        spec = RerankerSpec.parse(block or {})
        stage = stage >> reranker_stage(spec, index, reranker)
        if spec.cutoff is not None:
            stage = stage % spec.cutoff
    return stage


def reranker_stage(spec: RerankerSpec | dict[str, Any], index, reranker=None) -> Stage:
    """The reranking stage a `reranker:` block describes (the model, read in passage windows, interpolated or
    combined with the first stage's features as the block says); `reranker` replaces the block's model."""
    spec = RerankerSpec.parse(spec)
    if reranker is None:
        from .rerankers import load_reranker

        reranker = load_reranker(spec)
    if spec.windows is not None:  # long documents: each read as passage windows, scored by its best (MaxP)
        from .rerankers.windows import Windows

        reranker = Windows(reranker, spec.windows["size"], spec.windows.get("stride"), spec.windows.get("max", 4))
    if spec.interpolate is not None and spec.interpolate < 1.0:
        from .rerankers.interpolate import Interpolate

        return Interpolate(reranker, spec.interpolate)
    if spec.combine is not None:
        return combine_stage(reranker, spec.combine, index)
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
