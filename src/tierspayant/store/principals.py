"""Principals that can be suspended (provider clients, portal accounts, staff): their status."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, select, update

from tierspayant.store.tables import principals


def insert_principal(
    conn: Connection,
    principal_id: str,
    kind: str,
    status: str = "active",
    *,
    reason: str | None = None,
    changed_at: datetime | None = None,
) -> None:
    """Record a principal; the reason and time of its status only when given."""
    values: dict[str, object] = {"id": principal_id, "kind": kind, "status": status}
    if reason is not None or changed_at is not None:
        values.update(status_reason=reason, status_changed_at=changed_at)
    conn.execute(principals.insert().values(**values))


def principal_status(conn: Connection, principal_id: str) -> str | None:
    """``active`` or ``suspended``; None for a principal not recorded."""
    return conn.execute(
        select(principals.c.status).where(principals.c.id == principal_id)
    ).scalar_one_or_none()


def set_status(conn: Connection, principal_id: str, status: str, reason: str, at: datetime) -> None:
    """Change a principal's status, saying why and when."""
    conn.execute(
        update(principals)
        .where(principals.c.id == principal_id)
        .values(status=status, status_reason=reason, status_changed_at=at)
    )
