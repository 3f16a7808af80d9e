"""A unit of work run once more when the database dropped its connection under it.

After PostgreSQL restarts (or ends sessions: failover, ``pg_terminate_backend``, an idle
timeout), a connection the pool had checked out, or one whose end the checkout did not
yet see (``store/db.py``), fails its next statement. Running the work again on a new
connection is safe when nothing of it can have taken effect:

- a read: it changed nothing;
- a transaction whose COMMIT was not sent: the server's death rolled it back.

Once COMMIT is sent, a lost connection leaves the outcome unknown (committed or not): the
error goes to the caller, never a second try; an idempotency key covers a client's own
retry there. A unit of work tells :func:`once_more_if_disconnected` that point with
:meth:`Attempt.committing`. An entry point answers such an error, as :func:`connection_lost`
says it is one, "unavailable, try again" (the API's 503 ``database.unavailable``), never
as a fault.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any, TypeVar

import psycopg
import structlog
from psycopg.errors import PipelineAborted
from sqlalchemy import Connection, Engine
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from tierspayant.store import transactions
from tierspayant.store.db import mark_lost

T = TypeVar("T")
log = structlog.get_logger(__name__)


class Disconnected(Exception):
    """The driver's own connection (used without SQLAlchemy) was found closed after an
    error: raised from that error, so that :func:`disconnected` knows it."""


class Attempt:
    """One run of a unit of work: it calls :meth:`committing` just before COMMIT."""

    __slots__ = ("number", "past_commit")

    def __init__(self, number: int) -> None:
        self.number = number
        self.past_commit = False

    def committing(self) -> None:
        """From here on a lost connection leaves the outcome unknown: no second run."""
        self.past_commit = True


def driver_lost(driver: Any) -> bool:
    """Whether a driver connection (psycopg, sqlite3) is closed or broken."""
    return bool(getattr(driver, "closed", False) or getattr(driver, "broken", False))


def disconnected(exc: BaseException) -> bool:
    """Whether ``exc`` says the connection to the database was lost (not a refusal of
    the statement itself: a constraint, a lock timeout, a serialisation failure)."""
    if isinstance(exc, Disconnected):
        return True
    return isinstance(exc, DBAPIError) and exc.connection_invalidated


# SQLSTATEs of a session the server ended or would not open: class 08 (connection
# exception), 57P01 (terminated by an administrator: pg_terminate_backend, a fast
# shutdown), 57P02 (crash of another backend), 57P03 (starting up, shutting down),
# 57P05 (idle session timeout).
_SESSION_ENDED = ("57P01", "57P02", "57P03", "57P05")

LOST_CONNECTION_ERRORS: tuple[type[Exception], ...] = (SQLAlchemyError, psycopg.Error, Disconnected)
"""The kinds of error a lost connection can reach a caller as: SQLAlchemy's (its own
and the drivers' it wraps), psycopg's on a driver connection used directly, and
:class:`Disconnected`."""


def connection_lost(exc: BaseException) -> bool:
    """Whether ``exc`` says the connection to the database is gone or could not be opened.

    What :func:`disconnected` says, and psycopg's own word met where SQLAlchemy did not
    judge it (a driver connection used directly; a connection refused while opening one):
    a connection exception or the server ending the session, or an ``OperationalError``
    that libpq raised itself, without a SQLSTATE from the server (connection closed,
    broken, refused). Not an error the server answered a statement with (a constraint, a
    lock or statement timeout, a full disk): those stay faults.
    """
    if disconnected(exc):
        return True
    driver = exc.orig if isinstance(exc, DBAPIError) else exc
    if not isinstance(driver, psycopg.OperationalError) or isinstance(driver, PipelineAborted):
        return False
    state = driver.sqlstate
    return state is None or state.startswith("08") or state in _SESSION_ENDED


def once_more_if_disconnected(engine: Engine, work: Callable[[Attempt], T]) -> T:
    """``work``, run a second time (on a new connection) if the first run lost its
    connection before it called :meth:`Attempt.committing`.

    ``work`` checks its connections out of ``engine`` itself, and must do nothing outside
    the database before the point it may be run again from (a guard's count, a message).
    """
    first = Attempt(1)
    try:
        return work(first)
    except Exception as exc:
        if first.past_commit or not disconnected(exc):
            raise
        # Every connection opened before now may be as dead: none is handed out again.
        mark_lost(engine)
        log.warning("db.reconnect", error=type(exc).__name__)
    return work(Attempt(2))


def read(engine: Engine, work: Callable[[Connection], T]) -> T:
    """``work`` on a connection of ``engine``, run again on a new one if the connection
    was lost (``work`` only reads)."""

    def attempt(_: Attempt) -> T:
        with engine.connect() as conn:
            return work(conn)

    return once_more_if_disconnected(engine, attempt)


def transaction(engine: Engine, work: Callable[[Connection], T]) -> T:
    """``work`` in a transaction of ``engine``, committed; run again from the start if
    the connection was lost before COMMIT was sent (the server rolled it back)."""
    return _committed(engine, engine.begin, work)


def write_transaction(engine: Engine, work: Callable[[Connection], T]) -> T:
    """:func:`transaction` holding the database's write lock from its first statement
    (``store/transactions.py``): for a unit of work that reads what it then writes, such
    as an audited read (the chain's head)."""
    return _committed(engine, lambda: transactions.write_transaction(engine), work)


def _committed(
    engine: Engine,
    opened: Callable[[], AbstractContextManager[Connection]],
    work: Callable[[Connection], T],
) -> T:
    """``work`` in the transaction ``opened`` gives (committed as it closes), run once
    more if the connection was lost before COMMIT was sent."""

    def attempt(step: Attempt) -> T:
        with opened() as conn:
            result = work(conn)
            step.committing()
        return result

    return once_more_if_disconnected(engine, attempt)
