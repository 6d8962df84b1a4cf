"""Pointwise cross-encoder (monoBERT): scores each `[CLS] q [SEP] d [SEP]` pair from its [CLS] state.

CROSS-JEM's baseline and teacher. It gets the same care as CROSS-JEM: pre-tokenized ids, length-sorted batches
under a token budget, inference mode, bf16 on GPU, so speed ratios between the two are fair.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from .base import Reranker
from .scorer import length_batches, trimmed


class PointwiseNetwork(nn.Module):
    def __init__(self, encoder: nn.Module):
        super().__init__()
        self.encoder = encoder
        self.head = nn.Linear(encoder.config.hidden_size, 1)

    def forward(self, input_ids, attention_mask, token_type_ids) -> torch.Tensor:
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask,
                              token_type_ids=token_type_ids).last_hidden_state
        return self.head(hidden[:, 0]).squeeze(-1)


class PointwiseCrossEncoder(Reranker):
    kind = "pointwise"
    defaults: dict[str, Any] = {"max_query_tokens": 32, "max_item_tokens": 48, "max_batch_tokens": 16384}

    @classmethod
    def build_network(cls, encoder: nn.Module, config: dict[str, Any]) -> nn.Module:
        return PointwiseNetwork(encoder)

    def export_hf(self, path, pooler_scale: float = 1e-3) -> None:
        """Write this model as a Hugging Face `BertForSequenceClassification` directory (one logit), which
        sentence-transformers' `CrossEncoder` and `AutoModelForSequenceClassification` load as they are.

        That class scores tanh(W_p h + b_p) through its classifier, where this model reads h ([CLS]) directly:
        with W_p = s * I, b_p = 0 and the classifier divided by s, tanh(s h) / s = h (1 - (s h)^2 / 3 + ...), the
        same logits to about 1e-5 relative for s = 1e-3."""
        from transformers import AutoConfig, AutoModelForSequenceClassification

        config = AutoConfig.for_model(**{**self.network.encoder.config.to_dict(), "num_labels": 1})
        model = AutoModelForSequenceClassification.from_config(config)
        missing, unexpected = model.base_model.load_state_dict(self.network.encoder.state_dict(), strict=False)
        if unexpected or any(not k.startswith("pooler.") for k in missing):  # only the pooler is new
            raise ValueError(f"encoder does not map onto {type(model).__name__}: {missing + unexpected}")
        hidden = config.hidden_size
        with torch.no_grad():
            model.base_model.pooler.dense.weight.copy_(torch.eye(hidden) * pooler_scale)
            model.base_model.pooler.dense.bias.zero_()
            model.classifier.weight.copy_(self.network.head.weight / pooler_scale)
            model.classifier.bias.copy_(self.network.head.bias)
        model.save_pretrained(path, safe_serialization=True)
        self.tokenizer.save_pretrained(path)

    def pair_input(self, query: np.ndarray, item: np.ndarray) -> tuple[np.ndarray, int]:
        """The ids of `[CLS] q [SEP] d [SEP]` and where the second segment (token type 1) starts."""
        return (np.concatenate([[self.tokenizer.cls_token_id], query, [self.tokenizer.sep_token_id], item,
                                [self.tokenizer.sep_token_id]]), len(query) + 2)

    def logits(self, query_ids: Sequence[np.ndarray], candidates: Sequence[Sequence[np.ndarray]],
               max_batch_tokens: int | None = None) -> list[torch.Tensor]:
        pairs = [(q, j) for q, items in enumerate(candidates) for j in range(len(items))]
        inputs = [self.pair_input(query_ids[q], candidates[q][j]) for q, j in pairs]
        lengths = np.array([len(ids) for ids, _ in inputs])
        owners = np.array([q for q, _ in pairs]) if self.per_query_batches else None
        values, positions = [], []
        for idx in trimmed(length_batches(lengths, max_batch_tokens or self.batch_tokens, owners), self.device):
            width = int(lengths[idx[-1]])  # ascending: the last pair of a batch is its longest
            ids = np.zeros((len(idx), width), np.int64)
            types = np.zeros((len(idx), width), np.int64)
            mask = np.zeros((len(idx), width), np.int64)
            for row, p in enumerate(idx):
                seq, second = inputs[p]
                ids[row, : len(seq)] = seq
                mask[row, : len(seq)] = 1
                types[row, second: len(seq)] = 1
            t = lambda a: torch.from_numpy(a).to(self.device, non_blocking=True)  # noqa: E731
            values.append(self.network(t(ids), t(mask), t(types)))
            positions.append(torch.from_numpy(idx).to(self.device))
        return self.per_query(values, positions, [len(c) for c in candidates])
