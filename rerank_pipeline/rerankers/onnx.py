"""ONNX Runtime backends for a reranker's transformer: `onnx` (fp32) and `onnx-int8` (dynamic int8 weights).

Only the transformer moves to ONNX Runtime; each family's pooling and head stay in torch, so CROSS-JEM and the
pointwise model (which read `encoder(...).last_hidden_state`) and any Hugging Face cross-encoder (whose classifier's
`logits` are read) score through their own code unchanged. Exports are cached under
`~/.cache/rerank-pipeline/onnx/<fingerprint>/` (`RERANK_CACHE` moves it): keyed by the weights, so changed weights
get a fresh export, and a model directory that cannot be written to (the shipped model, inside the package) works
the same. The first use exports (seconds) and quantizes; later loads reuse the files.
"""
from __future__ import annotations

import os
import shutil
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch
from torch import nn

from ..extras import require

BACKENDS = ("torch", "onnx", "onnx-int8", "auto")  # auto: each family's `cpu_backend` on the CPU, see resolve
FILES = {"onnx": "model.onnx", "onnx-int8": "model.int8.onnx"}


def cache_root() -> Path:
    return Path(os.environ.get("RERANK_CACHE", Path.home() / ".cache" / "rerank-pipeline")) / "onnx"


def _require_onnxruntime():
    return require("onnxruntime", "onnx", "an onnx backend")


class _Outputs(nn.Module):
    """The module as a function of positional tensors, returning the one output the reranker reads."""

    def __init__(self, module: nn.Module, inputs: tuple[str, ...], output: str):
        super().__init__()
        self.module, self.inputs, self.output = module, inputs, output

    def forward(self, *tensors):
        return getattr(self.module(**dict(zip(self.inputs, tensors))), self.output)


def export(module: nn.Module, inputs: tuple[str, ...], output: str, path: Path) -> None:
    """Export `module` (batch and length dynamic) to `path`, with its fp32 weights. The example has padding and
    two segments, so no branch specialised to an all-ones mask or a single segment is traced."""
    module = module.float().eval().cpu()
    example = {"input_ids": torch.randint(1000, 2000, (2, 16)), "attention_mask": torch.ones(2, 16, dtype=torch.long),
               "token_type_ids": torch.zeros(2, 16, dtype=torch.long)}
    example["attention_mask"][1, 10:] = 0
    example["token_type_ids"][:, 6:] = 1
    batch, length = torch.export.Dim("batch"), torch.export.Dim("length", max=512)
    program = torch.onnx.export(_Outputs(module, inputs, output), tuple(example[k] for k in inputs),
                                input_names=list(inputs), output_names=[output], dynamo=True, optimize=True,
                                verbose=False, dynamic_shapes=(tuple({0: batch, 1: length} for _ in inputs),))
    program.save(str(path))


def quantize(source: Path, target: Path) -> None:
    """Dynamic int8 quantization of the transformer's matrix products (activations quantized per batch at run
    time). Only MatMul: the 2-D heads (Gemm: a cross-encoder's pooler and classifier) are a rounding error of the
    compute, and a classifier whose weights are scaled (PointwiseCrossEncoder.export_hf) loses its ranking in int8."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(str(source), str(target), weight_type=QuantType.QInt8, op_types_to_quantize=["MatMul"])


@contextmanager
def _quiet():
    """Exporter and quantizer chatter (deprecations, 'consider pre-processing') is not the user's business."""
    import logging
    import warnings

    loggers = [logging.getLogger(name) for name in ("", "torch")]
    levels = [logger.level for logger in loggers]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for logger in loggers:
            logger.setLevel(logging.ERROR)
        try:
            yield
        finally:
            for logger, level in zip(loggers, levels):
                logger.setLevel(level)


def cached_model(module: nn.Module, inputs: tuple[str, ...], output: str, fingerprint: str, backend: str) -> Path:
    """The ONNX file of `backend` for these weights, exported (and quantized) on first use. Written into a fresh
    directory renamed into place, so a killed export leaves nothing half-written to load; when processes export at
    once (server replicas starting together), the first to finish wins and the others use its files."""
    from ..index.store import swap_into_place

    target = cache_root() / fingerprint
    if (target / FILES[backend]).is_file():
        return target / FILES[backend]
    work = target.with_name(f".{fingerprint}.{os.getpid()}.tmp")
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    with _quiet():
        if (target / FILES["onnx"]).is_file():
            shutil.copy(target / FILES["onnx"], work / FILES["onnx"])
        else:
            export(module, inputs, output, work / FILES["onnx"])
        if backend == "onnx-int8":
            quantize(work / FILES["onnx"], work / FILES["onnx-int8"])
    if (target / FILES[backend]).is_file():
        shutil.rmtree(work)
    else:
        swap_into_place(work, target)
    return target / FILES[backend]


class OnnxModule(nn.Module):
    """Stands in for a torch module inside a reranker's network: called the same way, answered by an ONNX Runtime
    session on the CPU (with torch's thread count, so backends compare on equal threads)."""

    def __init__(self, path: Path, inputs: tuple[str, ...], output: str, config):
        super().__init__()
        ort = _require_onnxruntime()
        options = ort.SessionOptions()
        options.intra_op_num_threads = torch.get_num_threads()
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        # Idle ONNX Runtime threads spin by default, taking the cores from torch's (the dense query encoder, the
        # pooling) between runs: on 2 cores a demo search went from 57 to 35 ms without it, long lists no slower.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.inputs, self.output, self.config, self.path = inputs, output, config, path

    def forward(self, **tensors) -> SimpleNamespace:
        feeds = {k: np.ascontiguousarray(tensors[k].cpu().numpy(), dtype=np.int64) for k in self.inputs}
        return SimpleNamespace(**{self.output: torch.from_numpy(self.session.run(None, feeds)[0])})


def onnx_installed() -> bool:
    """ONNX Runtime and the exporter (the [onnx] extra) are importable."""
    import importlib.util

    return all(importlib.util.find_spec(name) for name in ("onnxruntime", "onnx", "onnxscript"))


def resolve(reranker, backend: str) -> str:
    """'auto' is the family's `cpu_backend` where the reranker runs on the CPU and the [onnx] extra is installed
    (one whose quality was measured equal to torch's: the shipped CROSS-JEM on onnx-int8), torch otherwise."""
    if backend != "auto":
        return backend
    on_cpu = reranker.device.startswith("cpu") and reranker.onnx_part() is not None
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
    part = reranker.onnx_part()
    if part is None:
        raise ValueError(f"{reranker.kind} has no ONNX backend (its layers are called one by one); use torch")
    if not reranker.device.startswith("cpu"):
        raise ValueError(f"the {backend} backend runs on the CPU; load the reranker with device='cpu'")
    _require_onnxruntime()
    owner, attribute, inputs, output = part
    module = getattr(owner, attribute)
    fingerprint = reranker.fingerprint  # of the torch weights, computed before they are replaced
    path = cached_model(module, inputs, output, fingerprint, backend)
    setattr(owner, attribute, OnnxModule(path, inputs, output, module.config))
    reranker.backend = backend
    return reranker
