"""Incident response runs, and the agreement reason codes that settle old audit events."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import Connection, or_, select

from tierspayant.store.claims_tables import prior_authorisations
from tierspayant.store.operations_tables import incident_runs
from tierspayant.store.tables import audit_events, providers

_NUMBERS_PER_QUERY = 1000


def insert_run(
    conn: Connection,
    *,
    kind: str,
    actor: str,
    criteria: str,
    started_at: datetime,
    finished_at: datetime,
    events_scanned: int,
    subjects: int,
    revealed: int,
) -> None:
    """Record one incident command run (``criteria``: JSON of whom and when it scoped)."""
    conn.execute(
        incident_runs.insert().values(
            kind=kind,
            actor=actor,
            criteria=criteria,
            started_at=started_at,
            finished_at=finished_at,
            events_scanned=events_scanned,
            subjects=subjects,
            revealed=revealed,
        )
    )


def agreement_reasons(conn: Connection, agreements: Iterable[str]) -> dict[str, str | None]:
    """Reason codes of prior-authorisation agreements, by number (those still held)."""
    reasons: dict[str, str | None] = {}
    numbers = sorted(agreements)
    for start in range(0, len(numbers), _NUMBERS_PER_QUERY):
        chunk = numbers[start : start + _NUMBERS_PER_QUERY]
        query = select(
            prior_authorisations.c.agreement_number, prior_authorisations.c.reason_code
        ).where(prior_authorisations.c.agreement_number.in_(chunk))
        reasons.update({str(number): code for number, code in conn.execute(query)})
    return reasons


def status_events_since(
    conn: Connection, actions: Iterable[str], since: datetime, limit: int = 5000
) -> list[tuple[datetime, str, str, str]]:
    """(at, actor, action, detail) of the events of ``actions`` since ``since``, oldest
    first: suspensions, revocations and reinstatements, whose detail names the principal."""
    query = (
        select(
            audit_events.c.at, audit_events.c.actor, audit_events.c.action, audit_events.c.detail
        )
        .where(audit_events.c.action.in_(sorted(actions)), audit_events.c.at >= since)
        .order_by(audit_events.c.seq)
        .limit(limit)
    )
    return [(r.at, str(r.actor), str(r.action), str(r.detail)) for r in conn.execute(query)]


def structure_providers(conn: Connection, number: str) -> list[tuple[str, str, str]]:
    """(AM number, structure number, category) of the professionals acting for structure
    ``number`` (a FINESS, a SIRET, or an AM number): their principals are ``provider:AM/…``,
    their structure is what the guard, the audit log and containment key on."""
    query = (
        select(providers.c.am_number, providers.c.finess, providers.c.siret, providers.c.category)
        .where(
            or_(
                providers.c.finess == number,
                providers.c.siret == number,
                providers.c.am_number == number,
            )
        )
        .order_by(providers.c.id)
    )
    return [
        (str(r.am_number), str(r.finess or r.siret or r.am_number), str(r.category))
        for r in conn.execute(query)
    ]
