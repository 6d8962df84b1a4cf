"""MICE: masks, the stored-state path against the on-the-fly path, teacher checks, resumable state builds."""
import warnings

import numpy as np
import pytest
import torch

from rerank_pipeline.rerankers import MICE, PointwiseCrossEncoder
from rerank_pipeline.rerankers.mice.model import cross_attention_mask, self_attention_mask


@pytest.fixture(scope="module")
def teacher_dir(tmp_path_factory):
    """A 4-layer, 32-wide random pointwise cross-encoder with MiniLM's tokenizer."""
    from transformers import BertConfig, BertModel

    from rerank_pipeline.encoders import default_encoder_path, load_tokenizer

    torch.manual_seed(0)
    enc = tmp_path_factory.mktemp("tiny-bert4")
    BertModel(BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=4, num_attention_heads=2,
                         intermediate_size=64, max_position_embeddings=512), add_pooling_layer=False).save_pretrained(enc)
    load_tokenizer(default_encoder_path()).save_pretrained(enc)
    out = tmp_path_factory.mktemp("teacher")
    PointwiseCrossEncoder.from_encoder(str(enc), device="cpu").save(out)
    return out


@pytest.fixture(scope="module")
def mice_dir(teacher_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("mice")
    model = MICE.from_teacher(teacher_dir, merge_layer=1, depth=4, device="cpu")
    model.save(out, fp16=True)
    return out


def test_masks():
    q = torch.tensor([[1, 1, 1, 0]], dtype=torch.bool)
    d = torch.tensor([[1, 1, 0]], dtype=torch.bool)
    own = self_attention_mask(q)[0]
    assert own[0].tolist() == [True, True, True, False]           # [CLS] reads the query
    assert not own[1:, 0].any()                                    # query tokens never read [CLS]
    assert own[1:3, 1:3].all() and not own[:, 3].any()             # padding is never read
    cross = cross_attention_mask(q, d)[0]
    assert not cross[0].any()                                      # [CLS] never reads the document
    assert cross[1:3].tolist() == [[True, True, False]] * 2
    assert not cross[3].any()                                      # padded query rows read nothing


def test_masks_hold_in_the_network(mice_dir):
    model = MICE.load(mice_dir, device="cpu")
    layer = model.network.top[0]
    torch.manual_seed(1)
    x = torch.randn(1, 5, 32)
    qm = torch.ones(1, 5, dtype=torch.bool)
    docs = torch.randn(2, 7, 32)
    dm = torch.ones(1, 7, dtype=torch.bool)
    with torch.no_grad():
        a = layer(x, self_attention_mask(qm), docs[:1], cross_attention_mask(qm, dm))
        b = layer(x, self_attention_mask(qm), docs[1:], cross_attention_mask(qm, dm))
        assert torch.allclose(a[:, 0], b[:, 0])                    # one layer on, [CLS] knows nothing of the document
        assert not torch.allclose(a[:, 1:], b[:, 1:])              # the query tokens do
        y = x.clone()
        y[:, 0] += 5.0                                             # change [CLS] only
        c = layer(y, self_attention_mask(qm), docs[:1], cross_attention_mask(qm, dm))
        assert torch.allclose(a[:, 1:], c[:, 1:], atol=1e-6)        # query tokens do not read it


def test_cut_from_teacher_copies_layers(teacher_dir):
    teacher = PointwiseCrossEncoder.load(teacher_dir, device="cpu")
    model = MICE.from_teacher(teacher_dir, merge_layer=1, depth=3, device="cpu")
    assert len(model.network.encoder.encoder.layer) == 1 and len(model.network.top) == 2
    src = teacher.network.encoder.encoder.layer[1].attention.self.query.weight
    top = model.network.top[0]
    assert torch.equal(top.self_attention.query.weight, src) and torch.equal(top.cross_attention.query.weight, src)
    assert top.cross_attention.query.weight.data_ptr() != top.self_attention.query.weight.data_ptr()
    assert torch.equal(model.network.head.weight, teacher.network.head.weight)


def test_bad_teacher_and_layers(teacher_dir, tmp_path):
    from rerank_pipeline.rerankers import CrossJEM

    with pytest.raises(FileNotFoundError, match="not a reranker model directory"):
        MICE.from_teacher(tmp_path / "nowhere")
    cj = tmp_path / "cj"
    CrossJEM.from_encoder(str(teacher_dir), device="cpu").save(cj)
    with pytest.raises(ValueError, match="field 'kind': 'crossjem' is not pointwise"):
        MICE.from_teacher(cj)
    with pytest.raises(ValueError, match="m \\+ 2 <= depth"):
        MICE.from_teacher(teacher_dir, merge_layer=3, depth=4)


def test_cli_needs_teacher(tmp_path):
    from typer.testing import CliRunner

    from rerank_cli.main import app

    result = CliRunner().invoke(app, ["train", "--family", "mice", "--data", str(tmp_path), "--output",
                                      str(tmp_path / "out")])
    assert result.exit_code == 2 and "--teacher" in result.output


def test_stored_states_match_on_the_fly(mice_dir, tmp_path):
    from rerank_pipeline.demo import write_demo_corpus
    from rerank_pipeline.index import build_index
    from rerank_pipeline.documents import TextDocs
    from rerank_pipeline.index.states import DocumentStates

    corpus = write_demo_corpus(tmp_path / "demo.jsonl")
    idx, _ = build_index(corpus, "demo", tmp_path, dense=False, mice=mice_dir, show_progress=False)
    assert idx.manifest["mice"]["tokens"] > 0
    stored = DocumentStates.beside(idx.docstore)
    model = MICE.load(mice_dir, device="cpu")
    assert stored.fingerprint == model.states_fingerprint
    queries = {"q1": "patagonia japan", "q2": "tokyo store", "q3": "surf shop"}
    run = idx.bm25(20).transform(queries)
    with warnings.catch_warnings():
        warnings.simplefilter("error")                         # no on-the-fly warning with stored states
        fast = model.transform(queries, run)
    texts = TextDocs(dict(zip(idx.docstore.docids, idx.docstore.texts(idx.docstore.docids))))
    with pytest.warns(UserWarning, match="on the fly"):
        slow = model.rerank(queries, run, docs=texts)
    for q in queries:
        a = {h.docid: h.score for h in fast[q]}
        b = {h.docid: h.score for h in slow[q]}
        assert a.keys() == b.keys() and len(a) > 1
        np.testing.assert_allclose([a[d] for d in a], [b[d] for d in a], atol=2e-3)


def test_states_of_another_model_are_not_used(mice_dir, teacher_dir, tmp_path):
    from rerank_pipeline.demo import write_demo_corpus
    from rerank_pipeline.index import build_index

    corpus = write_demo_corpus(tmp_path / "demo.jsonl")
    idx, _ = build_index(corpus, "demo", tmp_path, dense=False, mice=mice_dir, show_progress=False)
    other = MICE.from_teacher(teacher_dir, merge_layer=2, depth=4, device="cpu")
    run = idx.bm25(10).transform({"q": "patagonia"})
    with pytest.warns(UserWarning, match="another MICE model"):
        got = other.transform({"q": "patagonia"}, run)
    tokens = idx.docstore.token_ids([h.docid for h in run["q"]], other.tokenizer)
    expected = other.score_ids(other.tokenize_queries(["patagonia"]), [tokens])[0]
    np.testing.assert_allclose([h.score for h in got["q"]], expected, rtol=1e-5, atol=1e-5)


def test_interrupted_state_build_resumes(mice_dir, tmp_path, monkeypatch):
    from rerank_pipeline.index import states

    monkeypatch.setattr(states, "CHUNK_DOCS", 3)
    model = MICE.load(mice_dir, device="cpu")
    rng = np.random.default_rng(0)
    docs = [rng.integers(1000, 2000, size=rng.integers(2, 9)) for _ in range(10)]
    calls = []

    class Store:  # a docstore's read side; fails at document 6 until told otherwise
        docids = [str(i) for i in range(len(docs))]
        fail_at = 6

        def token_ids(self, ids, tokenizer):
            calls.append(int(ids[0]))
            if int(ids[0]) == self.fail_at:
                raise KeyboardInterrupt
            return [docs[int(d)] for d in ids]

    store = Store()
    with pytest.raises(KeyboardInterrupt):
        states.write_document_states(tmp_path / "s", store, model)
    calls.clear()
    store.fail_at = None
    meta = states.write_document_states(tmp_path / "s", store, model)
    assert calls == [6, 9]                                       # the two finished chunks were kept
    stored = states.DocumentStates(tmp_path / "s")
    assert meta["tokens"] == sum(len(d) + 1 for d in docs) and not (tmp_path / "s" / "chunks").exists()
    with torch.inference_mode():
        direct = model.document_states(model.truncate_items(docs))
    for got, want in zip(stored.states(range(len(docs))), direct):
        np.testing.assert_allclose(got.astype(np.float32), want.numpy(), atol=2e-2, rtol=1e-2)


def test_absorbed_cross_attention_equals_projecting_the_document(mice_dir):
    """The cheap form (projections moved onto the query side) against plain attention over projected keys/values."""
    import torch.nn.functional as F

    attention = MICE.load(mice_dir, device="cpu").network.top[0].cross_attention
    torch.manual_seed(2)
    x, doc = torch.randn(3, 2, 32), torch.randn(3, 40, 32)
    allowed = torch.ones(3, 2, 40, dtype=torch.bool)
    allowed[1, :, 30:] = False                                                    # a padded document
    q = attention.query(x).view(3, 2, 2, 16).transpose(1, 2)
    split = lambda t: t.view(3, 40, 2, 16).transpose(1, 2)  # noqa: E731
    with torch.no_grad():
        plain = F.scaled_dot_product_attention(q, split(attention.key(doc)), split(attention.value(doc)),
                                               attn_mask=allowed[:, None])
        absorbed = attention._absorbed(q, doc, allowed[:, None])
    torch.testing.assert_close(absorbed, plain, rtol=1e-5, atol=1e-5)


def test_states_added_to_an_existing_index(mice_dir, demo_index, tmp_path):
    import shutil

    from rerank_pipeline.index import Index
    from rerank_pipeline.index.states import DocumentStates
    from rerank_pipeline.index.update import add_document_states

    idx = Index.open(shutil.copytree(demo_index.path, tmp_path / "demo"))
    model = MICE.load(mice_dir, device="cpu")
    updated = add_document_states(idx, model, show_progress=False)
    assert updated.manifest["mice"]["fingerprint"] == model.states_fingerprint
    assert updated.manifest["dense"] == idx.manifest["dense"]                       # the rest of the manifest kept
    stored = DocumentStates.beside(updated.docstore)
    row = updated.docstore.rows(["demo-0004"])
    with torch.inference_mode():
        direct = model.document_states(model.truncate_items(updated.docstore.token_ids(["demo-0004"],
                                                                                        model.tokenizer)))[0]
    np.testing.assert_allclose(stored.states(row)[0].astype(np.float32), direct.numpy(), atol=2e-2, rtol=1e-2)


def test_update_recomputes_states_with_the_same_model(mice_dir, tmp_path):
    from conftest import write_jsonl
    from rerank_pipeline.index import build_index, update_index
    from rerank_pipeline.index.states import DocumentStates

    docs = [{"id": f"d{i}", "text": t} for i, t in enumerate(["patagonia jacket", "tokyo surf", "kyoto tea"])]
    idx, _ = build_index(write_jsonl(tmp_path / "c.jsonl", docs), "s", tmp_path, dense=False, mice=mice_dir,
                         show_progress=False)
    assert idx.manifest["mice"]["model"] == str(mice_dir.resolve())
    more = write_jsonl(tmp_path / "more.jsonl", [{"id": "n1", "text": "osaka street food"}])
    updated, _ = update_index(idx, more, ["d1"], show_progress=False)
    assert "dropped" not in updated.manifest and updated.manifest["mice"]["tokens"] > 0
    model = MICE.load(mice_dir, device="cpu")
    run = updated.bm25(5).transform({"q": "osaka food"})
    with warnings.catch_warnings():
        warnings.simplefilter("error")                                          # the stored states are used
        got = model.transform({"q": "osaka food"}, run)
    assert [h.docid for h in got["q"]] == ["n1"]
    assert len(DocumentStates.beside(updated.docstore).offsets) == len(updated.docstore) + 1


def test_documents_on_the_fly_chunk_by_chunk_score_the_same(mice_dir):
    """A pair's MICE score does not depend on the rest of its list, so computing document states a chunk at a time
    (bounded memory on long lists) changes nothing."""
    model = MICE.load(mice_dir, "cpu")
    rng = np.random.default_rng(4)
    queries = [rng.integers(1000, 2000, 5) for _ in range(2)]
    lists = [[rng.integers(1000, 3000, int(rng.integers(2, 20))) for _ in range(n)] for n in (10, 4)]
    whole = model.score_ids(queries, lists)
    model.chunk_items = 3
    for a, b in zip(model.score_ids(queries, lists), whole):
        np.testing.assert_allclose(a, b, atol=1e-5)


def tiny_hf_cross_encoder(path, num_labels: int = 1):
    """A 4-layer random BERT sequence classifier (pooler + classifier), as a Hugging Face cross-encoder ships."""
    from transformers import BertConfig, BertForSequenceClassification

    from rerank_pipeline.encoders import default_encoder_path, load_tokenizer

    torch.manual_seed(2)
    config = BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=4, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=512, num_labels=num_labels)
    BertForSequenceClassification(config).save_pretrained(path, safe_serialization=True)
    load_tokenizer(default_encoder_path()).save_pretrained(path)
    return path


