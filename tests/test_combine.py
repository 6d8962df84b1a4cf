"""The Combine stage (fitted first-stage features + a gated model), its features, and leave-one-dataset-out fitting."""
from math import comb

import numpy as np
import pytest

from rerank_pipeline.config import ConfigError, open_pipeline, validate_config
from rerank_pipeline.pipeline import Stage
from rerank_pipeline.rerankers.combine import (FEATURES, Combine, FeatureExtractor, combine_scores,
                                               fit_leave_one_out, simplex_grid, zscore_columns)


class TextLength(Stage):
    """A stand-in model: its logit is the candidate's length; counts its calls."""

    name = "length"
    calls = 0

    def score_docs(self, texts, docids, docs):
        self.calls += 1
        return [np.array([len(t) for t in docs.texts(ds)], dtype=float) for ds in docids]


def zscore(v):
    v = np.asarray(v, float)
    return (v - v.mean()) / v.std()


def first_stage(index, query, k=10):
    return open_pipeline(index, None, rerank=False).search({"q": query}).cut(k)


def test_features_equal_what_each_first_stage_scores(demo_index):
    """The bm25 and dense features of a candidate are the scores the BM25 and dense retrievers give it."""
    query = "patagonia japan"
    run = first_stage(demo_index, query)
    docids = [h.docid for h in run["q"]]
    feats = FeatureExtractor(demo_index).extract([query], [docids], demo_index.docstore,
                                                 [[h.score for h in run["q"]]])[0]
    assert feats[:, FEATURES.index("run")] == pytest.approx([h.score for h in run["q"]])
    bm25 = {h.docid: h.score for h in demo_index.bm25(1000).search({"q": query})["q"]}
    dense = {h.docid: h.score for h in demo_index.dense(1000).search({"q": query})["q"]}
    assert feats[:, FEATURES.index("bm25")] == pytest.approx([bm25.get(d, 0.0) for d in docids], rel=1e-5)
    assert feats[:, FEATURES.index("dense")] == pytest.approx([dense[d] for d in docids], abs=1e-5)


def test_features_without_an_index_encode_on_the_fly(demo_index):
    query = "oaxaca food"
    run = first_stage(demo_index, query, 8)
    docids = [h.docid for h in run["q"]]
    stored = FeatureExtractor(demo_index).extract([query], [docids], demo_index.docstore)[0]
    fly = FeatureExtractor(None).extract([query], [docids], demo_index.docstore)[0]
    assert np.isnan(fly[:, FEATURES.index("bm25")]).all() and np.isnan(fly[:, FEATURES.index("run")]).all()
    assert fly[:, FEATURES.index("dense")] == pytest.approx(stored[:, FEATURES.index("dense")], abs=1e-5)
    skipped = FeatureExtractor(None, use=("run",)).extract([query], [docids], demo_index.docstore)[0]
    assert np.isnan(skipped).all()  # dense not asked for: nothing encoded


def test_combined_score_against_explicit_formula(demo_index):
    query = "patagonia japan"
    run = first_stage(demo_index, query)
    docids = [h.docid for h in run["q"]]
    weights = {"run": 0.2, "bm25": 0.3, "dense": 0.5}
    model = TextLength()
    out = Combine(model, weights, 0.01, demo_index).transform({"q": query}, run)
    feats = FeatureExtractor(demo_index).extract([query], [docids], demo_index.docstore,
                                                 [[h.score for h in run["q"]]])[0]
    lengths = np.array([len(t) for t in demo_index.docstore.texts(docids)], float)
    expected = sum(w * zscore(feats[:, FEATURES.index(f)]) for f, w in weights.items()) + 0.01 * lengths
    assert {h.docid: h.score for h in out["q"]} == pytest.approx(dict(zip(docids, expected)))


