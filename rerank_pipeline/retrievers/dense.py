"""Dense first stage: a sentence-transformers dual encoder over a FAISS index of normalised embeddings."""
from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Sequence

import numpy as np
from tokenizers import Tokenizer

from ..encoders import gpu_present, quiet_transformers, resolve_encoder, torch_device
from ..files import file_digest
from ..graphs.runtime import cached_graph, onnx_installed, session
from ..memory import Recent
from ..pipeline import Retriever
from ..types import Queries, Run

FAISS_KINDS = ("flat", "hnsw", "ivfpq")


@lru_cache(maxsize=4)
def load_dual_encoder(name_or_path: str | None = None):
    from sentence_transformers import SentenceTransformer

    quiet_transformers()
    return SentenceTransformer(resolve_encoder(name_or_path), device=torch_device())


def encode(texts: Sequence[str], encoder: str | None = None, batch_size: int = 128,
           show_progress: bool = False) -> np.ndarray:
    model = load_dual_encoder(encoder)
    emb = model.encode(list(texts), batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True,
                       show_progress_bar=show_progress)
    return np.ascontiguousarray(emb, dtype=np.float32)


_queries = Recent(4096)  # query embeddings remembered per process, by (encoder, text)
_query_runtime = {"backend": "auto"}


def use_query_backend(backend: str) -> str:
    """Where `encode_queries` runs the dual encoder, process-wide: 'torch' (sentence-transformers), or 'auto' (the
    default): ONNX Runtime fp32 on the CPU, without torch, wherever the graph is exported or the [onnx] extra can
    export it (the same embeddings to 1e-6). Returns the backend in use for the default encoder."""
    _query_runtime["backend"] = "torch" if backend == "torch" else "auto"
    return "onnx" if _on_onnx(None) else "torch"


def _on_onnx(encoder: str | None) -> bool:
    if _query_runtime["backend"] == "torch":
        return False
    fingerprint = _onnx_graph_key(encoder)
    return fingerprint is not None and (cached_graph(fingerprint, "onnx") is not None or onnx_installed())


@lru_cache(maxsize=8)
def _onnx_graph_key(encoder: str | None) -> str | None:
    """The encoder's graph key where ONNX Runtime can run it here, else None: decided once per process, not on
    every query (resolving a packaged encoder checks its files' digests)."""
    import importlib.util

    if gpu_present() or importlib.util.find_spec("onnxruntime") is None:
        return None
    return query_graph_fingerprint(resolve_encoder(encoder))


class SentenceGraph:
    """A sentence-transformers dual encoder without torch: its tokenizer (`tokenizers`), its transformer as an ONNX
    graph, and the pooling (mean or [CLS]) and normalisation its directory's modules.json names, in numpy. A CLI
    search encodes its query with this and never imports torch (importing it and sentence-transformers takes
    seconds); the embeddings equal sentence-transformers' to 1e-5 (tests/test_onnx.py)."""

    def __init__(self, directory: str | Path, graph: Path):
        directory = Path(directory)
        self.session = session(graph)
        self.inputs = [i.name for i in self.session.get_inputs()]
        self.tokenizer = Tokenizer.from_file(str(directory / "tokenizer.json"))  # its own copy: padding is set here
        settings = _json(directory / "sentence_bert_config.json")
        self.tokenizer.enable_truncation(settings.get("max_seq_length", 512))
        self.tokenizer.enable_padding(pad_id=self.tokenizer.token_to_id("[PAD]") or 0)
        modules = _json(directory / "modules.json", [])
        pooling = next((_json(directory / m["path"] / "config.json") for m in modules if m["type"].endswith("Pooling")),
                       {})
        self.cls = bool(pooling.get("pooling_mode_cls_token"))
        if not self.cls and not pooling.get("pooling_mode_mean_tokens", True):
            raise ValueError(f"{directory}: only mean or [CLS] pooling runs on ONNX Runtime; use the torch backend")
        self.normalize = any(m["type"].endswith("Normalize") for m in modules)

    def __call__(self, texts: Sequence[str], batch_size: int = 128) -> np.ndarray:
        out = []
        for start in range(0, len(texts), batch_size):
            encodings = self.tokenizer.encode_batch(list(texts[start:start + batch_size]))
            feeds = {"input_ids": [e.ids for e in encodings], "attention_mask": [e.attention_mask for e in encodings],
                     "token_type_ids": [e.type_ids for e in encodings]}
            feeds = {k: np.asarray(feeds[k], dtype=np.int64) for k in self.inputs}
            hidden = self.session.run(None, feeds)[0]
            if self.cls:
                pooled = hidden[:, 0]
            else:
                mask = np.asarray([e.attention_mask for e in encodings], dtype=np.float32)[..., None]
                pooled = (hidden * mask).sum(1) / np.maximum(mask.sum(1), 1e-9)
            if self.normalize:
                pooled = pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
            out.append(pooled)
        return np.ascontiguousarray(np.concatenate(out), dtype=np.float32)


