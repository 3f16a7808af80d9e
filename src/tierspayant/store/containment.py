"""Containment switches in the database: proposed, approved, lifted, read in force.

Each change of state is one conditional UPDATE (``WHERE state = …``): of two operators
approving the same step at once, one changes the row and the other changes nothing,
on SQLite and PostgreSQL alike.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, select, update

from tierspayant.domain.containment import (
    ContainmentMode,
    ContainmentScope,
    ScopeKind,
    Switch,
    SwitchState,
)
from tierspayant.store.containment_tables import containment_switches as table

IN_FORCE_STATES = (SwitchState.ACTIVE.value, SwitchState.LIFT_PROPOSED.value)


def _aware(moment: datetime | None) -> datetime | None:
    if moment is None:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _switch(row: Any) -> Switch:
    proposed_at = _aware(row.proposed_at)
    assert proposed_at is not None
    return Switch(
        id=int(row.id),
        scope=ContainmentScope(ScopeKind(row.scope_kind), str(row.scope_value)),
        mode=ContainmentMode(row.mode),
        state=SwitchState(row.state),
        reason=str(row.reason),
        proposer=str(row.proposer),
        proposed_at=proposed_at,
        approver=row.approver,
        approved_at=_aware(row.approved_at),
        expires_at=_aware(row.expires_at),
        lift_proposer=row.lift_proposer,
        lift_proposed_at=_aware(row.lift_proposed_at),
        lifter=row.lifter,
        lifted_at=_aware(row.lifted_at),
    )


def insert_proposal(
    conn: Connection,
    *,
    scope: ContainmentScope,
    mode: ContainmentMode,
    reason: str,
    proposer: str,
    at: datetime,
    expires_at: datetime | None,
) -> int:
    """Record a proposed switch; its id."""
    return int(
        conn.execute(
            table.insert()
            .values(
                scope_kind=scope.kind.value,
                scope_value=scope.value,
                mode=mode.value,
                state=SwitchState.PROPOSED.value,
                reason=reason,
                proposer=proposer,
                proposed_at=at,
                expires_at=expires_at,
            )
            .returning(table.c.id)
        ).scalar_one()
    )


def switch_by_id(conn: Connection, switch_id: int) -> Switch | None:
    """The switch ``switch_id``, or None."""
    row = conn.execute(select(table).where(table.c.id == switch_id)).first()
    return None if row is None else _switch(row)


def switches_in_force(conn: Connection) -> list[Switch]:
    """Switches approved and not lifted (their expiry is the caller's to compare)."""
    rows = conn.execute(select(table).where(table.c.state.in_(IN_FORCE_STATES)))
    return [_switch(row) for row in rows]


def recent_switches(conn: Connection, limit: int = 200) -> list[Switch]:
    """Every switch not lifted, and the latest lifted ones, newest first."""
    rows = conn.execute(select(table).order_by(table.c.id.desc()).limit(limit))
    return [_switch(row) for row in rows]


def approve(conn: Connection, switch_id: int, approver: str, at: datetime) -> bool:
    """Proposed → active; False if the switch was not (or no longer) proposed."""
    done = conn.execute(
        update(table)
        .where(table.c.id == switch_id, table.c.state == SwitchState.PROPOSED.value)
        .values(state=SwitchState.ACTIVE.value, approver=approver, approved_at=at)
    )
    return done.rowcount == 1


def propose_lift(
    conn: Connection, switch_id: int, proposer: str, reason: str, at: datetime
) -> bool:
    """Active → lift proposed (still in force); False if the switch was not active."""
    done = conn.execute(
        update(table)
        .where(table.c.id == switch_id, table.c.state == SwitchState.ACTIVE.value)
        .values(
            state=SwitchState.LIFT_PROPOSED.value,
            lift_proposer=proposer,
            lift_reason=reason,
            lift_proposed_at=at,
        )
    )
    return done.rowcount == 1


def renew_lift(conn: Connection, switch_id: int, proposer: str, reason: str, at: datetime) -> bool:
    """A lift proposal that lapsed, proposed again (by the same or another operator)."""
    done = conn.execute(
        update(table)
        .where(table.c.id == switch_id, table.c.state == SwitchState.LIFT_PROPOSED.value)
        .values(lift_proposer=proposer, lift_reason=reason, lift_proposed_at=at)
    )
    return done.rowcount == 1


def lift(conn: Connection, switch_id: int, lifter: str, at: datetime) -> bool:
    """Lift proposed → lifted; False if no lift was waiting."""
    done = conn.execute(
        update(table)
        .where(table.c.id == switch_id, table.c.state == SwitchState.LIFT_PROPOSED.value)
        .values(state=SwitchState.LIFTED.value, lifter=lifter, lifted_at=at)
    )
    return done.rowcount == 1


__all__ = [
    "approve",
    "insert_proposal",
    "lift",
    "propose_lift",
    "recent_switches",
    "renew_lift",
    "switch_by_id",
    "switches_in_force",
]
