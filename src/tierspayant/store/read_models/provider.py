"""Read models of the provider portal."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import Connection, func, select

from tierspayant.domain.claims import ClaimStatus, LineStatus
from tierspayant.store.claims_tables import claim_lines, claims
from tierspayant.store.disputes_tables import claim_disputes
from tierspayant.store.tables import conventions, insurers

REFUSED = (LineStatus.REJECTED.value, LineStatus.REDUCED.value)


@dataclass(frozen=True, slots=True)
class ConventionRow:
    insurer: str
    amc_number: str
    domain: str
    valid_from: date
    valid_to: date | None


def provider_conventions(conn: Connection, provider_id: int) -> list[ConventionRow]:
    """The tiers payant agreements of one provider (its own only)."""
    query = (
        select(
            insurers.c.name,
            insurers.c.amc_number,
            conventions.c.domain,
            conventions.c.valid_from,
            conventions.c.valid_to,
        )
        .join(insurers, insurers.c.id == conventions.c.insurer_id)
        .where(conventions.c.provider_id == provider_id)
        .order_by(insurers.c.name, conventions.c.domain)
    )
    return [ConventionRow(*row) for row in conn.execute(query)]


@dataclass(frozen=True, slots=True)
class InvoiceQuery:
    """The filters of « Mes factures »: every one optional; ``page`` from 1."""

    number: str | None = None  # the invoice number, or its beginning
    care_from: date | None = None
    care_to: date | None = None
    status: str | None = None  # a claim status; None: every version still in force
    page: int = 1
    page_size: int = 25


@dataclass(frozen=True, slots=True)
class InvoiceRow:
    invoice_number: str
    version: int
    status: str
    care_date: date
    received_at: datetime
    adjudicated_at: datetime | None
    insurer: str
    billed_cents: int
    amo_cents: int
    amc_requested_cents: int
    amc_accepted_cents: int
    refused_lines: int  # lines rejected or reduced


@dataclass(frozen=True, slots=True)
class InvoicePage:
    rows: list[InvoiceRow]
    total: int
    page: int
    pages: int


@dataclass(frozen=True, slots=True)
class RefusedLine:
    """A rejected or reduced line of the provider's invoice in force, with the state of
    its latest dispute."""

    invoice_number: str
    care_date: date
    line_no: int
    act_code: str
    status: str
    reason_code: str | None
    amc_requested_cents: int
    amc_accepted_cents: int
    dispute_state: str | None


def provider_invoices(conn: Connection, provider_id: int, query: InvoiceQuery) -> InvoicePage:
    """The provider's invoices, newest care date first, filtered and paginated."""
    conditions = [claims.c.provider_id == provider_id]
    if query.number:
        conditions.append(claims.c.invoice_number.startswith(query.number, autoescape=True))
    if query.care_from is not None:
        conditions.append(claims.c.care_date >= query.care_from)
    if query.care_to is not None:
        conditions.append(claims.c.care_date <= query.care_to)
    if query.status:
        conditions.append(claims.c.status == query.status)
    else:
        conditions.append(claims.c.status != ClaimStatus.SUPERSEDED.value)
    total = int(
        conn.execute(select(func.count()).select_from(claims).where(*conditions)).scalar_one()
    )
    of_claim = (claim_lines.c.insurer_id == claims.c.insurer_id) & (
        claim_lines.c.claim_id == claims.c.id
    )
    amo = (
        select(func.coalesce(func.sum(claim_lines.c.amo_paid_cents), 0))
        .where(of_claim)
        .correlate(claims)
        .scalar_subquery()
    )
    refused = (
        select(func.count())
        .select_from(claim_lines)
        .where(of_claim, claim_lines.c.status.in_(REFUSED))
        .correlate(claims)
        .scalar_subquery()
    )
    size = max(1, query.page_size)
    pages = max(1, -(-total // size))
    page = min(max(1, query.page), pages)
    rows = conn.execute(
        select(
            claims.c.invoice_number,
            claims.c.version,
            claims.c.status,
            claims.c.care_date,
            claims.c.received_at,
            claims.c.adjudicated_at,
            insurers.c.name,
            claims.c.billed_cents,
            amo,
            claims.c.amc_requested_cents,
            claims.c.amc_accepted_cents,
            refused,
        )
        .join(insurers, insurers.c.id == claims.c.insurer_id)
        .where(*conditions)
        .order_by(claims.c.care_date.desc(), claims.c.received_at.desc(), claims.c.id.desc())
        .limit(size)
        .offset((page - 1) * size)
    )
    # PostgreSQL sums to a Decimal: the amounts stay integer cents.
    found = [
        InvoiceRow(
            invoice_number=row[0],
            version=row[1],
            status=row[2],
            care_date=row[3],
            received_at=row[4],
            adjudicated_at=row[5],
            insurer=row[6],
            billed_cents=row[7],
            amo_cents=int(row[8]),
            amc_requested_cents=row[9],
            amc_accepted_cents=row[10],
            refused_lines=int(row[11]),
        )
        for row in rows
    ]
    return InvoicePage(found, total, page, pages)


def refused_lines(conn: Connection, provider_id: int, limit: int = 200) -> list[RefusedLine]:
    """Rejected or reduced lines of the provider's adjudicated invoices, newest first."""
    latest_dispute = (
        select(claim_disputes.c.state)
        .where(
            claim_disputes.c.insurer_id == claim_lines.c.insurer_id,
            claim_disputes.c.claim_id == claim_lines.c.claim_id,
            claim_disputes.c.line_no == claim_lines.c.line_no,
        )
        .order_by(claim_disputes.c.opened_at.desc(), claim_disputes.c.id.desc())
        .limit(1)
        .correlate(claim_lines)
        .scalar_subquery()
    )
    rows = conn.execute(
        select(
            claims.c.invoice_number,
            claims.c.care_date,
            claim_lines.c.line_no,
            claim_lines.c.act_code,
            claim_lines.c.status,
            claim_lines.c.reason_code,
            claim_lines.c.amc_requested_cents,
            claim_lines.c.amc_accepted_cents,
            latest_dispute,
        )
        .join(
            claim_lines,
            (claim_lines.c.insurer_id == claims.c.insurer_id)
            & (claim_lines.c.claim_id == claims.c.id),
        )
        .where(
            claims.c.provider_id == provider_id,
            claims.c.status == ClaimStatus.ADJUDICATED.value,
            claim_lines.c.status.in_(REFUSED),
        )
        .order_by(claims.c.adjudicated_at.desc(), claims.c.id.desc(), claim_lines.c.line_no)
        .limit(limit)
    )
    return [RefusedLine(*row) for row in rows]