def test_a_z_scaled_model_is_z_scored_per_query_like_a_feature(demo_index):
    """model_scale z (a model not trained as the residual): the logits enter z-scored per query, so multiplying
    them by any positive number changes nothing; raw logits are added as they are."""
    query = "patagonia japan"
    run = first_stage(demo_index, query)
    docids = [h.docid for h in run["q"]]
    weights = {"run": 0.1, "dense": 0.5}
    block = {"weights": weights, "gate": 0.4, "model_scale": "z"}
    out = Combine.from_config(TextLength(), block, demo_index).transform({"q": query}, run)
    feats = FeatureExtractor(demo_index).extract([query], [docids], demo_index.docstore,
                                                 [[h.score for h in run["q"]]])[0]
    lengths = np.array([len(t) for t in demo_index.docstore.texts(docids)], float)
    expected = sum(w * zscore(feats[:, FEATURES.index(f)]) for f, w in weights.items()) + 0.4 * zscore(lengths)
    assert {h.docid: h.score for h in out["q"]} == pytest.approx(dict(zip(docids, expected)))

    class LongerLength(TextLength):
        def score_docs(self, texts, docids, docs):
            return [100 * s for s in super().score_docs(texts, docids, docs)]

    scaled = Combine.from_config(LongerLength(), block, demo_index).transform({"q": query}, run)
    assert [h.docid for h in scaled["q"]] == [h.docid for h in out["q"]]
    raw = Combine.from_config(LongerLength(), {**block, "model_scale": "raw"}, demo_index).transform({"q": query}, run)
    assert [len(t) for t in demo_index.docstore.texts([h.docid for h in raw["q"]])] == sorted(lengths, reverse=True)
    assert "z(length)" in Combine.from_config(TextLength(), block, demo_index).name
    with pytest.raises(ValueError, match="model_scale"):
        Combine(TextLength(), weights, 0.4, demo_index, model_scale="softmax")


def test_zero_gate_ranks_exactly_as_the_features_and_skips_the_model(demo_index):
    query = "tent"
    run = first_stage(demo_index, query)
    weights = {"run": 0.3, "dense": 0.7}
    model = TextLength()
    with_model = Combine(model, weights, 0.0, demo_index).transform({"q": query}, run)
    alone = Combine(None, weights, index=demo_index).transform({"q": query}, run)
    assert [(h.docid, h.score) for h in with_model["q"]] == [(h.docid, h.score) for h in alone["q"]]
    assert model.calls == 0


def test_weights_fitted_on_another_encoders_cosine_warn_once_and_matching_ones_do_not(demo_index, recwarn):
    import warnings

    from rerank_pipeline.rerankers import combine

    combine._warn_if_refitting_needed.cache_clear()
    block = {"weights": {"bm25": 0.25, "dense": 0.75}, "gate": 0.0}
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the demo index's encoder: silent
        Combine.from_config(None, {**block, "dense_encoder": "sentence-transformers/all-MiniLM-L6-v2"}, demo_index)
        Combine.from_config(None, {**block, "dense_encoder": "all-MiniLM-L6-v2"}, demo_index)  # another spelling
        Combine.from_config(None, block, demo_index)  # nothing recorded: nothing to compare
        Combine.from_config(None, {"weights": {"bm25": 1.0}, "dense_encoder": "bge-small-en-v1.5"}, demo_index)
    with pytest.warns(UserWarning, match="fitted on /elsewhere/encoder's cosine"):  # not on this machine: no error
        Combine.from_config(None, {**block, "dense_encoder": "/elsewhere/encoder"}, demo_index)
    with pytest.warns(UserWarning, match="fitted on bge-small-en-v1.5's cosine.*all-MiniLM-L6-v2's"):
        Combine.from_config(None, {**block, "dense_encoder": "bge-small-en-v1.5"}, demo_index)
    recwarn.clear()
    Combine.from_config(None, {**block, "dense_encoder": "bge-small-en-v1.5"}, demo_index)
    assert not [w for w in recwarn if "fitted on" in str(w.message)]  # once per process


def test_training_head_starts_as_the_feature_combination():
    """Before any step the residual training head scores a list exactly as its features rank it (gate = 0)."""
    import torch

    from rerank_pipeline.training.loop import ResidualHead

    rng = np.random.default_rng(0)
    feats = np.column_stack([np.full(6, np.nan), rng.normal(size=6), rng.normal(size=6)])
    head = ResidualHead({"bm25": 0.4, "dense": 0.6})
    scores = head(feats, torch.tensor(rng.normal(size=6) * 100, dtype=torch.float32)).detach().numpy()
    assert scores == pytest.approx(combine_scores(feats, head.weights), abs=1e-6)
    assert head.stage_config() == {"weights": {"bm25": 0.4, "dense": 0.6}, "gate": 0.0}


