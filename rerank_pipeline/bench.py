"""Reranker speed: CROSS-JEM and MICE against the pointwise cross-encoder on the same encoder and candidate lists.

Candidate lists are real retrieval output: BM25 (bm25s) top-N over a short-text corpus (a real one with `corpus`,
else synthetic titles), so candidates share vocabulary the way first-stage results do. Each query is scored alone (per-query latency, as in serving),
the two models interleaved, and the median of the repeats is reported with the ratio from the same run.
"""
from __future__ import annotations

import copy
import statistics
import time
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from .demo import synthetic_titles
from .encoders import tokenize_ids
from .rerankers import MICE, CrossJEM, PointwiseCrossEncoder
from .rerankers.crossjem.packing import pack


@dataclass
class BenchRow:
    n_items: int
    device: str
    backend: str              # what runs the transformers of CROSS-JEM, pointwise and MICE (ST CE: torch)
    queries: int
    crossjem_ms: float
    pointwise_ms: float
    peer_ms: float            # sentence-transformers CrossEncoder, same weights as pointwise, tokenization included
    packing_ms: float         # CROSS-JEM's CPU-side packing alone (part of crossjem_ms)
    mice_ms: float            # MICE with the documents' states stored at index time (query side + interaction)
    mice_fly_ms: float        # MICE computing the document states too (no stored states)
    crossjem_offline: float   # candidate scores/s with every query's list in one call (offline throughput)
    pointwise_offline: float
    crossjem_peak_mb: float   # peak device memory of that offline call (CUDA only; NaN on the CPU)
    pointwise_peak_mb: float
    groups_per_query: float
    union_tokens: float
    item_tokens: float
    crossjem_list_tokens: float   # encoder tokens per list: every group's [CLS] q [SEP] + union
    pointwise_list_tokens: float  # ... and every pair's [CLS] q [SEP] d [SEP]

    @property
    def baseline_ms(self) -> float:
        """The stronger pointwise baseline: ours or sentence-transformers', whichever was faster here."""
        return min(self.pointwise_ms, self.peer_ms)

    @property
    def speedup(self) -> float:
        return self.baseline_ms / self.crossjem_ms

    @property
    def mice_speedup(self) -> float:
        return self.baseline_ms / self.mice_ms


def candidate_lists(n_items: int, n_queries: int, corpus: Sequence[str] | None = None,
                    seed: int = 0) -> tuple[list[str], list[list[str]]]:
    """BM25 top-n lists for n_queries queries (the first words of random corpus items) over `corpus`
    (default: 20k synthetic titles, whose small vocabulary makes unions unrealistically small)."""
    import random

    import bm25s

    corpus = list(corpus) if corpus is not None else synthetic_titles(20000, seed)
    retriever = bm25s.BM25()
    retriever.index(bm25s.tokenize(corpus, show_progress=False), show_progress=False)
    queries = [" ".join(t.split()[:3]) for t in random.Random(seed + 1).sample(corpus, n_queries)]
    ids, _ = retriever.retrieve(bm25s.tokenize(queries, show_progress=False), k=n_items, show_progress=False)
    return queries, [[corpus[i] for i in row] for row in ids]


def pointwise_twin(crossjem: CrossJEM) -> PointwiseCrossEncoder:
    """The pointwise model on a copy of CROSS-JEM's encoder: the same depth and weights, whatever the encoder, so a
    speed ratio compares the two scoring schemes and nothing else."""
    network = PointwiseCrossEncoder.build_network(copy.deepcopy(crossjem.network.encoder),
                                                  PointwiseCrossEncoder.defaults)
    return PointwiseCrossEncoder(network, crossjem.tokenizer, {}, crossjem.device)


def pair_tokens(pointwise: PointwiseCrossEncoder, query: np.ndarray, items: Sequence[np.ndarray]) -> int:
    """Encoder tokens the pointwise model reads for one list: every pair's [CLS] q [SEP] d [SEP]."""
    return sum(len(pointwise.pair_input(query, t)[0]) for t in pointwise.truncate_items(items))


def median_seconds(fn, repeats: int) -> float:
    """The median wall time of `repeats` calls (CUDA synchronised around each): what every timing here reports."""
    times = []
    for _ in range(repeats):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        t = time.perf_counter()
        fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def _offline(model, query_ids, items) -> tuple[float, float]:
    """Candidate scores/s with every list in one call, and that call's peak device memory in MiB (CUDA only)."""
    cuda = model.device.startswith("cuda")
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    rate = sum(len(c) for c in items) / median_seconds(lambda: model.score_ids(query_ids, items), 1)
    return rate, torch.cuda.max_memory_allocated() / 2 ** 20 if cuda else float("nan")