def _json(path: Path, missing=None):
    return json.loads(path.read_text()) if path.is_file() else ({} if missing is None else missing)


def query_graph_fingerprint(directory: str | Path) -> str | None:
    """What the dual encoder's exported graph is cached under: its weights file's digest (readable without torch);
    None for weights not in safetensors (such an encoder stays on sentence-transformers)."""
    weights = Path(directory) / "model.safetensors"
    return "dual-" + file_digest(weights)[:16] if weights.is_file() else None


@lru_cache(maxsize=4)
def onnx_encoder(name_or_path: str | None = None) -> SentenceGraph:
    """The dual encoder on ONNX Runtime: the graph cached for its weights, exported first (with torch, once per
    weights, as rerankers' are) when there is none. One short query in 2.4 ms instead of 7.1 on 2 cores, where
    torch's per-layer overhead is most of the time."""
    directory = resolve_encoder(name_or_path)
    fingerprint = query_graph_fingerprint(directory)
    graph = cached_graph(fingerprint, "onnx")
    if graph is None:
        from ..graphs.export import TEXT_INPUTS, cached_model, encoder_part

        model = load_dual_encoder(name_or_path)
        preprocess = getattr(model, "preprocess", None) or model.tokenize  # `tokenize` is deprecated in newer releases
        part = encoder_part(model[0], "auto_model", tuple(k for k in TEXT_INPUTS if k in preprocess(["x"])))
        graph = cached_model(part, fingerprint, "onnx")
    return SentenceGraph(directory, graph)


@lru_cache(maxsize=8)
def query_prompt(encoder: str | None) -> str:
    """What the model prepends to queries (its sentence-transformers `prompts['query']`; '' for MiniLM)."""
    return _json(Path(resolve_encoder(encoder)) / "config_sentence_transformers.json").get("prompts", {}).get("query", "")


def encode_at_runtime(texts: Sequence[str], encoder: str | None = None, batch_size: int = 128) -> np.ndarray:
    """`texts` encoded on the query backend (use_query_backend): ONNX Runtime on the CPU, without torch, where the
    graph is exported or can be; sentence-transformers otherwise. What searches and rerank requests encode with
    (queries, and candidates no index holds); index builds use `encode`."""
    return onnx_encoder(encoder)(list(texts), batch_size) if _on_onnx(encoder) else encode(texts, encoder, batch_size)


def encode_queries(texts: Sequence[str], encoder: str | None = None, batch_size: int = 128) -> np.ndarray:
    """`encode` for query texts, remembering the last 4096 of them: a pipeline that retrieves densely and
    then reads the same cosine as a reranking feature (the default one) encodes each query once, not twice."""
    if not len(texts):
        return encode([], encoder, batch_size)
    known = {t: v for t in dict.fromkeys(texts) for v in [_queries.get((encoder, t))] if v is not None}
    missing = [t for t in dict.fromkeys(texts) if t not in known]
    if missing:
        prompted = [query_prompt(encoder) + t for t in missing]  # e.g. bge's instruction for short queries
        known.update(zip(missing, encode_at_runtime(prompted, encoder, batch_size)))
        for text in missing:
            _queries.put((encoder, text), known[text])
    return np.stack([known[t] for t in texts])


