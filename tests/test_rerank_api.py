"""Cohere's rerank API on `rerank serve --reranker-only`, called with the official `cohere` client; validation
(4xx, never 5xx); the async entry points keep an event loop free."""
import asyncio
import time

import httpx
import numpy as np
import pytest

from test_serving import Server

DOCS = ["Patagonia store in Tokyo, Japan", "cheap flights to Lima", "Japan rail pass for tourists",
        "hiking boots for Patagonia", "ramen shops of Osaka", "a tent for two"]


@pytest.fixture(scope="module")
def models(tiny_encoder, tmp_path_factory):
    from rerank_pipeline.rerankers import CrossJEM, PointwiseCrossEncoder

    root = tmp_path_factory.mktemp("rerank-api")
    CrossJEM.from_encoder(tiny_encoder, device="cpu").save(root / "cj")
    PointwiseCrossEncoder.from_encoder(tiny_encoder, device="cpu").save(root / "pw")
    return root


@pytest.fixture(scope="module")
def server(models):
    srv = Server("--reranker-only", "--reranker", f"crossjem={models / 'cj'}", "--reranker", f"pointwise={models / 'pw'}")
    yield srv
    srv.stop()


def test_cohere_clients_get_the_in_process_ranking(server, models):
    cohere = pytest.importorskip("cohere")
    from rerank_pipeline.rerankers import Reranker

    expected = Reranker.load(models / "cj", backend="auto").rank("patagonia japan", DOCS)  # a server's default
    v2 = cohere.ClientV2(api_key="unused", base_url=server.url).rerank(
        model="crossjem", query="patagonia japan", documents=DOCS, top_n=4)
    assert [r.index for r in v2.results] == [e["corpus_id"] for e in expected[:4]]
    np.testing.assert_allclose([r.relevance_score for r in v2.results], [e["score"] for e in expected[:4]], atol=1e-5)
    v1 = cohere.Client(api_key="unused", base_url=server.url).rerank(
        model="pointwise", query="patagonia japan", documents=DOCS, return_documents=True)
    pointwise = Reranker.load(models / "pw", "cpu").rank("patagonia japan", DOCS)
    assert [r.index for r in v1.results] == [e["corpus_id"] for e in pointwise]
    assert [r.document.text for r in v1.results] == [DOCS[e["corpus_id"]] for e in pointwise]


def test_rerank_api_shapes_and_bad_requests(server):
    ok = httpx.post(server.url + "/v1/rerank", json={"query": "japan", "documents": [{"text": d} for d in DOCS],
                                                     "top_n": 2, "return_documents": True}).json()
    assert [set(r) for r in ok["results"]] == [{"index", "relevance_score", "document"}] * 2  # v1: model optional
    assert ok["meta"]["api_version"]["version"] == "1" and ok["id"]
    cut = httpx.post(server.url + "/v2/rerank", json={"model": "crossjem", "query": "japan", "documents": DOCS,
                                                      "max_tokens_per_doc": 1}).json()
    full = httpx.post(server.url + "/v2/rerank", json={"model": "crossjem", "query": "japan", "documents": DOCS}).json()
    assert len(cut["results"]) == len(DOCS) and cut["results"] != full["results"]  # one word piece per document
    minmax = httpx.post(server.url + "/v2/rerank", json={"model": "crossjem", "query": "japan", "documents": DOCS,
                                                         "score_mode": "minmax"}).json()
    assert [r["index"] for r in minmax["results"]] == [r["index"] for r in full["results"]]  # same order, rescaled
    assert minmax["results"][0]["relevance_score"] == 1.0 and minmax["results"][-1]["relevance_score"] == 0.0
    unknown = httpx.post(server.url + "/v2/rerank", json={"model": "gpt", "query": "q", "documents": ["d"]})
    assert unknown.status_code == 404 and "crossjem, pointwise" in unknown.json()["detail"]
    bad = [{"query": "q", "documents": ["d"]},                                   # v2 needs a model
           {"model": "crossjem", "query": "q", "documents": []},
           {"model": "crossjem", "query": "", "documents": ["d"]},
           {"model": "crossjem", "query": "q", "documents": ["d"], "top_n": 0},
           {"model": "crossjem", "query": "q", "documents": ["d"], "top_n": "3"},
           {"model": "crossjem", "query": "q", "documents": [1, 2]},
           {"model": "crossjem", "query": "q", "documents": [{"title": "no text"}]},
           {"model": "crossjem", "query": "q", "documents": ["d"], "max_tokens_per_doc": 0},
           {"model": "crossjem", "query": "q", "documents": ["d"], "return_documents": "yes"},
           {"model": "crossjem", "query": "q", "documents": ["d"], "score_mode": "softmax"},
           {"model": "crossjem", "query": "q", "documents": ["d"] * 10_000},
           ["not", "an", "object"]]
    for body in bad:
        r = httpx.post(server.url + "/v2/rerank", json=body)
        assert 400 <= r.status_code < 500 and "detail" in r.json(), (body, r.status_code)
    health = httpx.get(server.url + "/healthz").json()
    assert health["index"] is None and set(health["rerankers"]) == {"crossjem", "pointwise"}
    assert health["models"]["pointwise"]["family"] == "pointwise" and health["models"]["crossjem"]["backend"] in (
        "torch", "onnx-int8")  # the server's 'auto': CROSS-JEM on int8 where the onnx extra is installed
    assert health["models"]["crossjem"]["max_item_tokens"] == 48 and health["models"]["crossjem"]["windows"] is None
    assert httpx.get(server.url + "/search", params={"q": "x"}).status_code == 404  # no index: rerank API only


