"""Any Hugging Face cross-encoder: a sentence-transformers `CrossEncoder` or `AutoModelForSequenceClassification`
directory (e.g. a downloaded cross-encoder/ms-marco-MiniLM-L6-v2), scored with the pointwise family's batching.

Weights load only from safetensors. A Hub id is fetched only when the user allows network access
(HF_HUB_OFFLINE=0 in the environment); otherwise the id must be a local directory.
"""
from __future__ import annotations

import copy
import json
import os
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..encoders import quiet_transformers
from .base import device_for_backend
from .pointwise import PointwiseCrossEncoder


def hf_architectures(path: Path) -> list[str]:
    """The model classes a Hugging Face directory's config.json names (none if it has no readable one)."""
    try:
        return json.loads((path / "config.json").read_text()).get("architectures") or []
    except (OSError, ValueError):
        return []


class SequenceClassifier(nn.Module):
    """(ids, mask, types) -> one relevance logit per pair: the single logit, or positive minus negative for two."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model
        self.takes_types = model.config.type_vocab_size > 1 if hasattr(model.config, "type_vocab_size") else False

    def forward(self, input_ids, attention_mask, token_type_ids) -> torch.Tensor:
        extra = {"token_type_ids": token_type_ids} if self.takes_types else {}
        logits = self.model(input_ids=input_ids, attention_mask=attention_mask, **extra).logits
        return logits[:, 0] if logits.shape[-1] == 1 else logits[:, -1] - logits[:, 0]


class HFCrossEncoder(PointwiseCrossEncoder):
    kind = "hf-cross-encoder"
    defaults: dict[str, Any] = {"max_query_tokens": 64, "max_item_tokens": 440, "max_batch_tokens": 16384}

    @classmethod
    def recognizes(cls, path: Path) -> bool:
        """A Hugging Face directory of a sequence-classification model."""
        return any(a.endswith("ForSequenceClassification") for a in hf_architectures(path))

    @classmethod
    def load(cls, path: str | Path, device: str | None = None, backend: str = "torch") -> "HFCrossEncoder":
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        local = Path(path).is_dir()
        if not local and os.environ.get("HF_HUB_OFFLINE", "1") != "0":
            raise FileNotFoundError(f"{path} is not a local model directory; to download it from the Hugging Face "
                                    "Hub, allow network access with HF_HUB_OFFLINE=0")
        if local and not (Path(path) / "model.safetensors").is_file():
            raise FileNotFoundError(f"{Path(path) / 'model.safetensors'} missing: cross-encoders load only from "
                                    "safetensors (convert pickled weights with "
                                    "`save_pretrained(safe_serialization=True)`)")
        quiet_transformers()
        model = AutoModelForSequenceClassification.from_pretrained(str(path), use_safetensors=True)
        tokenizer = AutoTokenizer.from_pretrained(str(path))
        longest = min(getattr(model.config, "max_position_embeddings", 512), tokenizer.model_max_length, 512)
        config = {**cls.defaults, "max_item_tokens": longest - cls.defaults["max_query_tokens"] - 4}
        reranker = cls(SequenceClassifier(model), tokenizer, config, device_for_backend(backend, device))
        reranker.source = str(path)
        return reranker.with_backend(backend)

    def onnx_parts(self):
        from ..graphs.export import TEXT_INPUTS, encoder_part

        return [encoder_part(self.network, "model", TEXT_INPUTS if self.network.takes_types else TEXT_INPUTS[:2],
                             "logits")]

    @cached_property
    def _pair_template(self) -> tuple[list[int], list[int], list[int], int]:
        """The tokenizer's pair layout (BERT, RoBERTa, ELECTRA, XLM-R ... differ), read off one encoded pair:
        special ids before, between and after the two texts, and where token type 1 starts within the middle."""
        first, second = (self.tokenizer(t, add_special_tokens=False)["input_ids"] for t in ("hello", "world"))
        enc = self.tokenizer("hello", "world", return_token_type_ids=True)
        ids, types = enc["input_ids"], enc.get("token_type_ids") or [0] * len(enc["input_ids"])
        i = next(k for k in range(len(ids)) if ids[k:k + len(first)] == first)
        j = next(k for k in range(i + len(first), len(ids)) if ids[k:k + len(second)] == second)
        type_start = next((k for k, t in enumerate(types) if t), len(ids)) - (i + len(first))
        return ids[:i], ids[i + len(first):j], ids[j + len(second):], type_start

    def pair_input(self, query: np.ndarray, item: np.ndarray) -> tuple[np.ndarray, int]:
        before, middle, after, type_start = self._pair_template
        ids = np.concatenate([before, query, middle, item, after]).astype(np.int64)
        return ids, min(len(before) + len(query) + type_start, len(ids))

    def save(self, path: str | Path, fp16: bool = False) -> None:
        self.require_torch("save")
        """A plain Hugging Face directory again (safetensors), loadable here and by sentence-transformers."""
        model = copy.deepcopy(self.network.model).half() if fp16 else self.network.model
        model.save_pretrained(path, safe_serialization=True)
        self.tokenizer.save_pretrained(path)
