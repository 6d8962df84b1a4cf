"""Incremental index updates: added documents are found, deleted ones never come back, kept vectors are reused,
and an interrupted update leaves the previous index intact."""
import numpy as np
import pytest
from conftest import write_jsonl

from rerank_pipeline.index import Index, build_index, update_index

DOCS = [{"id": f"d{i}", "text": t} for i, t in enumerate([
    "patagonia fleece jacket", "tokyo surf shop", "kamakura temples and beaches", "hokkaido ski resorts",
    "osaka street food guide", "kyoto tea ceremony"])]


@pytest.fixture()
def index(tmp_path):
    idx, _ = build_index(write_jsonl(tmp_path / "c.jsonl", DOCS), "small", tmp_path / "ix", show_progress=False)
    return idx


def _ids(run, q="q"):
    return [h.docid for h in run[q]] if q in run else []


def test_add_replace_delete(index, tmp_path):
    before = np.load(index.path / "dense" / "embeddings.npy")
    more = write_jsonl(tmp_path / "more.jsonl", [{"id": "n1", "text": "zanzibar spice islands"},
                                                 {"id": "d1", "text": "nagoya castle history"}])
    idx, summary = update_index(index, more, ["d3"], show_progress=False)
    assert summary == {"added": 1, "replaced": 1, "deleted": 1, "documents": 6}
    assert _ids(idx.bm25(3).transform({"q": "zanzibar"}))[0] == "n1"
    assert _ids(idx.dense(1).transform({"q": "zanzibar spice islands"})) == ["n1"]
    assert "d1" not in _ids(idx.bm25(10).transform({"q": "tokyo surf"}))       # the old text of a replaced id is gone
    assert _ids(idx.bm25(3).transform({"q": "nagoya castle"}))[0] == "d1"
    for retriever in (idx.bm25(10), idx.dense(10)):
        assert "d3" not in _ids(retriever.transform({"q": "hokkaido ski resorts"}))
    after = np.load(idx.path / "dense" / "embeddings.npy")
    kept = [f"d{i}" for i in (0, 2, 4, 5)]
    np.testing.assert_array_equal(after[idx.docstore.rows(kept)], before[index.docstore.rows(kept)])  # reused
    assert idx.manifest["corpus"]["updates"][-1]["deleted"] == 1 and idx.staleness() is None


def test_interrupted_update_keeps_the_previous_index(index, tmp_path, monkeypatch):
    from rerank_pipeline.retrievers import bm25

    more = write_jsonl(tmp_path / "more.jsonl", [{"id": "n1", "text": "zanzibar"}])

    def killed(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(bm25.Bm25sBackend, "build", killed)
    with pytest.raises(KeyboardInterrupt):
        update_index(index, more, ["d0"], show_progress=False)
    monkeypatch.undo()
    again = Index.open(index.path)
    assert len(again.docstore) == 6 and "d0" in again.docstore and "n1" not in again.docstore
    idx, _ = update_index(again, more, ["d0"], show_progress=False)              # re-running redoes it
    assert "n1" in idx.docstore and "d0" not in idx.docstore
    assert not list(index.path.parent.glob(".small.update-*"))


def test_bad_updates_and_cli(index, tmp_path):
    from typer.testing import CliRunner

    from rerank_cli.main import app

    with pytest.raises(ValueError, match="not in index 'small' \\(first: 'nope'\\)"):
        update_index(index, None, ["nope"], show_progress=False)
    with pytest.raises(ValueError, match="empty"):
        update_index(index, None, [d["id"] for d in DOCS], show_progress=False)
    (tmp_path / "gone.txt").write_text("d4\nd5\n")
    result = CliRunner().invoke(app, ["index", "--name", "small", "--index-dir", str(tmp_path / "ix"),
                                      "--delete", str(tmp_path / "gone.txt")])
    assert result.exit_code == 0 and "2 deleted; 4 documents" in result.output
    result = CliRunner().invoke(app, ["index", "--name", "small", "--index-dir", str(tmp_path / "ix"),
                                      "--delete", "d4"])
    assert result.exit_code == 2 and "not in index 'small'" in result.output
