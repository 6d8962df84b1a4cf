import random

from rerank_pipeline.serving.interleaving import ab_bucket, credit, team_draft
from rerank_pipeline.evaluation.simulator import ClickModel


def test_team_draft_takes_turns_without_duplicates():
    a, b = ["d1", "d2", "d3", "d4"], ["d3", "d5", "d1", "d6"]
    for seed in range(20):
        merged = team_draft(a, b, 6, random.Random(seed))
        docs = [d for d, _ in merged]
        assert len(docs) == len(set(docs)) == 6
        teams = [t for _, t in merged]
        # after every pair of picks the teams are level
        assert all(abs(teams[: i].count("A") - teams[: i].count("B")) <= 1 for i in range(1, 7))
        # each team's picks keep that team's own order
        assert [d for d, t in merged if t == "A"] == [d for d in a if d in {x for x, t in merged if t == "A"}]


def test_credit_and_ab_bucket():
    assert credit(["A", "B", "A"], [1, 3]) == "A" and credit(["A", "B"], [2]) == "B" and credit(["A", "B"], []) == "tie"
    buckets = [ab_bucket(f"session-{i}") for i in range(400)]
    assert ab_bucket("session-7") == ab_bucket("session-7")
    assert 150 < buckets.count("A") < 250  # a fair split


def test_click_models_follow_relevance_and_position():
    rng = random.Random(0)
    cascade, pbm = ClickModel("cascade"), ClickModel("pbm")
    grades = [0, 0, 2, 0, 0, 0, 0, 0, 0, 0]
    cascade_clicks = [r for _ in range(2000) for r in cascade.clicks(grades, rng)]
    assert cascade_clicks.count(3) > 5 * max(cascade_clicks.count(1), 1)  # relevant result attracts clicks
    flat = [r for _ in range(2000) for r in pbm.clicks([1] * 10, rng)]
    assert flat.count(1) > 3 * flat.count(5)  # position bias: examination falls with rank
