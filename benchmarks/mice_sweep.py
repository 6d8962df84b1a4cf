"""Choose MICE's merge layer m and depth d for MiniLM-L6: distil each (m, d) from the pointwise teacher on the same
lists and compare dev nDCG@10 (judged-only, mean over the 12 training sets, as the training loop reports) with the
teacher's on the same dev lists. Teacher scores are computed once and shared by every configuration.

    python benchmarks/mice_sweep.py --teacher runs/teacher --output benchmarks/results/mice_sweep.md
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from rerank_pipeline.rerankers import MICE, PointwiseCrossEncoder
from rerank_pipeline.training import ListSpec, TrainConfig, evaluate_lists, load_many, train

SETS = ["wikiqa", "selqa", "trecqa", "twitter-url", "semeval-cqa-qa", "semeval-cqa-qq", "crowdflower",
        "amazon-google", "dbpedia-titles", "nfcorpus", "scifact", "msmarco-dev-sample"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--teacher", required=True)
    ap.add_argument("--datasets", default="../shared/datasets")
    ap.add_argument("--index-dir", default="indexes/train")
    ap.add_argument("--configs", default="2,6 3,6 4,6 2,5", help="space-separated m,d pairs")
    ap.add_argument("--lists-per-epoch", type=int, default=600)
    ap.add_argument("--max-dev-lists", type=int, default=15)
    ap.add_argument("--runs", default="runs/mice-sweep")
    ap.add_argument("--output", required=True)
    args = ap.parse_args()

    data = [Path(args.datasets) / s for s in SETS]
    spec = ListSpec(given_k=30, bm25_k=20, dense_k=20)
    train_lists = load_many(data, "train", spec, args.index_dir, False)
    dev_lists = load_many(data, "dev", ListSpec(given_k=30, bm25_k=20, dense_k=20, add_positives=False,
                                                 max_lists=args.max_dev_lists), args.index_dir, False)
    teacher = PointwiseCrossEncoder.load(args.teacher)
    t0 = time.time()
    rows = [{"model": "pointwise teacher", "m": "-", "d": 6, **evaluate_lists(teacher, dev_lists),
             "train_s": None, "dev_s": round(time.time() - t0, 1)}]
    for pair in args.configs.split():
        m, d = map(int, pair.split(","))
        model = MICE.from_teacher(args.teacher, merge_layer=m, depth=d)
        cfg = TrainConfig(loss="margin-mse", epochs=1, lr=5e-5, lists_per_step=8, list_size=8,
                          lists_per_epoch=args.lists_per_epoch)
        state = train(model, train_lists, [], cfg, f"{args.runs}/m{m}d{d}", teacher=teacher, show_progress=False)
        t0 = time.time()
        rows.append({"model": "MICE", "m": m, "d": d, **evaluate_lists(model, dev_lists),
                     "train_s": round(state["train_seconds"], 1), "dev_s": round(time.time() - t0, 1)})
        print(json.dumps(rows[-1]), flush=True)
    teacher_ndcg = rows[0]["nDCG@10"]
    lines = ["# MICE layer sweep (MiniLM-L6 teacher)", "",
             f"Command: `python benchmarks/mice_sweep.py --teacher {args.teacher} --configs '{args.configs}' "
             f"--lists-per-epoch {args.lists_per_epoch} --max-dev-lists {args.max_dev_lists} --output {args.output}`",
             "", f"Each MICE row: cut from the teacher, distilled with MarginMSE on {args.lists_per_epoch} training lists "
             "(8 items each, teacher scores on the fly), 1 epoch, lr 5e-5, 2 CPU cores. Dev: judged-only queries "
             f"(with a relevant item), at most {args.max_dev_lists} per set, given run top 30 + BM25 top 20; "
             "metrics are means over the 12 sets.", "",
             "| model | m | d | dev nDCG@10 | % of teacher | dev AP | dev RR | train s | dev scoring s |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['model']} | {r['m']} | {r['d']} | {r['nDCG@10']:.4f} | {100 * r['nDCG@10'] / teacher_ndcg:.1f}% "
                     f"| {r['AP']:.4f} | {r['RR']:.4f} | {r['train_s'] if r['train_s'] is not None else '-'} | {r['dev_s']} |")
    Path(args.output).write_text("\n".join(lines) + "\n")
    Path(args.output).with_suffix(".json").write_text(json.dumps(rows, indent=2))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
