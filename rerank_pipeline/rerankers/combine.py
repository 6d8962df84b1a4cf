"""A reranking stage that starts where the free signals already are and adds a model as a learned correction:

    score(d) = sum_f w_f * z(feature_f(d)) + gate * model(query, candidates)(d)

Features are what the pipeline has for (almost) nothing:
  * `run`   the score of the run being reranked (fused or given);
  * `bm25`  each candidate's exact BM25 score, from the index's bm25s model (absent without an index);
  * `dense` dual-encoder cosine: the index's stored embeddings, or the candidates encoded on the fly when there is
            no index (for short items that costs more than CROSS-JEM itself; drop it with `features=`).
`z` is a per-query z-score; an absent feature contributes 0. With `gate = 0` the stage ranks exactly as its feature
combination does. A model trained as the residual of that combination (training/loop.py) adds its raw logits, not
normalised: a model unsure about a list moves it little. A model trained on its own (the MS MARCO cross-encoder) may
instead be z-scored like a feature (`model_scale="z"`), so that its weight is fitted with the features' on one
simplex (benchmarks/reranker_quality.py --z-scored).

    (BM25(idx) | Dense(idx)) % 100 >> Combine(CrossJEM.default(), {"run": 0.2, "bm25": 0.3, "dense": 0.5}, 0.4, idx)
"""
from __future__ import annotations

import functools
import warnings
from typing import Mapping, Sequence

import numpy as np

from ..encoders import recorded_name
from ..pipeline import Stage
from ..types import Queries, Run, split_by

FEATURES = ("run", "bm25", "dense")
MODEL_SCALES = ("raw", "z")  # the model's logits as they are (a residual model) or z-scored per query like a feature


def zscore_columns(x: np.ndarray) -> np.ndarray:
    """Per-column z-score of one query's [candidates x features] matrix; NaN (absent) and constant columns -> 0."""
    x = np.asarray(x, dtype=np.float64)
    out = np.zeros_like(x)
    ok = ~np.isnan(x).any(axis=0)
    if ok.any():
        cols = x[:, ok]
        std = cols.std(axis=0)
        out[:, ok] = np.where(std > 0, (cols - cols.mean(axis=0)) / np.where(std > 0, std, 1.0), 0.0)
    return out


def combine_scores(features: np.ndarray, weights: np.ndarray, model: np.ndarray | None = None,
                   gate: float = 0.0, model_scale: str = "raw") -> np.ndarray:
    """One query's combined scores from its raw [candidates x features] matrix and the model's logits."""
    score = zscore_columns(features) @ np.asarray(weights, dtype=np.float64)
    if model is None or gate == 0:
        return score
    model = np.asarray(model, dtype=np.float64)
    return score + gate * (zscore_columns(model[:, None])[:, 0] if model_scale == "z" else model)


def weight_vector(weights: Mapping[str, float]) -> np.ndarray:
    unknown = set(weights) - set(FEATURES)
    if unknown:
        raise ValueError(f"unknown feature(s) {sorted(unknown)} (use {', '.join(FEATURES)})")
    return np.array([float(weights.get(f, 0.0)) for f in FEATURES])


class FeatureExtractor:
    """Raw features of candidates, [candidates x FEATURES] per query, NaN where a feature is absent. Only the
    features in `use` are computed (the expensive on-the-fly encoding is skipped when `dense` is not used)."""

    def __init__(self, index=None, encoder: str | None = None, use: Sequence[str] = FEATURES):
        self.index, self.use = index, tuple(use)
        self.encoder = encoder
        if index is not None and "dense" in index.stages:
            self.encoder = index.manifest["dense"]["encoder"]

    @property
    def available(self) -> tuple[str, ...]:
        """What this extractor can compute: BM25 needs an index with a bm25s stage; the rest always works."""
        bm25 = self.index is not None and "bm25" in self.index.stages and hasattr(self.index.bm25_backend(), "score_rows")
        return tuple(f for f in self.use if f != "bm25" or bm25)

    def extract(self, query_texts: Sequence[str], docids: Sequence[Sequence[str]], docs,
                run_scores: Sequence[Sequence[float]] | None = None) -> list[np.ndarray]:
        sizes = [len(d) for d in docids]
        out = np.full((sum(sizes), len(FEATURES)), np.nan)
        if not sizes or not sum(sizes):
            return split_by(out, sizes)
        flat = [d for ds in docids for d in ds]
        # Candidates the index does not hold (another corpus, or records its build skipped) are read from `docs`.
        store = self.index.docstore if self.index is not None else None
        indexed = np.array([store is not None and d in store for d in flat], dtype=bool)
        available = self.available
        if "run" in available and run_scores is not None:
            out[:, 0] = np.concatenate([np.asarray(s, dtype=np.float64) for s in run_scores])
        if "bm25" in available and indexed.any():
            rows = [store.rows([d for d, ok in zip(ds, part) if ok])
                    for ds, part in zip(docids, split_by(indexed, sizes))]
            out[:, 1] = 0.0  # what the index cannot match scores 0, as in a BM25 search
            out[indexed, 1] = np.concatenate(self.index.bm25_backend().score_rows(query_texts, rows))
        if "dense" in available:
            out[:, 2] = self.cosine(query_texts, flat, sizes, docs, indexed)
        return split_by(out, sizes)

    def cosine(self, query_texts: Sequence[str], flat: Sequence[str], sizes: Sequence[int], docs,
               indexed: np.ndarray) -> np.ndarray:
        """Query-candidate cosine: stored embeddings where the index has them, the rest encoded now."""
        from ..retrievers.dense import encode_at_runtime, encode_queries

        q_emb = encode_queries(list(query_texts), self.encoder)
        d_emb = np.empty((len(flat), q_emb.shape[1]), dtype=np.float32)
        stored = indexed if self.index is not None and "dense" in self.index.stages else np.zeros_like(indexed)
        if stored.any():
            d_emb[stored] = self.index.embeddings[self.index.docstore.rows([d for d, s in zip(flat, stored) if s])]
        if not stored.all():
            d_emb[~stored] = encode_at_runtime(docs.texts([d for d, s in zip(flat, stored) if not s]), self.encoder)
        owner = np.repeat(np.arange(len(sizes)), sizes)
        return np.einsum("nd,nd->n", d_emb, q_emb[owner]).astype(np.float64)


