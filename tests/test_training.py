import json

import numpy as np
import pytest
import torch

from rerank_pipeline.rerankers import CrossJEM, PointwiseCrossEncoder
from rerank_pipeline.training import TrainConfig, load_jsonl_lists, train, write_lists_jsonl
from rerank_pipeline.training.data import RankingList
from rerank_pipeline.io import InvalidInputError

COLOURS = ["red", "blue", "green", "black", "white", "yellow"]
THINGS = ["shoes", "hat", "scarf", "jacket", "socks", "gloves"]


def toy_lists(n: int, seed: int) -> list[RankingList]:
    """The relevant item is the one naming both query words; grades fall with overlap."""
    rng = np.random.default_rng(seed)
    lists = []
    for i in range(n):
        c, t = rng.choice(COLOURS), rng.choice(THINGS)
        items = [f"{c} {t}", f"{c} {rng.choice([x for x in THINGS if x != t])}",
                 f"{rng.choice([x for x in COLOURS if x != c])} {t}",
                 f"{rng.choice([x for x in COLOURS if x != c])} {rng.choice([x for x in THINGS if x != t])}"]
        order = rng.permutation(4)
        labels = np.array([2.0, 1.0, 1.0, 0.0], dtype=np.float32)[order]
        lists.append(RankingList(f"q{seed}-{i}", f"{c} {t}", [f"d{j}" for j in range(4)], [items[j] for j in order],
                                 labels, teacher=(labels / 2 * 0.8 + 0.1)))
    return lists


@pytest.mark.parametrize("family,loss", [(CrossJEM, "rpl"), (CrossJEM, "listnet"), (PointwiseCrossEncoder, "bce")])
def test_training_improves_dev_and_checkpoints(family, loss, tiny_encoder, tmp_path):
    torch.manual_seed(0)
    model = family.from_encoder(tiny_encoder, device="cpu")
    cfg = TrainConfig(loss=loss, epochs=3, lr=2e-3, lists_per_step=8, list_size=4, patience=3)
    state = train(model, toy_lists(64, 1), toy_lists(24, 2), cfg, tmp_path / "m", show_progress=False,
                  log=lambda m: None)
    first, best = state["history"][0]["nDCG@10"], state["best"]
    assert best >= first and len(state["history"]) == 3
    assert (tmp_path / "m" / "model.safetensors").is_file() and (tmp_path / "m" / "checkpoint" / "optimizer.pt").is_file()
    # Resume with more epochs continues after the last one instead of starting over.
    cfg.epochs = 4
    resumed = train(family.from_encoder(tiny_encoder, device="cpu"), toy_lists(64, 1), toy_lists(24, 2), cfg,
                    tmp_path / "m", resume=True, show_progress=False, log=lambda m: None)
    assert [h["epoch"] for h in resumed["history"]] == [1, 2, 3, 4]


def test_lists_jsonl_roundtrip_and_errors(tmp_path):
    lists = toy_lists(3, 0)
    write_lists_jsonl(lists, tmp_path / "l.jsonl")
    back = load_jsonl_lists(tmp_path / "l.jsonl")
    assert [l.query for l in back] == [l.query for l in lists]
    np.testing.assert_allclose(back[1].teacher, lists[1].teacher)
    (tmp_path / "bad.jsonl").write_text(json.dumps({"query": "x", "candidates": [{"label": 1}]}) + "\n")
    with pytest.raises(InvalidInputError, match="bad.jsonl:1"):
        load_jsonl_lists(tmp_path / "bad.jsonl")


