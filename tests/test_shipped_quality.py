"""Acceptance: a shipped reranker must beat the first stage it reranks, so a collapsed model can never ship.

Fixed dev subsets (seed 0), candidates from the project's own BM25 over each set's corpus, reranked by the stage the
default config builds (the shipped model on top of the first stage's features), against BM25's own order."""
import ir_measures
import numpy as np
import pytest
from ir_measures import nDCG

from rerank_pipeline.config import default_config, reranker_stage
from rerank_pipeline.io.beir import BeirDataset
from rerank_pipeline.rerankers import MODELS_DIR
from rerank_pipeline.training.data import dataset_index
from conftest import shared_dataset


@pytest.mark.slow
@pytest.mark.parametrize("name,split,margin", [("wikiqa", "dev", 0.05), ("amazon-google", "dev", 0.0),
                                               ("scifact", "dev", 0.0)])
def test_shipped_reranker_beats_bm25_on_a_fixed_dev_subset(name, split, margin, tmp_path_factory):
    ds = BeirDataset(shared_dataset(name))
    qrels = {q: r for q, r in ds.qrels(split).items() if any(v > 0 for v in r.values())}
    qids = sorted(np.random.default_rng(0).choice(sorted(qrels), 60, replace=False).tolist())
    qrels = {q: qrels[q] for q in qids}
    idx = dataset_index(ds, tmp_path_factory.mktemp("ix"), dense=False)
    bm25 = idx.bm25(30).search({q: ds.queries[q] for q in qids})
    spec = default_config().get("reranker")
    if spec is None:  # nothing reranks by default: then no model may sit in the package either
        assert not list(MODELS_DIR.glob("*/model.safetensors"))
        pytest.skip("no reranker ships (none has passed benchmarks/ship_default.py yet)")
    shipped = reranker_stage(spec, idx).transform({q: ds.queries[q] for q in qids}, bm25)
    score = {n: ir_measures.calc_aggregate([nDCG @ 10], qrels, run.to_dict())[nDCG @ 10]
             for n, run in (("bm25", bm25), ("shipped", shipped))}
    assert score["shipped"] > score["bm25"] + margin, score
