"""Reproduction report: BM25, the dual encoder and their RRF fusion on public collections, with the published
anchors beside them, plus reranking TREC DL19's BM25 run with the shipped CROSS-JEM model.

    python benchmarks/reproduction.py [--root ../shared/datasets] [--out benchmarks/results/reproduction.md]

Indexes are built once under indexes/bench/ (reused on later runs).
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

from rerank_pipeline import BM25, Dense
from rerank_pipeline.evaluation import experiment, compare
from rerank_pipeline.index import Index, InvalidIndexError, TextDocs, build_index
from rerank_pipeline.io import read_qrels, read_queries, read_run
from rerank_pipeline.rerankers import CrossJEM
from rerank_pipeline.types import Run

SETS = [("scifact", "test"), ("nfcorpus", "dev"), ("cacm", "test"), ("vaswani", "test"), ("crowdflower", "dev"),
        ("amazon-google", "dev")]
ANCHORS = {("scifact", "bm25"): "0.686 (bm25s)", ("scifact", "dense"): "0.6451 (MTEB, all-MiniLM-L6-v2)",
           ("trec-dl19", "bm25.test"): "0.5058 (Anserini BM25)"}
METRICS = ["nDCG@10", "AP", "R@100"]


def open_or_build(root: Path, name: str, index_dir: Path) -> Index:
    try:
        return Index.open(name, index_dir)
    except InvalidIndexError:
        return build_index(root / name / "corpus.jsonl", name, index_dir)[0]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--root", type=Path, default=Path("../shared/datasets"))
    ap.add_argument("--index-dir", type=Path, default=Path("indexes/bench"))
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/reproduction.md"))
    ap.add_argument("--model", default=None, help="CROSS-JEM model dir for the DL19 row (default: the shipped one)")
    args = ap.parse_args()
    lines = ["| collection (split, queries) | system | nDCG@10 | AP | R@100 | published nDCG@10 |", "|---|---|---|---|---|---|"]
    for name, split in SETS:
        t = time.time()
        idx = open_or_build(args.root, name, args.index_dir)
        qrels = read_qrels(args.root / name / "qrels" / f"{split}.tsv")
        queries = read_queries(args.root / name / "queries.jsonl")
        pipe = (BM25(idx, 1000) | Dense(idx, 1000)) % 1000
        result = experiment([pipe], queries, qrels, METRICS)
        for system, row in result.table.iterrows():
            short = {"bm25": "bm25", "dense": "dense"}.get(system, "rrf(bm25, dense)")
            lines.append(f"| {name} ({split}, {int(row['queries'])}) | {short} | {row['nDCG@10']:.4f} | {row['AP']:.4f} | "
                         f"{row['R@100']:.4f} | {ANCHORS.get((name, system), '')} |")
        print("\n".join(lines[-3:]), f"({time.time() - t:.0f} s)", flush=True)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text("\n".join(lines) + "\n")  # written as it goes: a long run keeps what it measured

    model = CrossJEM.load(args.model) if args.model else CrossJEM.default()
    data = args.root / "trec-dl19"
    qrels = read_qrels(data / "qrels" / "test.tsv")
    queries = read_queries(data / "queries.jsonl")
    bm25 = read_run(data / "runs" / "bm25.test.trec")
    top100 = Run.from_sorted({q: h[:100] for q, h in bm25.items() if q in qrels})
    needed = {h.docid for _, hits in top100.items() for h in hits}
    docs = TextDocs.from_corpus(data / "corpus.jsonl", needed)
    systems = {"bm25.test": bm25, "bm25.test top-100 >> crossjem": model.rerank(queries, top100, docs)}
    result = compare(systems, qrels, METRICS)
    for system, row in result.table.iterrows():
        lines.append(f"| trec-dl19 (test, {int(row['queries'])}) | {system} | {row['nDCG@10']:.4f} | {row['AP']:.4f} | "
                     f"{row['R@100']:.4f} | {ANCHORS.get(('trec-dl19', system), '')} |")
    print("\n".join(lines[-2:]))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
