"""Offline evaluation: metrics through ir_measures (pytrec_eval, i.e. trec_eval's code), a row per pipeline and
per stage, paired significance against a baseline row, per-query results, TREC runs, JSON/CSV reports and plots.

Ranking order for metrics is trec_eval's: score descending, ties by doc id descending (pytrec_eval re-sorts the
run dict that way, and runs written by this library are already in that order).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from ..pipeline import Stage
from ..types import Qrels, Queries, Run

DEFAULT_METRICS = ("nDCG@10", "AP", "RR@10", "R@100", "P@10")


class EvaluationError(ValueError):
    pass


def parse_metrics(names: Sequence[str]):
    import ir_measures

    parsed = []
    for name in names:
        try:
            parsed.append(ir_measures.parse_measure(name))
        except (ValueError, NameError, TypeError, SyntaxError) as e:
            raise EvaluationError(f"unknown metric '{name}' (ir_measures syntax, e.g. nDCG@10, AP, RR@10, R@100, "
                                  f"P@5, AP@100): {e}") from None
    return parsed


def judged_queries(qrels: Qrels) -> set[str]:
    """Queries with at least one relevant (grade > 0) judgment: the usual answer-selection protocol."""
    return {q for q, docs in qrels.items() if any(r > 0 for r in docs.values())}


def per_query_scores(run: Run, qrels: Qrels, metrics, name: str = "run") -> pd.DataFrame:
    """One row per (query in qrels) with each metric; queries the run misses score 0, as trec_eval -c does."""
    import ir_measures

    if len(run) == 0 or all(not hits for _, hits in run.items()):
        raise EvaluationError(f"{name}: the run is empty")
    scored = run.to_dict()
    if not set(scored) & set(qrels):
        raise EvaluationError(f"{name}: no query id of the run is in the qrels (run ids e.g. {sorted(scored)[:3]}, "
                              f"qrels ids e.g. {sorted(qrels)[:3]})")
    values = {q: {str(m): 0.0 for m in metrics} for q in qrels}
    for row in ir_measures.iter_calc(metrics, qrels, scored):
        if row.query_id in values:
            values[row.query_id][str(row.measure)] = float(row.value)
    return pd.DataFrame.from_dict(values, orient="index").rename_axis("qid").sort_index()


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values (step-down, monotone)."""
    p = np.asarray(pvalues, dtype=float)
    order = np.argsort(p)
    adjusted = np.empty_like(p)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(p) - rank) * p[i]))
        adjusted[i] = running
    return adjusted.tolist()


def randomization_test(a: np.ndarray, b: np.ndarray, trials: int = 10000, seed: int = 0) -> float:
    """Two-sided paired randomization (sign-flip) test of mean(a - b) = 0 (Smucker et al. 2007)."""
    d = np.asarray(a, float) - np.asarray(b, float)
    if not np.any(d):
        return 1.0
    rng = np.random.default_rng(seed)
    signs = rng.choice((-1.0, 1.0), size=(trials, len(d)))
    observed = abs(d.mean())
    return float((np.sum(np.abs((signs * d).mean(1)) >= observed - 1e-12) + 1) / (trials + 1))


@dataclass
class EvalResult:
    table: pd.DataFrame                     # one row per system: metric means, deltas and p-values vs baseline
    per_query: dict[str, pd.DataFrame]      # system -> per-query metrics
    runs: dict[str, Run]
    metrics: list[str]
    baseline: str
    notes: list[str] = field(default_factory=list)

    def write(self, out_dir: str | Path, plots: bool = True) -> list[Path]:
        out = Path(out_dir)
        (out / "runs").mkdir(parents=True, exist_ok=True)
        files = [out / "report.csv", out / "report.json", out / "per_query.csv"]
        self.table.to_csv(files[0])
        files[1].write_text(json.dumps({"baseline": self.baseline, "metrics": self.metrics, "notes": self.notes,
                                        "systems": json.loads(self.table.to_json(orient="index"))}, indent=2))
        pd.concat({k: v for k, v in self.per_query.items()}, names=["system"]).to_csv(files[2])
        for i, (name, run) in enumerate(self.runs.items()):
            path = out / "runs" / f"{i:02d}-{_slug(name)}.trec"
            run.write_trec(path, tag=_slug(name)[:40])
            files.append(path)
        if plots:
            files += self.plot(out)
        return files

    def plot(self, out: Path) -> list[Path]:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        files = []
        metric = self.metrics[0]
        fig, ax = plt.subplots(figsize=(8, 0.5 * len(self.table) + 1.5))
        ax.barh(list(self.table.index)[::-1], self.table[metric].values[::-1], color="#4C72B0")
        for y, v in enumerate(self.table[metric].values[::-1]):
            ax.text(v, y, f" {v:.4f}", va="center", fontsize=8)
        ax.set_xlabel(metric)
        ax.set_title(f"{metric} per system")
        fig.tight_layout()
        files.append(out / "metric_per_system.png")
        fig.savefig(files[-1], dpi=120)
        plt.close(fig)
        rerank_rows = [n for n in self.table.index if ">>" in n]
        if rerank_rows:
            last = rerank_rows[-1]
            first_stage = self.table.loc[last, "first_stage"] if "first_stage" in self.table else None
            if isinstance(first_stage, str) and first_stage in self.per_query:
                gain = (self.per_query[last][metric] - self.per_query[first_stage][metric]).sort_values()
                fig, ax = plt.subplots(figsize=(8, 3.5))
                colors = ["#C44E52" if g < 0 else "#55A868" for g in gain.values]
                ax.bar(range(len(gain)), gain.values, color=colors, width=1.0)
                ax.axhline(0, color="black", linewidth=0.6)
                ax.set_xlabel("queries (sorted by gain)")
                ax.set_ylabel(f"delta {metric}")
                ax.set_title(f"per-query gain of the reranker over its first stage\n{last}", fontsize=9)
                fig.tight_layout()
                files.append(out / "per_query_gain.png")
                fig.savefig(files[-1], dpi=120)
                plt.close(fig)
        return files


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name).strip("_")[:80] or "run"


