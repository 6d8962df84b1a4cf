"""Impression and click log: SQLite (WAL, so the server writes while reports read; the embedded default) or
PostgreSQL (psycopg 3 with a connection pool; every replica of a service writes to one store). One interface and
one versioned schema: opening an older log upgrades it in a transaction, a newer one is refused. A write returns
only after its commit, so what the server acknowledged is in the store; a store that cannot take the write (PostgreSQL
down, SQLite locked past its timeout) raises ClickLogUnavailable within a few seconds, and the server answers 503.
"""
from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from pathlib import Path

from ..extras import require

SCHEMA_VERSION = 2
# Version 1 is the schema logs had before it was versioned (no schema_version table); each later entry upgrades the
# one before. Types are written for both dialects: {id} and {float} are filled per backend.
MIGRATIONS = {
    1: ["CREATE TABLE IF NOT EXISTS impressions (request_id TEXT PRIMARY KEY, ts {float} NOT NULL, "
        "session TEXT NOT NULL, query TEXT NOT NULL, mode TEXT NOT NULL, system TEXT NOT NULL, results TEXT NOT NULL, "
        "timings TEXT NOT NULL)",
        "CREATE TABLE IF NOT EXISTS clicks (id {id}, request_id TEXT NOT NULL REFERENCES impressions(request_id), "
        "docid TEXT NOT NULL, rank INTEGER NOT NULL, ts {float} NOT NULL, dwell_s {float})",
        "CREATE INDEX IF NOT EXISTS clicks_request ON clicks(request_id)"],
    2: ["CREATE INDEX IF NOT EXISTS impressions_session ON impressions(session)"],
}


class SchemaError(ValueError):
    """The log was written by a newer version of this library."""


class ClickLogUnavailable(ConnectionError):
    """The store could not take a read or write now (nothing was written); the caller may retry later."""


class ClickLog:
    """The log's operations over a backend's `_run(statements_with_params, fetch)`; subclasses connect."""

    types = {"id": "INTEGER PRIMARY KEY", "float": "REAL"}
    mark = "?"
    unavailable: tuple[type[BaseException], ...] = ()  # the backend's errors that mean "the store is not there now"
    away_s = 1.0
    _away_until = 0.0

    def _open(self, where: str) -> None:
        """Bring the schema up to date (the connection is closed again if that fails)."""
        self.where = where
        try:
            self._migrate()
        except BaseException:
            self.close()
            raise

    # ---- backend ----------------------------------------------------------------------------------------------
    def _run(self, statements: list[tuple[str, tuple]], fetch: bool = False):
        """Run the statements in one transaction, committed before returning; the last one's rows if `fetch`,
        else its row count."""
        raise NotImplementedError

    def _has_table(self, name: str) -> bool:
        raise NotImplementedError

    def _run_online(self, statements: list[tuple[str, tuple]], fetch: bool = False):
        """`_run` for the serving path: the backend's outage errors become ClickLogUnavailable. After one, calls fail
        at once for `away_s` (then one waits for a connection again), so an outage is refused quickly instead of every
        request queueing for a connection and being written, late, when the store is back."""
        if time.monotonic() < self._away_until:
            raise ClickLogUnavailable(f"click log {self.where}: unavailable a moment ago")
        try:
            return self._run(statements, fetch)
        except self.unavailable as e:
            self._away_until = time.monotonic() + self.away_s
            raise ClickLogUnavailable(f"click log {self.where}: {str(e).splitlines()[0] if str(e) else type(e).__name__}") from None

    def _sql(self, statement: str) -> str:
        return statement.replace("?", self.mark).format(**self.types)

    # ---- schema -----------------------------------------------------------------------------------------------
    def version(self) -> int:
        if self._has_table("schema_version"):
            return int(self._run([("SELECT max(version) FROM schema_version", ())], fetch=True)[0][0])
        return 1 if self._has_table("impressions") else 0

    def _migrate(self) -> None:
        current = self.version()
        if current > SCHEMA_VERSION:
            raise SchemaError(f"{self.where}: click log schema version {current} is newer than this library's "
                              f"({SCHEMA_VERSION}); upgrade rerank-pipeline to read it")
        if current == SCHEMA_VERSION:
            return
        steps = [(s, ()) for v in range(current + 1, SCHEMA_VERSION + 1) for s in MIGRATIONS[v]]
        steps += [("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)", ()),
                  ("DELETE FROM schema_version", ()), ("INSERT INTO schema_version VALUES (?)", (SCHEMA_VERSION,))]
        self._run(steps)

    # ---- the log ----------------------------------------------------------------------------------------------
    def impression(self, request_id: str, session: str, query: str, mode: str, system: str,
                   results: list[dict], timings: dict[str, float]) -> None:
        self._run_online([("INSERT INTO impressions VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                           (request_id, time.time(), session, query, mode, system, json.dumps(results),
                            json.dumps(timings)))])

    def click(self, request_id: str, docid: str) -> int | None:
        """Record a click on a shown result; returns its rank, or None if the request/doc was never shown."""
        rows = self._run_online([("SELECT results FROM impressions WHERE request_id = ?", (request_id,))], fetch=True)
        if not rows:
            return None
        rank = next((r["rank"] for r in json.loads(rows[0][0]) if r["id"] == docid), None)
        if rank is not None:
            self._run_online([("INSERT INTO clicks (request_id, docid, rank, ts) VALUES (?, ?, ?, ?)",
                               (request_id, docid, rank, time.time()))])
        return rank

    def returned(self, request_id: str, docid: str, dwell_s: float) -> bool:
        """The user came back to the results after `dwell_s` seconds on the clicked document (last click wins)."""
        return self._run_online([("UPDATE clicks SET dwell_s = ? WHERE id = (SELECT max(id) FROM clicks WHERE "
                                  "request_id = ? AND docid = ?)", (dwell_s, request_id, docid))]) > 0

    def rows(self) -> tuple[list[tuple], list[tuple]]:
        imps = self._run([("SELECT request_id, ts, session, query, mode, system, results, timings FROM impressions "
                           "ORDER BY ts, request_id", ())], fetch=True)
        clicks = self._run([("SELECT request_id, docid, rank, ts, dwell_s FROM clicks ORDER BY id", ())], fetch=True)
        return [tuple(r) for r in imps], [tuple(r) for r in clicks]

    def close(self) -> None:
        raise NotImplementedError


