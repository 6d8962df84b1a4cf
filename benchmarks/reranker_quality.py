"""Reranker quality on the dev sets the shipped models train on, plus SciFact test and TREC DL19: the first stage,
zero-shot MiniLM cosine, the free baseline (the first stage's features combined, no model), and each model alone
and as the residual on top of those features (the Combine stage), all on *the same candidates*.

    python benchmarks/reranker_quality.py --model crossjem=runs/crossjem [--max-queries N]   # default: every query

Weights are fitted the way an unseen corpus sees them: leave one dataset out. Each dev set's figure comes from the
feature weights (and gate) that maximise mean nDCG@10 over the *other* dev sets; test rows use the weights fitted on
all dev sets, which is also what ships. A model's gate is fitted on top of the free baseline's weights; with
--z-scored, its logits z-scored per query are also fitted as a fourth feature, all four weights together (the Combine
stage's model_scale z). Candidates per set:
  * sets with a candidate run (answer selection, products, titles): that run, judged-only protocol; its scores are
    a feature only where the run is a real retrieval (RUN_IS_RETRIEVAL: the others are arbitrary orders, e.g.
    dbpedia-titles' is alphabetical, and trecqa's is sorted by the labels);
  * scifact, nfcorpus: the default first stage, BM25 | dense (RRF) top 100 over the set's corpus, all queries;
  * trec-dl19: the shared BM25 run, top 100, all queries (43 judged queries).
BM25 features come from each set's index (indexes/train/SET, built once), the MiniLM cosine from its stored
embeddings where it has a dense stage (always on scifact and nfcorpus, which retrieve with it), else encoded on the fly. Features and
model logits are cached under runs/quality-cache/, keyed by set, candidates and model weights.
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
from rerank_pipeline.encoders import recorded_name  # noqa: E402
from rerank_pipeline.evaluation import compare  # noqa: E402
from rerank_pipeline.io import read_run  # noqa: E402
from rerank_pipeline.io.beir import BeirDataset  # noqa: E402
from rerank_pipeline.rerankers import Reranker  # noqa: E402
from rerank_pipeline.rerankers.combine import (FEATURES, FeatureExtractor, combine_scores,  # noqa: E402
                                               fit_leave_one_out, simplex_grid)
from rerank_pipeline.retrievers.dense import encode  # noqa: E402
from rerank_pipeline.training.data import dataset_index  # noqa: E402
from rerank_pipeline.types import Run  # noqa: E402

DEV_SETS = ["wikiqa", "selqa", "trecqa", "twitter-url", "semeval-cqa-qa", "semeval-cqa-qq", "crowdflower",
            "amazon-google", "dbpedia-titles", "msmarco-dev-sample", "scifact", "nfcorpus"]
TEST_SETS = [("scifact", "test"), ("trec-dl19", "test")]
RETRIEVAL_SETS = {"scifact", "nfcorpus"}
RUN_IS_RETRIEVAL = {"scifact", "nfcorpus", "trec-dl19", "msmarco-dev-sample"}
FIT_EXCLUDE = {"trecqa"}  # its given run is sorted by the labels: no weight fitted on it says anything
METRICS = ["nDCG@10", "AP", "RR"]
GATE_STEPS = (0.0, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0)  # multiples of the model's trained gate
FREE = "free baseline (features, LODO)"


def subsample(qids: list[str], n: int | None) -> list[str]:
    qids = sorted(qids)
    if n is None or len(qids) <= n:
        return qids
    return sorted(np.random.default_rng(0).choice(qids, n, replace=False).tolist())


def candidates(root: Path, name: str, split: str, index_dir: Path, max_queries: int | None, encoder: str | None):
    """(queries, qrels, candidate run with texts, protocol, first-stage name, the set's index)."""
    ds = BeirDataset(root / name)
    qrels = ds.qrels(split)
    # A dense stage where the first stage retrieves with it; elsewhere the dense feature comes from stored
    # embeddings when the index has them and is encoded on the fly otherwise (the same cosine).
    idx = dataset_index(ds, index_dir, dense=name in RETRIEVAL_SETS, show_progress=True, encoder=encoder)
    if name == "trec-dl19":
        run, judged_only, first = read_run(root / name / "runs" / "bm25.test.trec").cut(100), False, \
            "BM25 run (Anserini) top 100"
    elif name in RETRIEVAL_SETS:
        run, judged_only, first = None, False, "BM25 + dense, RRF, top 100"
    else:
        run, judged_only, first = ds.candidate_run(split), True, "given candidates"
    keep = [q for q in qrels if q in ds.queries and (not judged_only or any(r > 0 for r in qrels[q].values()))]
    keep = subsample(keep, max_queries)
    qrels = {q: qrels[q] for q in keep}
    topics = {q: ds.queries[q] for q in keep}
    if run is None:
        run = open_pipeline(idx, None, rerank=False).search(topics)
    else:
        run = Run.from_sorted({q: run[q] for q in keep if q in run})  # texts from the corpus: the index skips empty ones
        run = Run.from_sorted(run.rankings, ds.docs({h.docid for _, hits in run.items() for h in hits}))
    return topics, qrels, run, ("judged-only" if judged_only else "all queries"), first, idx


def cached(path: Path, compute):
    """Per-query float arrays (and a timing) kept in one .npz."""
    if path.is_file():
        data = np.load(path)
        return np.split(data["flat"], data["cuts"]), float(data["seconds"])
    start = time.perf_counter()
    arrays = compute()
    seconds = time.perf_counter() - start
    cuts = np.cumsum([len(a) for a in arrays])[:-1]
    np.savez(path, flat=np.concatenate(arrays), cuts=cuts, seconds=seconds)
    return arrays, seconds


class SetData:
    """One set's candidates, features, model logits and the scorer used to fit weights (pytrec_eval)."""

    def __init__(self, name, split, topics, qrels, run, protocol, first, idx, cache: Path, encoder: str | None):
        import pytrec_eval

        self.name, self.split, self.protocol, self.first_name = name, split, protocol, first
        self.key = f"{name}/{split}"
        self.qrels, self.first = qrels, run
        self.qids = [q for q in run if run[q]]
        self.docids = [[h.docid for h in run[q]] for q in self.qids]
        self.texts = [topics[q] for q in self.qids]
        self.docs = run.docs
        self.digest = hashlib.sha256(json.dumps([self.qids, self.docids]).encode()).hexdigest()[:12]
        self.cache = cache
        self.timings: dict[str, float] = {}  # ms per query
        run_scores = [[h.score for h in run[q]] for q in self.qids]
        columns = []
        tag = f".{encoder}" if encoder else ""  # the dense cosine of another encoder is another feature
        for feature in FEATURES:
            use_run = feature != "run" or name in RUN_IS_RETRIEVAL
            extractor = FeatureExtractor(idx, encoder, use=(feature,) if use_run else ())
            column, seconds = cached(cache / f"{name}.{split}.{feature}{tag if feature == 'dense' else ''}.{self.digest}.npz", lambda: [
                f[:, FEATURES.index(feature)] for f in extractor.extract(self.texts, self.docids, self.docs, run_scores)])
            self.timings[f"{feature} (index)"] = 1000 * seconds / len(self.qids)
            columns.append(column)
        self.features = [np.stack(per_query, axis=1) for per_query in zip(*columns)]  # [candidates x FEATURES]
        sample = slice(0, min(20, len(self.qids)))  # what the dense feature costs without stored embeddings
        _, seconds = cached(cache / f"{name}.{split}.onthefly{tag}.{self.digest}.npz", lambda: [encode(
            self.texts[sample] + [t for ds in self.docids[sample] for t in self.docs.texts(ds)], encoder)[:, 0]])
        self.timings["dense (encoded on the fly)"] = 1000 * seconds / len(self.qids[sample])
        self.logits: dict[str, list[np.ndarray]] = {}
        self.judged = {q: r for q, r in qrels.items() if any(v > 0 for v in r.values())}
        self.evaluator = pytrec_eval.RelevanceEvaluator(self.judged, {"ndcg_cut.10"})

    def add_model(self, label: str, key: str, model) -> None:
        self.logits[label], seconds = cached(self.cache / f"{self.name}.{self.split}.{key}.{self.digest}.npz",
                                             lambda: model.score_docs(self.texts, self.docids, self.docs))
        self.timings[label] = 1000 * seconds / len(self.qids)

    def scores(self, weights, model: str | None = None, gate: float = 0.0, scale: str = "raw") -> list[np.ndarray]:
        logits = self.logits[model] if model else [None] * len(self.qids)
        return [combine_scores(f, weights, m, gate, scale) for f, m in zip(self.features, logits)]

    def run(self, scores: list[np.ndarray]) -> Run:
        return Run.from_scores(self.qids, self.docids, scores, self.docs)

    def ndcg(self, scores: list[np.ndarray]) -> float:
        """Mean nDCG@10 over the judged queries (every other query scores 0 whatever the order)."""
        run = {q: {d: float(s) for d, s in zip(ds, sc)} for q, ds, sc in zip(self.qids, self.docids, scores)
               if q in self.judged}
        values = self.evaluator.evaluate(run)
        return sum(v["ndcg_cut_10"] for v in values.values()) / max(len(self.judged), 1)


class Fitter:
    """Leave-one-dataset-out fitting over the dev sets (trecqa excluded), nDCG@10 memoised per set and setting.

    The free baseline's feature weights come from a simplex grid; a model's gate is then fitted on top of the
    weights fitted without the same held-out set, so the model row differs from the free row only by the model."""

    def __init__(self, dev: list[SetData]):
        self.dev = dev
        self.fitted = [s for s in dev if s.name not in FIT_EXCLUDE]
        self.memo: dict = {}

    def ndcg(self, s: SetData, w: np.ndarray, model: str | None = None, gate: float = 0.0,
             scale: str = "raw") -> float:
        key = (s.key, tuple(np.round(w, 6)), model if gate else None, round(gate, 9), scale if gate else None)
        if key not in self.memo:
            self.memo[key] = s.ndcg(s.scores(w, model, gate, scale))
        return self.memo[key]

    def complete(self, chosen: dict) -> dict:
        for s in self.dev:  # a set left out of fitting gets the all-sets setting
            chosen.setdefault(s.key, chosen["*"])
        return chosen

    def lodo_mean(self, chosen: dict, model: str | None = None, scale: str = "raw") -> float:
        return float(np.mean([self.ndcg(s, chosen[s.key][0], model, chosen[s.key][1], scale) for s in self.fitted]))

    def weights(self, grid: np.ndarray, dropped: str | None = None) -> dict:
        """{set key: (weights fitted without it, 0), '*': (weights fitted on all, 0)}."""
        allowed = [w for w in grid if dropped is None or w[FEATURES.index(dropped)] == 0]
        table = {s.key: {i: self.ndcg(s, w) for i, w in enumerate(allowed)} for s in self.fitted}
        return self.complete({k: (allowed[i], 0.0) for k, i in fit_leave_one_out(table).items()})

    def joint(self, grid: np.ndarray, model: str, dropped: str | None = None) -> dict:
        """The feature weights and the z-scored model's weight fitted together (a simplex over FEATURES + the
        model): {set key: (feature weights, model weight) fitted without it, '*': fitted on all}."""
        allowed = [w for w in grid if dropped is None or w[FEATURES.index(dropped)] == 0]
        table = {s.key: {i: self.ndcg(s, w[:-1], model, w[-1], "z") for i, w in enumerate(allowed)}
                 for s in self.fitted}
        return self.complete({k: (allowed[i][:-1], float(allowed[i][-1])) for k, i in fit_leave_one_out(table).items()})

    def gate(self, weights: dict, model: str, gates: list[float]) -> dict:
        """For each held-out set (and '*' = none), the gate best on the other sets with that set's free weights."""
        chosen = {}
        for held in [s.key for s in self.fitted] + ["*"]:
            w = weights[held][0]
            means = [np.mean([self.ndcg(s, w, model, g) for s in self.fitted if s.key != held]) for g in gates]
            chosen[held] = (w, gates[int(np.argmax(means))])  # ties: the first (smallest) gate
        return self.complete(chosen)


def setting(weights: np.ndarray, gate: float, scale: str) -> dict:
    """A fitted setting as a Combine block holds it (model_scale only where it is not the default)."""
    return {"weights": dict(zip(FEATURES, map(float, weights))), "gate": float(gate)} | (
        {"model_scale": scale} if scale != "raw" else {})


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--root", type=Path, default=Path("../shared/datasets"))
    ap.add_argument("--model", action="append", default=[],
                    help="name=model_dir (or a packaged model: teacher=ms-marco-minilm-l12@auto), or "
                         "name=model_dir@backend (onnx, onnx-int8, auto); repeatable")
    ap.add_argument("--datasets", nargs="+", default=DEV_SETS)
    ap.add_argument("--tests", nargs="*", default=[f"{n}/{s}" for n, s in TEST_SETS])
    ap.add_argument("--max-queries", type=int, default=0, help="a fixed random subset per set (seed 0); 0 = all")
    ap.add_argument("--max-long-queries", type=int, default=0,
                    help="the same for the long-document sets' dev splits (scifact, nfcorpus: 100 abstracts per "
                         "query); test splits are always whole")
    ap.add_argument("--weight-step", type=float, default=0.05, help="grid step of the feature weights (simplex)")
    ap.add_argument("--index-dir", type=Path, default=Path("indexes/train"),
                    help="where each set's index is (built there once; one directory per dense encoder)")
    ap.add_argument("--encoder", default=None,
                    help="the dense encoder of the first stage and the cosine feature (default all-MiniLM-L6-v2; "
                         "e.g. bge-small-en-v1.5)")
    ap.add_argument("--z-scored", action="store_true",
                    help="also fit each model's logits z-scored per query as a fourth feature, its weight and the "
                         "features' fitted together (rows 'z(NAME) + features': the Combine stage's model_scale z)")
    ap.add_argument("--joint-step", type=float, default=0.1, help="grid step of the --z-scored joint fit (simplex)")
    ap.add_argument("--cache", type=Path, default=Path("runs/quality-cache"))
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/reranker_quality.md"))
    args = ap.parse_args()
    args.cache.mkdir(parents=True, exist_ok=True)
    cosine = f"{args.encoder or 'MiniLM'} cosine (zero-shot)"
    models = {}
    for spec in args.model:
        name, path = spec.split("=", 1)
        path, _, backend = path.partition("@")
        model = Reranker.load(path, backend=backend or "torch")
        models[name] = (f"{name}-{model.fingerprint[:8]}", model)

    data: dict[str, SetData] = {}
    for name, split in [(d, "dev") for d in args.datasets] + [tuple(t.split("/")) for t in args.tests]:
        print(f"{name} ({split})", flush=True)
        # test splits are read whole: the ship gate reads SciFact test
        limit = None if split != "dev" else (args.max_long_queries or None) if name in RETRIEVAL_SETS else (
            args.max_queries or None)
        s = SetData(name, split, *candidates(args.root, name, split, args.index_dir, limit, args.encoder),
                    cache=args.cache, encoder=args.encoder)
        for label, (key, model) in models.items():
            s.add_model(label, key, model)
        data[s.key] = s
    dev = [s for s in data.values() if s.split == "dev"]

    # The free baseline's weights on a simplex grid; each model's gate in multiples of its trained gate (or of
    # 1 / the spread of its logits when it was not trained as a residual), on top of them. A z-scored model is on
    # the features' scale, so its weight is fitted with theirs on one simplex instead.
    grid = simplex_grid(len(FEATURES), args.weight_step)
    joint_grid = simplex_grid(len(FEATURES) + 1, args.joint_step)
    fitter = Fitter(dev)
    combos = {}  # system -> (model label, model scale, its gate grid: None = fitted jointly with the features)
    for label, (_, model) in models.items():
        unit = (model.config.get("combine") or {}).get("gate") or 1.0 / float(np.std(np.concatenate(
            [np.concatenate(s.logits[label]) for s in dev])))
        combos[f"{label} + features (LODO)"] = (label, "raw", [g * unit for g in GATE_STEPS])
        if args.z_scored:
            combos[f"z({label}) + features (LODO)"] = (label, "z", None)
    fits, ablation = {}, {}
    for dropped in (None,) + FEATURES:  # all features, then each left out: what each feature is worth
        column = "all features" if dropped is None else f"without {dropped}"
        free = fitter.weights(grid, dropped)
        ablation.setdefault(FREE, {})[column] = fitter.lodo_mean(free)
        if dropped is None:
            fits[FREE] = free
        for system, (label, scale, gates) in combos.items():
            chosen = fitter.gate(free, label, gates) if gates else fitter.joint(joint_grid, label, dropped)
            ablation.setdefault(system, {})[column] = fitter.lodo_mean(chosen, label, scale)
            if dropped is None:
                fits[system] = chosen

    lines = [f"Command: `python benchmarks/reranker_quality.py {' '.join(sys.argv[1:])}`", "",
             ("Every query of each set" if not (args.max_queries or args.max_long_queries) else
              f"At most {args.max_queries or 'all'} queries per dev set, {args.max_long_queries or 'all'} for scifact "
              "and nfcorpus dev (fixed random subsets, seed 0); test splits whole") + ". Protocol per row: judged-only = queries with at least one "
             "relevant candidate; all queries = every query in the qrels (a query whose relevant documents were not "
             "retrieved scores 0). `(LODO)` rows: the feature weights, then the model's gate on top of them, were "
             "fitted on the other dev sets, never on "
             "the row's own set (trecqa is never fitted on: its given run is sorted by the labels); test rows use "
             "the weights fitted on all dev sets, which is what ships. Features: "
             f"run score (only where the run is a retrieval: {', '.join(sorted(RUN_IS_RETRIEVAL))}), BM25 of each "
             f"candidate, {args.encoder or 'MiniLM'} cosine (stored embeddings); z-scored per query.", "",
             "| set (split, protocol, queries) | candidates | system | nDCG@10 | MAP | MRR | vs first stage (nDCG@10, p rand.) |",
             "|---|---|---|---|---|---|---|"]
    summary, pvalues, chosen_out = {}, {}, {}
    for key, s in data.items():
        systems = {"first stage": s.first, cosine: s.run(s.scores(np.eye(len(FEATURES))[FEATURES.index("dense")]))}
        for label in models:
            systems[label] = s.run(s.logits[label])
        for system, chosen in fits.items():
            w, g = chosen[key if s.split == "dev" else "*"]
            model, scale, _ = combos.get(system, (None, "raw", None))
            systems[system] = s.run(s.scores(w, model, g, scale))
            chosen_out.setdefault(system, {})[key] = setting(w, g, scale)
        result = compare(systems, s.qrels, METRICS, baseline=0, judged_only=s.protocol == "judged-only")
        for system, row in result.table.iterrows():
            delta = "" if system == result.baseline else f"{row['nDCG@10 delta']:+.4f} (p={row['nDCG@10 p(rand)']:.3f})"
            lines.append(f"| {s.name} ({s.split}, {s.protocol}, {int(row['queries'])} q) | {s.first_name} | {system} | "
                         f"{row['nDCG@10']:.4f} | {row['AP']:.4f} | {row['RR']:.4f} | {delta or 'baseline'} |")
            summary.setdefault(system, {})[key] = float(row["nDCG@10"])
            if system != result.baseline:
                pvalues.setdefault(system, {})[key] = (float(row["nDCG@10 delta"]), float(row["nDCG@10 p(rand)"]))
        print("\n".join(lines[-len(result.table):]), flush=True)

    gate_sets = [s.key for s in dev if s.name not in FIT_EXCLUDE]
    lines += ["", f"Mean dev nDCG@10 over {len(gate_sets)} sets (all but {', '.join(sorted(FIT_EXCLUDE))}; LODO rows "
              "as above):", "", "| system | mean dev nDCG@10 |", "|---|---|"]
    lines += [f"| {system} | {np.mean([v[k] for k in gate_sets]):.4f} |" for system, v in summary.items()]
    lines += ["", "What each feature is worth (mean dev nDCG@10, LODO, the fit not allowed to use the feature):", "",
              "| system | " + " | ".join(next(iter(ablation.values()))) + " |",
              "|---|" + "---|" * len(next(iter(ablation.values())))]
    lines += [f"| {system} | " + " | ".join(f"{v:.4f}" for v in row.values()) + " |" for system, row in ablation.items()]
    lines += ["", "Cost per query (ms, 2 CPU cores; features read from the set's index unless said; 'on the fly' encodes "
              f"the query and every candidate with {args.encoder or 'MiniLM'}, timed on 20 queries; each figure is from the run that filled "
              f"the cache under {args.cache}, some of which shared the cores with a training run):", "",
              "| set | " + " | ".join(next(iter(data.values())).timings) + " |",
              "|---|" + "---|" * len(next(iter(data.values())).timings)]
    lines += [f"| {k} | " + " | ".join(f"{v:.1f}" for v in s.timings.values()) + " |" for k, s in data.items()]
    lines += ["", "Weights fitted on all dev sets (what ships; per feature, then the gate on the model's raw logits; "
              "z(...) rows: the z-scored model's weight, fitted with the features' on one simplex):", ""]
    for system, chosen in fits.items():
        w, g = chosen["*"]
        model, scale, _ = combos.get(system, (None, "raw", None))
        everywhere = fitter.lodo_mean({k: chosen["*"] for k in chosen}, model, scale)
        lines.append(f"- {system}: " + ", ".join(f"{f} {x:.2f}" for f, x in zip(FEATURES, w)) + f"; gate {g:.4g} "
                     f"(mean dev nDCG@10 with these on every set: {everywhere:.4f})")
        chosen_out[system]["*"] = setting(w, g, scale)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    args.out.with_suffix(".json").write_text(json.dumps(
        {"nDCG@10": summary, "vs_first_stage": pvalues, "settings": chosen_out, "gate_sets": gate_sets,
         "encoder": recorded_name(args.encoder),  # the dense feature's: a shipped combination records it
         "ablation": ablation, "timings_ms": {k: s.timings for k, s in data.items()}}, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
