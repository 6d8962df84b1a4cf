"""AXN against retrieve-and-rerank at equal reranker calls, on SciFact (5,183 documents).

Ground truth: the reranker's exact top-k over the whole corpus, from scoring every document once per test query
(cached per query under --cache, so an interrupted run resumes). Test queries: SciFact's held-out dev queries
(15% of train by id hash; all have a relevant document); fitting queries: the rest of train. Every method reads
scores from the same cached matrix, so "reranker calls" is exactly the number of distinct items a method scored.

    python benchmarks/axn_recall.py --reranker runs/mice --output benchmarks/results/axn.md
"""
from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

import numpy as np

from rerank_pipeline.index import Index
from rerank_pipeline.io.beir import BeirDataset
from rerank_pipeline.rerankers import Reranker
from rerank_pipeline.retrievers.axn import AxnIndex, adaptive_search, fit_axn
from rerank_pipeline.retrievers.dense import encode

BUDGETS = (50, 100, 200, 500)
KS = (1, 10, 100)


def full_scores(reranker, texts, store, cache: Path) -> np.ndarray:
    """[Q, n_docs] reranker scores of every document for every test query (one cached file per query)."""
    from tqdm.auto import tqdm

    cache.mkdir(parents=True, exist_ok=True)
    rows = []
    for i, text in enumerate(tqdm(texts, desc="exact scores")):
        path = cache / f"{i:04d}.npy"
        if not path.exists():
            s = np.concatenate([reranker.score_docs([text], [store.docids[a:a + 1000]], store)[0]
                                for a in range(0, len(store), 1000)])
            np.save(cache / f"{i:04d}.tmp.npy", s.astype(np.float32))
            (cache / f"{i:04d}.tmp.npy").rename(path)
        rows.append(np.load(path))
    return np.stack(rows)


