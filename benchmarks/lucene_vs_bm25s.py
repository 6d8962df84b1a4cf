"""BM25 through Lucene (pyserini, Anserini's k1=0.9, b=0.4) next to bm25s (k1=1.5, b=0.75), on SciFact test:
effectiveness over all test queries (every one is judged), build time and batch search time, both through this
library's BM25 stage (the same Run, trec_eval tie order).

    python benchmarks/lucene_vs_bm25s.py --output benchmarks/results/lucene_vs_bm25s.md
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

# Anserini's BEIR regression for SciFact, BM25 over a "flat" index (title and text in one field), as published in
# its docs (docs/regressions/regressions-beir-v1.0.0-scifact.flat.md): nDCG@10, R@100, R@1000.
ANSERINI_SCIFACT_FLAT = {"nDCG@10": 0.6789, "R@100": 0.9253, "R@1000": 0.9767}


def main() -> None:
    import ir_measures

    from rerank_pipeline.index import build_index
    from rerank_pipeline.io.beir import BeirDataset

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", default="../shared/datasets/scifact")
    ap.add_argument("--split", default="test")
    ap.add_argument("--output", required=True)
    args = ap.parse_args()

    data = BeirDataset(args.dataset)
    qrels = data.qrels(args.split)
    queries = {q: data.queries[q] for q in qrels}
    measures = [ir_measures.parse_measure(m) for m in ANSERINI_SCIFACT_FLAT]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for backend in ("bm25s", "lucene"):
            t = time.perf_counter()
            idx, _ = build_index(data.corpus_path, backend, tmp, dense=False, bm25_backend=backend,
                                 show_progress=False)
            build = time.perf_counter() - t
            stage = idx.bm25(1000)
            stage.transform(dict(list(queries.items())[:5]))  # warm-up (JVM start for Lucene)
            t = time.perf_counter()
            run = stage.transform(queries)
            search = time.perf_counter() - t
            agg = ir_measures.calc_aggregate(measures, qrels, run.to_dict())
            rows.append((backend, idx.manifest["bm25"], {str(m): agg[m] for m in measures}, build,
                         1000 * search / len(queries)))
    lines = ["# BM25: Lucene (pyserini) vs bm25s on SciFact " + args.split, "",
             f"Command: `python benchmarks/lucene_vs_bm25s.py --output {args.output}`", "",
             f"{len(queries)} {args.split} queries, all judged (metrics over all queries), top 1000 per query, 2 CPU "
             "cores. Build: read + validate + docstore + BM25 index. Search: one batch through this library's BM25 "
             "stage.", "",
             "| backend | parameters | nDCG@10 | R@100 | R@1000 | build s | search ms/query |", "|---|---|---|---|---|---|---|"]
    for backend, params, metrics, build, ms in rows:
        shown = ", ".join(f"{k}={v}" for k, v in params.items() if k != "backend")
        lines.append(f"| {backend} | {shown} | " + " | ".join(f"{metrics[m]:.4f}" for m in ANSERINI_SCIFACT_FLAT)
                     + f" | {build:.1f} | {ms:.2f} |")
    lines.append("| Anserini, published (flat index) | k1=0.9, b=0.4 | "
                 + " | ".join(f"{v:.4f}" for v in ANSERINI_SCIFACT_FLAT.values()) + " | - | - |")
    lines += ["", "TREC DL19 passages is not run: the MS MARCO passage corpus (8.8M passages) is not among the "
              "datasets here."]
    Path(args.output).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
