"""Answers kept under a client's ``Idempotency-Key`` (table ``idempotency_keys``).

The primary key ``(scope, key)`` is what stops a second write, not a read before it:
:func:`keep` inserts with ``ON CONFLICT DO NOTHING`` inside the write's own transaction
and says whether its row went in. On PostgreSQL an insert that meets a key another
transaction has inserted and not yet committed waits for that transaction to end, then
inserts (it rolled back) or does nothing (it committed); on SQLite writers run one at a
time. A row older than the retention is as good as absent: :func:`find` skips it and
:func:`keep` replaces it, whether or not the purge has run.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, delete, func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from tierspayant.store.bulk import is_postgres
from tierspayant.store.tables import idempotency_keys as t


@dataclass(frozen=True, slots=True)
class KeptAnswer:
    """A kept row: the digest of the request it answered, and the answer as stored."""

    request_digest: bytes
    response: str
    created_at: datetime


def find(
    conn: Connection, scope: str, key: str, since: datetime | None = None
) -> KeptAnswer | None:
    """The answer kept under ``(scope, key)``, if kept at ``since`` or later (any age
    when ``since`` is None)."""
    query = select(t.c.request_digest, t.c.response, t.c.created_at).where(
        t.c.scope == scope, t.c.key == key
    )
    if since is not None:
        query = query.where(t.c.created_at >= since)
    row = conn.execute(query).first()
    if row is None:
        return None
    return KeptAnswer(bytes(row[0]), str(row[1]), row[2])


def keep(
    conn: Connection,
    scope: str,
    key: str,
    request_digest: bytes,
    response: str,
    at: datetime,
    since: datetime,
) -> bool:
    """Keep ``response`` under ``(scope, key)`` in the caller's transaction; False when
    a row kept at ``since`` or later holds the key already (nothing written then)."""
    conn.execute(delete(t).where(t.c.scope == scope, t.c.key == key, t.c.created_at < since))
    values = {
        "scope": scope,
        "key": key,
        "request_digest": request_digest,
        "response": response,
        "created_at": at,
    }
    insert = pg_insert(t) if is_postgres(conn) else sqlite_insert(t)
    statement = (
        insert.values(**values)
        .on_conflict_do_nothing(index_elements=[t.c.scope, t.c.key])
        .returning(t.c.key)  # the row count is not told on every driver: the row is
    )
    return conn.execute(statement).first() is not None


def count_before(conn: Connection, before: datetime) -> int:
    """How many rows were kept before ``before``."""
    return int(
        conn.execute(
            select(func.count()).select_from(t).where(t.c.created_at < before)
        ).scalar_one()
    )


def delete_before(conn: Connection, before: datetime) -> int:
    """Delete the rows kept before ``before``; how many."""
    return int(conn.execute(delete(t).where(t.c.created_at < before)).rowcount)
