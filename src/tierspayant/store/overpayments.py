"""Undue amounts: lines declared undue after they were paid, and what payment runs
recovered of them (deducted from what the same provider is paid next, oldest first).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, and_, func, select, update

from tierspayant.domain.claims import LineStatus
from tierspayant.store.claims_tables import claim_lines, claims
from tierspayant.store.ledger_tables import overpayment_recoveries, overpayments
from tierspayant.store.payments import PaidLine

LineKey = tuple[int, int, int]  # (insurer_id, claim_id, line_no)


def claim_line_exists(conn: Connection, insurer_id: int, claim_id: int, line_no: int) -> bool:
    """Whether the insurer's claim ``claim_id`` has a line ``line_no``."""
    known = conn.execute(
        select(claim_lines.c.status)
        .select_from(
            claim_lines.join(
                claims,
                (claims.c.insurer_id == claim_lines.c.insurer_id)
                & (claims.c.id == claim_lines.c.claim_id),
            )
        )
        .where(
            claim_lines.c.insurer_id == insurer_id,
            claim_lines.c.claim_id == claim_id,
            claim_lines.c.line_no == line_no,
        )
    ).first()
    return known is not None


def overpayment_cents(conn: Connection, insurer_id: int, claim_id: int, line_no: int) -> int | None:
    return conn.execute(
        select(overpayments.c.cents).where(
            overpayments.c.insurer_id == insurer_id,
            overpayments.c.claim_id == claim_id,
            overpayments.c.line_no == line_no,
        )
    ).scalar_one_or_none()


def insert_overpayment(
    conn: Connection,
    *,
    insurer_id: int,
    claim_id: int,
    line: PaidLine,
    reason_code: str,
    at: datetime,
    actor: str,
    bill_period: str,
) -> None:
    conn.execute(
        overpayments.insert().values(
            insurer_id=insurer_id,
            claim_id=claim_id,
            line_no=line.line_no,
            provider_id=line.provider_id,
            cents=line.paid_cents,
            reason_code=reason_code,
            flagged_at=at,
            flagged_by=actor,
            bill_period=bill_period,
        )
    )
    conn.execute(
        update(claim_lines)
        .where(
            claim_lines.c.insurer_id == insurer_id,
            claim_lines.c.claim_id == claim_id,
            claim_lines.c.line_no == line.line_no,
        )
        .values(status=LineStatus.UNDUE.value, decided_at=at)
    )


def open_undue(conn: Connection, provider_id: int, cutoff: datetime) -> list[tuple[LineKey, int]]:
    """Undue amounts of a provider not yet fully recovered, oldest first."""
    recovered = (
        select(
            overpayment_recoveries.c.insurer_id,
            overpayment_recoveries.c.claim_id,
            overpayment_recoveries.c.line_no,
            func.sum(overpayment_recoveries.c.cents).label("cents"),
        )
        .where(overpayment_recoveries.c.provider_id == provider_id)
        .group_by(
            overpayment_recoveries.c.insurer_id,
            overpayment_recoveries.c.claim_id,
            overpayment_recoveries.c.line_no,
        )
        .subquery()
    )
    left = overpayments.c.cents - func.coalesce(recovered.c.cents, 0)
    rows = conn.execute(
        select(overpayments.c.insurer_id, overpayments.c.claim_id, overpayments.c.line_no, left)
        .outerjoin(
            recovered,
            and_(
                recovered.c.insurer_id == overpayments.c.insurer_id,
                recovered.c.claim_id == overpayments.c.claim_id,
                recovered.c.line_no == overpayments.c.line_no,
            ),
        )
        .where(overpayments.c.provider_id == provider_id, overpayments.c.flagged_at <= cutoff)
        .where(left > 0)
        .order_by(
            overpayments.c.flagged_at,
            overpayments.c.insurer_id,
            overpayments.c.claim_id,
            overpayments.c.line_no,
        )
    )
    return [((int(r[0]), int(r[1]), int(r[2])), int(r[3])) for r in rows]


def open_undue_total(conn: Connection, provider_id: int | None = None) -> int:
    """Undue amounts still to recover (of one provider, or all)."""
    flagged = select(func.coalesce(func.sum(overpayments.c.cents), 0))
    taken = select(func.coalesce(func.sum(overpayment_recoveries.c.cents), 0))
    if provider_id is not None:
        flagged = flagged.where(overpayments.c.provider_id == provider_id)
        taken = taken.where(overpayment_recoveries.c.provider_id == provider_id)
    return int(conn.execute(flagged).scalar_one()) - int(conn.execute(taken).scalar_one())


def insert_recoveries(
    conn: Connection, run_key: str, provider_id: int, allocations: list[tuple[LineKey, int]]
) -> None:
    if not allocations:
        return
    conn.execute(
        overpayment_recoveries.insert(),
        [
            {
                "insurer_id": key[0],
                "claim_id": key[1],
                "line_no": key[2],
                "run_key": run_key,
                "provider_id": provider_id,
                "cents": cents,
            }
            for key, cents in allocations
        ],
    )
