"""Reranker quality on the sets the shipped models train on, plus SciFact test and TREC DL19: the first stage, then
zero-shot MiniLM (cosine), and each trained model reranking *the same candidates*, alone and interpolated with the
first-stage score (alpha fitted on the dev sets, never on a test split).

    python benchmarks/reranker_quality.py --model pointwise=runs/teacher --model crossjem=runs/crossjem \
        [--max-queries 100] [--out benchmarks/results/reranker_quality.md]

Candidates per set (the pipeline each set is used with):
  * sets with a candidate run (answer selection, products, titles): that run, judged-only protocol;
  * scifact, nfcorpus: the default first stage, BM25 | dense (RRF) top 100 over the set's corpus, all queries;
  * trec-dl19: the shared BM25 run, top 100, all queries (43 judged queries).
Reranked runs are cached under runs/quality-cache/ keyed by model directory and set, so adding a model is cheap.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rerank_pipeline.config import open_pipeline  # noqa: E402
from rerank_pipeline.evaluation import compare  # noqa: E402
from rerank_pipeline.io import read_run  # noqa: E402
from rerank_pipeline.io.beir import BeirDataset  # noqa: E402
from rerank_pipeline.rerankers import Reranker  # noqa: E402
from rerank_pipeline.rerankers.biencoder import BiEncoderReranker  # noqa: E402
from rerank_pipeline.rerankers.interpolate import Interpolate, fit_alpha  # noqa: E402
from rerank_pipeline.training.data import dataset_index  # noqa: E402
from rerank_pipeline.types import Run  # noqa: E402

DEV_SETS = ["wikiqa", "selqa", "trecqa", "twitter-url", "semeval-cqa-qa", "semeval-cqa-qq", "crowdflower",
            "amazon-google", "dbpedia-titles", "msmarco-dev-sample", "scifact", "nfcorpus"]
TEST_SETS = [("scifact", "test"), ("trec-dl19", "test")]
RETRIEVAL_SETS = {"scifact", "nfcorpus"}
METRICS = ["nDCG@10", "AP", "RR"]


def subsample(qids: list[str], n: int | None) -> list[str]:
    qids = sorted(qids)
    if n is None or len(qids) <= n:
        return qids
    return sorted(np.random.default_rng(0).choice(qids, n, replace=False).tolist())


def candidates(root: Path, name: str, split: str, index_dir: Path, max_queries: int | None):
    """(queries, qrels, candidate run with texts, protocol) for one set and split."""
    ds = BeirDataset(root / name)
    qrels = ds.qrels(split)
    if name == "trec-dl19":
        run = read_run(root / name / "runs" / "bm25.test.trec").cut(100)
        judged_only, first = False, "BM25 run (Anserini) top 100"
    elif name in RETRIEVAL_SETS:
        run, judged_only, first = None, False, "BM25 + dense, RRF, top 100"
    else:
        run, judged_only, first = ds.candidate_run(split), True, "given candidates"
    keep = [q for q in qrels if q in ds.queries and (not judged_only or any(r > 0 for r in qrels[q].values()))]
    keep = subsample(keep, max_queries)
    qrels = {q: qrels[q] for q in keep}
    topics = {q: ds.queries[q] for q in keep}
    idx = None
    if run is None:
        idx = dataset_index(ds, index_dir, dense=True, show_progress=True)
        run = open_pipeline(idx, None, rerank=False).search(topics)
    else:
        run = Run.from_sorted({q: run[q] for q in keep if q in run})
        run = Run.from_sorted(run.rankings, ds.docs({h.docid for _, hits in run.items() for h in hits}))
    return topics, qrels, run, ("judged-only" if judged_only else "all queries"), first, idx


def cached_rerank(model_key: str, model, topics, run: Run, cache: Path) -> Run:
    digest = hashlib.sha256(json.dumps(sorted((q, [h.docid for h in run[q]]) for q in run)).encode()).hexdigest()[:12]
    path = cache / f"{model_key}.{digest}.trec"
    if path.is_file():
        return Run.from_sorted(read_run(path).rankings, run.docs)
    start = time.time()
    out = model.transform(topics, run)
    out.write_trec(path)
    print(f"  {model_key}: {len(run)} queries in {time.time() - start:.0f} s", flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--root", type=Path, default=Path("../shared/datasets"))
    ap.add_argument("--model", action="append", default=[], help="name=model_dir (repeatable)")
    ap.add_argument("--datasets", nargs="+", default=DEV_SETS)
    ap.add_argument("--max-queries", type=int, default=100, help="fixed random subset per set (seed 0); 0 = all")
    ap.add_argument("--max-long-queries", type=int, default=50,
                    help="the same for the long-document sets (scifact, nfcorpus: 100 abstracts per query)")
    ap.add_argument("--index-dir", type=Path, default=Path("indexes/train"))
    ap.add_argument("--cache", type=Path, default=Path("runs/quality-cache"))
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/reranker_quality.md"))
    args = ap.parse_args()
    args.cache.mkdir(parents=True, exist_ok=True)
    max_q = args.max_queries or None
    models = {"MiniLM cosine (zero-shot)": ("cosine", BiEncoderReranker())}
    for spec in args.model:
        name, path = spec.split("=", 1)
        key = name + "-" + hashlib.sha256((Path(path) / "model.safetensors").read_bytes()).hexdigest()[:8]
        models[name] = (key, Reranker.load(path))

    evaluated = {}  # (set, split) -> (protocol, first-stage name, qrels, {system: run})
    splits = [(d, "dev") for d in args.datasets] + [t for t in TEST_SETS]
    for name, split in splits:
        print(f"{name} ({split})", flush=True)
        limit = (args.max_long_queries or None) if name in RETRIEVAL_SETS else max_q
        topics, qrels, run, protocol, first, idx = candidates(args.root, name, split, args.index_dir, limit)
        runs = {"first stage": run}
        for label, (key, model) in models.items():
            if key == "cosine":  # the stored embeddings of the index the candidates came from, where there is one
                model = BiEncoderReranker(index=idx)
            runs[label] = cached_rerank(f"{name}.{split}.{key}", model, topics, run, args.cache)
        evaluated[(name, split)] = (protocol, first, qrels, runs)

    # alpha per model: the best mean nDCG@10 over the dev sets (each set counts once), then frozen for test.
    alphas, curves = {}, {}
    for label in models:
        per_set = [fit_alpha(runs["first stage"], runs[label], qrels)[1]
                   for (name, split), (_, _, qrels, runs) in evaluated.items() if split == "dev"]
        curves[label] = {a: float(np.mean([c[a] for c in per_set])) for a in per_set[0]}
        alphas[label] = max(curves[label], key=lambda a: (curves[label][a], a))

    lines = [f"Command: `python benchmarks/reranker_quality.py {' '.join(sys.argv[1:])}`", "",
             f"At most {max_q or 'all'} queries per set, {args.max_long_queries or 'all'} for scifact and nfcorpus "
             "(fixed random subsets, seed 0). Protocol per row: "
             "judged-only = queries with at least one relevant candidate; all queries = every query in the qrels "
             "(a query whose relevant documents were not retrieved scores 0). `~ a` = interpolated with the first "
             "stage, alpha fitted on the dev rows (mean nDCG@10 over sets), applied unchanged to test.", "",
             "alpha per model: " + ", ".join(f"{m} {a:g}" for m, a in alphas.items()), "",
             "| set (split, protocol, queries) | candidates | system | nDCG@10 | MAP | MRR | vs first stage (nDCG@10, p rand.) |",
             "|---|---|---|---|---|---|---|"]
    summary = {}
    for (name, split), (protocol, first, qrels, runs) in evaluated.items():
        systems = {"first stage": runs["first stage"]}
        for label in models:
            systems[label] = runs[label]
            if alphas[label] < 1.0:
                systems[f"{label} ~ {alphas[label]:g}"] = Interpolate(models[label][1], alphas[label]).mix(
                    runs["first stage"], runs[label])
        result = compare(systems, qrels, METRICS, baseline=0, judged_only=protocol == "judged-only")
        for system, row in result.table.iterrows():
            delta = "" if system == result.baseline else f"{row['nDCG@10 delta']:+.4f} (p={row['nDCG@10 p(rand)']:.3f})"
            lines.append(f"| {name} ({split}, {protocol}, {int(row['queries'])} q) | {first} | {system} | "
                         f"{row['nDCG@10']:.4f} | {row['AP']:.4f} | {row['RR']:.4f} | {delta or 'baseline'} |")
            summary.setdefault(system, {})[f"{name}/{split}"] = row["nDCG@10"]
        print("\n".join(lines[-len(result.table):]), flush=True)
    lines += ["", "Interpolation curves (mean dev nDCG@10 by alpha):", "",
              "| model | " + " | ".join(f"{a:g}" for a in list(curves.values())[0]) + " |",
              "|---|" + "---|" * len(list(curves.values())[0])]
    lines += [f"| {m} | " + " | ".join(f"{v:.4f}" for v in c.values()) + " |" for m, c in curves.items()]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    args.out.with_suffix(".json").write_text(json.dumps({"alphas": alphas, "curves": curves, "nDCG@10": summary},
                                                        indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