class Combine(Stage):
    """Reranks each query's candidates by fitted feature weights plus `gate` times a reranker's logits."""

    def __init__(self, reranker=None, weights: Mapping[str, float] | None = None, gate: float = 0.0, index=None,
                 encoder: str | None = None, features: Sequence[str] | None = None, dense_encoder: str | None = None,
                 model_scale: str = "raw"):
        """`dense_encoder`: the dual encoder whose cosine the weights were fitted on (a shipped combination records
        it); a stage that reads another one's cosine warns once, since its weights may not fit. `model_scale`: "raw"
        logits (a model trained as the features' residual) or "z" (z-scored per query, for any other model)."""
        if model_scale not in MODEL_SCALES:
            raise ValueError(f"model_scale must be one of {', '.join(MODEL_SCALES)}, got {model_scale!r}")
        weights = dict(weights or {"run": 1.0})
        self.weights = weight_vector(weights)
        if features is not None:  # run without some features (e.g. no on-the-fly encoding): their weight is 0
            self.weights[[f not in features for f in FEATURES]] = 0.0
        self.reranker, self.gate, self.model_scale = reranker, float(gate), model_scale
        self.extractor = FeatureExtractor(index, encoder, [f for f, w in zip(FEATURES, self.weights) if w != 0])
        if dense_encoder is not None and "dense" in self.extractor.use:
            _warn_if_refitting_needed(dense_encoder, self.extractor.encoder)
        model = ""
        if reranker is not None and self.gate:
            model = f" + {self.gate:g} " + (f"z({reranker.name})" if model_scale == "z" else reranker.name)
        self.name = "combine(" + ", ".join(f"{w:g} {f}" for f, w in zip(FEATURES, self.weights) if w) + model + ")"

    @classmethod
    def from_config(cls, reranker, spec: Mapping, index=None) -> "Combine":
        """From a model's stored `combine` block ({weights, gate}) or a YAML one."""
        return cls(reranker, spec["weights"], spec.get("gate", 0.0), index, features=spec.get("features"),
                   dense_encoder=spec.get("dense_encoder"), model_scale=spec.get("model_scale", "raw"))

    def transform(self, queries: Queries, run: Run | None = None) -> Run:
        qids, docids, texts = self.candidates(queries, run)
        features = self.extractor.extract(texts, docids, run.docs, [[h.score for h in run[q]] for q in qids])
        model = (self.reranker.score_docs(texts, docids, run.docs) if self.reranker is not None and self.gate
                 else [None] * len(qids))
        scores = [combine_scores(f, self.weights, m, self.gate, self.model_scale) for f, m in zip(features, model)]
        return Run.from_scores(qids, docids, scores, run.docs)


@functools.lru_cache(maxsize=None)  # once per pair in a process, not on every pipeline a server opens
def _warn_if_refitting_needed(fitted: str, used: str | None) -> None:
    if fitted == used:  # the usual case, decided without resolving either name (a fresh CLI process pays nothing)
        return
    fitted, used = _encoder_label(fitted), _encoder_label(used)
    if fitted != used:
        warnings.warn(f"the feature weights were fitted on {fitted}'s cosine, but this stage reads {used}'s: they "
                      "may not fit (refit with benchmarks/reranker_quality.py --encoder)", stacklevel=3)


def _encoder_label(name: str | None) -> str:
    """The manifest's name for an encoder; a directory not on this machine (fitted elsewhere) by its text."""
    try:
        return recorded_name(name)
    except FileNotFoundError:
        return str(name)


def served(model, index=None) -> Stage:
    """A model as it reranks on its own: one trained or shipped with a feature combination (`config['combine']`)
    on top of its features (from `index` where it holds the documents, the dense cosine computed on the fly
    otherwise), any other model alone."""
    block = model.config.get("combine")
    return Combine.from_config(model, block, index) if block else model


def simplex_grid(dims: int, step: float) -> np.ndarray:
    """Every weight vector of `dims` non-negative multiples of `step` summing to 1."""
    n = round(1 / step)

    def parts(k: int, total: int):
        if k == 1:
            yield (total,)
            return
        for first in range(total + 1):
            for rest in parts(k - 1, total - first):
                yield (first,) + rest

    return np.array(list(parts(dims, n)), dtype=np.float64) / n


def fit_leave_one_out(table: Mapping[str, Mapping[object, float]]) -> dict[str, object]:
    """table[set][setting] = that set's dev figure for one setting. For each set, the setting with the best mean
    over the *other* sets (the weights a corpus never seen in fitting gets), and over all sets (what ships):
    {set: setting fitted without it, '*': setting fitted on all}. Ties go to the earliest setting listed."""
    sets = list(table)
    settings = list(table[sets[0]])
    values = np.array([[table[s][k] for k in settings] for s in sets])
    out = {}
    for i, s in enumerate(sets):
        others = np.delete(values, i, axis=0)
        out[s] = settings[int(np.argmax(others.mean(axis=0)))] if len(others) else settings[0]
    out["*"] = settings[int(np.argmax(values.mean(axis=0)))]
    return out
