"""LLM rerankers in the Qwen3-Reranker style: a causal language model reads a prompt holding the query and one
document and scores the pair by logit("yes") - logit("no") at the prompt's last position.

Loaded from a local directory (safetensors only) like `hf.py` loads cross-encoders; the prompt template comes from
`rerank_prompt.json` in that directory, or from YAML (`prompt:`), or is Qwen3-Reranker's own. Pairs are batched by
length under a token budget, with the pointwise family's batching.
"""
from __future__ import annotations

import copy
import json
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .base import device_for_backend
from .hf import hf_architectures
from .pointwise import PointwiseCrossEncoder

PROMPT_FILE = "rerank_prompt.json"
QWEN3_PROMPT = {
    "template": ("<|im_start|>system\nJudge whether the Document meets the requirements based on the Query and the "
                 "Instruct provided. Note that the answer can only be \"yes\" or \"no\".<|im_end|>\n<|im_start|>user\n"
                 "<Instruct>: Given a web search query, retrieve relevant passages that answer the query\n"
                 "<Query>: {query}\n<Document>: {document}<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n"),
    "yes": "yes",
    "no": "no",
}


class YesNoScorer(nn.Module):
    """(ids, mask) -> logit(yes) - logit(no) at each sequence's last real token."""

    def __init__(self, model: nn.Module, yes_id: int, no_id: int):
        super().__init__()
        self.model, self.yes_id, self.no_id = model, yes_id, no_id

    def forward(self, input_ids, attention_mask, token_type_ids=None) -> torch.Tensor:
        logits = self.model(input_ids=input_ids, attention_mask=attention_mask).logits
        last = logits[torch.arange(len(input_ids), device=logits.device), attention_mask.sum(1) - 1]
        return (last[:, self.yes_id] - last[:, self.no_id]).float()


class LLMReranker(PointwiseCrossEncoder):
    kind = "llm-reranker"
    defaults: dict[str, Any] = {"max_query_tokens": 64, "max_item_tokens": 256, "max_batch_tokens": 8192}

    @classmethod
    def recognizes(cls, path: Path) -> bool:
        """A Hugging Face directory of a causal language model."""
        return any(a.endswith("ForCausalLM") for a in hf_architectures(path))

    @classmethod
    def load(cls, path: str | Path, device: str | None = None, backend: str = "torch",
             prompt: dict[str, str] | None = None) -> "LLMReranker":
        from transformers import AutoModelForCausalLM, AutoTokenizer

        path = Path(path)
        if not (path / "model.safetensors").is_file():
            raise FileNotFoundError(f"{path / 'model.safetensors'} missing: LLM rerankers load only from safetensors")
        if prompt is None:
            prompt = json.loads((path / PROMPT_FILE).read_text()) if (path / PROMPT_FILE).is_file() else QWEN3_PROMPT
        tokenizer = AutoTokenizer.from_pretrained(str(path))
        template, ids = check_prompt(prompt, tokenizer, f"{path} prompt")
        model = AutoModelForCausalLM.from_pretrained(str(path), use_safetensors=True)
        config = {**cls.defaults, "prompt": {**prompt, "template": template}}
        reranker = cls(YesNoScorer(model, *ids), tokenizer, config, device_for_backend(backend, device))
        reranker.source = str(path)
        return reranker.with_backend(backend)

    @classmethod
    def from_spec(cls, spec) -> "LLMReranker":
        return cls.load(spec.model, backend=spec.backend or "torch", prompt=spec.prompt)

    def onnx_parts(self):
        return []  # a causal LM's full logits would be exported; not worth it for a reranker of this kind

    def save(self, path: str | Path, fp16: bool = False) -> None:
        self.require_torch("save")
        model = copy.deepcopy(self.network.model).half() if fp16 else self.network.model  # the live one stays
        model.save_pretrained(path, safe_serialization=True)
        self.tokenizer.save_pretrained(path)
        (Path(path) / PROMPT_FILE).write_text(json.dumps(self.config["prompt"], indent=2))

    @cached_property
    def _segments(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The template's token ids before the query, between query and document, and after the document."""
        template = self.config["prompt"]["template"]
        before, rest = template.split("{query}")
        middle, after = rest.split("{document}")
        return tuple(np.asarray(self.tokenizer(t, add_special_tokens=False)["input_ids"], np.int64)
                     for t in (before, middle, after))

    def pair_input(self, query: np.ndarray, item: np.ndarray) -> tuple[np.ndarray, int]:
        """The prompt's ids for one pair (no token types: the second value only satisfies the pointwise batching)."""
        before, middle, after = self._segments
        return np.concatenate([before, query, middle, item, after]), 0


def check_prompt(prompt: Any, tokenizer, where: str) -> tuple[str, tuple[int, int]]:
    """The template (with {query} before {document}, each once) and the single-token ids of the yes and no words."""
    if not isinstance(prompt, dict) or not isinstance(prompt.get("template"), str):
        raise ValueError(f"{where}: expected {{template, yes, no}} with a string template")
    template = prompt["template"]
    if template.count("{query}") != 1 or template.count("{document}") != 1 or \
            template.index("{query}") > template.index("{document}"):
        raise ValueError(f"{where}: the template must hold {{query}} and then {{document}}, once each")
    ids = []
    for word in (prompt.get("yes", "yes"), prompt.get("no", "no")):
        pieces = tokenizer(word, add_special_tokens=False)["input_ids"]
        if len(pieces) != 1:
            raise ValueError(f"{where}: {word!r} is {len(pieces)} tokens for this tokenizer; it must be one")
        ids.append(pieces[0])
    return template, tuple(ids)