def test_residual_training_starts_at_the_features_and_stores_its_combination(tiny_encoder, tmp_path):
    """Trained as the residual of a feature combination: dev before training is exactly the features' ranking,
    the gate leaves 0, and the model directory records the weights and gate the Combine stage will use."""
    from rerank_pipeline.rerankers.combine import FEATURES
    from rerank_pipeline.training.loop import evaluate_lists

    def with_features(lists, seed):
        rng = np.random.default_rng(seed)
        for l in lists:  # a noisy feature: the labels plus noise; "run" absent
            l.features = np.column_stack([np.full(len(l.labels), np.nan), l.labels + rng.normal(0, 1.5, len(l.labels)),
                                          np.full(len(l.labels), np.nan)])
        return lists

    train_lists, dev_lists = with_features(toy_lists(64, 1), 1), with_features(toy_lists(24, 2), 2)
    torch.manual_seed(0)
    model = CrossJEM.from_encoder(tiny_encoder, device="cpu")
    cfg = TrainConfig(loss="ce", epochs=2, lr=2e-3, lists_per_step=8, list_size=4, combine={"weights": {"bm25": 1.0}})
    state = train(model, train_lists, dev_lists, cfg, tmp_path / "m", show_progress=False, log=lambda m: None)
    features_only = evaluate_lists(model, dev_lists, combine=(np.eye(len(FEATURES))[1], 0.0))
    assert state["before"]["nDCG@10"] == pytest.approx(features_only["nDCG@10"])
    last = json.loads((tmp_path / "m" / "checkpoint" / "rerank_config.json").read_text())["combine"]
    assert last["weights"] == {"bm25": 1.0} and last["gate"] != 0.0
    best = json.loads((tmp_path / "m" / "rerank_config.json").read_text())["combine"]  # epoch 0 if none did better
    assert (best["gate"] == 0.0) == (state["best_epoch"] == 0)
    assert state["best"] >= state["before"]["nDCG@10"]


def test_a_residual_combination_records_its_lists_dense_encoder(tiny_encoder, tmp_path):
    """The stored combination names the encoder whose cosine it was fitted on (the stage warns when another one is
    read); lists whose dense features come from two encoders cannot share one dense weight."""
    lists = toy_lists(8, 1)
    for l in lists:
        l.features = np.column_stack([np.full(len(l.labels), np.nan), l.labels, l.labels])
        l.dense_encoder = "bge-small-en-v1.5"
    model = CrossJEM.from_encoder(tiny_encoder, device="cpu")
    cfg = TrainConfig(loss="ce", epochs=1, list_size=4, combine={"weights": {"bm25": 0.5, "dense": 0.5},
                                                                 "dense_encoder": "all-MiniLM-L6-v2"})
    train(model, lists, [], cfg, tmp_path / "m", show_progress=False, log=lambda m: None)
    stored = json.loads((tmp_path / "m" / "rerank_config.json").read_text())["combine"]
    assert stored["dense_encoder"] == "bge-small-en-v1.5"  # what the lists were built with, not the starting record
    lists[0].dense_encoder = "all-MiniLM-L6-v2"
    with pytest.raises(ValueError, match="2 encoders"):
        train(model, lists, [], cfg, tmp_path / "n", show_progress=False, log=lambda m: None)


def test_lists_jsonl_keeps_features(tmp_path):
    lists = toy_lists(2, 0)
    lists[0].features, lists[0].dense_encoder = np.array([[np.nan, 1.5, 0.25]] * 4), "bge-small-en-v1.5"
    write_lists_jsonl(lists, tmp_path / "l.jsonl.gz")
    back = load_jsonl_lists(tmp_path / "l.jsonl.gz")
    np.testing.assert_array_equal(back[0].features, lists[0].features)
    assert back[0].dense_encoder == "bge-small-en-v1.5"
    assert back[1].features is None and back[1].dense_encoder is None


def test_time_budget_stops_before_an_epoch_that_would_overrun(tiny_encoder, tmp_path, monkeypatch):
    """Each epoch takes 10 (fake) seconds: a 25 s budget runs epochs 1 and 2, and epoch 3, due to end at 30 s,
    never starts; without a budget all four run."""
    import rerank_pipeline.training.loop as loop

    now = [0.0]
    monkeypatch.setattr(loop.time, "time", lambda: now[0])
    real_order = loop.mixed_order

    def slow_order(*args):  # called once at the start of each epoch
        now[0] += 10.0
        return real_order(*args)

    monkeypatch.setattr(loop, "mixed_order", slow_order)

    def run(budget):
        now[0] = 0.0
        model = CrossJEM.from_encoder(tiny_encoder, device="cpu")
        cfg = TrainConfig(loss="rpl", epochs=4, lr=1e-3, lists_per_step=8, list_size=4, patience=9, max_seconds=budget)
        return train(model, toy_lists(16, 1), [], cfg, tmp_path / str(budget), show_progress=False, log=lambda m: None)

    assert [h["epoch_seconds"] for h in run(None)["history"]] == [10.0] * 4
    state = run(25.0)
    assert [h["epoch"] for h in state["history"]] == [1, 2] and state["train_seconds"] == 20.0
