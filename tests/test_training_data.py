"""Training lists from a BEIR directory (given run + the project's BM25 + judged positives), the held-out dev
split, dataset mixing, sampling and on-the-fly teacher scores."""
from collections import Counter

import numpy as np
import pytest
import torch

from rerank_pipeline.io.beir import BeirDataset, heldout
from rerank_pipeline.rerankers import PointwiseCrossEncoder
from rerank_pipeline.training import ListSpec, build_lists, load_lists
from rerank_pipeline.training.data import RankingList, dataset_index
from rerank_pipeline.training import CachedTeacher
from rerank_pipeline.training.loop import _item_ids, _sample, mixed_order
from conftest import write_jsonl

TOPICS = ["apple pie recipe", "bicycle repair shop", "cheap flights lima", "dog training tips", "electric car range",
          "french grammar rules", "garden tomato disease", "hiking boots review", "indoor plant light", "jazz piano chords"]


def make_beir(root, with_dev: bool):
    corpus = []
    for t, topic in enumerate(TOPICS):
        words = topic.split()
        corpus += [{"_id": f"t{t}-good", "title": "", "text": f"all about {topic} and more {topic}"},
                   {"_id": f"t{t}-near", "title": "", "text": f"{words[0]} things unrelated to the rest"},
                   {"_id": f"t{t}-far", "title": "", "text": f"nothing to see here number {t}"}]
    root.mkdir()
    write_jsonl(root / "corpus.jsonl", corpus)
    write_jsonl(root / "queries.jsonl", [{"_id": f"q{t}", "text": topic} for t, topic in enumerate(TOPICS)])
    (root / "qrels").mkdir()
    train = [t for t in range(len(TOPICS)) if not with_dev or t < 7]
    (root / "qrels" / "train.tsv").write_text("query-id\tcorpus-id\tscore\n" + "".join(
        f"q{t}\tt{t}-good\t1\nq{t}\tt{t}-near\t0\n" for t in train))
    if with_dev:
        (root / "qrels" / "dev.tsv").write_text("query-id\tcorpus-id\tscore\n" + "".join(
            f"q{t}\tt{t}-good\t1\n" for t in range(7, 10)))
    (root / "runs").mkdir()
    (root / "runs" / "candidates.train.trec").write_text("".join(
        f"q{t} Q0 t{(t + 1) % 10}-far 1 1.0 given\n" for t in train))
    return BeirDataset(root)


def test_heldout_dev_is_a_stable_disjoint_part_of_train(tmp_path):
    ds = make_beir(tmp_path / "set", with_dev=False)
    assert ds.dev_is_heldout()
    train, dev = ds.qrels("train"), ds.qrels("dev")
    assert set(train).isdisjoint(dev) and set(train) | set(dev) == {f"q{t}" for t in range(10)}
    assert all(heldout(q) for q in dev) and not any(heldout(q) for q in train)
    share = np.mean([heldout(f"query-{i}") for i in range(20000)])
    assert share == pytest.approx(0.15, abs=0.01)


def test_lists_union_given_run_bm25_and_positives(tmp_path):
    ds = make_beir(tmp_path / "set", with_dev=True)
    idx = dataset_index(ds, tmp_path / "ix", dense=False)
    lists = build_lists(ds, "train", ListSpec(given_k=5, bm25_k=2, dense_k=0), idx)
    assert len(lists) == 7 and {l.source for l in lists} == {"set"}
    bm25 = idx.bm25(2).search({l.qid: l.query for l in lists})
    for l in lists:
        t = int(l.qid[1:])
        expected = [f"t{(t + 1) % 10}-far"] + [h.docid for h in bm25[l.qid] if h.docid != f"t{(t + 1) % 10}-far"]
        assert l.docids[:len(expected)] == expected          # given run first, then BM25, no duplicates
        assert f"t{t}-good" in l.docids and len(set(l.docids)) == len(l.docids)
        assert l.labels[l.docids.index(f"t{t}-good")] == 1 and l.labels.sum() == 1
    # Dev lists never get positives the retrievers missed.
    dev = build_lists(ds, "dev", ListSpec(given_k=5, bm25_k=1, dense_k=0, add_positives=False,
                                          require_positive=False), idx)
    assert all(len(l.docids) == 1 for l in dev)
    # Without an index only the given run (and positives) remain.
    plain = load_lists(tmp_path / "set", "train", ListSpec(given_k=5, bm25_k=2))
    assert all(len(l.docids) == 2 for l in plain)


def test_mixed_order_weights_sets_and_walks_through_all_lists():
    sources = ["big"] * 400 + ["small"] * 25
    order = mixed_order(sources, 100, 0.5, seed=1, epoch=1)
    counts = Counter(sources[i] for i in order)
    assert counts["big"] == 80 and counts["small"] == 20      # 400 ** .5 : 25 ** .5 = 4 : 1
    assert order == mixed_order(sources, 100, 0.5, seed=1, epoch=1)
    seen = {i for e in range(1, 6) for i in mixed_order(sources, 100, 0.5, seed=1, epoch=e)}
    assert seen == set(range(425))                              # five epochs of 80 cover all 400 big lists
    assert Counter(sources[i] for i in mixed_order(sources, None, 1.0, 1, 1)) == {"big": 400, "small": 25}