def test_training_gate_is_straight_through_for_the_model():
    """At gate 0 the model's logits still get the gradient of the combined score (what the features miss), and
    the gate gets the gradient of its own contribution."""
    import torch

    from rerank_pipeline.training.losses import softmax_ce_loss
    from rerank_pipeline.training.loop import ResidualHead

    feats = np.column_stack([np.full(4, np.nan), [3.0, 1.0, 0.0, 2.0], [0.5, 0.1, 0.9, 0.2]])
    head = ResidualHead({"bm25": 0.5, "dense": 0.5})
    logits = torch.tensor([0.3, -0.2, 0.8, 0.1], requires_grad=True)
    y, mask = torch.tensor([[0.0, 1.0, 0.0, 0.0]]), torch.ones(1, 4, dtype=torch.bool)
    combined = head(feats, logits)
    softmax_ce_loss(combined[None], y, mask).backward()
    expected = torch.softmax(combined.detach(), -1) - y[0]  # d CE / d score
    assert torch.allclose(logits.grad, expected, atol=1e-6)
    assert head.gate.grad == pytest.approx(float(expected @ logits.detach()), abs=1e-6)


def test_zscore_columns_treats_absent_and_constant_features_as_zero():
    x = np.array([[1.0, np.nan, 5.0], [3.0, np.nan, 5.0]])
    assert zscore_columns(x).tolist() == [[-1.0, 0.0, 0.0], [1.0, 0.0, 0.0]]


def test_simplex_grid_covers_every_weight_vector():
    grid = simplex_grid(3, 0.1)
    assert len(grid) == comb(10 + 2, 2) and np.allclose(grid.sum(1), 1) and (grid >= 0).all()
    assert len({tuple(np.round(g, 6)) for g in grid}) == len(grid)


def test_leave_one_out_never_fits_a_set_on_itself():
    # "a" is best on sets 1 and 2, "b" on set 3 by a margin large enough to win the all-set mean.
    table = {"s1": {"a": 0.9, "b": 0.5}, "s2": {"a": 0.8, "b": 0.6}, "s3": {"a": 0.1, "b": 1.0}}
    chosen = fit_leave_one_out(table)
    assert chosen["s3"] == "a"   # fitted on s1, s2 only
    assert chosen["s1"] == "b"   # s2 + s3: a 0.45, b 0.8
    assert chosen["*"] == "b"    # all: a 0.6, b 0.7
    assert fit_leave_one_out({"s1": {"x": 0.2, "y": 0.2}})["*"] == "x"  # ties: the first setting


def test_config_combine_block_is_validated_and_builds_the_stage(demo_index):
    cfg = {"retrievers": [{"type": "bm25"}, {"type": "dense"}],
           "reranker": {"type": "crossjem", "model": "x", "combine": {"weights": {"bm25": 0.5, "dense": 0.5}}}}
    validate_config(cfg)
    for bad in ({"weights": {"tfidf": 1}}, {"weights": {"bm25": -1}}, {"gate": "big"}, {"gate": float("inf")}, {"features": ["x"]},
                {"weights": {"bm25": 1}, "model_scale": "softmax"}, 3):
        with pytest.raises(ConfigError, match="combine"):
            validate_config({**cfg, "reranker": {"type": "crossjem", "combine": bad}})
    with pytest.raises(ConfigError, match="either interpolate or combine"):
        validate_config({**cfg, "reranker": {"type": "crossjem", "combine": True, "interpolate": 0.5}})

    from rerank_pipeline.config import combine_stage

    stage = combine_stage(TextLength(), {"weights": {"dense": 1.0}, "gate": 0.0}, demo_index)
    run = first_stage(demo_index, "oaxaca food")
    order = [h.docid for h in stage.transform({"q": "oaxaca food"}, run)["q"]]
    dense = [h.docid for h in demo_index.dense(1000).search({"q": "oaxaca food"})["q"] if h.docid in set(order)]
    assert order == dense  # dense weight alone: the dual encoder's order (= zero-shot MiniLM cosine)