GPU_KINDS = ("flat", "ivfpq")  # FAISS has GPU versions of these; HNSW stays on the CPU


def faiss_gpus() -> int:
    """GPUs FAISS can use: 0 with faiss-cpu, without a GPU, or with RERANK_FAISS_GPU=0."""
    import os

    import faiss

    if os.environ.get("RERANK_FAISS_GPU") == "0" or not hasattr(faiss, "StandardGpuResources"):
        return 0
    return faiss.get_num_gpus()


def _gpu_capable(index, kind: str) -> bool:
    return kind in GPU_KINDS and bool(faiss_gpus()) and (kind == "flat" or index.pq.nbits == 8)


def to_gpu(index, kind: str):
    """The index on every GPU FAISS sees (flat, 8-bit IVF-PQ; the [gpu] extra), else unchanged."""
    import faiss

    return faiss.index_cpu_to_all_gpus(index) if _gpu_capable(index, kind) else index


def build_faiss(embeddings: np.ndarray, kind: str = "flat"):
    """Inner product on normalised vectors (= cosine). flat is exact; hnsw and ivfpq trade recall for speed.
    Flat and IVF-PQ (8-bit codes, what GPU FAISS supports) train and add on the GPU when FAISS has one; the result
    is a CPU index either way, so the file on disk is the same."""
    import faiss

    n, dim = embeddings.shape
    if kind == "flat":
        index = faiss.IndexFlatIP(dim)
    elif kind == "hnsw":
        index = faiss.IndexHNSWFlat(dim, 32, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = 200
        index.hnsw.efSearch = 128
    elif kind == "ivfpq":
        # k-means wants ~39 training points per list; PQ codebooks want >= 2^nbits points.
        nlist = max(1, min(int(4 * np.sqrt(n)), n // 39))
        nbits = 8 if n >= 256 * 39 else 4
        m = next(m for m in (48, 32, 24, 16, 12, 8, 4, 2, 1) if dim % m == 0)
        index = faiss.IndexIVFPQ(faiss.IndexFlatIP(dim), dim, nlist, m, nbits, faiss.METRIC_INNER_PRODUCT)
        index.nprobe = min(nlist, 16)
    else:
        raise ValueError(f"unknown FAISS index '{kind}' (use one of {', '.join(FAISS_KINDS)})")
    on_gpu = _gpu_capable(index, kind)
    if on_gpu:
        index = faiss.index_cpu_to_all_gpus(index)
    if not index.is_trained:
        index.train(embeddings)
    index.add(embeddings)
    return faiss.index_gpu_to_cpu(index) if on_gpu else index


def write_faiss(index, path: Path) -> None:
    import faiss

    faiss.write_index(index, str(path))


def read_faiss(path: Path):
    import faiss

    return faiss.read_index(str(path))


class Dense(Retriever):
    def __init__(self, index, k: int = 1000, batch_size: int = 128):
        self.index, self.k, self.batch_size = index, k, batch_size
        self.name = "dense"

    def transform(self, queries: Queries, run: Run | None = None) -> Run:
        faiss_index = self.index.faiss_index()
        qids = list(queries)
        emb = encode_queries([queries[q] for q in qids], self.index.manifest["dense"]["encoder"], self.batch_size)
        scores, ids = faiss_index.search(emb, min(self.k, faiss_index.ntotal))
        store = self.index.docstore
        return Run.from_arrays(qids, ids.astype(np.int64), scores, store.docids, store.tie_rank, store)
