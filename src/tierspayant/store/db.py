"""Engines and migrations for SQLite (embedded default) and PostgreSQL (production)."""

from __future__ import annotations

import sqlite3
import threading
import weakref
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, Engine, create_engine, event, inspect
from sqlalchemy.pool import NullPool

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def _sqlite_pragmas(dbapi_connection: sqlite3.Connection, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets readers run beside the single writer; NORMAL is durable across a process
    # crash (not across power loss of the machine), the usual trade-off in WAL mode.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA temp_store=MEMORY")
    cursor.close()


def make_engine(url: str, *, pool: bool = True) -> Engine:
    """Create the engine for ``url`` with the settings each dialect needs."""
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        # One connection per request thread (the server's pool has 40): a smaller pool
        # would make requests wait for a connection rather than for the write lock.
        sized = {"pool_size": 20, "max_overflow": 30} if pool else {"poolclass": NullPool}
        engine = create_engine(url, connect_args={"check_same_thread": False}, **sized)
        event.listen(engine, "connect", _sqlite_pragmas)
        _install_write_gate(engine)
        return engine
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    return create_engine(url, pool_size=10, max_overflow=10, pool_pre_ping=True)


# --- SQLite: one writer at a time inside the process ---------------------------------
#
# SQLite has one write lock; a blocked writer sleeps in growing steps (busy timeout) and
# wakes long after the lock is free. Writers of the same process instead queue on a
# Python lock taken just before their first write and released when their transaction
# ends, so the next one starts the moment the previous one commits.

_GATE_KEY = "tierspayant.write_gate"
_GATES: weakref.WeakKeyDictionary[Any, threading.Lock] = weakref.WeakKeyDictionary()
GATE_TIMEOUT_SECONDS = 10.0


def enter_write(conn: Connection) -> None:
    """Queue for the write lock of an SQLite database (no-op elsewhere, or if held)."""
    gate = _GATES.get(conn.engine.pool)
    if gate is None or conn.info.get(_GATE_KEY):
        return
    if not gate.acquire(timeout=GATE_TIMEOUT_SECONDS):
        return  # fall back to SQLite's own busy wait rather than fail here
    conn.info[_GATE_KEY] = gate


def _install_write_gate(engine: Engine) -> None:
    _GATES[engine.pool] = threading.Lock()

    def release(info: dict[Any, Any]) -> None:
        gate = info.pop(_GATE_KEY, None)
        if gate is not None:
            gate.release()

    def on_end(conn: Connection) -> None:
        release(conn.info)

    def on_reset(_dbapi: Any, record: Any, _state: Any) -> None:
        release(record.info)

    def on_invalidate(_dbapi: Any, record: Any, _exception: Any) -> None:
        release(record.info)

    event.listen(engine, "commit", on_end)
    event.listen(engine, "rollback", on_end)
    event.listen(engine.pool, "reset", on_reset)
    event.listen(engine.pool, "invalidate", on_invalidate)


def alembic_config(url: str) -> Config:
    """An Alembic configuration pointing at the packaged migrations."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def migrate(engine: Engine) -> None:
    """Bring the schema of ``engine``'s database to the newest revision."""
    cfg = alembic_config(engine.url.render_as_string(hide_password=False))
    with engine.begin() as connection:
        cfg.attributes["connection"] = connection
        command.upgrade(cfg, "heads")


def is_initialised(engine: Engine) -> bool:
    """Whether the database has been migrated at least once."""
    return inspect(engine).has_table("alembic_version")