class SQLiteClickLog(ClickLog):
    unavailable = (sqlite3.OperationalError,)  # locked by another writer past the timeout, disk full

    def __init__(self, path: str | Path, timeout_s: float = 5.0):
        self.path = Path(path)
        self._lock = threading.Lock()
        self._con = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=timeout_s)
        self._con.execute("PRAGMA journal_mode=WAL")
        self._open(str(self.path))

    def _run(self, statements, fetch=False):
        with self._lock:
            self._con.execute("BEGIN IMMEDIATE")
            try:
                for sql, params in statements:
                    cur = self._con.execute(self._sql(sql), params)
                out = cur.fetchall() if fetch else cur.rowcount
                self._con.execute("COMMIT")
            except BaseException:
                self._con.execute("ROLLBACK")
                raise
        return out

    def _has_table(self, name: str) -> bool:
        return self._con.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?",
                                 (name,)).fetchone() is not None

    def close(self) -> None:
        self._con.close()


class PostgresClickLog(ClickLog):
    types = {"id": "BIGSERIAL PRIMARY KEY", "float": "DOUBLE PRECISION"}
    mark = "%s"

    def __init__(self, url: str, pool_size: int = 4, timeout_s: float = 2.0):
        psycopg = require("psycopg", "postgres", "a PostgreSQL click log")
        pool = require("psycopg_pool", "postgres", "a PostgreSQL click log")
        self.unavailable = (psycopg.OperationalError, pool.PoolTimeout)
        self.timeout_s = timeout_s  # how long a request waits for a connection while the server is away
        where = url.split("@")[-1]  # no password in messages
        # check_connection: a connection the server dropped (a restart) is replaced on checkout, not failed on use.
        self._pool = pool.ConnectionPool(url, min_size=1, max_size=pool_size, open=True, timeout=10,
                                         check=pool.ConnectionPool.check_connection)
        quiet = logging.getLogger("psycopg.pool")  # one failed attempt per line meanwhile; the error below says it
        level, quiet.level = quiet.level, logging.ERROR
        try:
            self._pool.wait(timeout=10)
        except pool.PoolTimeout:
            self._pool.close()
            raise ConnectionError(f"click log {where}: no PostgreSQL server answered within 10 s") from None
        finally:
            quiet.setLevel(level)
        self._open(where)

    def _run(self, statements, fetch=False):
        with self._pool.connection(timeout=self.timeout_s) as con:  # one transaction, committed when the block ends
            for sql, params in statements:
                cur = con.execute(self._sql(sql), params)
            return cur.fetchall() if fetch else cur.rowcount

    def _has_table(self, name: str) -> bool:
        return bool(self._run([("SELECT to_regclass(?) IS NOT NULL", (name,))], fetch=True)[0][0])

    def close(self) -> None:
        self._pool.close()


def is_postgres(target: str | Path) -> bool:
    return str(target).startswith(("postgresql://", "postgres://"))


def open_click_log(target: str | Path) -> ClickLog:
    """A `postgresql://` URL opens PostgreSQL; anything else is a SQLite file path."""
    if is_postgres(target):
        return PostgresClickLog(str(target))
    return SQLiteClickLog(target)
