"""CROSS-JEM on ONNX Runtime without torch: what the search path runs on the CPU (a CLI search, a server).

The encoder is the graph the torch reranker exports for its ONNX backends (cached under its weights' fingerprint,
so both run the same file); grouping and padding are packing.py's; selective mean pooling and the linear head are
numpy. A linear head of a mean is the mean of the head's projections, so every token state is projected once
(d -> 1) and the pooling adds scalars: model.py's logits to float rounding (tests/test_crossjem.py).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ...encoders import gpu_present, load_fast_tokenizer, tensor_digest
from ...graphs.runtime import cached_graph, session
from ...types import split_by
from ..scorer import Scorer, trimmed
from .packing import Batch, batches, collate, pack

CONFIG_FILE = "rerank_config.json"
CPU_BACKEND = "onnx-int8"  # int8 keeps the shipped combination's quality (benchmarks/results/backend_quality_shipped.md)
DEFAULTS: dict[str, Any] = {
    "max_query_tokens": 32,
    "max_item_tokens": 48,
    "union_capacity": 256,       # L_u; the paper uses 242-360
    # packing.group_candidates: local search after the greedy grouping; 15% fewer union tokens on WikiQA
    # sentences, dev quality equal or better (benchmarks/results/grouping_quality.md)
    "refine_groups": True,
    "position_encoding": False,  # Appendix F
    "max_batch_tokens": 16384,   # padded tokens per encoder batch
}


class CrossJEMGraph(Scorer):
    """A saved CROSS-JEM model scored with its exported encoder graph. `load_if_exported` gives one wherever it
    can run; the torch reranker (reranker.py) covers the rest and exports the graph on its first ONNX load."""

    kind = "crossjem"
    defaults = DEFAULTS

    def __init__(self, directory: Path, graph: Path, config: dict[str, Any], head: dict[str, np.ndarray],
                 fingerprint: str, backend: str):
        self.config = {**DEFAULTS, **config}
        self.tokenizer = load_fast_tokenizer(str(directory))
        special = json.loads((directory / "tokenizer_config.json").read_text()) \
            if (directory / "tokenizer_config.json").is_file() else {}
        self.cls_id = self.tokenizer.token_to_id(special.get("cls_token", "[CLS]"))
        self.sep_id = self.tokenizer.token_to_id(special.get("sep_token", "[SEP]"))
        self.session = session(graph)
        self.inputs = [i.name for i in self.session.get_inputs()]
        self.head_weight = head["head.weight"].astype(np.float32).reshape(-1)
        self.head_bias = float(head["head.bias"].reshape(-1)[0])
        self.fingerprint, self.backend = fingerprint, backend
        self.device, self.name, self.source = "cpu", self.kind, str(directory.resolve())

    @classmethod
    def load_if_exported(cls, path: str | Path, backend: str) -> "CrossJEMGraph | None":
        """The model at `path` on `backend` ('auto' is int8 on the CPU), or None where this cannot run it: the
        torch backend, an accelerator present ('auto' keeps torch there), position encodings (Appendix F, torch
        only), or no graph exported for these weights yet."""
        from safetensors import safe_open

        path = Path(path)
        if backend == "auto":
            backend = "torch" if gpu_present() else CPU_BACKEND
        config_file, weights = path / CONFIG_FILE, path / "model.safetensors"
        if backend not in ("onnx", "onnx-int8") or not config_file.is_file() or not weights.is_file():
            return None
        config = json.loads(config_file.read_text())
        if config.get("kind") != cls.kind or config.get("position_encoding"):
            return None
        with safe_open(weights, framework="numpy") as f:
            state = {k: f.get_tensor(k) for k in f.keys()}
        fingerprint = tensor_digest(state, cls.kind)  # the torch reranker's `fingerprint`: the same cached graph
        graph = cached_graph(f"{fingerprint}-encoder", backend)
        return None if graph is None else cls(path, graph, config, state, fingerprint, backend)

    def score_ids(self, query_ids: Sequence[np.ndarray], candidates: Sequence[Sequence[np.ndarray]]) -> list[np.ndarray]:
        candidates = [self.truncate_items(c) for c in candidates]
        sizes = [len(c) for c in candidates]
        offsets = np.cumsum([0] + sizes[:-1])
        flat = np.zeros(sum(sizes), np.float32)
        for start, chunk in self.list_chunks(candidates):
            groups = pack(query_ids, chunk, self.config["union_capacity"], self.cls_id, self.sep_id,
                          self.config["refine_groups"])
            for part in trimmed(batches(groups, self.batch_tokens, per_query=self.backend == "onnx-int8"),
                                 self.device):
                batch = collate(part, offsets + start)
                flat[batch.target] = self.logits(batch).ravel()[batch.slot]
        return split_by(flat, sizes)

    def logits(self, batch: Batch) -> np.ndarray:
        """[B, N] logits of every candidate slot of the batch (model.py's forward, projected before pooling)."""
        feeds = {"input_ids": batch.input_ids, "attention_mask": batch.attention_mask,
                 "token_type_ids": batch.token_type_ids}
        hidden = self.session.run(None, {k: feeds[k] for k in self.inputs})[0]
        projected = (hidden @ self.head_weight).astype(np.float64)                                 # [B, L]
        rows, length = projected.shape
        positions = np.arange(length)
        # Section 3.1 pools T_q, [SEP] and the item's tokens; [CLS] (position 0) is not among them.
        query_part = (positions >= 1) & (positions < batch.n_query[:, None])
        slots = batch.tok_row * batch.n_items + batch.tok_item
        n_slots = rows * batch.n_items
        sums = np.repeat((projected * query_part).sum(1), batch.n_items) + np.bincount(
            slots, weights=projected[batch.tok_row, batch.tok_col], minlength=n_slots)
        counts = np.repeat(batch.n_query - 1, batch.n_items) + np.bincount(slots, minlength=n_slots)
        return (sums / counts + self.head_bias).reshape(rows, batch.n_items)
