"""Interpolation with the first stage, its dev fit, and one way to open a pipeline."""
import numpy as np
import pytest

from rerank_pipeline.config import ConfigError, open_pipeline, validate_config
from rerank_pipeline.rerankers.interpolate import Interpolate, fit_alpha
from rerank_pipeline.types import Hit, Run
from test_pipeline import Negate

FIRST = Run({"q1": [Hit("a", 4.0), Hit("b", 3.0), Hit("c", 1.0)], "q2": [Hit("x", 2.0), Hit("y", 1.0)]})


def zscore(v):
    v = np.asarray(v, float)
    return (v - v.mean()) / v.std()


def test_interpolation_against_explicit_formula():
    reranked = Negate().transform({}, FIRST)
    out = Interpolate(Negate(), 0.3).transform({"q1": "", "q2": ""}, FIRST)
    first, second = zscore([4.0, 3.0, 1.0]), zscore([-4.0, -3.0, -1.0])
    expected = dict(zip("abc", 0.7 * first + 0.3 * second))
    assert {h.docid: h.score for h in out["q1"]} == pytest.approx(expected)
    assert [h.docid for h in Interpolate(Negate(), 1.0).transform({}, FIRST)["q1"]] == [h.docid for h in reranked["q1"]]
    assert [h.docid for h in Interpolate(Negate(), 0.0).transform({}, FIRST)["q1"]] == ["a", "b", "c"]
    with pytest.raises(ValueError, match="alpha"):
        Interpolate(Negate(), 1.5)


def test_fit_alpha_prefers_the_better_signal():
    qrels = {"q1": {"a": 1}, "q2": {"x": 1}}  # the first stage is right, the reversed reranker wrong
    alpha, curve = fit_alpha(FIRST, Negate().transform({}, FIRST), qrels)
    assert curve[0.0] == 1.0 and curve[1.0] < 1.0 and alpha < 0.5
    alpha, _ = fit_alpha(Negate().transform({}, FIRST), FIRST, qrels)  # now the "reranker" is right
    assert alpha == 1.0


def test_config_interpolate_builds_the_stage_and_is_validated():
    cfg = {"retrievers": [{"type": "bm25"}], "reranker": {"type": "crossjem", "interpolate": 0.25}}
    validate_config(cfg)
    for bad in (1.5, "half", True):
        with pytest.raises(ConfigError, match="interpolate"):
            validate_config({**cfg, "reranker": {"type": "crossjem", "interpolate": bad}})
    with pytest.raises(ConfigError, match="unknown key"):
        validate_config({**cfg, "reranker": {"type": "crossjem", "alpha": 0.5}})


def test_open_pipeline_adapts_to_a_bm25_only_index(tmp_path):
    from rerank_pipeline.demo import write_demo_corpus
    from rerank_pipeline.index import build_index

    idx, _ = build_index(write_demo_corpus(tmp_path / "c.jsonl"), "bm", tmp_path, dense=False, show_progress=False)
    pipe = open_pipeline(idx, None, rerank=False)
    assert pipe.name.startswith("bm25") and pipe("tent")
    with pytest.raises(ConfigError, match="index 'bm' has"):
        open_pipeline(idx, {"retrievers": [{"type": "dense"}]})