def _peer(pointwise: PointwiseCrossEncoder, tmp: str):
    """sentence-transformers' CrossEncoder over the pointwise model's own weights (the peer users would pick)."""
    from sentence_transformers import CrossEncoder

    pointwise.export_hf(tmp)
    max_length = pointwise.config["max_query_tokens"] + pointwise.config["max_item_tokens"] + 3
    return CrossEncoder(tmp, max_length=max_length, device=pointwise.device)


def _mice_stored(mice: MICE, q, items):
    """MICE as served from an index with stored states: the documents' layer-m states are an input."""
    with torch.inference_mode(), mice.autocast():
        states = [s.half() for s in mice.document_states(mice.truncate_items(items))]

    def score():
        with torch.inference_mode(), mice.autocast():
            q_states, q_mask = mice.query_states([q])
            return mice.interact(q_states, q_mask, [states])
    return score


def run_bench(sizes: Sequence[int] = (100, 700), queries: int = 5, repeats: int = 3, device: str | None = None,
              model_dir: str | None = None, corpus: Sequence[str] | None = None,
              mice_dir: str | None = None, backend: str = "torch") -> list[BenchRow]:
    """Without model directories the models are fresh heads on MiniLM (speed does not depend on the weights); MICE
    is then cut from the pointwise model with its default layers. `backend` runs the transformers of CROSS-JEM, the
    pointwise model and MICE (ONNX backends on the CPU); the peer stays on torch."""
    import tempfile

    from .rerankers.base import device_for_backend

    device = device_for_backend(backend, device)
    crossjem = CrossJEM.load(model_dir, device) if model_dir else CrossJEM.from_encoder(device=device)
    pointwise = pointwise_twin(crossjem)
    with tempfile.TemporaryDirectory() as tmp:
        peer = _peer(pointwise, tmp)
        pointwise.save(tmp)
        mice = MICE.load(mice_dir, crossjem.device) if mice_dir else MICE.from_teacher(
            tmp, device=crossjem.device, max_item_tokens=pointwise.config["max_item_tokens"])
    for model in (crossjem, pointwise, mice):
        model.with_backend(backend)
    rows = []
    for n in sizes:
        texts, lists = candidate_lists(n, queries, corpus)
        q_ids = crossjem.tokenize_queries(texts)
        items = [tokenize_ids(crossjem.tokenizer, l) for l in lists]
        # Tokenization happens at index time in the pipeline: time the models on token ids only.
        for q, c in zip(q_ids[:1], items[:1]):  # warm-up
            crossjem.score_ids([q], [c]), pointwise.score_ids([q], [c]), mice.score_ids([q], [c])
        peer.predict([(texts[0], d) for d in lists[0]], batch_size=128, show_progress_bar=False)
        cj, pw, st, pk, mi, mf = [], [], [], [], [], []
        packed = lambda q, c: pack([q], [crossjem.truncate_items(c)], crossjem.config["union_capacity"],  # noqa: E731
                                   crossjem.tokenizer.cls_token_id, crossjem.tokenizer.sep_token_id,
                                   crossjem.config["refine_groups"])
        for q, c, text, docs in zip(q_ids, items, texts, lists):
            cj.append(median_seconds(lambda: crossjem.score_ids([q], [c]), repeats))
            pw.append(median_seconds(lambda: pointwise.score_ids([q], [c]), repeats))
            st.append(median_seconds(lambda: peer.predict([(text, d) for d in docs], batch_size=128,
                                                 show_progress_bar=False), repeats))
            pk.append(median_seconds(lambda: packed(q, c), repeats))
            stored = _mice_stored(mice, q, c)
            mi.append(median_seconds(stored, repeats))
            mf.append(median_seconds(lambda: mice.score_ids([q], [c]), repeats))
        groups = [packed(q, c) for q, c in zip(q_ids, items)]
        (cj_rate, cj_peak), (pw_rate, pw_peak) = (_offline(m, q_ids, items) for m in (crossjem, pointwise))
        rows.append(BenchRow(
            n, crossjem.device, backend, len(q_ids), 1000 * statistics.median(cj), 1000 * statistics.median(pw),
            1000 * statistics.median(st), 1000 * statistics.median(pk), 1000 * statistics.median(mi),
            1000 * statistics.median(mf), cj_rate, pw_rate, cj_peak, pw_peak,
            float(np.mean([len(g) for g in groups])),
            float(np.mean([len(x.input_ids) - x.n_query for g in groups for x in g])),
            float(np.mean([len(t) for c in items for t in c])),
            float(np.mean([sum(len(x.input_ids) for x in g) for g in groups])),
            float(np.mean([pair_tokens(pointwise, q, c) for q, c in zip(q_ids, items)])),
        ))
    return rows
