"""Acceptance: BM25 and dense retrieval on BEIR SciFact reproduce the published nDCG@10 (bm25s 0.686, MTEB's
all-MiniLM-L6-v2 0.645), scored by ir_measures (trec_eval via pytrec_eval). Builds a real index: minutes on 2 cores."""
import ir_measures
import pytest
from ir_measures import nDCG

from rerank_pipeline import BM25, Dense, build_index
from rerank_pipeline.io import read_qrels, read_queries
from conftest import shared_dataset


@pytest.mark.slow
def test_scifact_reproduces_published_ndcg(tmp_path_factory):
    data = shared_dataset("scifact")
    idx, _ = build_index(data / "corpus.jsonl", "scifact", tmp_path_factory.mktemp("ix"), show_progress=False)
    qrels = read_qrels(data / "qrels" / "test.tsv")
    queries = {q: t for q, t in read_queries(data / "queries.jsonl").items() if q in qrels}
    assert len(queries) == 300
    bm25 = ir_measures.calc_aggregate([nDCG @ 10], qrels, BM25(idx, k=100).search(queries).to_dict())[nDCG @ 10]
    dense = ir_measures.calc_aggregate([nDCG @ 10], qrels, Dense(idx, k=100).search(queries).to_dict())[nDCG @ 10]
    assert bm25 >= 0.68
    assert dense == pytest.approx(0.645, abs=0.005)
