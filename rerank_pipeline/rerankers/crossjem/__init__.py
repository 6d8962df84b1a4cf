"""CROSS-JEM (Paliwal, Saini et al.): joint scoring of a whole candidate list in one encoder pass."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from ..base import Reranker, trimmed
from .model import CrossJEMNetwork
from .packing import batches, collate, pack

DEFAULT_MODEL_DIR = Path(__file__).resolve().parents[2] / "models" / "crossjem-minilm-l6"


class CrossJEM(Reranker):
    kind = "crossjem"
    # int8 keeps the shipped combination's quality (benchmarks/results/backend_quality_shipped.md) at 1.4-1.9x speed
    cpu_backend = "onnx-int8"
    defaults: dict[str, Any] = {
        "max_query_tokens": 32,
        "max_item_tokens": 48,
        "union_capacity": 256,       # L_u; the paper uses 242-360
        # packing.group_candidates: local search after the greedy grouping; 15% fewer union tokens on WikiQA
        # sentences, dev quality equal or better (benchmarks/results/grouping_quality.md)
        "refine_groups": True,
        "position_encoding": False,  # Appendix F
        "max_batch_tokens": 16384,   # padded tokens per encoder batch
    }

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
            for part in trimmed(batches(groups, max_batch_tokens or self.batch_tokens), self.device):
                batch = collate(part, offsets + start).to(self.device)
                values.append(self.network(batch).flatten()[batch.slot])
                targets.append(batch.target)
        return self.per_query(values, targets, sizes)
