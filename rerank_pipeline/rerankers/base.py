"""The reranker base class: loading/saving model directories, query tokenization, and the Stage interface.

A model directory holds `rerank_config.json` (family and packing settings), the encoder's `config.json`, the
tokenizer files, and `model.safetensors` (weights, optionally fp16). Loading never unpickles anything.
"""
from __future__ import annotations

import json
from functools import cached_property
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from ..encoders import load_tokenizer, quiet_transformers, resolve_encoder, tensor_digest, torch_device
from .scorer import Scorer

CONFIG_FILE = "rerank_config.json"


def load_encoder(path: str, pretrained: bool = True):
    from transformers import AutoConfig, AutoModel

    quiet_transformers()
    if pretrained:
        return AutoModel.from_pretrained(path, add_pooling_layer=False, attn_implementation="sdpa")
    return AutoModel.from_config(AutoConfig.from_pretrained(path), add_pooling_layer=False,
                                 attn_implementation="sdpa")


def keep_layers(encoder: torch.nn.Module, layers: int | None) -> torch.nn.Module:
    """`encoder` cut to `layers` transformer layers, evenly spaced from its first to its last (12 -> 6 keeps
    0, 2, 4, 7, 9, 11), its config saying so; unchanged when `layers` is None or not fewer than it has."""
    stack = encoder.encoder.layer
    if layers is None or layers >= len(stack):
        return encoder
    keep = np.linspace(0, len(stack) - 1, layers).round().astype(int)
    encoder.encoder.layer = torch.nn.ModuleList([stack[i] for i in keep])
    encoder.config.num_hidden_layers = layers
    return encoder


