"""'default' means one thing: the shipped reranker with its feature combination, whichever way a user asks for it
(Python, a YAML config, the framework stages, `rerank serve`'s rerank API)."""
import httpx
import numpy as np
import pytest

from rerank_pipeline.config import default_config, reranker_stage
from rerank_pipeline.rerankers import Reranker, default_spec, load_reranker
from test_serving import Server

QUERY = "patagonia japan"
DOCS = ["chilean patagonia trek", "Patagonia store in Tokyo", "flights to lima", "patagonia fleece sale japan",
        "kyoto temple guide", "patagonia outlet osaka"]

pytestmark = pytest.mark.skipif(default_spec() is None, reason="no reranker ships")


def order(ranked) -> list[int]:
    return [r["corpus_id"] for r in ranked]


def test_every_way_to_ask_for_the_default_ranks_alike():
    from rerank_pipeline.integrations.langchain import CrossJEMRerank
    from langchain_core.documents import Document

    python = Reranker.load("default")
    assert python.name.startswith("combine(")  # the model with its features, not the bare model
    expected = order(python.rank(QUERY, DOCS))
    assert DOCS[expected[0]] in ("Patagonia store in Tokyo", "patagonia fleece sale japan", "patagonia outlet osaka")
    config = reranker_stage(default_config()["reranker"], None)
    assert order(config.rank(QUERY, DOCS)) == expected
    assert order(load_reranker({"model": "default"}).rank(QUERY, DOCS)) != [] and config.name == python.name
    langchain = CrossJEMRerank(reranker="default", top_n=len(DOCS))
    got = langchain.compress_documents([Document(page_content=d) for d in DOCS], QUERY)
    assert [d.page_content for d in got] == [DOCS[i] for i in expected]
    server = Server("--reranker-only")  # serves 'default' when no --reranker is named
    try:
        body = httpx.post(server.url + "/v1/rerank", json={"query": QUERY, "documents": DOCS}, timeout=60).json()
    finally:
        server.stop()
    assert [r["index"] for r in body["results"]] == expected
    # the server runs the model on its CPU backend ('auto'): the same scores as Python asking for that backend
    served = Reranker.load("default", backend="auto").rank(QUERY, DOCS)
    scores = {r["index"]: r["relevance_score"] for r in body["results"]}
    np.testing.assert_allclose([scores[r["corpus_id"]] for r in served], [r["score"] for r in served], atol=1e-3)