def ndcg10(ranked: list[list[str]], qids: list[str], qrels) -> float:
    import ir_measures

    run = {q: {d: float(len(r) - i) for i, d in enumerate(r)} for q, r in zip(qids, ranked)}
    return float(ir_measures.calc_aggregate([ir_measures.nDCG @ 10], {q: qrels[q] for q in qids}, run)[ir_measures.nDCG @ 10])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reranker", required=True)
    ap.add_argument("--dataset", default="../shared/datasets/scifact")
    ap.add_argument("--source-index", default="indexes/train/scifact", help="a BM25 + dense index of the corpus")
    ap.add_argument("--work", default="runs/axn", help="index copy (with MICE states and AXN vectors) and caches")
    ap.add_argument("--test-queries", type=int, default=30)
    ap.add_argument("--fit-queries", type=int, default=300)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--output", required=True)
    args = ap.parse_args()

    work = Path(args.work)
    if not (work / "scifact" / "manifest.json").is_file():
        shutil.copytree(args.source_index, work / "scifact", dirs_exist_ok=True)
    index = Index.open(work / "scifact")
    reranker = Reranker.load(args.reranker)
    if reranker.kind == "mice":
        from rerank_pipeline.index.states import DocumentStates
        from rerank_pipeline.index.update import add_document_states

        stored = DocumentStates.beside(index.docstore)
        if stored is None or stored.fingerprint != reranker.states_fingerprint:
            index = add_document_states(index, reranker)
    store = index.docstore
    data = BeirDataset(args.dataset)
    dev = data.qrels("dev")
    qids = sorted(q for q in dev if any(v > 0 for v in dev[q].values()))[: args.test_queries]
    texts = [data.queries[q] for q in qids]
    fit_ids = sorted(data.qrels("train"))[: args.fit_queries]

    tag = reranker.fingerprint
    t0 = time.time()
    exact = full_scores(reranker, texts, store, work / f"exact-{tag}")
    exact_seconds = time.time() - t0
    try:
        axn = AxnIndex.open(index)
        if axn.meta["reranker"] != tag or axn.meta["n_queries"] != len(fit_ids):
            raise FileNotFoundError
    except FileNotFoundError:
        axn = fit_axn(index, reranker, [data.queries[q] for q in fit_ids], k_d=100)
    vectors = np.asarray(axn.vectors)
    faiss_v = axn.faiss_index()

    q_dense = encode(texts, index.manifest["dense"]["encoder"])
    _, dense_rows = index.faiss_index().search(q_dense, max(BUDGETS))
    bm25_run = index.bm25(max(BUDGETS)).transform(dict(zip(qids, texts)))
    bm25_rows = [store.rows([h.docid for h in bm25_run[q]]) if q in bm25_run else np.zeros(0, np.int64) for q in qids]
    order = np.argsort(-exact, axis=1, kind="stable")

    def lookup(qs, rows):
        return [exact[q, r] for q, r in zip(qs, rows)]

    def evaluate(scored: list[np.ndarray]) -> dict:
        out = {"calls": float(np.mean([len(r) for r in scored]))}
        ranked = []
        for q, rows in enumerate(scored):
            ranked.append(rows[np.argsort(-exact[q, rows], kind="stable")])
        for k in KS:
            if all(len(r) >= k for r in scored):
                out[f"R{k}"] = float(np.mean([len(set(r[:k].tolist()) & set(order[q, :k].tolist())) / k
                                              for q, r in enumerate(ranked)]))
        out["nDCG@10"] = ndcg10([[store.docids[i] for i in r[:10]] for r in ranked], qids, dev)
        return out

    results = []
    for budget in BUDGETS:
        results.append({"method": "dense >> rerank", "budget": budget, **evaluate([r[:budget] for r in dense_rows])})
        results.append({"method": "BM25 >> rerank", "budget": budget, **evaluate([r[:budget] for r in bm25_rows])})
        for blend in (0.0, 0.8):
            found = adaptive_search(list(dense_rows), lookup, vectors, lambda u, k: faiss_v.search(u, k)[1], budget,
                                    args.rounds, q_dense, blend, 1e-3, axn.meta["scale"], axn.meta["shift"])
            results.append({"method": f"AXN (R={args.rounds}, lambda={blend})", "budget": budget,
                            **evaluate([rows for rows, _ in found])})
    exact_all = {"method": "exact (all documents)", "budget": len(store),
                 "nDCG@10": ndcg10([[store.docids[i] for i in o[:10]] for o in order], qids, dev)}

    m = axn.meta
    lines = ["# AXN vs retrieve-and-rerank at equal reranker calls (SciFact)", "",
             f"Command: `python benchmarks/axn_recall.py --reranker {args.reranker} --test-queries {args.test_queries} "
             f"--fit-queries {args.fit_queries} --rounds {args.rounds} --output {args.output}`", "",
             f"Reranker: `{args.reranker}` ({reranker.kind}). Corpus: SciFact, {len(store):,} documents. Test: "
             f"{len(qids)} held-out dev queries (judged-only: every one has a relevant document). Ground truth: the "
             f"reranker's exact top-k over all documents ({len(qids) * len(store):,} reranker calls, "
             f"{exact_seconds:.0f} s incl. cache reads). R@k: overlap of a method's top-k with the exact top-k, "
             "mean over queries ('-' where the budget is below k). nDCG@10 against SciFact qrels, over the same "
             "queries.", "",
             f"Offline fit: {m['queries']} ({m['n_queries']}), dual-encoder top {m['k_d']} each: "
             f"{m['reranker_calls']:,} reranker calls, {m['seconds']:.0f} s on 2 CPU cores; score map scale "
             f"{m['scale']:.4f}, shift {m['shift']:.4f}; RMSE on fitted entries {m['fit_rmse_before']:.4f} -> "
             f"{m['fit_rmse']:.4f}, on held-out entries {m['heldout_rmse_before']:.4f} -> {m['heldout_rmse']:.4f}.", "",
             "| method | budget B | calls/query | R@1 | R@10 | R@100 | nDCG@10 |", "|---|---|---|---|---|---|---|"]
    for r in results + [exact_all]:
        cell = lambda key: f"{r[key]:.3f}" if key in r else "-"  # noqa: E731
        lines.append(f"| {r['method']} | {r['budget']} | {r.get('calls', len(store)):.0f} | {cell('R1')} | "
                     f"{cell('R10')} | {cell('R100')} | {r['nDCG@10']:.4f} |")
    Path(args.output).write_text("\n".join(lines) + "\n")
    Path(args.output).with_suffix(".json").write_text(json.dumps({"results": results, "exact": exact_all,
                                                                   "fit": m}, indent=2))
    _plot(results, Path(args.output).with_suffix(".png"))
    print("\n".join(lines))


def _plot(results, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, key in zip(axes, ("R10", "R100")):
        for method in dict.fromkeys(r["method"] for r in results):
            pts = [(r["budget"], r[key]) for r in results if r["method"] == method and key in r]
            if pts:
                ax.plot(*zip(*pts), marker="o", label=method)
        ax.set(xscale="log", xlabel="reranker calls per query (budget)", ylabel=f"recall of exact top-{key[1:]}",
               title=f"k-NN recall@{key[1:]} vs budget")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    main()
