"""Engines and migrations for SQLite (embedded default) and PostgreSQL (production)."""

from __future__ import annotations

import re
import select
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
    _check_on_checkout(engine)
    return engine


# A connection back from the pool is pinged (a network round trip) only when it may be
# dead, never on every checkout as ``pool_pre_ping`` would (a round trip on every rights
# check):
# - its socket has something to read while no statement runs: a server that ends a session
#   (restart, failover, ``pg_terminate_backend``, idle timeout) sends its last words and
#   closes it; looking costs a ``poll`` system call, no round trip;
# - it sat unused for a while (a dead peer that sent nothing, a firewall's timeout);
# A connection opened before the pool learnt that the server dropped its connections
# (:func:`mark_lost`, after a disconnect the driver reported on its own) is replaced
# without a ping. A connection that dies while checked out fails its statement:
# ``store/reconnect.py`` runs the unit of work again on a new one when that is safe.
PING_IDLE_SECONDS = 5.0
_CHECKED_IN = "tierspayant.checked_in"
_OPENED = "tierspayant.opened"
_LOST_AT: weakref.WeakKeyDictionary[Any, float] = weakref.WeakKeyDictionary()


def mark_lost(engine: Engine) -> None:
    """Every connection of ``engine``'s pool opened until now is to be replaced when next
    checked out (SQLAlchemy does the same for a disconnect it sees itself)."""
    _LOST_AT[engine.pool] = time.monotonic()


def _readable(dbapi: Any) -> bool:
    """Whether the server sent something on an idle connection (for PostgreSQL, its
    goodbye; a notice or a notification otherwise, which a ping leaves intact)."""
    try:
        fd = dbapi.pgconn.socket
    except Exception:  # noqa: BLE001 - a connection without a socket is dead
        return True
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    return bool(poller.poll(0))


def _check_on_checkout(engine: Engine) -> None:
    pool = engine.pool

    def on_connect(_dbapi: Any, record: Any) -> None:
        record.info[_OPENED] = time.monotonic()

    def on_checkin(_dbapi: Any, record: Any) -> None:
        record.info[_CHECKED_IN] = time.monotonic()

    def on_checkout(dbapi: Any, record: Any, _proxy: Any) -> None:
        lost = _LOST_AT.get(pool)
        if lost is not None and record.info.get(_OPENED, 0.0) <= lost:
            # The pool opens another one in its place.
            raise DisconnectionError("opened before the server dropped its connections")
        since = record.info.get(_CHECKED_IN)
        if since is None:
            return  # new
        if time.monotonic() - since < PING_IDLE_SECONDS and not _readable(dbapi):
            return  # used a moment ago, and the server has said nothing since
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

    event.listen(pool, "connect", on_connect)
    event.listen(pool, "checkin", on_checkin)
    event.listen(pool, "checkout", on_checkout)


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
