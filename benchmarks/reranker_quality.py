"""Dev-split quality table: first stages alone, the pointwise cross-encoder, and CROSS-JEM per training loss, each
reranking the dataset's candidate run; judged-only (queries with a relevant candidate), metrics by ir_measures.

    python benchmarks/reranker_quality.py --model pointwise=runs/teacher --model crossjem-rpl=runs/crossjem-rpl ...
"""
from __future__ import annotations

import argparse
from pathlib import Path

from rerank_pipeline.evaluation import compare
from rerank_pipeline.index import TextDocs
from rerank_pipeline.io import read_qrels, read_queries, read_run
from rerank_pipeline.rerankers import Reranker
from rerank_pipeline.types import Run
from reproduction import open_or_build  # benchmarks/ is on sys.path when run as a script

METRICS = ["AP", "RR", "nDCG@10"]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--datasets", nargs="+", default=["wikiqa", "crowdflower", "dbpedia-titles", "amazon-google"])
    ap.add_argument("--root", type=Path, default=Path("../shared/datasets"))
    ap.add_argument("--model", action="append", default=[], help="name=model_dir; the first is the baseline")
    ap.add_argument("--index-dir", type=Path, default=Path("indexes/bench"))
    ap.add_argument("--no-first-stage", action="store_true", help="skip BM25/dense retrieval rows")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/reranker_quality.md"))
    args = ap.parse_args()
    models = {name: Reranker.load(path) for name, path in (m.split("=", 1) for m in args.model)}

    lines = ["| dataset | system | MAP | MRR | nDCG@10 | vs baseline (nDCG@10, p rand.) |", "|---|---|---|---|---|---|"]
    for name in args.datasets:
        data = args.root / name
        qrels = read_qrels(data / "qrels" / "dev.tsv")
        queries = read_queries(data / "queries.jsonl")
        candidates = read_run(data / "runs" / "candidates.dev.trec")
        candidates = Run.from_sorted({q: h for q, h in candidates.items() if q in qrels})
        needed = {h.docid for _, hits in candidates.items() for h in hits}
        docs = TextDocs.from_corpus(data / "corpus.jsonl", needed)
        systems = {}
        for model_name, model in models.items():
            systems[f"candidates >> {model_name}"] = model.rerank(queries, candidates, docs)
        systems["candidates (given order)"] = candidates
        if not args.no_first_stage:
            idx = open_or_build(args.root, name, args.index_dir)
            topics = {q: queries[q] for q in qrels if q in queries}
            systems["BM25 (full corpus)"] = idx.bm25(100).search(topics)
            systems["dense MiniLM (full corpus)"] = idx.dense(100).search(topics)
        result = compare(systems, qrels, METRICS, baseline=0, judged_only=True)
        for system, row in result.table.iterrows():
            sig = "" if system == result.baseline else f"{row['nDCG@10 delta']:+.4f} (p={row['nDCG@10 p(rand)']:.3f})"
            lines.append(f"| {name} ({int(row['queries'])} q) | {system} | {row['AP']:.4f} | {row['RR']:.4f} | "
                         f"{row['nDCG@10']:.4f} | {sig or 'baseline'} |")
        print("\n".join(lines[-len(result.table):]), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
