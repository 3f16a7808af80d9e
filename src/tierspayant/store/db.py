"""Engines and migrations for SQLite (embedded default) and PostgreSQL (production)."""

from __future__ import annotations

import re
import sqlite3
import threading
import time
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import structlog
from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, Engine, create_engine, event, inspect
from sqlalchemy.dialects.sqlite import base as sqlite_base
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.pool import NullPool
from sqlalchemy.sql import sqltypes

from tierspayant.store.partitions import ensure_audit_months

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
log = structlog.get_logger(__name__)


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


class _UtcDateTime(sqlite_base.DATETIME):
    """SQLite's DATETIME, bound in UTC. SQLite stores a moment as text without its zone
    and SQLAlchemy writes the wall clock of whatever zone a value carries: a bound of
    midnight in Paris compared as midnight UTC, so a window of Paris days (the security
    console's incident form) selected events an hour off. Every aware value is turned to
    UTC first, as PostgreSQL's ``timestamptz`` does; stored values were always UTC."""

    def bind_processor(self, dialect: Any) -> Any:
        process = super().bind_processor(dialect)
        assert process is not None

        def to_utc(value: Any) -> Any:
            if isinstance(value, datetime) and value.tzinfo is not None:
                value = value.astimezone(UTC)
            return process(value)

        return to_utc


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
        engine.dialect.colspecs = {**engine.dialect.colspecs, sqltypes.DateTime: _UtcDateTime}
        _install_write_gate(engine)
        return engine
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    engine = create_engine(url, pool_size=10, max_overflow=10)
    _ping_when_idle(engine)
    return engine


# A connection back from the pool is pinged only if it sat unused for this long: one that
# served a request a moment ago is alive (a server restart in between fails that request,
# and the connection is then discarded as SQLAlchemy discards any broken one). Pinging on
# every checkout (``pool_pre_ping``) cost a network round trip on every rights check.
PING_IDLE_SECONDS = 5.0
_CHECKED_IN = "tierspayant.checked_in"


def _ping_when_idle(engine: Engine) -> None:
    def on_checkin(_dbapi: Any, record: Any) -> None:
        record.info[_CHECKED_IN] = time.monotonic()

    def on_checkout(dbapi: Any, record: Any, _proxy: Any) -> None:
        since = record.info.get(_CHECKED_IN)
        if since is None or time.monotonic() - since < PING_IDLE_SECONDS:
            return  # new, or used a moment ago
        try:
            cursor = dbapi.cursor()
            try:
                cursor.execute("SELECT 1")
            finally:
                cursor.close()
            dbapi.rollback()  # the driver opened a transaction for the ping: end it
        except Exception as exc:
            # The pool drops this connection and checks out (or opens) another one.
            raise DisconnectionError(str(exc)) from exc

    event.listen(engine.pool, "checkin", on_checkin)
    event.listen(engine.pool, "checkout", on_checkout)


# --- SQLite: one writer at a time inside the process ---------------------------------
#
# SQLite has one write lock; a blocked writer sleeps in growing steps (busy timeout) and
# wakes long after the lock is free. Writers of the same process instead queue on a
# Python lock, the *write gate*, and release it when their transaction ends, so the next
# one starts the moment the previous one commits.
#
# Every writer takes the two locks in one order: the gate first, then SQLite's lock. A
# listener takes the gate before any statement that takes SQLite's lock (INSERT, UPDATE,
# DELETE, REPLACE, BEGIN IMMEDIATE/EXCLUSIVE; the driver opens its transaction at the
# first of them), so no transaction can hold SQLite's lock while it waits for the gate.
# Two orders deadlocked in effect: a claim wrote first, then its audit append waited for
# the gate, held by the audit writer, which waited for SQLite's lock until the busy
# timeout ("database is locked", answered 500 to every rights check of its batch).
# A transaction that reads what it is about to write (the next id, the chain's head)
# calls :func:`begin_write` before that read.

