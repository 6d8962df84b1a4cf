"""AXN, adaptive k-NN retrieval with a cross-encoder (Yadav et al., ICLR 2024).

Offline (`fit_axn`): score each fitting query's dual-encoder top-k_d with the reranker, map the scores onto the dual
encoder's range (a scale and shift), and fit item embeddings V to those entries, starting from (and pulled towards)
the dual-encoder embeddings. At query time (`adaptive_search`), rounds alternate between scoring B/R items with the
reranker and solving a small least-squares problem for the query vector u (V_A u ~ scores), which retrieves the
next B/R unscored items by u . V. The result is the top-k by exact reranker score among the B scored items.

The array functions here take plain arrays and a scoring callback, so they are testable without a model.
"""
from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from ..files import swap_into_place
from ..pipeline import Retriever
from ..types import Hit, Queries, Run

AXN_DIR = "axn"
ScoreFn = Callable[[Sequence[int], Sequence[np.ndarray]], list[np.ndarray]]  # (query numbers, item rows) -> scores


def moment_map(reranker_scores: np.ndarray, dual_scores: np.ndarray) -> tuple[float, float]:
    """Scale and shift taking reranker scores onto the dual encoder's range (equal mean and spread). A least-squares
    fit would shrink the scale by their correlation and squash the targets towards the mean."""
    spread = float(np.std(reranker_scores))
    scale = float(np.std(dual_scores)) / spread if spread > 0 else 1.0
    return scale, float(np.mean(dual_scores) - scale * np.mean(reranker_scores))


def solve_query(items: np.ndarray, scores: np.ndarray, ridge: float = 0.0) -> np.ndarray:
    """u = argmin ||items u - scores||^2 + ridge ||u||^2. With fewer items than dimensions it is solved in the dual
    (an n x n system; the minimum-norm solution when ridge is 0)."""
    n, dim = items.shape
    if n < dim:
        return items.T @ np.linalg.lstsq(items @ items.T + ridge * np.eye(n), scores, rcond=None)[0]
    return np.linalg.lstsq(items.T @ items + ridge * np.eye(dim), items.T @ scores, rcond=None)[0]


def check_budget(budget: int, rounds: int) -> None:
    if rounds < 1 or budget < rounds:
        raise ValueError(f"AXN needs 1 <= rounds <= budget (got budget {budget}, rounds {rounds})")


