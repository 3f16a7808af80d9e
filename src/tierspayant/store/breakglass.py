"""Break-glass grants in the database: requested, approved, closed, listed."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, select, update

from tierspayant.store.operations_tables import breakglass_grants


@dataclass(frozen=True, slots=True)
class GrantRow:
    """One row of ``breakglass_grants``; times are aware (UTC)."""

    id: int
    requester: str
    reason: str
    scope: str
    insurer_id: int | None
    beneficiary_id: int | None
    status: str
    requested_at: datetime
    expires_at: datetime
    approver: str | None
    dpo_notice: str | None


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _grant(row: Any) -> GrantRow:
    return GrantRow(
        id=int(row.id),
        requester=str(row.requester),
        reason=str(row.reason),
        scope=str(row.scope),
        insurer_id=row.insurer_id,
        beneficiary_id=row.beneficiary_id,
        status=str(row.status),
        requested_at=_aware(row.requested_at),
        expires_at=_aware(row.expires_at),
        approver=row.approver,
        dpo_notice=row.dpo_notice,
    )


def insert_grant(
    conn: Connection,
    *,
    requester: str,
    reason: str,
    scope: str,
    insurer_id: int | None,
    beneficiary_id: int | None,
    status: str,
    requested_at: datetime,
    expires_at: datetime,
) -> int:
    """Record a request for a grant; its id."""
    return int(
        conn.execute(
            breakglass_grants.insert()
            .values(
                requester=requester,
                reason=reason,
                scope=scope,
                insurer_id=insurer_id,
                beneficiary_id=beneficiary_id,
                status=status,
                requested_at=requested_at,
                expires_at=expires_at,
            )
            .returning(breakglass_grants.c.id)
        ).scalar_one()
    )


def grant_by_id(conn: Connection, grant_id: int) -> GrantRow | None:
    """The grant ``grant_id``, or None."""
    row = conn.execute(select(breakglass_grants).where(breakglass_grants.c.id == grant_id)).first()
    return None if row is None else _grant(row)


def all_grants(conn: Connection) -> list[GrantRow]:
    """Every grant, newest first."""
    rows = conn.execute(select(breakglass_grants).order_by(breakglass_grants.c.id.desc()))
    return [_grant(row) for row in rows]


def set_dpo_notice(conn: Connection, grant_id: int, notice: str) -> None:
    """Remember where the DPO notice of a grant was written."""
    conn.execute(
        update(breakglass_grants)
        .where(breakglass_grants.c.id == grant_id)
        .values(dpo_notice=notice)
    )


def activate(conn: Connection, grant_id: int, approver: str, at: datetime) -> None:
    """Make a pending grant active, approved by ``approver`` at ``at``."""
    conn.execute(
        update(breakglass_grants)
        .where(breakglass_grants.c.id == grant_id, breakglass_grants.c.status == "pending")
        .values(status="active", approver=approver, approved_at=at)
    )


def close(conn: Connection, grant_id: int) -> None:
    """Mark a grant closed."""
    conn.execute(
        update(breakglass_grants).where(breakglass_grants.c.id == grant_id).values(status="closed")
    )