def test_rerank_only_with_a_missing_model_fails_in_one_line(tmp_path):
    from typer.testing import CliRunner

    from rerank_cli.main import app

    # (Without --reranker the shipped model is served, so a CliRunner call would start serving: not tested here.)
    result = CliRunner().invoke(app, ["serve", "--reranker-only", "--reranker", str(tmp_path / "missing")])
    assert result.exit_code == 2 and "is not a local model directory" in result.output
    assert "Traceback" not in result.output


def test_arank_and_asearch_leave_the_event_loop_free(models, demo_index):
    from rerank_pipeline.config import open_pipeline
    from rerank_pipeline.rerankers import Reranker

    reranker = Reranker.load(models / "pw", "cpu")
    pipe = open_pipeline(demo_index)
    slow_rank = reranker.rank

    def rank(*args):
        time.sleep(0.3)  # a slow model: the loop must keep ticking meanwhile
        return slow_rank(*args)

    reranker.rank = rank

    async def main():
        ticks = 0

        async def ticker():
            nonlocal ticks
            while True:
                await asyncio.sleep(0.01)
                ticks += 1

        task = asyncio.create_task(ticker())
        ranked = await asyncio.gather(*(reranker.arank(q, DOCS, 3) for q in ("japan", "tent", "lima")))
        run = await pipe.asearch({"1": "patagonia japan", "2": "tent"})
        task.cancel()
        return ticks, ranked, run

    ticks, ranked, run = asyncio.run(main())
    assert ticks >= 10  # 0.3 s of model time per call, all the while the loop ran
    assert [r[0]["corpus_id"] for r in ranked] == [slow_rank(q, DOCS, 3)[0]["corpus_id"] for q in ("japan", "tent", "lima")]
    assert [h.docid for h in run["1"]] == [h.docid for h in pipe("patagonia japan")]


def test_a_repeated_request_is_answered_from_the_score_cache_and_another_model_misses(models):
    from rerank_pipeline.rerankers import Reranker
    from rerank_pipeline.serving.rerank_api import RerankRequest, ScoreCache, score_requests

    calls = []

    def counted(model):
        real = model.rerank_texts
        model.rerank_texts = lambda queries, docs: calls.append((model.kind, len(queries))) or real(queries, docs)
        return model

    crossjem, pointwise = counted(Reranker.load(models / "cj", "cpu")), counted(Reranker.load(models / "pw", "cpu"))
    cache = ScoreCache(max_entries=3)

    def request(query, docs):
        return RerankRequest("m", query, docs, len(docs), False, None)

    first = score_requests({"m": crossjem}, [request("japan", DOCS), request("tent", DOCS)], cache)
    again = score_requests({"m": crossjem}, [request("japan", DOCS), request("japan", DOCS[::-1])], cache)
    assert calls == [("crossjem", 2), ("crossjem", 1)]  # only the reordered list (a different list) is scored
    np.testing.assert_array_equal(again[0], first[0])
    assert (cache.hits, cache.misses) == (1, 3)
    swapped = score_requests({"m": pointwise}, [request("japan", DOCS)], cache)  # same name, other weights
    assert calls[-1] == ("pointwise", 1) and not np.allclose(swapped[0], first[0])
    score_requests({"m": crossjem}, [request("tent", DOCS)], cache)  # dropped: 3 lists came after it
    assert calls[-1] == ("crossjem", 1)


def test_the_server_counts_score_cache_hits(server):
    body = {"model": "pointwise", "query": "a tent", "documents": DOCS}
    answers = [httpx.post(server.url + "/v2/rerank", json=body, timeout=30).json() for _ in range(2)]
    assert answers[0]["results"] == answers[1]["results"]
    metrics = httpx.get(server.url + "/metrics", timeout=10).text
    assert 'rerank_score_cache_total{result="hit"}' in metrics
    hits = float(metrics.split('rerank_score_cache_total{result="hit"}')[1].split()[0])
    assert hits >= 1


def test_documents_are_cut_alike_by_a_fast_tokenizer_and_a_bare_one():
    from rerank_pipeline.encoders import default_encoder_path, load_fast_tokenizer, load_tokenizer
    from rerank_pipeline.serving.rerank_api import cut_to_tokens

    texts = ["Patagonia store in Tokyo, Japan — open daily", "naïve café", "x", ""]
    path = default_encoder_path()
    for n in (1, 3, 50):
        assert cut_to_tokens(load_fast_tokenizer(path), texts, n) == cut_to_tokens(load_tokenizer(path), texts, n)
    assert cut_to_tokens(load_fast_tokenizer(path), texts, 5)[0] == "Patagonia store in"  # pat ##ago ##nia store in
