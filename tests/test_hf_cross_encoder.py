"""Any Hugging Face cross-encoder directory reranks like the built-in families (safetensors only, no network)."""
import numpy as np
import pytest

from rerank_pipeline.rerankers import HFCrossEncoder, PointwiseCrossEncoder, Reranker


@pytest.fixture(scope="module")
def exported(tiny_encoder, tmp_path_factory):
    import torch

    torch.manual_seed(3)
    model = PointwiseCrossEncoder.from_encoder(tiny_encoder, device="cpu")
    path = tmp_path_factory.mktemp("hf")
    model.export_hf(path)
    return model, path


QUERIES = ["patagonia japan", "tokyo surf"]
DOCS = [["patagonia store in tokyo japan", "a fleece jacket", "kamakura surf shop"], ["surf in tokyo bay", "rain"]]


def test_loads_a_sequence_classification_directory(exported):
    pointwise, path = exported
    hf = Reranker.load(path, device="cpu")
    assert isinstance(hf, HFCrossEncoder)
    ids = [[np.array(pointwise.tokenizer(d, add_special_tokens=False)["input_ids"]) for d in ds] for ds in DOCS]
    want = pointwise.score_ids(pointwise.tokenize_queries(QUERIES), ids)
    got = hf.score_ids(hf.tokenize_queries(QUERIES), ids)
    for a, b in zip(got, want):
        np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-4)


def test_matches_sentence_transformers(exported):
    import torch
    from sentence_transformers import CrossEncoder

    _, path = exported
    hf = Reranker.load(path, device="cpu")
    peer = CrossEncoder(str(path), device="cpu", activation_fn=torch.nn.Identity())
    for q, docs in zip(QUERIES, DOCS):
        ours = [r["score"] for r in sorted(hf.rank(q, docs), key=lambda r: r["corpus_id"])]
        np.testing.assert_allclose(ours, peer.predict([(q, d) for d in docs]), rtol=1e-4, atol=1e-5)


def test_round_trip_and_yaml(exported, demo_index, tmp_path):
    from rerank_pipeline.config import open_pipeline

    _, path = exported
    hf = Reranker.load(path, device="cpu")
    hf.save(tmp_path / "copy")
    again = Reranker.load(tmp_path / "copy", device="cpu")
    assert again.rank("patagonia", DOCS[0]) == hf.rank("patagonia", DOCS[0])
    cfg = {"retrievers": [{"type": "bm25", "k": 20}], "reranker": {"type": "hf-cross-encoder", "model": str(path)}}
    run = open_pipeline(demo_index, cfg).search(["patagonia japan"])
    assert len(run["1"]) == 20


def test_never_touches_the_network_unless_allowed(exported, tmp_path, monkeypatch):
    import shutil

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(FileNotFoundError, match="HF_HUB_OFFLINE=0"):
        Reranker.load("cross-encoder/ms-marco-MiniLM-L6-v2")
    _, path = exported
    pickled = tmp_path / "pickled"
    shutil.copytree(path, pickled)
    (pickled / "model.safetensors").rename(pickled / "pytorch_model.bin")
    with pytest.raises(FileNotFoundError, match="only from safetensors"):
        Reranker.load(pickled)
