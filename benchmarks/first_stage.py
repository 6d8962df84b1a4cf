"""Indexing and query-latency benchmark over a generated 100k-item short-text corpus (BM25 and dense apart), and
the overhead of this library's BM25 stage over calling bm25s directly on the same batch of queries.

    python benchmarks/first_stage.py [--docs 100000] [--queries 1000] [--out benchmarks/results/first_stage.md]
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from rerank_pipeline import BM25, Dense, build_index
from rerank_pipeline.demo import synthetic_titles, write_titles_corpus
from rerank_pipeline.retrievers.bm25 import NUMBA_MIN_QUERIES

def timed(fn, repeats: int):
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--docs", type=int, default=100_000)
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--no-dense", action="store_true", help="BM25 rows only")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/first_stage.md"))
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        corpus = write_titles_corpus(Path(tmp) / "corpus.jsonl", args.docs)
        queries = {str(i): " ".join(q.split()[:3]) for i, q in enumerate(synthetic_titles(args.queries, seed=1))}

        t = time.perf_counter()
        idx, _ = build_index(corpus, "bm25", tmp, dense=False, show_progress=False)
        bm25_build = time.perf_counter() - t
        bm25 = BM25(idx, k=100)
        backend = idx.bm25_backend()
        texts = list(queries.values())

        def direct():
            tokens = backend.tokenize(texts)
            backend.model.retrieve(tokens, k=100, show_progress=False,
                                   backend_selection="numba" if len(texts) >= NUMBA_MIN_QUERIES else "numpy")

        bm25.search(queries), direct()  # warm-up: numba JIT (where the batch is large enough to use it)
        # Paired, interleaved runs so machine drift hits both sides alike.
        pairs = [(timed(lambda: bm25.search(queries), 1), timed(direct, 1),
                  timed(lambda: bm25.search(queries).rankings, 1)) for _ in range(args.repeats)]
        ours = statistics.median(p[0] for p in pairs)
        raw = statistics.median(p[1] for p in pairs)
        overhead = statistics.median(p[0] / p[1] - 1 for p in pairs)
        materialised = statistics.median(p[2] / p[1] - 1 for p in pairs)
        one_bm25 = timed(lambda: bm25("patagonia waterproof jacket"), 20)
        if not args.no_dense:
            t = time.perf_counter()
            didx, _ = build_index(corpus, "dense", tmp, bm25=False, show_progress=False)
            dense_build = time.perf_counter() - t
            dense = Dense(didx, k=100)
            dense.search(queries)  # warm-up: model load
            dense_t = timed(lambda: dense.search(queries), args.repeats)
            one_dense = timed(lambda: dense("patagonia waterproof jacket"), 20)

    nq = len(queries)
    lines = [
        f"# First-stage benchmark ({args.docs} generated short product titles, {nq} queries, k=100, 2 CPU cores)",
        "",
        "| measurement | value |",
        "|---|---|",
        f"| BM25 index build (read, validate, tokenize docstore, bm25s) | {bm25_build:.1f} s |",
        f"| BM25 batch search, this library (Run with trec_eval tie order) | {ours * 1000 / nq:.3f} ms/query |",
        f"| BM25 batch search, bm25s called directly (tokenize + retrieve) | {raw * 1000 / nq:.3f} ms/query |",
        f"| BM25 overhead of this library (median of {args.repeats} paired runs) | {overhead * 100:+.1f}% |",
        f"| ... and with every hit read as a Python object (median ratio) | {materialised * 100:+.1f}% |",
        f"| BM25 single query | {one_bm25 * 1000:.2f} ms |",
    ]
    if not args.no_dense:
        lines += [
            f"| dense index build (read, docstore, MiniLM encode, FAISS flat) | {dense_build:.1f} s |",
            f"| dense batch search (encode + FAISS flat) | {dense_t * 1000 / nq:.3f} ms/query |",
            f"| dense single query | {one_dense * 1000:.2f} ms |",
        ]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
