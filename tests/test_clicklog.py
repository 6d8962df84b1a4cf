"""The click log on SQLite and on a real PostgreSQL: the same writes give the same report, older logs upgrade, newer
ones are refused, and the server's acknowledged clicks are in PostgreSQL."""
import sqlite3

import httpx
import pytest

from rerank_pipeline.evaluation.online import online_report
from postgres import fresh_database  # benchmarks/postgres.py (conftest puts benchmarks/ on the path)
from rerank_pipeline.serving.clicklog import SCHEMA_VERSION, SchemaError, open_click_log


def write_session(log) -> None:
    """Interleaved impressions over two systems, clicks with and without returns, an abandoned query."""
    for i in range(6):
        results = [{"rank": r, "id": f"d{r}", "team": "A" if r % 2 else "B"} for r in range(1, 6)]
        log.impression(f"r{i}", f"s{i % 2}", f"query {i}", "interleave", "interleave(A,B)", results,
                       {"A:bm25": 1.5 + i, "B:dense": 3.0})
    assert log.click("r0", "d1") == 1 and log.click("r1", "d2") == 2 and log.click("r1", "d3") == 3
    assert log.click("r2", "d5") == 5 and log.click("r3", "nope") is None and log.click("nope", "d1") is None
    assert log.returned("r1", "d2", 4.0) and log.returned("r2", "d5", 60.0) and not log.returned("r5", "d1", 1.0)


def test_sqlite_and_postgres_give_the_same_report(tmp_path, postgres_url):
    reports = []
    for target in (tmp_path / "clicks.sqlite", fresh_database(postgres_url)):
        log = open_click_log(target)
        write_session(log)
        imps, clicks = log.rows()
        log.close()
        assert len(imps) == 6 and [c[:3] for c in clicks] == [("r0", "d1", 1), ("r1", "d2", 2), ("r1", "d3", 3),
                                                              ("r2", "d5", 5)]
        reports.append(online_report(target, quick_back_s=10))
    sqlite_report, pg_report = reports
    assert sqlite_report["systems"].round(10).equals(pg_report["systems"].round(10))
    assert sqlite_report["interleaving"] == pg_report["interleaving"]
    assert sqlite_report["latency_ms"].round(10).equals(pg_report["latency_ms"].round(10))


def test_an_unversioned_log_is_upgraded_and_a_newer_one_refused(tmp_path, postgres_url):
    path = tmp_path / "old.sqlite"
    con = sqlite3.connect(path)  # the schema of logs written before versioning (version 1)
    con.executescript("""
        CREATE TABLE impressions (request_id TEXT PRIMARY KEY, ts REAL NOT NULL, session TEXT NOT NULL,
            query TEXT NOT NULL, mode TEXT NOT NULL, system TEXT NOT NULL, results TEXT NOT NULL, timings TEXT NOT NULL);
        CREATE TABLE clicks (id INTEGER PRIMARY KEY, request_id TEXT NOT NULL REFERENCES impressions(request_id),
            docid TEXT NOT NULL, rank INTEGER NOT NULL, ts REAL NOT NULL, dwell_s REAL);
        INSERT INTO impressions VALUES ('r0', 1.0, 's', 'q', 'single', 'A', '[{"rank": 1, "id": "d1", "team": "A"}]', '{}');
    """)
    con.commit()
    con.close()
    log = open_click_log(path)
    assert log.version() == SCHEMA_VERSION and log.click("r0", "d1") == 1  # old rows kept, new writes work
    log.close()
    con = sqlite3.connect(path)
    assert con.execute("SELECT name FROM sqlite_master WHERE name = 'impressions_session'").fetchone()
    con.execute("UPDATE schema_version SET version = 99")
    con.commit()
    con.close()
    with pytest.raises(SchemaError, match="version 99 is newer"):
        open_click_log(path)

    import psycopg

    url = fresh_database(postgres_url)
    open_click_log(url).close()
    with psycopg.connect(url, autocommit=True) as con:
        con.execute("UPDATE schema_version SET version = 99")
    with pytest.raises(SchemaError, match="version 99 is newer"):
        open_click_log(url)

    from typer.testing import CliRunner

    from rerank_cli.main import app

    result = CliRunner().invoke(app, ["online-report", str(path)])
    assert result.exit_code == 2 and "newer than this library" in result.output and "Traceback" not in result.output
    unreachable = CliRunner().invoke(app, ["online-report", "postgresql://nobody@127.0.0.1:1/none"])
    assert unreachable.exit_code == 2 and "no PostgreSQL server answered" in unreachable.output


def test_the_server_acknowledges_clicks_only_once_they_are_in_postgres(demo_index, postgres_url):
    from test_serving import Server

    url = fresh_database(postgres_url)
    server = Server("--index", "demo", "--index-dir", str(demo_index.path.parent), "--log", url)
    acknowledged = []
    try:
        for q in ("patagonia japan", "tent", "oaxaca food"):
            shown = httpx.get(server.url + "/search", params={"q": q, "k": 3}).json()
            r = httpx.post(server.url + "/click", json={"request_id": shown["request_id"], "id": shown["results"][1]["id"]})
            if r.status_code == 200:
                acknowledged.append((shown["request_id"], shown["results"][1]["id"]))
    finally:
        server.stop()
    log = open_click_log(url)
    _, clicks = log.rows()
    log.close()
    assert len(acknowledged) == 3 and [(c[0], c[1]) for c in clicks] == acknowledged
