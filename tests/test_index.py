import json

import pytest
from typer.testing import CliRunner

from rerank_pipeline.index import Index, InvalidIndexError, build_index
from rerank_pipeline.retrievers import dense as dense_module
from rerank_cli.main import app
from conftest import write_jsonl

OLD = [{"id": f"old{i}", "text": t} for i, t in enumerate(["alpine tent", "camp stove", "trail map of japan"])]
NEW = [{"id": f"new{i}", "text": t} for i, t in enumerate(["kayak paddle", "surf wax", "wetsuit japan"])]


def test_build_open_and_search(tmp_path):
    idx, skipped = build_index(write_jsonl(tmp_path / "c.jsonl", OLD), "t", tmp_path / "ix", show_progress=False)
    assert skipped == [] and idx.stages == ["bm25", "dense"]
    m = json.loads((tmp_path / "ix" / "t" / "manifest.json").read_text())
    assert m["corpus"]["documents"] == 3 and len(m["corpus"]["sha256"]) == 64 and m["dense"]["faiss"] == "flat"
    assert [h.docid for h in idx.bm25()("japan map")] == ["old2"]
    assert idx.dense()("cooking outdoors")[0].docid == "old1"
    assert idx.docstore.texts(["old1"]) == ["camp stove"]
    assert not list((tmp_path / "ix").glob(".t.*"))  # no work directories left behind


def test_the_manifest_states_how_long_the_documents_are_and_an_update_restates_it(tmp_path):
    import numpy as np

    from rerank_pipeline.encoders import MAX_DOC_TOKENS, load_tokenizer, resolve_encoder, tokenize_ids
    from rerank_pipeline.index import update_index

    long_text = " ".join(["antidisestablishmentarianism", "ultramicroscopic"] * 200)  # past the stored cut
    docs = OLD + [{"id": "long", "text": long_text}]
    idx, _ = build_index(write_jsonl(tmp_path / "c.jsonl", docs), "t", tmp_path / "ix", dense=False,
                         show_progress=False)
    tokenizer = load_tokenizer(resolve_encoder(idx.manifest["tokenizer"]["encoder"]))
    full = [len(t) for t in tokenize_ids(tokenizer, [d["text"] for d in docs], max_length=10 ** 6)]
    stored = np.minimum(full, MAX_DOC_TOKENS)
    pieces = idx.manifest["word_pieces"]
    assert full[-1] > MAX_DOC_TOKENS and pieces["cap"] == MAX_DOC_TOKENS and pieces["at_cap"] == 0.25
    assert pieces["median"] == int(np.median(stored)) and pieces["mean"] == round(float(stored.mean()), 1)
    assert pieces["p95"] == int(np.percentile(stored, 95))
    updated, _ = update_index(idx, write_jsonl(tmp_path / "new.jsonl", NEW), show_progress=False)
    assert updated.manifest["word_pieces"]["at_cap"] == round(1 / 7, 4)  # seven documents now, one cut
    result = runner.invoke(app, ["info", "--index-dir", str(tmp_path / "ix")], env={"COLUMNS": "300"})
    assert result.exit_code == 0 and "14% cut at 256" in result.output, result.output


def test_interrupted_build_keeps_old_index_and_resumes(tmp_path, monkeypatch):
    root = tmp_path / "ix"
    build_index(write_jsonl(tmp_path / "old.jsonl", OLD), "t", root, show_progress=False)
    new_corpus = write_jsonl(tmp_path / "new.jsonl", NEW)

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(dense_module, "build_faiss", interrupted)
    with pytest.raises(KeyboardInterrupt):
        build_index(new_corpus, "t", root, show_progress=False)
    survivor = Index.open("t", root)
    assert survivor.docstore.docids == ["old0", "old1", "old2"]
    assert len(list(root.glob(".t.build-*/dense/chunks/*.npy"))) == 1  # encoded work kept for resuming

    monkeypatch.undo()
    model = dense_module.load_dual_encoder(None)
    monkeypatch.setattr(type(model), "encode", lambda *a, **k: pytest.fail("resumed build re-encoded the corpus"))
    rebuilt, _ = build_index(new_corpus, "t", root, show_progress=False)
    assert rebuilt.docstore.docids == ["new0", "new1", "new2"]
    assert not list(root.glob(".t.*"))


def test_open_errors(tmp_path):
    with pytest.raises(InvalidIndexError, match="no index at"):
        Index.open("missing", tmp_path)
    build_index(write_jsonl(tmp_path / "c.jsonl", OLD), "t", tmp_path, dense=False, show_progress=False)
    manifest = tmp_path / "t" / "manifest.json"
    good = manifest.read_text()
    manifest.write_text(good.replace('"format_version": 1', '"format_version": 99'))
    with pytest.raises(InvalidIndexError, match="format 99|format_version|rebuild"):
        Index.open("t", tmp_path)
    manifest.write_text("{not json")
    with pytest.raises(InvalidIndexError, match="corrupt"):
        Index.open("t", tmp_path)
    manifest.write_text(good)
    with pytest.raises(InvalidIndexError, match="built without dense"):
        Index.open("t", tmp_path).dense()("x")
    (tmp_path / "t" / "bm25" / "params.index.json").unlink()
    with pytest.raises(InvalidIndexError, match="incomplete"):
        Index.open("t", tmp_path)


