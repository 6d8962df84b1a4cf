"""AXN: the least-squares step, the rounds (no item scored twice, budget kept), the fit, errors, and the stage."""
import numpy as np
import pytest

from rerank_pipeline.retrievers.axn import (AXN, AxnIndex, adaptive_search, fit_axn, fit_item_embeddings, moment_map,
                                            solve_query)


def test_least_squares_recovers_a_planted_query():
    rng = np.random.default_rng(0)
    u = rng.normal(size=16)
    items = rng.normal(size=(40, 16))
    np.testing.assert_allclose(solve_query(items, items @ u), u, atol=1e-8)            # n > d: exact
    few = items[:6]
    got = solve_query(few, few @ u)                                                     # n < d: dual form
    np.testing.assert_allclose(few @ got, few @ u, atol=1e-8)
    assert np.linalg.norm(got) <= np.linalg.norm(u)                                     # the minimum-norm solution


def test_moment_map_matches_range():
    rng = np.random.default_rng(1)
    ce, de = rng.normal(3, 5, 1000), rng.normal(0.4, 0.1, 1000)
    scale, shift = moment_map(ce, de)
    mapped = scale * ce + shift
    assert mapped.mean() == pytest.approx(de.mean()) and mapped.std() == pytest.approx(de.std())


def _planted(n_items=500, dim=8, n_queries=6, seed=0):
    rng = np.random.default_rng(seed)
    vectors = rng.normal(size=(n_items, dim))
    truth = rng.normal(size=(n_queries, dim))
    return vectors, truth, truth @ vectors.T


def test_rounds_never_rescore_and_keep_the_budget():
    vectors, truth, exact = _planted()
    calls = {q: [] for q in range(len(truth))}

    def score(queries, rows):
        for q, r in zip(queries, rows):
            calls[q] += list(r)
        return [exact[q, r] for q, r in zip(queries, rows)]

    rng = np.random.default_rng(2)
    first = [rng.permutation(len(vectors)) for _ in truth]                             # a useless first stage
    found = adaptive_search(first, score, vectors, lambda u, k: np.argsort(-(u @ vectors.T), axis=1)[:, :k],
                            budget=50, rounds=5, ridge=0.0)
    for q, (rows, values) in enumerate(found):
        assert len(calls[q]) == len(set(calls[q])) == len(rows) == 50                  # never twice, budget spent
        np.testing.assert_allclose(values, exact[q, rows])
        # The planted scores are linear in the vectors: after round 1 the solve is exact, so AXN finds the true top 10.
        assert set(rows[np.argsort(-values)[:10]]) == set(np.argsort(-exact[q])[:10])


def test_bad_budget_and_missing_index(demo_index, tiny_encoder):
    from rerank_pipeline.rerankers import PointwiseCrossEncoder

    with pytest.raises(ValueError, match="rounds <= budget"):
        adaptive_search([np.arange(3)], None, np.zeros((3, 2)), None, budget=2, rounds=3)
    reranker = PointwiseCrossEncoder.from_encoder(tiny_encoder, device="cpu")
    with pytest.raises(ValueError, match="rounds <= budget"):
        AXN(demo_index, reranker, budget=4, rounds=5)
    with pytest.raises(FileNotFoundError, match="rerank axn-index demo"):
        AXN(demo_index, reranker, fit_if_missing=False).transform({"q": "patagonia"})


def test_index_without_dense(tmp_path, tiny_encoder):
    from conftest import write_jsonl
    from rerank_pipeline.index import build_index
    from rerank_pipeline.rerankers import PointwiseCrossEncoder

    idx, _ = build_index(write_jsonl(tmp_path / "c.jsonl", [{"id": "a", "text": "alpha beta"}]), "one", tmp_path,
                         dense=False, show_progress=False)
    with pytest.raises(ValueError, match="without a dense stage"):
        fit_axn(idx, PointwiseCrossEncoder.from_encoder(tiny_encoder, device="cpu"))


def test_fit_reduces_the_residual():
    vectors, truth, exact = _planted(n_items=200, dim=8, n_queries=60, seed=3)
    rng = np.random.default_rng(4)
    noisy_items = vectors + rng.normal(scale=0.5, size=vectors.shape)
    q = np.repeat(np.arange(60), 30)
    i = np.concatenate([rng.choice(200, 30, replace=False) for _ in range(60)])
    _, _, stats = fit_item_embeddings(truth, noisy_items, q, i, exact[q, i], steps=300, lr=3e-2, pull=1e-4)
    assert stats["fit_rmse"] < 0.3 * stats["fit_rmse_before"]
    assert stats["heldout_rmse"] < stats["heldout_rmse_before"]


def test_stage_on_the_demo_index(demo_index, tiny_encoder, tmp_path):
    import shutil

    from rerank_pipeline.index import Index
    from rerank_pipeline.rerankers import PointwiseCrossEncoder

    idx = Index.open(shutil.copytree(demo_index.path, tmp_path / "demo"))
    reranker = PointwiseCrossEncoder.from_encoder(tiny_encoder, device="cpu")
    axn = fit_axn(idx, reranker, pseudo=40, k_d=20, steps=20, show_progress=False)
    assert AxnIndex.open(idx).meta["reranker_calls"] == axn.meta["reranker_calls"] == 40 * 20
    assert axn.meta["queries"].startswith("40 pseudo queries")
    stage = AXN(idx, reranker, budget=20, rounds=4, k=5)
    run = stage.transform({"q1": "patagonia japan", "q2": "tokyo store"})
    for q, text in (("q1", "patagonia japan"), ("q2", "tokyo store")):
        hits = run[q]
        assert len(hits) == 5 and len({h.docid for h in hits}) == 5
        direct = reranker.score_docs([text], [[h.docid for h in hits]], idx.docstore)[0]
        np.testing.assert_allclose([h.score for h in hits], direct, rtol=1e-4, atol=1e-5)
    other = PointwiseCrossEncoder.from_encoder(tiny_encoder, device="cpu")
    other.network.head.bias.data += 1.0
    with pytest.raises(ValueError, match="another reranker"):
        AXN(idx, other).transform({"q": "patagonia"})


def test_cli_fit_then_search_from_yaml(demo_index, tiny_encoder, tmp_path):
    import json
    import shutil

    from typer.testing import CliRunner

    from rerank_cli.main import app
    from rerank_pipeline.rerankers import CrossJEM

    shutil.copytree(demo_index.path, tmp_path / "ix" / "demo")
    model = tmp_path / "cj"
    CrossJEM.from_encoder(tiny_encoder, device="cpu").save(model)
    runner = CliRunner()
    fit = runner.invoke(app, ["axn-index", "demo", "--index-dir", str(tmp_path / "ix"), "--reranker", str(model),
                              "--pseudo", "30", "--k-d", "20"])
    assert fit.exit_code == 0, fit.output
    assert "600 reranker calls" in " ".join(fit.output.split())
    config = tmp_path / "axn.yaml"
    config.write_text("retrievers:\n  - {type: axn, k: 3, budget: 12, rounds: 3, "
                      f"reranker: {{type: crossjem, model: {model}}}}}\n")
    found = runner.invoke(app, ["search", "patagonia japan", "--index", "demo", "--index-dir", str(tmp_path / "ix"),
                                "--config", str(config), "--json"])
    assert found.exit_code == 0, found.output
    hits = json.loads(found.output)
    assert len(hits["results"] if isinstance(hits, dict) else hits) == 3
