"""ONNX Runtime without torch: sessions and the cache of exported graphs. The search path (a CLI search, a
server's first request) runs its models through here alone; exporting a graph needs torch (export.py) and happens
once per weights.

Graphs are cached under `~/.cache/rerank-pipeline/onnx/<fingerprint>.v<format>/` (`RERANK_CACHE` moves it), keyed
by the weights they were exported from and the export format, so changed weights or a changed export get a fresh
export, and a model directory that cannot be written to (the shipped model, inside the package) works the same.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

from .. import files
from ..extras import require

BACKENDS = ("torch", "onnx", "onnx-int8", "auto")  # auto: each family's `cpu_backend` on the CPU (rerankers/onnx.py)
FILES = {"onnx": "model.onnx", "onnx-int8": "model.int8.onnx"}
# 2: attention traced eager (export.py), not through SDPA; a graph of an earlier format is exported again
GRAPH_FORMAT = 2


def cache_root() -> Path:
    return files.cache_root() / "onnx"


def graph_dir(fingerprint: str) -> Path:
    """Where the graphs of these weights (fp32 and int8) are kept."""
    return cache_root() / f"{fingerprint}.v{GRAPH_FORMAT}"


def cached_graph(fingerprint: str, backend: str) -> Path | None:
    """The cached graph of `backend` for these weights, None until it has been exported."""
    path = graph_dir(fingerprint) / FILES[backend]
    return path if path.is_file() else None


def require_onnxruntime():
    return require("onnxruntime", "onnx", "an onnx backend")


def cpu_threads() -> int:
    """Threads per session: torch's count when torch is loaded (backends then compare on equal threads), else the
    cores this process may use (what torch would pick)."""
    torch = sys.modules.get("torch")
    return torch.get_num_threads() if torch is not None else len(os.sched_getaffinity(0))


def session(path: Path):
    """An ONNX Runtime CPU session that does not spin between runs."""
    ort = require_onnxruntime()
    options = ort.SessionOptions()
    options.intra_op_num_threads = cpu_threads()
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    # Idle ONNX Runtime threads spin by default, taking the cores from torch's (the dense query encoder, the
    # pooling) between runs: on 2 cores a demo search went from 57 to 35 ms without it, long lists no slower.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def onnx_installed() -> bool:
    """ONNX Runtime and the exporter (the [onnx] extra) are importable."""
    import importlib.util

    return all(importlib.util.find_spec(name) for name in ("onnxruntime", "onnx", "onnxscript"))