def test_sample_keeps_a_positive_and_hard_negatives():
    rng = __import__("random").Random(0)
    labels = np.array([1, 0, 0, 1, 1, 1, 1, 0, 0, 0], dtype=np.float32)
    l = RankingList("q", "q", [str(i) for i in range(10)], ["x"] * 10, labels)
    for _ in range(20):
        p = _sample(l, 4, rng)
        assert len(p) == 4 and len(set(p)) == 4 and (labels[p] > 0).sum() == 2
    only_pos = RankingList("q", "q", [str(i) for i in range(6)], ["x"] * 6, np.ones(6, np.float32))
    assert len(_sample(only_pos, 4, rng)) == 4


def test_teacher_scores_on_the_fly_equal_explicit_scoring(tiny_encoder):
    torch.manual_seed(0)
    teacher = PointwiseCrossEncoder.from_encoder(tiny_encoder, device="cpu")
    lists = [RankingList(f"q{i}", f"query {i}", [f"d{j}" for j in range(5)], [f"text {i} {j}" for j in range(5)],
                         np.zeros(5, np.float32)) for i in range(3)]
    picks = [np.array([0, 2]), np.array([1, 3, 4]), np.array([0])]
    cached = CachedTeacher(teacher)
    cached.fill(lists, picks)
    for l, p in zip(lists, picks):
        explicit = teacher.score_ids(teacher.tokenize_queries([l.query]), [[_item_ids(teacher, l)[k] for k in p]])[0]
        np.testing.assert_allclose(l.teacher[p], 1 / (1 + np.exp(-explicit)), rtol=1e-5)
        assert np.isnan(np.delete(l.teacher, p)).all()      # unpicked items are never scored
    before = lists[0].teacher.copy()
    cached.fill(lists[:1], [np.array([0, 1])])   # item 0 is read back, only item 1 is scored
    assert lists[0].teacher[0] == before[0] and not np.isnan(lists[0].teacher[1])


def test_lists_over_an_index_carry_the_first_stage_features(tmp_path):
    """Each candidate's BM25 feature is the score the BM25 retriever gives it (0 where no query word matches)."""
    ds = make_beir(tmp_path / "set", with_dev=True)
    idx = dataset_index(ds, tmp_path / "ix", dense=False)
    lists = build_lists(ds, "train", ListSpec(given_k=5, bm25_k=2, dense_k=0), idx)
    bm25 = idx.bm25(100).search({l.qid: l.query for l in lists})
    for l in lists:
        scores = {h.docid: h.score for h in bm25[l.qid]}
        np.testing.assert_allclose(l.features[:, 1], [scores.get(d, 0.0) for d in l.docids], rtol=1e-5)
        assert np.isnan(l.features[:, 0]).all() and np.isnan(l.features[:, 2]).all()  # no run score, no dense stage
        assert l.dense_encoder is None


def test_lists_record_the_encoder_of_their_dense_feature(demo_index):
    """The dense feature's encoder travels with the lists, so a combination trained on them can record it."""
    from rerank_pipeline.training import lists_from_index

    lists = lists_from_index(demo_index, {"q1": "patagonia japan", "q2": "oaxaca food"}, k=5)
    assert {l.dense_encoder for l in lists} == {demo_index.manifest["dense"]["encoder"]}
    assert not np.isnan(np.concatenate([l.features[:, 2] for l in lists])).any()


def test_fine_tuning_starts_from_the_stored_combination(tmp_path, tiny_encoder):
    """`rerank train --init DIR` keeps the model's feature weights and starts from its gate: the dev figure before
    training is the stored model's, and a model that does not improve on dev is kept as it was."""
    import json

    from typer.testing import CliRunner

    from rerank_cli.main import app
    from rerank_pipeline.rerankers import CrossJEM
    from rerank_pipeline.training.loop import evaluate_lists
    from rerank_pipeline.rerankers.combine import weight_vector

    ds = make_beir(tmp_path / "set", with_dev=True)
    start = CrossJEM.from_encoder(tiny_encoder, device="cpu")
    start.config["combine"] = {"weights": {"bm25": 1.0}, "gate": 0.5, "dense_encoder": "elsewhere/encoder"}
    start.save(tmp_path / "start")
    result = CliRunner().invoke(app, ["train", "--family", "crossjem", "--init", str(tmp_path / "start"), "--data",
                                      str(ds.path), "--index-dir", str(tmp_path / "ix"), "--loss", "ce", "--epochs", "1",
                                      "--list-size", "3", "--lr", "1e-3", "-o", str(tmp_path / "tuned")])
    assert result.exit_code == 0, result.output
    state = json.loads((tmp_path / "tuned" / "training.json").read_text())
    dev = build_lists(ds, "dev", ListSpec(add_positives=False), dataset_index(ds, tmp_path / "ix", dense=False))
    stored = CrossJEM.load(tmp_path / "start", device="cpu")
    expected = evaluate_lists(stored, dev, combine=(weight_vector({"bm25": 1.0}), 0.5))
    assert state["before"]["nDCG@10"] == pytest.approx(expected["nDCG@10"])
    tuned = json.loads((tmp_path / "tuned" / "rerank_config.json").read_text())["combine"]
    assert tuned["weights"] == {"bm25": 1.0} and (tuned["gate"] == 0.5) == (state["best_epoch"] == 0)
    assert tuned["dense_encoder"] == "elsewhere/encoder"  # lists without a dense stage keep the stored record
