"""CROSS-JEM's union capacity against its speed on the CPU: the same BM25 top-N lists packed into groups of at most
C union tokens, CROSS-JEM and the pointwise model on the MS MARCO teacher's 12 layers, both int8 ONNX (as
bench_vs_teacher.sh builds them). Smaller groups mean more encoder tokens (less sharing) in shorter rows (cheaper
attention); the table says which wins where, and the ratio's two factors: how many fewer tokens CROSS-JEM encodes
(the ratio if a token cost the same in both) and what a token costs in each (a union row is long, so its attention is
dearer per token than in a short pair).

    python benchmarks/union_capacity.py --sets wikiqa dbpedia-titles -n 100 -n 700 \
        --out benchmarks/results/union_capacity.md
"""
from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rerank_pipeline.bench import candidate_lists, median_seconds, pair_tokens, pointwise_twin  # noqa: E402
from rerank_pipeline.encoders import tokenize_ids  # noqa: E402
from rerank_pipeline.io import read_records  # noqa: E402
from rerank_pipeline.rerankers import CrossJEM  # noqa: E402
from rerank_pipeline.rerankers.crossjem.packing import pack  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="runs/crossjem-teacher-l12", help="a CROSS-JEM directory (bench_vs_teacher.sh)")
    ap.add_argument("--root", type=Path, default=Path("../shared/datasets"))
    ap.add_argument("--sets", nargs="+", default=["wikiqa", "dbpedia-titles"])
    ap.add_argument("-n", type=int, action="append", default=None)
    ap.add_argument("--capacities", type=int, nargs="+", default=[96, 128, 192, 256])
    ap.add_argument("--queries", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/union_capacity.md"))
    args = ap.parse_args()
    crossjem = CrossJEM.load(args.model, "cpu")
    pointwise = pointwise_twin(crossjem)
    crossjem.with_backend("onnx-int8")
    pointwise.with_backend("onnx-int8")
    cls_id, sep_id = crossjem.tokenizer.cls_token_id, crossjem.tokenizer.sep_token_id
    rows = []
    for name in args.sets:
        corpus = [r.text for r in read_records(args.root / name / "corpus.jsonl").records]  # as `rerank bench`
        for n in args.n or [100, 700]:
            texts, lists = candidate_lists(n, args.queries, corpus)
            q_ids = crossjem.tokenize_queries(texts)
            items = [crossjem.truncate_items(tokenize_ids(crossjem.tokenizer, l)) for l in lists]
            pointwise.score_ids(q_ids[:1], items[:1])  # warm-up
            pointwise_s = statistics.median(median_seconds(lambda: pointwise.score_ids([q], [c]), args.repeats)
                                            for q, c in zip(q_ids, items))
            pointwise_tokens = np.mean([pair_tokens(pointwise, q, c) for q, c in zip(q_ids, items)])
            for capacity in args.capacities:
                crossjem.config["union_capacity"] = capacity
                crossjem.score_ids(q_ids[:1], items[:1])
                seconds = statistics.median(median_seconds(lambda: crossjem.score_ids([q], [c]), args.repeats)
                                            for q, c in zip(q_ids, items))
                groups = [pack([q], [c], capacity, cls_id, sep_id, crossjem.config["refine_groups"])
                          for q, c in zip(q_ids, items)]
                tokens = np.mean([sum(len(g.input_ids) for g in gs) for gs in groups])
                union_per_item = np.mean([sum(len(g.input_ids) - g.n_query for g in gs) / len(c)
                                          for gs, c in zip(groups, items)])
                rows.append((name, n, capacity, np.mean([len(gs) for gs in groups]), tokens, union_per_item,
                             pointwise_tokens / tokens, 1e6 * seconds / tokens, 1e6 * pointwise_s / pointwise_tokens,
                             1000 * seconds, 1000 * pointwise_s, pointwise_s / seconds))
                print(*rows[-1], flush=True)
    lines = [f"# CROSS-JEM's union capacity against its speed ({args.model}, int8 ONNX, 2 CPU cores)", "",
             f"Command: `python benchmarks/union_capacity.py --sets {' '.join(args.sets)} "
             + " ".join(f"-n {n}" for n in args.n or [100, 700]) + f" --out {args.out}`", "",
             f"BM25 top-N lists for {args.queries} queries per set; median ms per query over the queries (each the "
             f"median of {args.repeats} runs, each query scored alone); the pointwise model on the same encoder "
             "weights and lists. tok/list: encoder tokens per list (every group's [CLS] q [SEP] + union); "
             "union/item: union tokens per candidate (sharing makes it less than the item's word pieces); fewer tok: "
             "the pointwise model's tokens per list (every pair's [CLS] q [SEP] d [SEP]) over CROSS-JEM's; us/tok: "
             "microseconds per encoder token (ms over tok/list), so x = fewer tok x pointwise us/tok / CROSS-JEM "
             "us/tok.", "",
             "| set | N | capacity | groups | tok/list | union/item | fewer tok | CROSS-JEM us/tok | pointwise us/tok "
             "| CROSS-JEM ms | pointwise ms | x |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    lines += [f"| {s} | {n} | {c} | {g:.1f} | {t:,.0f} | {u:.1f} | {f:.2f}x | {ct:.1f} | {pt:.1f} | {cj:.1f} | "
              f"{pw:.1f} | {x:.2f}x |" for s, n, c, g, t, u, f, ct, pt, cj, pw, x in rows]
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
