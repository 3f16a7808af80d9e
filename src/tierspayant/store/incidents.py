"""Incident response runs, and the agreement reason codes that settle old audit events."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import Connection, select

from tierspayant.store.claims_tables import prior_authorisations
from tierspayant.store.operations_tables import incident_runs

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
