"""Serving beyond one process: Ray Serve replicas answering as the single process does, sharing one PostgreSQL click
log, and a PostgreSQL outage met with 503s for clicks (never an acknowledged click unwritten) while search answers."""
import time

import httpx
import pytest

from postgres import Postgres, fresh_database  # benchmarks/postgres.py
from rerank_pipeline.serving.clicklog import open_click_log
from conftest import patagonia_in_japan
from test_serving import Server


def clicked_rows(url: str) -> list[tuple[str, str]]:
    log = open_click_log(url)
    try:
        return [(c[0], c[1]) for c in log.rows()[1]]
    finally:
        log.close()


def test_two_ray_serve_replicas_answer_search_and_share_the_postgres_click_log(demo_index, postgres_url):
    pytest.importorskip("ray.serve")
    from rerank_pipeline.config import open_pipeline

    expected = open_pipeline(demo_index).name  # what one process serves by default
    url = fresh_database(postgres_url)
    server = Server("--ray", "local", "--replicas", "2", "--cpus-per-replica", "0.5", "--index", "demo",
                    "--index-dir", str(demo_index.path.parent), "--log", url, startup_s=300)
    acknowledged, pids = [], set()
    try:
        for _ in range(60):  # Ray's router spreads requests over both replicas
            health = httpx.get(server.url + "/healthz", timeout=10).json()
            assert health["index"] == "demo" and health["systems"]["A"] == expected
            pids.add(health["pid"])
            if len(pids) == 2:
                break
        assert len(pids) == 2 and server.proc.pid not in pids  # two replica processes, neither the driver
        for q in ("patagonia japan", "tent", "oaxaca food", "patagonia japan"):
            shown = httpx.get(server.url + "/search", params={"q": q, "k": 5}, timeout=120).json()
            assert shown["logged"] and len(shown["results"]) == 5
            if q == "patagonia japan":
                assert all(patagonia_in_japan(r["text"]) for r in shown["results"][:3])
            clicked = shown["results"][1]["id"]
            r = httpx.post(server.url + "/click", json={"request_id": shown["request_id"], "id": clicked}, timeout=120)
            assert r.status_code == 200 and r.json()["rank"] == 2
            acknowledged.append((shown["request_id"], clicked))
        bad = httpx.get(server.url + "/search", params={"q": "tent", "k": 100_000}, timeout=120)
        assert bad.status_code == 422  # the replicas validate as the single process does
    finally:
        server.stop()
    assert server.proc.returncode is not None
    assert clicked_rows(url) == acknowledged


def test_a_postgres_outage_refuses_clicks_with_503_and_search_keeps_answering(demo_index, tmp_path):
    pytest.importorskip("pgserver")
    try:
        pg = Postgres(tmp_path / "pg")
    except Exception as e:  # no wheel for this platform, or the server would not start
        pytest.skip(f"PostgreSQL could not start: {e}")
    server = Server("--index", "demo", "--index-dir", str(demo_index.path.parent), "--log", pg.url)
    try:
        before = httpx.get(server.url + "/search", params={"q": "tent", "k": 3}, timeout=120).json()
        assert before["logged"]
        pg.crash()
        during = httpx.get(server.url + "/search", params={"q": "tent", "k": 3}, timeout=120)
        assert during.status_code == 200 and not during.json()["logged"] and during.json()["results"]
        start = time.perf_counter()
        refused = httpx.post(server.url + "/click", json={"request_id": before["request_id"],
                                                          "id": before["results"][0]["id"]}, timeout=120)
        assert refused.status_code == 503 and refused.headers["retry-after"] == "5"
        # Refused after the pool's 2 s wait, not held until the store returns (a loose bound: busy CI machines).
        assert "nothing was recorded" in refused.json()["detail"] and time.perf_counter() - start < 60
        pg.restart()
        deadline = time.time() + 300  # the pool reconnects in the background; the deadline guards against a hang
        while time.time() < deadline:
            again = httpx.post(server.url + "/click", json={"request_id": before["request_id"],
                                                            "id": before["results"][0]["id"]}, timeout=120)
            if again.status_code != 503:
                break
            time.sleep(0.5)
        assert again.status_code == 200
        metrics = httpx.get(server.url + "/metrics").text
        assert 'rerank_click_log_unavailable_total{operation="click"}' in metrics
    finally:
        server.stop()
    assert clicked_rows(pg.url) == [(before["request_id"], before["results"][0]["id"])]
    pg.close()


def test_serve_refuses_inconsistent_options_in_one_line_before_ray_starts(tmp_path):
    from typer.testing import CliRunner

    from rerank_cli.main import app

    runner = CliRunner()
    result = runner.invoke(app, ["serve", "--config-b", "configs/bm25-only.yaml"])
    assert result.exit_code == 2 and "goes with mode ab or interleave" in result.output
    result = runner.invoke(app, ["serve", "--replicas", "2"])
    assert result.exit_code == 2 and "go with --ray" in result.output
    result = runner.invoke(app, ["serve", "--ray", "local", "--index", "nope", "--index-dir", str(tmp_path)])
    assert result.exit_code == 2 and "no index at" in result.output and "Traceback" not in result.output
    result = runner.invoke(app, ["serve", "--ray", "local", "--min-replicas", "3", "--max-replicas", "2"])
    assert result.exit_code == 2 and "min replicas <= max replicas" in result.output
