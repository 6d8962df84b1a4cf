"""Reproduction report: BM25, the dual encoder and their RRF fusion on public collections, with the published
anchors beside them (the rerankers' figures, DL19 included, are in reranker_quality.py's table).

    python benchmarks/reproduction.py [--root ../shared/datasets] [--out benchmarks/results/reproduction.md]

Indexes are built once under indexes/bench/ (reused on later runs).
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

from rerank_pipeline import BM25, Dense
from rerank_pipeline.evaluation import experiment
from rerank_pipeline.io.beir import BeirDataset
from rerank_pipeline.training.data import dataset_index

SETS = [("scifact", "test"), ("nfcorpus", "dev"), ("cacm", "test"), ("vaswani", "test"), ("crowdflower", "dev"),
        ("amazon-google", "dev")]
ANCHORS = {("scifact", "bm25"): "0.686 (bm25s)", ("scifact", "dense"): "0.6451 (MTEB, all-MiniLM-L6-v2)"}
METRICS = ["nDCG@10", "AP", "R@100"]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--root", type=Path, default=Path("../shared/datasets"))
    ap.add_argument("--index-dir", type=Path, default=Path("indexes/bench"))
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/reproduction.md"))
    args = ap.parse_args()
    lines = ["| collection (split, queries) | system | nDCG@10 | AP | R@100 | published nDCG@10 |", "|---|---|---|---|---|---|"]
    for name, split in SETS:
        t = time.time()
        ds = BeirDataset(args.root / name)
        idx = dataset_index(ds, args.index_dir, dense=True, show_progress=True)
        qrels, queries = ds.qrels(split), ds.queries
        pipe = (BM25(idx, 1000) | Dense(idx, 1000)) % 1000
        result = experiment([pipe], queries, qrels, METRICS)
        for system, row in result.table.iterrows():
            short = {"bm25": "bm25", "dense": "dense"}.get(system, "rrf(bm25, dense)")
            lines.append(f"| {name} ({split}, {int(row['queries'])}) | {short} | {row['nDCG@10']:.4f} | {row['AP']:.4f} | "
                         f"{row['R@100']:.4f} | {ANCHORS.get((name, system), '')} |")
        print("\n".join(lines[-3:]), f"({time.time() - t:.0f} s)", flush=True)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text("\n".join(lines) + "\n")  # written as it goes: a long run keeps what it measured


if __name__ == "__main__":
    main()
