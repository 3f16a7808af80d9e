"""A write transaction that takes the database's write lock from its first statement."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Connection, Engine


@contextmanager
def write_transaction(engine: Engine) -> Iterator[Connection]:
    """A transaction that holds the database's write lock from its first statement.

    On SQLite the driver opens a transaction only at the first write, so the reads a
    caller makes before appending an audit event (a member's history, a pending request)
    could see a state another writer is about to change. ``BEGIN IMMEDIATE`` takes the
    lock first. PostgreSQL needs nothing: the append takes an advisory lock.
    """
    with engine.connect() as conn:
        if conn.dialect.name != "sqlite":
            with conn.begin():
                yield conn
            return
        conn.exec_driver_sql("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.rollback()
            raise
        conn.commit()
