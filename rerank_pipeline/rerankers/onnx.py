"""ONNX Runtime backends for a reranker's transformer: `onnx` (fp32) and `onnx-int8` (dynamic int8 weights), on
the CPU. The graphs are exported and cached by graphs/export.py; this module moves a reranker onto them.
"""
from __future__ import annotations

from torch import nn

from ..graphs.export import OnnxModule, cached_model
from ..graphs.runtime import BACKENDS, onnx_installed, require_onnxruntime


def resolve(reranker, backend: str) -> str:
    """'auto' is the family's `cpu_backend` where the reranker runs on the CPU and the [onnx] extra is installed
    (one whose quality was measured equal to torch's: the shipped CROSS-JEM on onnx-int8), torch otherwise."""
    if backend != "auto":
        return backend
    on_cpu = reranker.device.startswith("cpu")
    return reranker.cpu_backend if on_cpu and reranker.cpu_backend != "torch" and onnx_installed() else "torch"


def use_backend(reranker, backend: str):
    """Move `reranker`'s transformer to `backend` in place (no-op for torch); returns the reranker."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r} (use one of {', '.join(BACKENDS)})")
    backend = resolve(reranker, backend)
    if backend == reranker.backend:
        return reranker
    if reranker.backend != "torch":
        raise ValueError(f"{reranker.name} already runs on {reranker.backend}; load it again for {backend}")
    parts = reranker.onnx_parts()
    if not parts:
        raise ValueError(f"{reranker.kind} has no ONNX backend; use torch")
    if not reranker.device.startswith("cpu"):
        raise ValueError(f"the {backend} backend runs on the CPU; load the reranker with device='cpu'")
    require_onnxruntime()
    fingerprint = reranker.fingerprint  # of the torch weights, computed before they are replaced
    for part in parts:
        runtime = OnnxModule(cached_model(part, f"{fingerprint}-{part.attribute}", backend), part)
        if isinstance(getattr(part.owner, part.attribute), nn.Module):
            setattr(part.owner, part.attribute, runtime)  # the torch submodule (and its weights) let go
        else:
            object.__setattr__(part.owner, part.attribute, runtime)  # a method: the instance's attribute shadows it
    reranker.backend = backend
    return reranker
