"""Beneficiaries past retention: counted, held for an unfinished claim, deleted in batches.

The service sets the cutoff and states the rule (``services/retention.py``); these are the
statements that apply it: canaries are never expired, and a claim received, or adjudicated
since the cutoff, holds its beneficiary.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ColumnElement, Connection, and_, delete, exists, func, or_, select

from tierspayant.store.claims_tables import claims
from tierspayant.store.tables import beneficiaries

DELETE_BATCH = 500


def _open_claim(cutoff: datetime) -> ColumnElement[bool]:
    """A claim about the beneficiary that may still lead to a payment or a recovery."""
    return exists().where(
        claims.c.insurer_id == beneficiaries.c.insurer_id,
        claims.c.beneficiary_id == beneficiaries.c.id,
        or_(
            claims.c.status == "received",
            and_(claims.c.status == "adjudicated", claims.c.adjudicated_at >= cutoff),
        ),
    )


def _expired(insurer_id: int, cutoff: datetime) -> ColumnElement[bool]:
    return and_(
        beneficiaries.c.insurer_id == insurer_id,
        beneficiaries.c.is_canary.is_(False),
        beneficiaries.c.coverage_end.is_not(None),
        beneficiaries.c.coverage_end < cutoff.date(),
    )


def _count(conn: Connection, condition: ColumnElement[bool]) -> int:
    return int(
        conn.execute(select(func.count()).select_from(beneficiaries).where(condition)).scalar_one()
    )


def count_expired(conn: Connection, insurer_id: int, cutoff: datetime) -> int:
    """The insurer's beneficiaries (not canaries) whose coverage ended before ``cutoff``."""
    return _count(conn, _expired(insurer_id, cutoff))


def count_held(conn: Connection, insurer_id: int, cutoff: datetime) -> int:
    """Of those, how many a claim still open (received, or adjudicated since) holds."""
    return _count(conn, and_(_expired(insurer_id, cutoff), _open_claim(cutoff)))


def delete_expired(
    conn: Connection, insurer_id: int, cutoff: datetime, batch: int = DELETE_BATCH
) -> int:
    """Delete the expired beneficiaries no open claim holds, ``batch`` at a time; how many."""
    purged = 0
    while True:
        ids = list(
            conn.execute(
                select(beneficiaries.c.id)
                .where(_expired(insurer_id, cutoff), ~_open_claim(cutoff))
                .limit(batch)
            ).scalars()
        )
        if not ids:
            return purged
        purged += conn.execute(
            delete(beneficiaries).where(
                beneficiaries.c.insurer_id == insurer_id, beneficiaries.c.id.in_(ids)
            )
        ).rowcount
