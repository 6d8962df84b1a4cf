"""A cross-encoder as published in ONNX form, scored pointwise on ONNX Runtime: the packaged MS MARCO teacher
(`ms-marco-minilm-l12`: cross-encoder/ms-marco-MiniLM-L-12-v2, dynamic int8, pretrained.py) or any directory
holding a `model.onnx` that takes token ids and returns one logit per pair, with its tokenizer files.

On ONNX Runtime the graph runs as shipped (no export). `backend="torch"` (training, a GPU) or `"onnx"` loads the
packaged model's dequantized weights as a Hugging Face cross-encoder instead (hf.py), whose logits equal the
graph's to within int8 activation rounding (tests/test_pretrained.py).
"""
from __future__ import annotations

import hashlib
from functools import cached_property
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from ..encoders import load_tokenizer, torch_device
from ..pretrained import hf_directory, packaged_name, packaged_path
from .hf import HFCrossEncoder, SequenceClassifier
from ..graphs.export import OnnxModule


class OnnxCrossEncoder(HFCrossEncoder):
    kind = "cross-encoder"
    cpu_backend = "onnx-int8"
    # 32 + 221 word pieces and 3 special tokens: the 256-piece pairs the teacher was measured with
    defaults: dict[str, Any] = {"max_query_tokens": 32, "max_item_tokens": 221, "max_batch_tokens": 16384}

    @classmethod
    def recognizes(cls, path: Path) -> bool:
        """A packaged model's name, or a directory with an ONNX graph and a tokenizer."""
        if packaged_name(str(path)) is not None:
            return True
        path = Path(path)
        return (path / "model.onnx").is_file() and (path / "tokenizer_config.json").is_file()

    @classmethod
    def load(cls, path: str | Path, device: str | None = None, backend: str = "auto") -> HFCrossEncoder:
        name = packaged_name(str(path))
        on_cpu = (device or torch_device()).startswith("cpu")
        if name is not None and not (backend in ("auto", "onnx-int8") and on_cpu):
            model = HFCrossEncoder.load(hf_directory(name), device, backend)
            model.config.update(cls.defaults)
            model.source = name
            return model
        if backend not in ("auto", "onnx", "onnx-int8"):
            raise ValueError(f"{path} is an ONNX graph: it runs on ONNX Runtime (backend auto or onnx), not {backend}")
        folder = packaged_path(name) if name is not None else Path(path)
        runtime = OnnxModule.from_graph(folder / "model.onnx")
        runtime.config = SimpleNamespace(type_vocab_size=2 if "token_type_ids" in runtime.inputs else 1)
        network = SequenceClassifier(runtime)
        model = cls(network, load_tokenizer(str(folder)), dict(cls.defaults), "cpu")
        model.backend = "onnx-int8" if name is not None else "onnx"
        model.source = name or str(Path(path).resolve())
        return model

    @classmethod
    def from_spec(cls, spec) -> HFCrossEncoder:
        """YAML `reranker: {type: cross-encoder, model: ms-marco-minilm-l12}`: the graph on the CPU unless a
        backend is named."""
        return cls.load(spec.model, backend=spec.backend or "auto")

    @cached_property
    def fingerprint(self) -> str:
        """The graph file's digest: caches of this model's scores are keyed by it."""
        h = hashlib.sha256(self.kind.encode())
        with open(self.network.model.path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        return h.hexdigest()[:16]

    def onnx_parts(self):
        return []  # already a graph

    def save(self, path: str | Path, fp16: bool = False) -> None:
        raise ValueError(f"{self.source} is an ONNX graph; load it with backend='torch' to save or fine-tune it")