def _first_stage_of(name: str, names: Sequence[str]) -> str | None:
    """For a 'X >> reranker' row, the row named X (the stage it reranked)."""
    if ">>" not in name:
        return None
    prefix = name.rsplit(">>", 1)[0].strip()
    for candidate in (prefix, prefix.strip("()")):
        if candidate in names:
            return candidate
    return None


def compare(runs: Mapping[str, Run], qrels: Qrels, metrics: Sequence[str] = DEFAULT_METRICS, baseline: int | str = 0,
            judged_only: bool = False, trials: int = 10000, show_progress: bool = False) -> EvalResult:
    """Score named runs; each row gets the metric means and, against the baseline row, the mean difference, a
    paired t-test and a randomization test, Holm-corrected over the non-baseline rows (per metric)."""
    from scipy import stats
    from tqdm.auto import tqdm

    if not runs:
        raise EvaluationError("nothing to evaluate")
    parsed = parse_metrics(metrics)
    names = [str(m) for m in parsed]
    notes = []
    if judged_only:
        keep = judged_queries(qrels)
        notes.append(f"judged-only: {len(keep)} of {len(qrels)} queries have a relevant judgment; the rest are dropped")
        qrels = {q: d for q, d in qrels.items() if q in keep}
    per_query = {name: per_query_scores(run, qrels, parsed, name)
                 for name, run in tqdm(runs.items(), desc="scoring", disable=not show_progress)}
    systems = list(runs)
    base = systems[baseline] if isinstance(baseline, int) else baseline
    if base not in per_query:
        raise EvaluationError(f"baseline '{base}' is not one of the systems: {systems}")
    rows = {}
    for name in systems:
        row = {m: per_query[name][m].mean() for m in names}
        row["queries"] = len(per_query[name])
        row["first_stage"] = _first_stage_of(name, systems)
        rows[name] = row
    others = [s for s in systems if s != base]
    for m in names:
        b = per_query[base][m].values
        t_p, r_p = [], []
        for name in others:
            a = per_query[name][m].values
            diff = a - b
            t_p.append(1.0 if not np.any(diff) else float(stats.ttest_rel(a, b).pvalue))
            r_p.append(randomization_test(a, b, trials))
            rows[name][f"{m} delta"] = float(diff.mean())
        for name, tp, rp in zip(others, holm(t_p), holm(r_p)):
            rows[name][f"{m} p(t)"] = tp
            rows[name][f"{m} p(rand)"] = rp
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.index.name = "system"
    return EvalResult(table, per_query, dict(runs), names, base, notes)


def experiment(pipelines: Sequence[Stage] | Mapping[str, Stage], queries: Queries, qrels: Qrels,
               metrics: Sequence[str] = DEFAULT_METRICS, baseline: int | str = 0, per_stage: bool = True,
               judged_only: bool = False, batch_size: int = 64, show_progress: bool = False) -> EvalResult:
    """PyTerrier-Experiment-like: run pipelines on the judged queries and compare them (and, with `per_stage`,
    every intermediate stage: each first stage alone, the fusion, the reranked output). Queries go through in
    batches of `batch_size`, with a progress bar over queries."""
    from tqdm.auto import tqdm

    named = dict(pipelines) if isinstance(pipelines, Mapping) else {p.name: p for p in pipelines}
    topics = {q: queries[q] for q in qrels if q in queries and queries[q].strip()}
    if not topics:
        raise EvaluationError("no qrels query id has a query text")
    empty = sum(1 for q in qrels if q in queries and not queries[q].strip())
    if empty:
        import warnings

        warnings.warn(f"{empty} judged queries have empty text: not searched, scored 0", stacklevel=2)
    qids = list(topics)
    merged: dict[str, dict] = {}
    with tqdm(total=len(qids) * len(named), desc="queries", unit="q", disable=not show_progress) as bar:
        for label, pipe in named.items():
            for start in range(0, len(qids), batch_size):
                chunk = {q: topics[q] for q in qids[start:start + batch_size]}
                steps = pipe.trace(chunk) if per_stage else [(label, pipe.transform(chunk))]
                steps[-1] = (label, steps[-1][1])
                for name, run in steps:
                    merged.setdefault(name, {}).update(run.rankings)
                bar.update(len(chunk))
    runs = {name: Run.from_sorted(rankings) for name, rankings in merged.items()}
    return compare(runs, qrels, metrics, baseline, judged_only, show_progress=show_progress)
