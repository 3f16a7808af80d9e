"""A write transaction that takes the database's write lock from its first statement."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Connection, Engine

from tierspayant.store.db import begin_write


@contextmanager
def write_transaction(engine: Engine) -> Iterator[Connection]:
    """A transaction that holds the database's write lock from its first statement.

    On SQLite the driver opens a transaction only at the first write, so the reads a
    caller makes before appending an audit event (a member's history, a pending request)
    could see a state another writer is about to change, and two appends would take the
    same ``seq``. ``db.begin_write`` takes the process's write gate, then SQLite's lock
    (``BEGIN IMMEDIATE``), the one order of every writer. PostgreSQL needs nothing: the
    append takes an advisory lock.
    """
    with engine.begin() as conn:
        begin_write(conn)
        yield conn