def test_rebuild_faiss_without_reencoding(tmp_path, monkeypatch):
    from rerank_pipeline.index import rebuild_faiss

    idx, _ = build_index(write_jsonl(tmp_path / "c.jsonl", OLD * 1), "t", tmp_path, bm25=False, show_progress=False)
    before = idx.dense()("stove")
    hnsw = rebuild_faiss(idx, "hnsw")
    assert hnsw.manifest["dense"]["faiss"] == "hnsw"
    assert type(hnsw.faiss_index()).__name__ == "IndexHNSWFlat"
    assert [h.docid for h in hnsw.dense()("stove")] == [h.docid for h in before]


runner = CliRunner()


def test_cli_invalid_corpus_reports_all_and_writes_nothing(tmp_path):
    bad = write_jsonl(tmp_path / "bad.jsonl", [{"id": "a", "text": "ok"}, "{oops", {"id": "a", "text": "dup"}])
    result = runner.invoke(app, ["index", str(bad), "--name", "x", "--index-dir", str(tmp_path / "ix"), "--no-dense"])
    assert result.exit_code == 2
    assert f"{bad}:2" in result.output and f"{bad}:3: field 'id'" in result.output
    assert not (tmp_path / "ix" / "x").exists()
    result = runner.invoke(app, ["index", str(bad), "--name", "x", "--index-dir", str(tmp_path / "ix"),
                                 "--no-dense", "--skip-invalid"])
    assert result.exit_code == 0, result.output
    assert "2 invalid record(s) skipped" in result.output
    assert Index.open("x", tmp_path / "ix").manifest["corpus"]["skipped"] == 2
    report = (tmp_path / "ix" / "x" / "skipped.tsv").read_text().splitlines()
    assert len(report) == 3 and report[2].split("\t")[1:3] == ["3", "id"]


def test_cli_search_table_json_batch_and_info(tmp_path, demo_index):
    ix = str(demo_index.path.parent)
    result = runner.invoke(app, ["search", "patagonia japan", "--index-dir", ix, "-k", "5"])
    assert result.exit_code == 0, result.output
    assert "patagonia" in result.output and "rank" in result.output
    result = runner.invoke(app, ["search", "patagonia japan", "--index-dir", ix, "--json", "-k", "3", "--no-rerank"])
    payload = json.loads(result.stdout)
    assert [r["rank"] for r in payload["results"]] == [1, 2, 3]
    assert all("patagonia" in r["text"] and "japan" in r["text"] for r in payload["results"])
    queries = write_jsonl(tmp_path / "q.jsonl", [{"_id": "q1", "text": "oaxaca food"}, {"id": "q2", "text": "tent"}])
    out = tmp_path / "run.trec"
    result = runner.invoke(app, ["search", "--queries", str(queries), "--index-dir", ix, "-k", "7", "-o", str(out)])
    assert result.exit_code == 0, result.output
    lines = [line.split() for line in out.read_text().splitlines()]
    assert {l[0] for l in lines} == {"q1", "q2"} and all(len(l) == 6 and l[1] == "Q0" for l in lines)
    assert max(int(l[3]) for l in lines) <= 7
    result = runner.invoke(app, ["info", "--index-dir", ix], env={"COLUMNS": "300"})
    assert result.exit_code == 0 and "demo" in result.output and "bm25, dense" in result.output
    result = runner.invoke(app, ["search", "x", "--index", "nope", "--index-dir", ix])
    assert result.exit_code == 2 and "no index at" in result.output


def test_stale_index_is_reported(tmp_path):
    corpus = write_jsonl(tmp_path / "c.jsonl", OLD)
    idx, _ = build_index(corpus, "t", tmp_path / "ix", dense=False, show_progress=False)
    assert idx.staleness() is None
    write_jsonl(corpus, OLD + NEW)
    assert "changed since the build" in idx.staleness()
    result = runner.invoke(app, ["info", "--index-dir", str(tmp_path / "ix")], env={"COLUMNS": "300"})
    assert result.exit_code == 0 and "changed since" in result.output


def test_a_build_killed_between_its_two_renames_leaves_a_readable_index(tmp_path):
    """The swap parks the old index at .NAME.old, then renames the new one in; a kill in between must not lose
    the index: Index.open serves the parked copy, and the next build replaces it."""
    from rerank_pipeline.files import previous_version_path

    corpus = write_jsonl(tmp_path / "c.jsonl", [{"id": "a", "text": "red shoes"}, {"id": "b", "text": "blue hat"}])
    idx, _ = build_index(corpus, "x", tmp_path / "ix", dense=False, show_progress=False)
    before = [h.docid for h in idx.bm25(2)("red shoes")]
    (tmp_path / "ix" / "x").rename(previous_version_path(tmp_path / "ix" / "x"))   # killed between the renames
    assert [h.docid for h in Index.open("x", tmp_path / "ix").bm25(2)("red shoes")] == before
    build_index(corpus, "x", tmp_path / "ix", dense=False, show_progress=False)
    assert (tmp_path / "ix" / "x").is_dir() and not previous_version_path(tmp_path / "ix" / "x").exists()
