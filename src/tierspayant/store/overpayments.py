"""Undue amounts: lines declared undue after they were paid, and what payment runs
recovered of them (deducted from what the same provider is paid next, oldest first).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime

from sqlalchemy import Connection, Subquery, and_, func, select, update

from tierspayant.domain.claims import ClaimStatus, LineStatus
from tierspayant.store.claims_tables import claim_lines, claims
from tierspayant.store.ledger_tables import money_runs, overpayment_recoveries, overpayments
from tierspayant.store.payments import PaidLine
from tierspayant.store.tables import providers

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


# --- the claims officer's reads (insurer portal, /indus) --------------------------------


@dataclass(frozen=True, slots=True)
class UndueRow:
    """One undue amount of an insurer, with what payment runs recovered of it."""

    claim_id: int
    line_no: int
    invoice_number: str
    provider_name: str
    provider_am_number: str
    cents: int
    recovered_cents: int
    reason_code: str
    flagged_at: datetime


@dataclass(frozen=True, slots=True)
class RecoveryRow:
    """What one payment run deducted of one undue amount."""

    claim_id: int
    line_no: int
    run_key: str
    run_date: date
    cents: int


def _recovered_by_line(insurer_id: int) -> Subquery:
    return (
        select(
            overpayment_recoveries.c.claim_id,
            overpayment_recoveries.c.line_no,
            func.sum(overpayment_recoveries.c.cents).label("cents"),
        )
        .where(overpayment_recoveries.c.insurer_id == insurer_id)
        .group_by(overpayment_recoveries.c.claim_id, overpayment_recoveries.c.line_no)
        .subquery()
    )


def undue_rows(conn: Connection, insurer_id: int, limit: int) -> list[UndueRow]:
    """The insurer's undue amounts, newest flagged first (at most ``limit``)."""
    recovered = _recovered_by_line(insurer_id)
    rows = conn.execute(
        select(
            overpayments.c.claim_id,
            overpayments.c.line_no,
            claims.c.invoice_number,
            providers.c.name,
            providers.c.am_number,
            overpayments.c.cents,
            func.coalesce(recovered.c.cents, 0).label("recovered"),
            overpayments.c.reason_code,
            overpayments.c.flagged_at,
        )
        .select_from(
            overpayments.join(
                claims,
                (claims.c.insurer_id == overpayments.c.insurer_id)
                & (claims.c.id == overpayments.c.claim_id),
            )
            .join(providers, providers.c.id == overpayments.c.provider_id)
            .outerjoin(
                recovered,
                (recovered.c.claim_id == overpayments.c.claim_id)
                & (recovered.c.line_no == overpayments.c.line_no),
            )
        )
        .where(overpayments.c.insurer_id == insurer_id)
        .order_by(
            overpayments.c.flagged_at.desc(),
            overpayments.c.claim_id.desc(),
            overpayments.c.line_no,
        )
        .limit(limit)
    )
    return [
        UndueRow(
            int(r.claim_id),
            int(r.line_no),
            str(r.invoice_number),
            str(r.name),
            str(r.am_number),
            int(r.cents),
            int(r.recovered),
            str(r.reason_code),
            _utc(r.flagged_at),
        )
        for r in rows
    ]


def undue_totals(conn: Connection, insurer_id: int) -> tuple[int, int, int]:
    """(count, cents flagged, cents recovered) of every undue amount of the insurer."""
    count, flagged = conn.execute(
        select(func.count(), func.coalesce(func.sum(overpayments.c.cents), 0)).where(
            overpayments.c.insurer_id == insurer_id
        )
    ).one()
    taken = conn.execute(
        select(func.coalesce(func.sum(overpayment_recoveries.c.cents), 0)).where(
            overpayment_recoveries.c.insurer_id == insurer_id
        )
    ).scalar_one()
    return int(count), int(flagged), int(taken)


def recoveries_of(conn: Connection, insurer_id: int, claim_ids: list[int]) -> list[RecoveryRow]:
    """The recoveries of the insurer's undue amounts on ``claim_ids``, oldest run first."""
    if not claim_ids:
        return []
    rows = conn.execute(
        select(
            overpayment_recoveries.c.claim_id,
            overpayment_recoveries.c.line_no,
            overpayment_recoveries.c.run_key,
            money_runs.c.run_date,
            overpayment_recoveries.c.cents,
        )
        .join(money_runs, money_runs.c.run_key == overpayment_recoveries.c.run_key)
        .where(
            overpayment_recoveries.c.insurer_id == insurer_id,
            overpayment_recoveries.c.claim_id.in_(claim_ids),
        )
        .order_by(money_runs.c.run_date, overpayment_recoveries.c.run_key)
    )
    return [
        RecoveryRow(int(r.claim_id), int(r.line_no), str(r.run_key), r.run_date, int(r.cents))
        for r in rows
    ]


@dataclass(frozen=True, slots=True)
class InvoiceMatch:
    """The current version of an invoice of the insurer, and who sent it."""

    claim_id: int
    provider_am_number: str
    provider_finess: str | None
    provider_rpps: str | None
    provider_name: str


def invoices_numbered(conn: Connection, insurer_id: int, invoice_number: str) -> list[InvoiceMatch]:
    """The insurer's invoices numbered ``invoice_number`` (one per provider at most: the
    version that replaced the others)."""
    rows = conn.execute(
        select(
            claims.c.id,
            providers.c.am_number,
            providers.c.finess,
            providers.c.rpps,
            providers.c.name,
        )
        .join(providers, providers.c.id == claims.c.provider_id)
        .where(
            claims.c.insurer_id == insurer_id,
            claims.c.invoice_number == invoice_number,
            claims.c.status != ClaimStatus.SUPERSEDED.value,
        )
        .order_by(providers.c.am_number)
    )
    return [InvoiceMatch(int(r.id), str(r.am_number), r.finess, r.rpps, str(r.name)) for r in rows]


def _utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)  # SQLite: naive, UTC
