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
:meth:`Attempt.committing`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import structlog
from sqlalchemy import Connection, Engine
from sqlalchemy.exc import DBAPIError

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

    def attempt(step: Attempt) -> T:
        with engine.connect() as conn, conn.begin():
            result = work(conn)
            step.committing()
        return result

    return once_more_if_disconnected(engine, attempt)