def adaptive_search(first: Sequence[np.ndarray], score: ScoreFn, item_vectors: np.ndarray, item_search,
                    budget: int, rounds: int, query_vectors: np.ndarray | None = None, blend: float = 0.0,
                    ridge: float = 1e-3, scale: float = 1.0, shift: float = 0.0) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per query, the rows it scored and their reranker scores (in scoring order), spending at most `budget` reranker
    calls in `rounds` rounds. All queries advance together: each round is one `score` call over every query.

    first: per query, first-stage rows in rank order (round 1 takes the first budget // rounds unseen ones);
    item_search(U, k) -> rows [Q, k]: nearest items to each row of U by inner product with `item_vectors`;
    query_vectors, blend: u <- blend * q_dual + (1 - blend) * u (the paper: 0.8 for k = 1, 0 for k = 100)."""
    check_budget(budget, rounds)
    per_round = budget // rounds
    n_items = len(item_vectors)
    scored = [np.asarray(f[:per_round], np.int64) for f in first]
    values = score(range(len(first)), scored)
    for r in range(1, rounds):
        left = per_round if r < rounds - 1 else budget - r * per_round  # the last round takes the remainder
        active = [q for q in range(len(first)) if 0 < len(scored[q]) < n_items]
        if not active:
            break
        u = np.stack([solve_query(item_vectors[scored[q]], scale * values[q] + shift, ridge) for q in active])
        if query_vectors is not None and blend:
            u = blend * query_vectors[active] + (1 - blend) * u
        want = max(len(scored[q]) for q in active) + left
        found = item_search(u.astype(np.float32), min(want, n_items))
        fresh = []
        for q, rows in zip(active, found):
            seen = set(scored[q].tolist())
            fresh.append(np.array([i for i in rows if i >= 0 and i not in seen][:left], np.int64))
        new_values = score(active, fresh)
        for q, rows, vals in zip(active, fresh, new_values):
            scored[q] = np.concatenate([scored[q], rows])
            values[q] = np.concatenate([values[q], vals])
    return list(zip(scored, values))


def fit_item_embeddings(query_init: np.ndarray, item_init: np.ndarray, query_of: np.ndarray, item_of: np.ndarray,
                        targets: np.ndarray, steps: int = 300, lr: float = 1e-2, pull: float = 1e-3,
                        seed: int = 0) -> tuple[np.ndarray, np.ndarray, dict]:
    """Fit U, V to the observed entries (query_of[e], item_of[e]) ~ targets[e] by full-batch Adam, starting from
    the dual-encoder embeddings and pulled towards them (`pull`, so items seen rarely stay close). 10% of the
    entries are held out to report how well the fit generalises; returns U, V and the residuals."""
    import torch

    rng = np.random.default_rng(seed)
    held = rng.random(len(targets)) < 0.1
    q0, v0 = torch.from_numpy(query_init.astype(np.float32)), torch.from_numpy(item_init.astype(np.float32))
    u, v = q0.clone().requires_grad_(True), v0.clone().requires_grad_(True)
    qi, ii, g = (torch.from_numpy(a) for a in (query_of.astype(np.int64), item_of.astype(np.int64),
                                                targets.astype(np.float32)))
    fit, hold = torch.from_numpy(~held), torch.from_numpy(held)

    def residual(mask) -> float:
        with torch.no_grad():
            e = (u[qi[mask]] * v[ii[mask]]).sum(-1) - g[mask]
            return float(e.pow(2).mean().sqrt()) if len(e) else float("nan")

    before = {"fit_rmse_before": residual(fit), "heldout_rmse_before": residual(hold)}
    opt = torch.optim.Adam([u, v], lr=lr)
    for _ in range(steps):
        opt.zero_grad()
        e = (u[qi[fit]] * v[ii[fit]]).sum(-1) - g[fit]
        loss = e.pow(2).mean() + pull * ((u - q0).pow(2).sum(-1).mean() + (v - v0).pow(2).sum(-1).mean())
        loss.backward()
        opt.step()
    stats = {**before, "fit_rmse": residual(fit), "heldout_rmse": residual(hold), "entries": int(len(targets)),
             "heldout_entries": int(held.sum()), "steps": steps}
    return u.detach().numpy(), v.detach().numpy(), stats


def pseudo_queries(texts: Sequence[str], n: int, words: int = 8, seed: int = 0) -> list[str]:
    """Queries sampled from document text (a span of `words` words from n random documents), for corpora without
    training queries."""
    rng = np.random.default_rng(seed)
    out = []
    for i in rng.choice(len(texts), size=min(n, len(texts)), replace=False):
        tokens = texts[i].split()
        start = int(rng.integers(0, max(1, len(tokens) - words + 1)))
        out.append(" ".join(tokens[start:start + words]))
    return [q for q in out if q]


def reranker_scorer(reranker, texts: Sequence[str], docstore) -> ScoreFn:
    """A ScoreFn over the index's documents: one `score_docs` call per round for all queries in it."""
    def score(queries: Sequence[int], rows: Sequence[np.ndarray]) -> list[np.ndarray]:
        keep = [i for i, r in enumerate(rows) if len(r)]
        out = [np.zeros(0, np.float32) for _ in rows]
        got = reranker.score_docs([texts[queries[i]] for i in keep],
                                  [[docstore.docids[j] for j in rows[i]] for i in keep], docstore)
        for i, s in zip(keep, got):
            out[i] = np.asarray(s, np.float32)
        return out
    return score


@dataclass
class AxnIndex:
    """The fitted item vectors of an index (`axn/`) and their FAISS index."""
    path: Path
    meta: dict

    @classmethod
    def open(cls, index) -> "AxnIndex":
        path = index.path / AXN_DIR
        if not (path / "meta.json").is_file():
            raise FileNotFoundError(f"index '{index.name}' has no AXN item vectors: fit them with "
                                    f"`rerank axn-index {index.name} --reranker MODEL_DIR`")
        return cls(path, json.loads((path / "meta.json").read_text()))

    @property
    def vectors(self) -> np.ndarray:
        return np.load(self.path / "item_vectors.npy", mmap_mode="r")

    def faiss_index(self):
        from .dense import read_faiss

        return read_faiss(self.path / "index.faiss")


def fit_axn(index, reranker, queries: Sequence[str] | None = None, pseudo: int = 500, k_d: int = 100,
            steps: int = 300, show_progress: bool = True) -> AxnIndex:
    """Fit and store AXN item vectors for `index` (which needs a dense stage) and `reranker`, atomically (written
    in `.axn.build`, then renamed). `queries`: the corpus's training queries; without them, `pseudo` queries are
    sampled from document text."""
    from tqdm.auto import tqdm

    from .dense import build_faiss, encode, write_faiss

    if "dense" not in index.stages:
        raise ValueError(f"AXN starts from the dual encoder: index '{index.name}' was built without a dense stage")
    store = index.docstore
    started = time.time()
    source = "training queries" if queries else f"{pseudo} pseudo queries sampled from document text"
    texts = list(queries) if queries else pseudo_queries(store.texts(store.docids), pseudo)
    item_init = index.embeddings
    query_init = encode(texts, index.manifest["dense"]["encoder"])
    dual, rows = index.faiss_index().search(query_init, min(k_d, len(store)))
    score = reranker_scorer(reranker, texts, store)
    ce = []
    for start in tqdm(range(0, len(texts), 32), desc="AXN scoring", disable=not show_progress):
        ce += score(range(start, min(start + 32, len(texts))), list(rows[start:start + 32]))
    valid = rows >= 0
    reranker_scores = np.concatenate(ce)
    scale, shift = moment_map(reranker_scores, dual[valid])
    query_of = np.repeat(np.arange(len(texts)), valid.sum(1))
    _, item_vectors, stats = fit_item_embeddings(query_init, item_init, query_of, rows[valid],
                                                 scale * reranker_scores + shift, steps=steps)
    meta = {"reranker": reranker.fingerprint,
            "queries": source, "n_queries": len(texts), "k_d": k_d, "reranker_calls": int(valid.sum()),
            "scale": scale, "shift": shift, "seconds": round(time.time() - started, 1), **stats}
    work = index.path / f".{AXN_DIR}.build"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    np.save(work / "item_vectors.npy", item_vectors.astype(np.float32))
    write_faiss(build_faiss(item_vectors.astype(np.float32), "flat"), work / "index.faiss")
    (work / "meta.json").write_text(json.dumps(meta, indent=2))
    swap_into_place(work, index.path / AXN_DIR)
    return AxnIndex(index.path / AXN_DIR, meta)


class AXN(Retriever):
    """Retrieval by the reranker itself: `budget` reranker calls per query in `rounds` rounds, the first from the
    dual encoder (or BM25); returns the top `k` scored items by exact reranker score."""

    def __init__(self, index, reranker, budget: int = 100, rounds: int = 5, k: int = 100, blend: float = 0.0,
                 first: str = "dense", ridge: float = 1e-3, fit_if_missing: bool = True):
        check_budget(budget, rounds)  # at construction, so a bad config fails before any search
        if first not in ("dense", "bm25"):
            raise ValueError(f"AXN first round comes from 'dense' or 'bm25', not {first!r}")
        self.index, self.reranker, self.budget, self.rounds = index, reranker, budget, rounds
        self.k, self.blend, self.first, self.ridge, self.fit_if_missing = k, blend, first, ridge, fit_if_missing
        self.name = f"AXN(B={budget}, R={rounds})"
        self._axn: AxnIndex | None = None

    def axn_index(self) -> AxnIndex:
        if self._axn is None:
            try:
                axn = AxnIndex.open(self.index)
            except FileNotFoundError:
                if not self.fit_if_missing:
                    raise
                import warnings

                warnings.warn(f"fitting AXN item vectors for index '{self.index.name}' on first use "
                              "(pseudo queries from its documents)", stacklevel=2)
                axn = fit_axn(self.index, self.reranker)
            if axn.meta["reranker"] != self.reranker.fingerprint:
                raise ValueError(f"{axn.path}: its item vectors were fitted for another reranker; refit with "
                                 f"`rerank axn-index {self.index.name} --reranker MODEL_DIR`")
            self._axn = axn
        return self._axn

    def transform(self, queries: Queries, run: Run | None = None) -> Run:
        from .dense import encode_queries

        axn = self.axn_index()
        store = self.index.docstore
        qids = list(queries)
        texts = [queries[q] for q in qids]
        per_round = self.budget // self.rounds
        # Dual-encoder query vectors, encoded once: the first round's search and the blend both use them.
        q_dense = encode_queries(texts, self.index.manifest["dense"]["encoder"]) if self.first == "dense" or self.blend else None
        if self.first == "dense":
            dense = self.index.faiss_index()
            first = [r[r >= 0] for r in dense.search(q_dense, min(per_round, dense.ntotal))[1]]
        else:
            starter = self.index.bm25(per_round).transform(queries)
            first = [store.rows([h.docid for h in starter[q]]) if q in starter else np.zeros(0, np.int64) for q in qids]
        faiss_index = axn.faiss_index()
        found = adaptive_search(
            first, reranker_scorer(self.reranker, texts, store), axn.vectors, lambda u, k: faiss_index.search(u, k)[1],
            self.budget, self.rounds, q_dense if self.blend else None, self.blend, self.ridge, axn.meta["scale"],
            axn.meta["shift"])
        out = {}
        for q, (rows, values) in zip(qids, found):
            top = np.argsort(-values, kind="stable")[: self.k]
            out[q] = [Hit(store.docids[rows[i]], float(values[i])) for i in top]
        return Run(out, store)