def test_candidates_outside_the_index_get_bm25_zero_and_an_encoded_cosine(demo_index):
    from rerank_pipeline.documents import TextDocs
    from rerank_pipeline.retrievers.dense import encode

    query = "patagonia japan"
    docids = [h.docid for h in first_stage(demo_index, query, 3)["q"]]
    docs = TextDocs({**dict(zip(docids, demo_index.docstore.texts(docids))), "new": "patagonia store in osaka japan"})
    feats = FeatureExtractor(demo_index).extract([query], [docids + ["new"]], docs)[0]
    alone = FeatureExtractor(demo_index).extract([query], [docids], docs)[0]
    np.testing.assert_allclose(feats[:3], alone, atol=1e-6)  # NaN (no run score) where both have it
    assert feats[3, FEATURES.index("bm25")] == 0.0
    assert feats[3, FEATURES.index("dense")] == pytest.approx(float(encode([docs.texts(["new"])[0]])[0] @ encode([query])[0]),
                                                              abs=1e-5)


def test_passage_windows_cover_every_token_and_a_document_scores_its_best_window():
    from rerank_pipeline.rerankers.scorer import Scorer
    from rerank_pipeline.rerankers.windows import Windows, passage_windows

    tokens = np.arange(10)
    assert [w.tolist() for w in passage_windows(tokens, 4, 3, 9)] == [[0, 1, 2, 3], [3, 4, 5, 6], [6, 7, 8, 9]]
    assert [w.tolist() for w in passage_windows(np.arange(11), 4, 3, 9)][-1] == [7, 8, 9, 10]  # the tail is read
    assert len(passage_windows(np.arange(3), 4, 3, 9)) == 1 and len(passage_windows(np.arange(100), 4, 2, 5)) == 5

    class LargestToken(Scorer):  # an explicit scorer: a candidate's score is its largest token id
        config, tokenizer, device, name = {"max_item_tokens": 8, "max_query_tokens": 4}, None, "cpu", "largest"
        kind, backend, source, fingerprint = "test", "numpy", None, "f"
        calls: list = []

        def score_ids(self, query_ids, candidates):
            self.calls.append([len(c) for c in candidates])
            return [np.array([t[:self.config["max_item_tokens"]].max() for t in c], float) for c in candidates]

    inner = LargestToken()
    docs = [[np.array([5, 1, 2, 3, 4, 6, 7, 8, 9, 0]), np.array([3, 2])], [np.arange(20)]]
    first_p = inner.score_ids([np.arange(2)] * 2, docs)
    maxp = Windows(inner, size=4, stride=4, max_windows=3).score_ids([np.arange(2)] * 2, docs)
    assert [s.tolist() for s in first_p] == [[8, 3], [7]]        # the first 8 tokens only
    assert [s.tolist() for s in maxp] == [[9, 3], [11]]          # best of windows 0-3, 4-7, 6-9 / three windows of 20
    assert inner.calls[-1] == [4, 3]                              # every window of a query's list in one call
    with pytest.raises(ValueError, match="max_item_tokens"):
        Windows(inner, size=16)


def test_a_windows_block_reads_long_documents_as_passages(demo_index):
    from rerank_pipeline.config import ConfigError, open_pipeline, validate_config

    cfg = {"retrievers": [{"type": "bm25", "k": 20}],
           "reranker": {"type": "crossjem", "model": "default", "combine": True, "windows": {"size": 16, "stride": 8}}}
    pipe = open_pipeline(demo_index, cfg)
    assert "maxp(crossjem, 16/8)" in pipe.name
    assert pipe("patagonia japan")[0].docid in {d for d in demo_index.docstore.docids}
    for bad in ({"stride": 8}, {"size": 0}, {"size": 16, "every": 2}, [16]):
        with pytest.raises(ConfigError, match="windows"):
            validate_config({**cfg, "reranker": {**cfg["reranker"], "windows": bad}})
