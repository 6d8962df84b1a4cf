"""A PostgreSQL server of its own for an outage proof (the pgserver wheel: its binaries, a data directory, a Unix
socket there and no TCP port), which can crash and come back on the same socket, so clients keep their URL."""
from __future__ import annotations

import time
import uuid
from pathlib import Path


def fresh_database(url: str) -> str:
    """A new, empty database on the server behind `url` (pgserver's URL names the `postgres` one): its URL."""
    import psycopg

    name = "t" + uuid.uuid4().hex[:12]
    with psycopg.connect(url, autocommit=True) as con:
        con.execute(f"CREATE DATABASE {name}")
    return url.replace("/postgres?", f"/{name}?")


class Postgres:
    def __init__(self, data_dir: Path):
        import pgserver

        self.server = pgserver.get_server(Path(data_dir), cleanup_mode="stop")
        self.url = self.server.get_uri()

    def crash(self) -> None:
        """Stop the way a crash does (`pg_ctl -m immediate`: no checkpoint, clients cut off at once)."""
        from pgserver._commands import pg_ctl

        pg_ctl(["-w", "-m", "immediate", "stop"], pgdata=self.server.pgdata, user=self.server.system_user)

    def restart(self) -> None:
        self.server.ensure_postgres_running()

    def outage(self, seconds: float) -> None:
        self.crash()
        time.sleep(seconds)
        self.restart()

    def close(self) -> None:
        self.server.cleanup()
