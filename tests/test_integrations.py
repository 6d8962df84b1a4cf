"""The framework stages inside each framework's own retrieval pipeline (in-memory corpus, no network, no LLM): the
documents come back in the order the reranker ranks them in-process, with its scores."""
import numpy as np
import pytest

from test_rerank_api import DOCS
from test_serving import Server

QUERY = "patagonia japan"


@pytest.fixture(scope="module")
def reranker(tiny_encoder, tmp_path_factory):
    from rerank_pipeline.rerankers import PointwiseCrossEncoder, Reranker

    path = tmp_path_factory.mktemp("integrations") / "pw"
    PointwiseCrossEncoder.from_encoder(tiny_encoder, device="cpu").save(path)
    return Reranker.load(path, "cpu")


def expected(reranker, texts, n):
    return [(texts[r["corpus_id"]], r["score"]) for r in reranker.rank(QUERY, texts)[:n]]


def test_langchain_compressor_in_a_retrieval_chain(reranker):
    pytest.importorskip("langchain_core")
    from langchain_core.embeddings import DeterministicFakeEmbedding
    from langchain_core.runnables import RunnableLambda, RunnablePassthrough
    from langchain_core.vectorstores import InMemoryVectorStore

    from rerank_pipeline.integrations.langchain import CrossJEMRerank

    store = InMemoryVectorStore.from_texts(DOCS, DeterministicFakeEmbedding(size=16),
                                           metadatas=[{"n": i} for i in range(len(DOCS))])
    retriever = store.as_retriever(search_kwargs={"k": 5})
    rerank = CrossJEMRerank(reranker=reranker, top_n=3)
    chain = {"docs": retriever, "query": RunnablePassthrough()} | RunnableLambda(
        lambda x: rerank.compress_documents(x["docs"], x["query"]))
    got = chain.invoke(QUERY)
    retrieved = [d.page_content for d in retriever.invoke(QUERY)]
    want = expected(reranker, retrieved, 3)
    assert [d.page_content for d in got] == [t for t, _ in want]
    np.testing.assert_allclose([d.metadata["relevance_score"] for d in got], [s for _, s in want], atol=1e-5)
    assert all(DOCS[d.metadata["n"]] == d.page_content for d in got)  # metadata kept


def test_llamaindex_postprocessor_in_a_query_engine(reranker):
    pytest.importorskip("llama_index.core")
    from llama_index.core import Document, VectorStoreIndex
    from llama_index.core.embeddings import MockEmbedding
    from llama_index.core.llms import MockLLM

    from rerank_pipeline.integrations.llamaindex import CrossJEMRerank

    index = VectorStoreIndex.from_documents([Document(text=t) for t in DOCS], embed_model=MockEmbedding(embed_dim=8))
    engine = index.as_query_engine(llm=MockLLM(), similarity_top_k=len(DOCS),
                                   node_postprocessors=[CrossJEMRerank(reranker=reranker, top_n=3)])
    nodes = engine.query(QUERY).source_nodes
    want = expected(reranker, DOCS, 3)
    assert [n.node.get_content() for n in nodes] == [t for t, _ in want]
    np.testing.assert_allclose([n.score for n in nodes], [s for _, s in want], atol=1e-5)


def test_haystack_ranker_in_a_pipeline(reranker):
    pytest.importorskip("haystack")
    from haystack import Document, Pipeline
    from haystack.components.retrievers.in_memory import InMemoryBM25Retriever
    from haystack.document_stores.in_memory import InMemoryDocumentStore

    from rerank_pipeline.integrations.haystack import CrossJEMRanker

    store = InMemoryDocumentStore()
    store.write_documents([Document(content=t) for t in DOCS])
    pipe = Pipeline()
    pipe.add_component("retriever", InMemoryBM25Retriever(store, top_k=5))
    pipe.add_component("ranker", CrossJEMRanker(reranker, top_k=3))
    pipe.connect("retriever.documents", "ranker.documents")
    got = pipe.run({"retriever": {"query": QUERY}, "ranker": {"query": QUERY}})["ranker"]["documents"]
    retrieved = [d.content for d in InMemoryBM25Retriever(store, top_k=5).run(query=QUERY)["documents"]]
    want = expected(reranker, retrieved, 3)
    assert [d.content for d in got] == [t for t, _ in want]
    np.testing.assert_allclose([d.score for d in got], [s for _, s in want], atol=1e-5)


def test_stages_call_a_remote_rerank_api(reranker, tmp_path):
    pytest.importorskip("haystack")
    from haystack import Document

    from rerank_pipeline.integrations.haystack import CrossJEMRanker

    reranker.save(tmp_path / "pw")
    server = Server("--reranker-only", "--reranker", f"pw={tmp_path / 'pw'}")
    try:
        got = CrossJEMRanker(server.url, top_k=4, model="pw").run(QUERY, [Document(content=t) for t in DOCS])["documents"]
    finally:
        server.stop()
    want = expected(reranker, DOCS, 4)
    assert [d.content for d in got] == [t for t, _ in want]
    np.testing.assert_allclose([d.score for d in got], [s for _, s in want], atol=1e-5)
    with pytest.raises(TypeError, match="rerank API URL"):
        CrossJEMRanker(42)