_GATE_KEY = "tierspayant.write_gate"
GATE_TIMEOUT_SECONDS = 10.0
_TAKES_WRITE_LOCK = re.compile(
    r"\s*(?:INSERT|UPDATE|DELETE|REPLACE|BEGIN\s+(?:IMMEDIATE|EXCLUSIVE))\b", re.IGNORECASE
).match


class DatabaseBusy(RuntimeError):
    """The write gate stayed taken past :data:`GATE_TIMEOUT_SECONDS` (answered 503)."""


class _Gate:
    __slots__ = ("lock", "owner")

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.owner: int | None = None  # the thread that holds it


_GATES: weakref.WeakKeyDictionary[Any, _Gate] = weakref.WeakKeyDictionary()


def enter_write(conn: Connection) -> None:
    """Queue for the write gate of an SQLite database (no-op elsewhere, or if held).

    A thread that already holds the gate through another connection does not wait for
    itself: SQLite's own lock decides for that nested writer, as it did before the gate.
    """
    gate = _GATES.get(conn.engine.pool)
    if gate is None or conn.info.get(_GATE_KEY):
        return
    me = threading.get_ident()
    if gate.owner == me:
        log.warning("db.nested_writer")  # none known: the test suites see none
        return
    if not gate.lock.acquire(timeout=GATE_TIMEOUT_SECONDS):
        # Going on to SQLite's lock without the gate would hold it against its holder.
        raise DatabaseBusy("the database is busy with other writes; try again")
    gate.owner = me
    conn.info[_GATE_KEY] = gate


@contextmanager
def write_gate(engine: Engine) -> Iterator[None]:
    """Hold the write gate of an SQLite engine (nothing elsewhere) around a write made on
    the driver's own connection, which the gate's statement listener does not see."""
    gate = _GATES.get(engine.pool)
    if gate is None:
        yield
        return
    if not gate.lock.acquire(timeout=GATE_TIMEOUT_SECONDS):
        raise DatabaseBusy("the database is busy with other writes; try again")
    gate.owner = threading.get_ident()
    try:
        yield
    finally:
        gate.owner = None
        gate.lock.release()


def begin_write(conn: Connection) -> None:
    """Hold the database's write lock from now to the end of the transaction.

    For a transaction that reads what it then writes (max(id) + 1, say): on SQLite the
    driver opens a transaction only at the first write, so such a read would see a state
    another writer is about to change. This takes the gate, then SQLite's lock (``BEGIN
    IMMEDIATE``, unless the transaction has already written, hence holds both). Nothing on
    PostgreSQL: callers take the advisory lock of what they allocate.
    """
    if conn.dialect.name != "sqlite":
        return
    enter_write(conn)
    dbapi = conn.connection.dbapi_connection
    if dbapi is not None and not dbapi.in_transaction:
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def _install_write_gate(engine: Engine) -> None:
    _GATES[engine.pool] = _Gate()

    def release(info: dict[Any, Any]) -> None:
        gate = info.pop(_GATE_KEY, None)
        if gate is not None:
            gate.owner = None
            gate.lock.release()

    def on_end(conn: Connection) -> None:
        release(conn.info)

    def on_reset(_dbapi: Any, record: Any, _state: Any) -> None:
        release(record.info)

    def on_invalidate(_dbapi: Any, record: Any, _exception: Any) -> None:
        release(record.info)

    def before_write(conn: Connection, _cursor: Any, statement: str, *_rest: Any) -> None:
        if _TAKES_WRITE_LOCK(statement) is not None:
            enter_write(conn)

    event.listen(engine, "before_cursor_execute", before_write)
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
        # The audit log's month partitions ahead of time (PostgreSQL; a no-op on SQLite).
        ensure_audit_months(connection, datetime.now(UTC).date())


def is_initialised(engine: Engine) -> bool:
    """Whether the database has been migrated at least once."""
    return inspect(engine).has_table("alembic_version")
