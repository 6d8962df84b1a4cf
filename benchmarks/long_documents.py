"""Long documents: the shipped reranking stage (CROSS-JEM + features, as the default pipeline runs it) reading SciFact
abstracts several ways on the same candidates (the default first stage, BM25 | dense RRF top 100, every test query):
its first 128 word pieces (first-P, as shipped) or fewer, the whole stored abstract (256 word pieces, the index's
cut), and passage windows of 128 every 64 scored by the best window (MaxP). nDCG@10 over all queries (pytrec_eval) and ms per
query, each query reranked alone as a server does.

    python benchmarks/long_documents.py [--max-queries N] [--backend auto]
"""
from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rerank_pipeline.config import open_pipeline  # noqa: E402
from rerank_pipeline.encoders import MAX_DOC_TOKENS  # noqa: E402
from rerank_pipeline.io.beir import BeirDataset  # noqa: E402
from rerank_pipeline.rerankers import load_default  # noqa: E402
from rerank_pipeline.rerankers.combine import served  # noqa: E402
from rerank_pipeline.rerankers.windows import Windows  # noqa: E402
from rerank_pipeline.training.data import dataset_index  # noqa: E402
from rerank_pipeline.types import Run  # noqa: E402


def reading(model, tokens: int):
    """The same model reading each candidate's first `tokens` word pieces."""
    other = copy.copy(model)
    other.config = {**model.config, "max_item_tokens": tokens}
    return other


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--root", type=Path, default=Path("../shared/datasets"))
    ap.add_argument("--dataset", default="scifact")
    ap.add_argument("--split", default="test")
    ap.add_argument("--index-dir", type=Path, default=Path("indexes/train"))
    ap.add_argument("--max-queries", type=int, default=0)
    ap.add_argument("--backend", default="auto")
    ap.add_argument("--first-p", type=int, nargs="+", default=[64, 96],
                    help="also read only the first N word pieces (shorter than shipped: faster)")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/long_documents.md"))
    args = ap.parse_args()
    import pytrec_eval

    ds = BeirDataset(args.root / args.dataset)
    qrels = ds.qrels(args.split)
    qids = sorted(q for q in qrels if q in ds.queries)[: args.max_queries or None]
    idx = dataset_index(ds, args.index_dir, dense=True, show_progress=True)
    topics = {q: ds.queries[q] for q in qids}
    first = open_pipeline(idx, None, rerank=False).search(topics)
    model = load_default(args.backend)
    read = model.config["max_item_tokens"]
    variants = {f"first-P: the first {read} word pieces (as shipped)": model}
    for n in args.first_p:
        variants[f"first-P: the first {n} word pieces"] = reading(model, n)
    variants[f"whole stored abstract ({MAX_DOC_TOKENS} word pieces)"] = reading(model, MAX_DOC_TOKENS)
    variants[f"MaxP: windows of {read} every {read // 2}, best window"] = Windows(model, read, read // 2, 4)
    lengths = np.array([len(t) for t in idx.docstore.token_ids(idx.docstore.docids, model.tokenizer)])
    evaluator = pytrec_eval.RelevanceEvaluator(qrels, {"ndcg_cut.10"})
    lines = [f"Command: `python benchmarks/long_documents.py {' '.join(sys.argv[1:])}`", "",
             f"{args.dataset} {args.split}, {len(qids)} queries (all queries: a query whose relevant documents were not "
             f"retrieved scores 0); candidates: BM25 | dense (RRF) top 100; the shipped CROSS-JEM on `{model.backend}` "
             f"with its feature combination (`{served(model, idx).name}`, features read from the index); 2 CPU cores, each query reranked alone. "
             f"Abstracts: median {np.median(lengths):.0f} word pieces, {np.mean(lengths > read):.0%} longer than {read}, "
             f"{np.mean(lengths >= MAX_DOC_TOKENS):.0%} cut at the index's {MAX_DOC_TOKENS}.", "",
             "| reading | nDCG@10 | vs first-P | ms/query p50 | p95 |", "|---|---|---|---|---|"]
    base = None
    first_stage = {q: {h.docid: h.score for h in first[q]} for q in qids}
    ndcg = np.mean([v["ndcg_cut_10"] for v in evaluator.evaluate(first_stage).values()])
    lines.append(f"| first stage (no reranker) | {ndcg:.4f} | | | |")
    for label, scorer in variants.items():
        stage = served(scorer, idx)  # features from the index: BM25 and the stored embeddings
        times, scored = [], {}
        for q in qids:
            one = Run.from_sorted({q: first[q]}, first.docs)
            start = time.perf_counter()
            out = stage.transform({q: topics[q]}, one)
            times.append(1000 * (time.perf_counter() - start))
            scored[q] = {h.docid: h.score for h in out[q]}
        ndcg = float(np.mean([v["ndcg_cut_10"] for v in evaluator.evaluate(scored).values()]))
        base = ndcg if base is None else base
        lines.append(f"| {label} | {ndcg:.4f} | {ndcg - base:+.4f} | {statistics.median(times):.0f} | "
                     f"{np.percentile(times, 95):.0f} |")
        print(lines[-1], flush=True)
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