class Reranker(Scorer):
    """A torch reranker. Subclasses implement `logits` (differentiable, used by training too)."""

    cpu_backend = "torch"  # what backend 'auto' runs on the CPU (onnx.resolve); set only where onnx_parts exist

    def __init__(self, network: torch.nn.Module, tokenizer, config: dict[str, Any], device: str | None = None):
        self.network, self.tokenizer = network, tokenizer
        self.config = {**self.defaults, **config, "kind": self.kind}
        self.device = device or torch_device()
        self.network.to(self.device).eval()
        self.name = self.kind
        self.source: str | None = None
        self.backend = "torch"  # or onnx / onnx-int8 (onnx.py): which runtime runs the transformer

    # ---- construction and persistence -------------------------------------------------------------------------
    @classmethod
    def build_network(cls, encoder: torch.nn.Module, config: dict[str, Any]) -> torch.nn.Module:
        raise NotImplementedError

    @classmethod
    def from_encoder(cls, encoder: str | None = None, device: str | None = None, layers: int | None = None,
                     **config) -> "Reranker":
        """A fresh (untrained head) reranker over a pretrained encoder: all-MiniLM-L6-v2 unless another is named
        (a local dir, or a packaged model such as the MS MARCO teacher 'ms-marco-minilm-l12'); `layers` keeps that
        many of its layers, evenly spaced from the first to the last (a 6-layer student of a 12-layer teacher)."""
        path = resolve_encoder(encoder)
        config = {**cls.defaults, **config}
        encoder_module = keep_layers(load_encoder(path), layers)
        return cls(cls.build_network(encoder_module, config), load_tokenizer(path), config, device)

    def onnx_parts(self) -> list:
        """What an ONNX backend replaces (onnx.OnnxPart each; none: the family has no ONNX backend)."""
        from ..graphs.export import encoder_part

        return [encoder_part(self.network, "encoder")]

    @classmethod
    def load(cls, path: str | Path, device: str | None = None, backend: str | None = None) -> "Reranker":
        """A model directory (or, through the base class, any Hugging Face cross-encoder directory, a packaged model's
        name, or 'default': the shipped reranking stage, the model with its feature combination, as the default
        pipeline, the server and the framework stages use it); `backend` onnx / onnx-int8 runs its transformer on
        ONNX Runtime (CPU; exported once, see onnx.py); unset, torch (the default: the backend it shipped with)."""
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        from . import RERANKERS, load_default
        from .combine import served

        if cls is Reranker and str(path) == "default":
            return served(load_default(backend))
        backend = backend or "torch"
        path = Path(path)
        foreign = RERANKERS["hf-cross-encoder"]  # any Hugging Face cross-encoder: a directory, or a Hub id if allowed
        if cls is Reranker and not (path / CONFIG_FILE).is_file():
            if RERANKERS["cross-encoder"].recognizes(path):  # a packaged model's name or an ONNX graph directory
                return RERANKERS["cross-encoder"].load(path, device, backend)
            if RERANKERS["llm-reranker"].recognizes(path):  # a causal LM scoring yes/no (llm.py)
                return RERANKERS["llm-reranker"].load(path, device, backend)
            if foreign.recognizes(path) or not path.exists():
                return foreign.load(path, device, backend)
        for name in (CONFIG_FILE, "config.json", "model.safetensors"):
            if not (path / name).is_file():
                raise FileNotFoundError(f"{path} is not a reranker model directory ({name} missing)")
        try:
            config = json.loads((path / CONFIG_FILE).read_text())
        except (ValueError, UnicodeDecodeError) as e:
            raise ValueError(f"{path / CONFIG_FILE}: not valid JSON ({e})") from None
        family = RERANKERS.get(config.get("kind")) if isinstance(config, dict) else None
        if family is None or (cls is not Reranker and not issubclass(family, cls)):
            kind = config.get("kind") if isinstance(config, dict) else None
            raise ValueError(f"{path / CONFIG_FILE}: field 'kind': {kind!r} is not "
                             + (cls.kind if cls is not Reranker else f"one of {sorted(RERANKERS)}"))
        try:
            state = {k: v.float() for k, v in load_file(path / "model.safetensors").items()}
        except (SafetensorError, OSError) as e:  # truncated or foreign file
            raise ValueError(f"{path / 'model.safetensors'}: not a readable safetensors file ({e})") from None
        network = family.build_network(load_encoder(str(path), pretrained=False), config)
        network.load_state_dict(state, strict=True)
        model = family(network, load_tokenizer(str(path)), config, device_for_backend(backend, device))
        model.source = str(path.resolve())  # where it came from (index parts built with it record this)
        return model.with_backend(backend)

    def require_torch(self, action: str) -> None:
        if self.backend != "torch":
            raise ValueError(f"{action} a reranker from the torch backend (this one runs on {self.backend})")

    def with_backend(self, backend: str) -> "Reranker":
        from .onnx import use_backend

        return use_backend(self, backend)

    def save(self, path: str | Path, fp16: bool = False) -> None:
        from safetensors.torch import save_file

        from .. import __version__

        self.require_torch("save")
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        state = {k: (v.half() if fp16 and v.is_floating_point() else v).contiguous().cpu()
                 for k, v in self.network.state_dict().items()}
        save_file(state, path / "model.safetensors.tmp")
        (path / "model.safetensors.tmp").replace(path / "model.safetensors")
        self.network.encoder.config.save_pretrained(path)
        self.tokenizer.save_pretrained(path)
        (path / CONFIG_FILE).write_text(json.dumps({**self.config, "library_version": __version__}, indent=2))

    @classmethod
    def from_spec(cls, spec) -> "Reranker":
        """From a `reranker:` block (spec.RerankerSpec) naming a model directory ('default' is resolved by
        load_reranker)."""
        return cls.load(spec.model, backend=spec.backend or "torch")

    @classmethod
    def default(cls, device: str | None = None) -> "Reranker":
        raise NotImplementedError(f"{cls.kind} has no shipped default model")

    # ---- scoring ---------------------------------------------------------------------------------------------
    def logits(self, query_ids: Sequence[np.ndarray], candidates: Sequence[Sequence[np.ndarray]],
               max_batch_tokens: int | None = None) -> list[torch.Tensor]:
        """One logit tensor per query (its candidates in order); differentiable unless under inference_mode."""
        raise NotImplementedError

    @cached_property
    def fingerprint(self) -> str:
        """Identifies this model's weights (index parts fitted to its scores record it)."""
        return tensor_digest(self.network.state_dict(), self.kind)

    def per_query(self, values: list[torch.Tensor], positions: list[torch.Tensor],
                  sizes: Sequence[int]) -> list[torch.Tensor]:
        """Pair logits computed in batches (`values`, at flat pair `positions`) back in order, split per query."""
        if not values:
            return list(torch.zeros(sum(sizes), device=self.device).split(list(sizes)))
        v = torch.cat(values)
        flat = torch.zeros(sum(sizes), device=self.device, dtype=v.dtype).index_copy(0, torch.cat(positions), v)
        return list(flat.split(list(sizes)))

    def score_ids(self, query_ids: Sequence[np.ndarray], candidates: Sequence[Sequence[np.ndarray]]) -> list[np.ndarray]:
        with torch.inference_mode(), self.autocast():
            out = self.logits(query_ids, [self.truncate_items(c) for c in candidates])
        return [t.float().cpu().numpy() for t in out]

    def autocast(self):
        """bf16 on GPU (inference and training), plain fp32 on CPU."""
        if self.device.startswith("cuda"):
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return torch.autocast("cpu", enabled=False)


def device_for_backend(backend: str, device: str | None = None) -> str | None:
    """ONNX backends run on the CPU: that is where their reranker's torch parts must live too ('auto' goes where
    the model would: an accelerator if there is one)."""
    return "cpu" if backend not in ("torch", "auto") and device is None else device