def test_cut_from_a_hugging_face_cross_encoder_keeps_its_pooled_head(tmp_path):
    from transformers import AutoModelForSequenceClassification

    source = tiny_hf_cross_encoder(tmp_path / "hf")
    hf = AutoModelForSequenceClassification.from_pretrained(source).eval()
    model = MICE.from_teacher(source, merge_layer=1, depth=4, device="cpu")
    assert model.config["head"] == "pooled"
    cls_state = torch.randn(3, 32)
    with torch.no_grad():
        expected = hf.classifier(hf.bert.pooler(cls_state[:, None, :])).squeeze(-1)  # the teacher's own head
        np.testing.assert_allclose(model.network.head(cls_state).squeeze(-1), expected, atol=1e-6)
    assert torch.equal(model.network.top[0].self_attention.query.weight,
                       hf.bert.encoder.layer[1].attention.self.query.weight)

    model.save(tmp_path / "mice")                               # the pooled head survives a round trip
    again = MICE.load(tmp_path / "mice", device="cpu")
    queries = [np.array([2054, 5320, 2015]), np.array([3899])]
    items = [[np.array([5320, 2015, 1012]), np.array([2003])], [np.array([3899, 2003, 1037, 2204])]]
    for a, b in zip(model.score_ids(queries, items), again.score_ids(queries, items)):
        np.testing.assert_allclose(a, b, atol=1e-5)


def test_a_cross_encoder_with_two_labels_is_refused_by_name(tmp_path):
    source = tiny_hf_cross_encoder(tmp_path / "hf2", num_labels=2)
    with pytest.raises(ValueError, match="config.json: field 'architectures'.*one logit"):
        MICE.from_teacher(source, merge_layer=1, depth=4)
