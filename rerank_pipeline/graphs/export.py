"""Exporting a model's transformer parts to ONNX (torch), and running them in place of the torch modules.

Only the transformer parts move to ONNX Runtime (each reranker family's `onnx_parts`, the dual encoder's
transformer); pooling, heads and batching stay in their own code, so CROSS-JEM and the pointwise model (which read
`encoder(...).last_hidden_state`), any Hugging Face cross-encoder (whose classifier's `logits` are read) and MICE
(its document-side bottom layers and its interaction layers, two graphs) score through their own code unchanged.
The first use exports (seconds) and quantizes; later loads reuse the files (runtime.py's cache).
"""
from __future__ import annotations

import shutil
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch
from torch import nn

from ..files import fresh_work_dir, publish
from .runtime import FILES, graph_dir, session

TEXT_INPUTS = ("input_ids", "attention_mask", "token_type_ids")


@dataclass
class OnnxPart:
    """What an ONNX backend replaces: `owner.attribute` (a submodule, or a method of `owner`), called with `inputs`
    by name or in order. `module` is what is exported (the submodule itself, or a module calling the method); its
    call's `output` attribute is read (None: the call returns the tensor). `example` traces it: no axis of size
    0 or 1 and no all-true mask, so nothing is specialised; `axes` names every input's dynamic axes."""
    owner: nn.Module
    attribute: str
    module: nn.Module
    inputs: tuple[str, ...]
    output: str | None
    example: dict[str, torch.Tensor]
    axes: dict[str, dict[int, str]]


def encoder_part(owner: nn.Module, attribute: str, inputs: tuple[str, ...] = TEXT_INPUTS,
                 output: str = "last_hidden_state") -> OnnxPart:
    """A transformer over token ids (BERT-style inputs, `position_ids` if named): batch and length dynamic. The
    example has padding and two segments, so no branch for an all-ones mask or a single segment is traced."""
    example = {"input_ids": torch.randint(1000, 2000, (2, 16)), "attention_mask": torch.ones(2, 16, dtype=torch.long),
               "token_type_ids": torch.zeros(2, 16, dtype=torch.long),
               "position_ids": torch.arange(16).expand(2, -1) + torch.tensor([[0], [3]])}
    example["attention_mask"][1, 10:] = 0
    example["token_type_ids"][:, 6:] = 1
    return OnnxPart(owner, attribute, getattr(owner, attribute), inputs, output,
                    {k: example[k] for k in inputs}, {k: {0: "batch", 1: "length"} for k in inputs})


class _Outputs(nn.Module):
    """The part as a function of positional tensors, returning the one output the reranker reads."""

    def __init__(self, part: OnnxPart):
        super().__init__()
        self.module, self.inputs, self.output = part.module, part.inputs, part.output

    def forward(self, *tensors):
        out = self.module(**dict(zip(self.inputs, tensors)))
        return out if self.output is None else getattr(out, self.output)


@contextmanager
def _eager_attention(module: nn.Module):
    """Hugging Face attention traced as its eager code (scores + additive mask, softmax) instead of SDPA, whose
    decomposition guards fully masked rows with Where(IsNaN(softmax)) over every [B, heads, L, L] score: a no-op
    for our inputs (every row holds [CLS]) that took 26-44% of CROSS-JEM's int8 time at 230 tokens a row."""
    configs = {id(c): c for m in module.modules() for c in [getattr(m, "config", None)]
               if hasattr(c, "_attn_implementation")}
    before = {key: config._attn_implementation for key, config in configs.items()}
    for config in configs.values():
        config._attn_implementation = "eager"
    try:
        yield
    finally:
        for key, config in configs.items():
            config._attn_implementation = before[key]


def export(part: OnnxPart, path: Path) -> None:
    """Export `part` (its named axes dynamic) to `path`, with fp32 weights."""
    part.module.float().eval().cpu()
    dims = {name: torch.export.Dim(name, max=512) if name == "length" else torch.export.Dim(name)
            for axes in part.axes.values() for name in axes.values()}
    with _eager_attention(part.module):
        program = torch.onnx.export(_Outputs(part), tuple(part.example[k] for k in part.inputs),
                                    input_names=list(part.inputs), output_names=["output"], dynamo=True,
                                    optimize=True, verbose=False,
                                    dynamic_shapes=(tuple({axis: dims[name] for axis, name in part.axes[k].items()}
                                                          for k in part.inputs),))
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


def cached_model(part: OnnxPart, fingerprint: str, backend: str) -> Path:
    """The ONNX file of `backend` for these weights, exported (and quantized) on first use. Written into a fresh
    directory renamed into place, so a killed export leaves nothing half-written to load; when processes export at
    once (server replicas starting together), the first to finish wins and the others use its files."""
    target = graph_dir(fingerprint)
    if (target / FILES[backend]).is_file():
        return target / FILES[backend]
    work = fresh_work_dir(target)
    with _quiet():
        if (target / FILES["onnx"]).is_file():
            shutil.copy(target / FILES["onnx"], work / FILES["onnx"])
        else:
            export(part, work / FILES["onnx"])
        if backend == "onnx-int8":
            quantize(work / FILES["onnx"], work / FILES["onnx-int8"])
    publish(work, target, FILES[backend])
    return target / FILES[backend]


class OnnxModule(nn.Module):
    """Stands in for a part of a reranker's network: called the same way (tensors by name or in order), answered
    by an ONNX Runtime session on the CPU (with torch's thread count, so backends compare on equal threads)."""

    def __init__(self, path: Path, part: OnnxPart):
        super().__init__()
        self.session = session(path)
        self.inputs, self.output, self.path = part.inputs, part.output, path
        self.config = getattr(part.module, "config", None)
        self.dtypes = {k: np.bool_ if v.dtype == torch.bool else np.float32 if v.is_floating_point() else np.int64
                       for k, v in part.example.items()}

    @classmethod
    def from_graph(cls, path: Path) -> "OnnxModule":
        """A whole ONNX graph taking integer token inputs (a cross-encoder as published), its first output read
        under the graph's own name."""
        module = cls.__new__(cls)
        nn.Module.__init__(module)
        module.session, module.path, module.config = session(path), path, None
        module.inputs = tuple(i.name for i in module.session.get_inputs())
        module.output = module.session.get_outputs()[0].name
        module.dtypes = {k: np.int64 for k in module.inputs}
        return module

    def forward(self, *args, **tensors):
        tensors.update(zip(self.inputs, args))
        feeds = {k: np.ascontiguousarray(tensors[k].detach().cpu().numpy(), dtype=self.dtypes[k]) for k in self.inputs}
        out = torch.from_numpy(self.session.run(None, feeds)[0])
        return out if self.output is None else SimpleNamespace(**{self.output: out})
