"""Read models of the security console: alerts, suspended principals and their pending
reinstatement requests, the guard's recorded daily figures."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection, and_, func, select

from tierspayant.store.read_models import SCREEN_ROWS, aware
from tierspayant.store.security_tables import guard_daily, security_alerts
from tierspayant.store.tables import audit_events, principals

REINSTATE_REQUEST = "principal.reinstate_request"
REQUEST_LIFETIME = timedelta(hours=1)
CANARY_ALERT_CODES = ("canary.touched", "guard.canary")


@dataclass(frozen=True, slots=True)
class AlertRow:
    id: int
    at: datetime
    level: str
    code: str
    principal: str | None
    structure: str | None
    insurer: str | None
    message: str
    acknowledged: bool


def alerts(conn: Connection, *, insurer: str | None = None) -> list[AlertRow]:
    """Latest security alerts; an insurer sees only those naming it."""
    query = select(security_alerts).order_by(security_alerts.c.id.desc()).limit(SCREEN_ROWS)
    if insurer is not None:
        query = query.where(security_alerts.c.insurer == insurer)
    return [
        AlertRow(
            int(r.id),
            aware(r.at),
            r.level,
            r.code,
            r.principal,
            r.structure,
            r.insurer,
            r.message,
            r.acknowledged_at is not None,
        )
        for r in conn.execute(query)
    ]


def canary_alert_counts(conn: Connection) -> dict[str | None, int]:
    """Canary alerts per insurer's AMC number (None: alerts that name no insurer).

    Counts only: an alert's figures never say which rows were canaries, and neither does
    this.
    """
    query = (
        select(security_alerts.c.insurer, func.count())
        .where(security_alerts.c.code.in_(CANARY_ALERT_CODES))
        .group_by(security_alerts.c.insurer)
    )
    return {r[0]: int(r[1]) for r in conn.execute(query)}


@dataclass(frozen=True, slots=True)
class SuspendedRow:
    id: str
    kind: str
    reason: str | None
    since: datetime | None
    requested_by: str | None  # operator who asked to reinstate, waiting for a second one


def suspended_principals(conn: Connection, now: datetime) -> list[SuspendedRow]:
    """Suspended principals, with any pending reinstatement request."""
    rows = conn.execute(
        select(principals)
        .where(principals.c.status == "suspended")
        .order_by(principals.c.status_changed_at.desc())
        .limit(SCREEN_ROWS)
    ).all()
    return [
        SuspendedRow(
            r.id,
            r.kind,
            r.status_reason,
            aware(r.status_changed_at) if r.status_changed_at else None,
            pending_request(conn, now, r.id),
        )
        for r in rows
    ]


def pending_request(conn: Connection, now: datetime, principal_id: str) -> str | None:
    """The operator who asked to reinstate ``principal_id`` since its suspension, within
    the last hour, if any: the request is an audit event, so it cannot be forged silently.
    """
    since = conn.execute(
        select(principals.c.status_changed_at).where(principals.c.id == principal_id)
    ).scalar()
    floor = now - REQUEST_LIFETIME
    if since is not None and aware(since) > floor:
        floor = aware(since)
    rows = conn.execute(
        select(audit_events.c.actor, audit_events.c.detail)
        .where(and_(audit_events.c.action == REINSTATE_REQUEST, audit_events.c.at >= floor))
        .order_by(audit_events.c.seq.desc())
        .limit(SCREEN_ROWS)
    ).all()
    for actor, detail in rows:
        if json.loads(detail).get("principal") == principal_id:
            return str(actor)
    return None


@dataclass(frozen=True, slots=True)
class PrincipalState:
    kind: str
    status: str


def principal_state(conn: Connection, principal_id: str) -> PrincipalState | None:
    """The kind and status of one principal, if it exists."""
    row = conn.execute(
        select(principals.c.kind, principals.c.status).where(principals.c.id == principal_id)
    ).first()
    return None if row is None else PrincipalState(row.kind, row.status)


@dataclass(frozen=True, slots=True)
class StructureDay:
    structure: str
    category: str
    distinct: int
    soft: int
    cap: int


def last_recorded_day(conn: Connection) -> list[StructureDay]:
    """Each structure's distinct beneficiaries on the last day the guard's figures were
    recorded (no caps: those live with the guard)."""
    last = conn.execute(select(func.max(guard_daily.c.day))).scalar()
    if last is None:
        return []
    rows = conn.execute(select(guard_daily).where(guard_daily.c.day == last)).all()
    return [StructureDay(r.structure, r.category, int(r.distinct_lookups), 0, 0) for r in rows]
