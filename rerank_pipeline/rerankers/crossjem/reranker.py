"""CROSS-JEM as a torch reranker: loading, training, scoring on torch or with its encoder on ONNX Runtime."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from ..base import Reranker
from ..scorer import trimmed
from .model import CrossJEMNetwork, on_device
from .packing import batches, collate, pack
from .runtime import CPU_BACKEND, DEFAULTS

DEFAULT_MODEL_DIR = Path(__file__).resolve().parents[2] / "models" / "crossjem-minilm-l6"


class CrossJEM(Reranker):
    kind = "crossjem"
    cpu_backend = CPU_BACKEND
    defaults = DEFAULTS

    @classmethod
    def build_network(cls, encoder: torch.nn.Module, config: dict[str, Any]) -> torch.nn.Module:
        return CrossJEMNetwork(encoder, position_encoding=config["position_encoding"],
                               max_item_tokens=config["max_item_tokens"])

    @classmethod
    def default(cls, device: str | None = None) -> "CrossJEM":
        if not (DEFAULT_MODEL_DIR / "model.safetensors").is_file():
            raise FileNotFoundError(
                "no CROSS-JEM model ships with this version (none has passed the quality gate yet, "
                "benchmarks/ship_default.py); train one with benchmarks/train_default.sh and pass its directory")
        return cls.load(DEFAULT_MODEL_DIR, device)

    def logits(self, query_ids: Sequence[np.ndarray], candidates: Sequence[Sequence[np.ndarray]],
               max_batch_tokens: int | None = None) -> list[torch.Tensor]:
        """Lists longer than `chunk_items` are packed (grouped) and encoded that many candidates at a time: the
        grouping's tables grow with items x vocabulary."""
        sizes = [len(c) for c in candidates]
        offsets = np.cumsum([0] + sizes[:-1])
        values, targets = [], []
        for start, chunk in self.list_chunks(candidates):
            groups = pack(query_ids, chunk, self.config["union_capacity"], self.tokenizer.cls_token_id,
                          self.tokenizer.sep_token_id, self.config["refine_groups"])
            for part in trimmed(batches(groups, max_batch_tokens or self.batch_tokens,
                                         per_query=self.backend == "onnx-int8"), self.device):
                batch = on_device(collate(part, offsets + start), self.device)
                values.append(self.network(batch).flatten()[batch.slot])
                targets.append(batch.target)
        return self.per_query(values, targets, sizes)
