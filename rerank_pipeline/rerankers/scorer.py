"""What every reranking stage does around its model, without torch: the candidates' token ids in, one score per
candidate out, batched and chunked. `Reranker` (base.py) adds the torch network, loading and training; the
search path's ONNX Runtime scorers (crossjem/runtime.py) use this alone, so a CLI search imports no torch.
"""
from __future__ import annotations

from typing import Any, Iterable, Iterator, Sequence

import numpy as np

from ..documents import TextDocs
from ..encoders import tokenize_ids
from ..pipeline import Stage
from ..types import DocSource, Queries, QueryInput, Run, as_queries, split_by

CPU_BATCH_TOKENS = 2048
TRIM_EVERY = 4  # batches between trims (trimmed): every batch bounds a little lower and costs ~6% more time


class Scorer(Stage):
    """Scores each query's candidates. Subclasses set `config`, `tokenizer`, `device`, `name`, `source` and
    `backend`, and implement `score_ids`."""

    kind: str = "reranker"
    defaults: dict[str, Any] = {}
    # Candidates of one list handled together at most, where a family holds more than a batch of them at once
    # (CROSS-JEM's packing, MICE's document states): a call's memory then stays bounded however long the lists.
    chunk_items = 1024
    config: dict[str, Any]
    device: str
    tokenizer: Any

    def list_chunks(self, candidates: Sequence[Sequence[np.ndarray]]):
        """(start, every list's candidates start .. start + chunk_items) until the longest list is covered."""
        for start in range(0, max(map(len, candidates), default=0), self.chunk_items):
            yield start, [c[start:start + self.chunk_items] for c in candidates]

    @property
    def batch_tokens(self) -> int:
        """Padded tokens per encoder batch: the config's on an accelerator, at most CPU_BATCH_TOKENS on the CPU,
        where smaller batches run faster (700 titles, pointwise, 2 cores: 2.3 s at 16,384, 1.6 s at 2,048)."""
        budget = self.config["max_batch_tokens"]
        return budget if not self.device.startswith("cpu") else min(budget, CPU_BATCH_TOKENS)

    def tokenize_queries(self, texts: Sequence[str]) -> list[np.ndarray]:
        return tokenize_ids(self.tokenizer, texts, self.config["max_query_tokens"])

    @property
    def per_query_batches(self) -> bool:
        """Whether batches must not mix queries (int8 graphs: `length_batches`)."""
        return getattr(self, "backend", "torch") == "onnx-int8"

    def truncate_items(self, items: Sequence[np.ndarray]) -> list[np.ndarray]:
        n = self.config["max_item_tokens"]
        return [np.asarray(t[:n], dtype=np.int64) for t in items]

    def score_ids(self, query_ids: Sequence[np.ndarray], candidates: Sequence[Sequence[np.ndarray]]) -> list[np.ndarray]:
        """One score array per query (its candidates in order), from word-piece ids without special tokens."""
        raise NotImplementedError

    def transform(self, queries: Queries, run: Run | None = None) -> Run:
        qids, docids, texts = self.candidates(queries, run)
        return Run.from_scores(qids, docids, self.score_docs(texts, docids, run.docs), run.docs)

    def score_docs(self, query_texts: Sequence[str], docids: Sequence[Sequence[str]],
                   docs: DocSource) -> list[np.ndarray]:
        """Scores of each query's documents (ids in `docs`), reading stored token ids where the index has them."""
        tokens = docs.token_ids([d for ds in docids for d in ds], self.tokenizer)
        return self.score_ids(self.tokenize_queries(query_texts), split_by(tokens, map(len, docids)))

    def rerank(self, queries: QueryInput, run: Run, docs: DocSource | dict[str, str] | None = None) -> Run:
        """Rescore a candidate run (e.g. read from a TREC file); `docs` maps doc ids to text if the run has none."""
        if docs is not None:
            run = Run.from_sorted(run.rankings, docs if not isinstance(docs, dict) else TextDocs(docs))
        return self.transform(as_queries(queries), run)


_libc_trim = None


def trimmed(batches: Iterable, device: str, every: int = TRIM_EVERY) -> Iterator:
    """`batches`, handing the heap's freed memory back to the OS every `every` batches on the CPU. glibc keeps
    what a batch frees, and batches of varying shapes fragment it: without this, scoring 4,000 DL19 passages grew a
    process by 400 MiB whatever the token budget (benchmarks/results/memory.md). No-op without glibc."""
    global _libc_trim
    if _libc_trim is None:
        import ctypes

        try:
            _libc_trim = ctypes.CDLL("libc.so.6").malloc_trim
        except (OSError, AttributeError):
            _libc_trim = False
    for i, batch in enumerate(batches, 1):
        yield batch
        if _libc_trim and device.startswith("cpu") and i % every == 0:
            _libc_trim(0)


def budget_batches(sorted_lengths: Sequence[int], budget: int):
    """Index ranges over ascending lengths whose padded size (count x longest) stays within `budget` tokens."""
    start = 0
    while start < len(sorted_lengths):
        end = start + 1
        while end < len(sorted_lengths) and sorted_lengths[end] * (end - start + 1) <= budget:
            end += 1
        yield np.arange(start, end)
        start = end


def length_batches(lengths: np.ndarray, budget: int, owners: np.ndarray | None = None) -> Iterator[np.ndarray]:
    """Positions of the items, batched by ascending length under `budget` padded tokens. With `owners` (each
    item's query) no batch mixes queries: dynamic int8 scales a batch's activations by its largest value, so a mixed
    batch would make one query's scores depend on the queries it happened to be scored with."""
    lengths = np.asarray(lengths)
    groups = [np.arange(len(lengths))] if owners is None else [np.flatnonzero(owners == q) for q in np.unique(owners)]
    for group in groups:
        order = group[np.argsort(lengths[group], kind="stable")]
        for idx in budget_batches(lengths[order], budget):
            yield order[idx]
