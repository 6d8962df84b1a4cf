"""Impression and click log in SQLite (WAL, so the server writes while reports read)."""
from __future__ import annotations

import json
import sqlite3
import threading
import time
from pathlib import Path

SCHEMA = """
CREATE TABLE IF NOT EXISTS impressions (
    request_id TEXT PRIMARY KEY, ts REAL NOT NULL, session TEXT NOT NULL, query TEXT NOT NULL,
    mode TEXT NOT NULL, system TEXT NOT NULL, results TEXT NOT NULL, timings TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS clicks (
    id INTEGER PRIMARY KEY, request_id TEXT NOT NULL REFERENCES impressions(request_id), docid TEXT NOT NULL,
    rank INTEGER NOT NULL, ts REAL NOT NULL, dwell_s REAL);
CREATE INDEX IF NOT EXISTS clicks_request ON clicks(request_id);
"""


class ClickLog:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._lock = threading.Lock()
        self._con = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._con.execute("PRAGMA journal_mode=WAL")
        self._con.executescript(SCHEMA)

    def impression(self, request_id: str, session: str, query: str, mode: str, system: str,
                   results: list[dict], timings: dict[str, float]) -> None:
        with self._lock:
            self._con.execute("INSERT INTO impressions VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                              (request_id, time.time(), session, query, mode, system, json.dumps(results),
                               json.dumps(timings)))

    def click(self, request_id: str, docid: str) -> int | None:
        """Record a click on a shown result; returns its rank, or None if the request/doc was never shown."""
        row = self._con.execute("SELECT results FROM impressions WHERE request_id = ?", (request_id,)).fetchone()
        if row is None:
            return None
        rank = next((r["rank"] for r in json.loads(row[0]) if r["id"] == docid), None)
        if rank is not None:
            with self._lock:
                self._con.execute("INSERT INTO clicks (request_id, docid, rank, ts) VALUES (?, ?, ?, ?)",
                                  (request_id, docid, rank, time.time()))
        return rank

    def returned(self, request_id: str, docid: str, dwell_s: float) -> bool:
        """The user came back to the results after `dwell_s` seconds on the clicked document (last click wins)."""
        with self._lock:
            cur = self._con.execute(
                "UPDATE clicks SET dwell_s = ? WHERE id = (SELECT max(id) FROM clicks WHERE request_id = ? AND docid = ?)",
                (dwell_s, request_id, docid))
        return cur.rowcount > 0

    def rows(self) -> tuple[list[tuple], list[tuple]]:
        imps = self._con.execute("SELECT request_id, ts, session, query, mode, system, results, timings FROM impressions").fetchall()
        clicks = self._con.execute("SELECT request_id, docid, rank, ts, dwell_s FROM clicks ORDER BY id").fetchall()
        return imps, clicks

    def close(self) -> None:
        self._con.close()
