"""Billing insurers: monthly statements of what payment runs paid for them (net of undue
amounts), the operator's fee per paid line, SEPA mandates, returned fund calls and the
detail of each statement.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import Connection, Select, and_, delete, exists, func, select, update

from tierspayant.domain.engagements import HonouredLine
from tierspayant.domain.payments import DetailLine
from tierspayant.store.claims_tables import claim_lines, claims, engaged_lines
from tierspayant.store.ledger_tables import (
    billing_statements,
    fund_call_returns,
    insurer_fees,
    insurer_mandates,
    money_runs,
    overpayments,
    payment_lines,
)
from tierspayant.store.tables import insurers, providers


def insurers_to_bill(conn: Connection, period: str) -> list[int]:
    """Insurers with paid lines or undue amounts in the period (ids, in order)."""
    paid = select(payment_lines.c.insurer_id).where(
        payment_lines.c.bill_period == period, payment_lines.c.paid_cents > 0
    )
    undue = select(overpayments.c.insurer_id).where(overpayments.c.bill_period == period)
    found = {int(i) for i in conn.execute(paid.distinct()).scalars()}
    found |= {int(i) for i in conn.execute(undue.distinct()).scalars()}
    return sorted(found)


def statement_exists(conn: Connection, insurer_id: int, period: str) -> bool:
    query = select(
        exists().where(
            billing_statements.c.insurer_id == insurer_id, billing_statements.c.period == period
        )
    )
    return bool(conn.execute(query).scalar())


def _paid_in(insurer_id: int, period: str) -> tuple[object, ...]:
    return (
        payment_lines.c.insurer_id == insurer_id,
        payment_lines.c.bill_period == period,
        payment_lines.c.paid_cents > 0,
    )


def _line_of(table: object) -> object:
    return and_(
        claim_lines.c.insurer_id == table.c.insurer_id,  # type: ignore[attr-defined]
        claim_lines.c.claim_id == table.c.claim_id,  # type: ignore[attr-defined]
        claim_lines.c.line_no == table.c.line_no,  # type: ignore[attr-defined]
    )


def _claim_of(table: object) -> object:
    return and_(
        claims.c.insurer_id == table.c.insurer_id,  # type: ignore[attr-defined]
        claims.c.id == table.c.claim_id,  # type: ignore[attr-defined]
    )


def billed_totals(conn: Connection, insurer_id: int, period: str) -> tuple[int, int, int]:
    """(paid lines, paid cents, undue cents) of an insurer in a period."""
    paid = conn.execute(
        select(func.count(), func.coalesce(func.sum(payment_lines.c.paid_cents), 0)).where(
            *_paid_in(insurer_id, period)  # type: ignore[arg-type]
        )
    ).one()
    undue = conn.execute(
        select(func.coalesce(func.sum(overpayments.c.cents), 0)).where(
            overpayments.c.insurer_id == insurer_id, overpayments.c.bill_period == period
        )
    ).scalar_one()
    return int(paid[0]), int(paid[1]), int(undue)


def honoured_paid(conn: Connection, insurer_id: int, period: str) -> list[HonouredLine]:
    """The lines paid in a period that adjudication paid on an engagement."""
    query = (
        select(
            engaged_lines.c.claim_id,
            engaged_lines.c.line_no,
            claims.c.invoice_number,
            providers.c.am_number,
            engaged_lines.c.care_date,
            engaged_lines.c.domain,
            engaged_lines.c.contract_code,
            payment_lines.c.paid_cents,
        )
        .select_from(
            payment_lines.join(
                engaged_lines,
                and_(
                    engaged_lines.c.insurer_id == payment_lines.c.insurer_id,
                    engaged_lines.c.claim_id == payment_lines.c.claim_id,
                    engaged_lines.c.line_no == payment_lines.c.line_no,
                ),
            )
            .join(claims, _claim_of(payment_lines))  # type: ignore[arg-type]
            .join(providers, providers.c.id == payment_lines.c.provider_id)
        )
        .where(*_paid_in(insurer_id, period))  # type: ignore[arg-type]
        .order_by(payment_lines.c.claim_id, payment_lines.c.line_no)
    )
    return [
        HonouredLine(
            int(r.claim_id),
            int(r.line_no),
            r.invoice_number,
            r.am_number,
            r.care_date,
            r.domain,
            r.contract_code,
            int(r.paid_cents),
        )
        for r in conn.execute(query)
    ]


def billed_breakdown(conn: Connection, insurer_id: int, period: str, key: str) -> dict[str, int]:
    """AMC cents net of undue per care domain (``key="domain"``) or provider category."""
    column = claim_lines.c.domain if key == "domain" else providers.c.category
    totals: dict[str, int] = {}
    paid = (
        select(column, func.sum(payment_lines.c.paid_cents))
        .select_from(
            payment_lines.join(claim_lines, _line_of(payment_lines)).join(  # type: ignore[arg-type]
                providers, providers.c.id == payment_lines.c.provider_id
            )
        )
        .where(*_paid_in(insurer_id, period))  # type: ignore[arg-type]
        .group_by(column)
    )
    for name, cents in conn.execute(paid):
        totals[str(name)] = totals.get(str(name), 0) + int(cents)
    undue = (
        select(column, func.sum(overpayments.c.cents))
        .select_from(
            overpayments.join(claim_lines, _line_of(overpayments)).join(  # type: ignore[arg-type]
                providers, providers.c.id == overpayments.c.provider_id
            )
        )
        .where(overpayments.c.insurer_id == insurer_id, overpayments.c.bill_period == period)
        .group_by(column)
    )
    for name, cents in conn.execute(undue):
        totals[str(name)] = totals.get(str(name), 0) - int(cents)
    return totals


def insert_statement(
    conn: Connection,
    *,
    insurer_id: int,
    period: str,
    run_key: str,
    lines: int,
    paid_cents: int,
    undue_cents: int,
    fee_per_line_cents: int,
    collection_date: date,
    at: datetime,
) -> None:
    fee = lines * fee_per_line_cents
    conn.execute(
        billing_statements.insert().values(
            insurer_id=insurer_id,
            period=period,
            run_key=run_key,
            lines=lines,
            paid_cents=paid_cents,
            undue_cents=undue_cents,
            fee_per_line_cents=fee_per_line_cents,
            fee_cents=fee,
            due_cents=paid_cents - undue_cents + fee,
            collection_date=collection_date,
            created_at=at,
        )
    )


@dataclass(frozen=True, slots=True)
class StatementRow:
    insurer_id: int
    amc_number: str
    insurer_name: str
    period: str
    lines: int
    paid_cents: int
    undue_cents: int
    due_cents: int  # paid - undue + fee: the fund call
    collection_date: date
    fee_per_line_cents: int = 0
    fee_cents: int = 0


def _statements() -> Select[Any]:
    return select(billing_statements, insurers.c.amc_number, insurers.c.name).join(
        insurers, insurers.c.id == billing_statements.c.insurer_id
    )


def _statement(r: object) -> StatementRow:
    return StatementRow(
        insurer_id=int(r.insurer_id),  # type: ignore[attr-defined]
        amc_number=r.amc_number,  # type: ignore[attr-defined]
        insurer_name=r.name,  # type: ignore[attr-defined]
        period=r.period,  # type: ignore[attr-defined]
        lines=int(r.lines),  # type: ignore[attr-defined]
        paid_cents=int(r.paid_cents),  # type: ignore[attr-defined]
        undue_cents=int(r.undue_cents),  # type: ignore[attr-defined]
        due_cents=int(r.due_cents),  # type: ignore[attr-defined]
        collection_date=r.collection_date,  # type: ignore[attr-defined]
        fee_per_line_cents=int(r.fee_per_line_cents),  # type: ignore[attr-defined]
        fee_cents=int(r.fee_cents),  # type: ignore[attr-defined]
    )


def statements_of(conn: Connection, period: str) -> list[StatementRow]:
    rows = conn.execute(
        _statements()
        .where(billing_statements.c.period == period)
        .order_by(billing_statements.c.insurer_id)
    )
    return [_statement(r) for r in rows]


def statement_of(
    conn: Connection, amc_number: str, period: str, *, lock: bool = False
) -> StatementRow | None:
    """One insurer's statement of a period, found by AMC number (a returned fund call).

    With ``lock`` the row stays locked until the end of the transaction on PostgreSQL:
    two readers of the same status report then record a return one after the other.
    """
    query = _statements().where(
        insurers.c.amc_number == amc_number, billing_statements.c.period == period
    )
    if lock and conn.dialect.name == "postgresql":
        query = query.with_for_update(of=billing_statements)
    row = conn.execute(query).first()
    return None if row is None else _statement(row)


def fee_of(conn: Connection, insurer_id: int) -> int | None:
    """The insurer's own fee per paid line, or None (the platform default applies)."""
    value = conn.execute(
        select(insurer_fees.c.per_line_cents).where(insurer_fees.c.insurer_id == insurer_id)
    ).scalar_one_or_none()
    return None if value is None else int(value)


def put_fee(
    conn: Connection, insurer_id: int, per_line_cents: int | None, *, at: datetime, actor: str
) -> None:
    """Set (or, with None, remove) the insurer's own fee per paid line."""
    conn.execute(delete(insurer_fees).where(insurer_fees.c.insurer_id == insurer_id))
    if per_line_cents is not None:
        conn.execute(
            insurer_fees.insert().values(
                insurer_id=insurer_id, per_line_cents=per_line_cents, set_at=at, set_by=actor
            )
        )


@dataclass(frozen=True, slots=True)
class ReturnRow:
    insurer_id: int
    period: str
    end_to_end_id: str
    cents: int
    reason_code: str
    report_id: str
    value_date: date


def _return(r: object) -> ReturnRow:
    return ReturnRow(
        insurer_id=int(r.insurer_id),  # type: ignore[attr-defined]
        period=r.period,  # type: ignore[attr-defined]
        end_to_end_id=r.end_to_end_id,  # type: ignore[attr-defined]
        cents=int(r.cents),  # type: ignore[attr-defined]
        reason_code=r.reason_code,  # type: ignore[attr-defined]
        report_id=r.report_id,  # type: ignore[attr-defined]
        value_date=r.value_date,  # type: ignore[attr-defined]
    )


def return_of(conn: Connection, insurer_id: int, period: str) -> ReturnRow | None:
    row = conn.execute(
        select(fund_call_returns).where(
            fund_call_returns.c.insurer_id == insurer_id, fund_call_returns.c.period == period
        )
    ).first()
    return None if row is None else _return(row)


def returns_of(conn: Connection, insurer_id: int) -> list[ReturnRow]:
    """The insurer's returned fund calls, newest period first (a few per year at most)."""
    rows = conn.execute(
        select(fund_call_returns)
        .where(fund_call_returns.c.insurer_id == insurer_id)
        .order_by(fund_call_returns.c.period.desc())
    )
    return [_return(r) for r in rows]


def insert_return(conn: Connection, row: ReturnRow, *, at: datetime, actor: str) -> None:
    conn.execute(
        fund_call_returns.insert().values(
            insurer_id=row.insurer_id,
            period=row.period,
            end_to_end_id=row.end_to_end_id,
            cents=row.cents,
            reason_code=row.reason_code,
            report_id=row.report_id,
            value_date=row.value_date,
            recorded_at=at,
            recorded_by=actor,
        )
    )


def detail_lines(conn: Connection, insurer_id: int, period: str) -> Iterator[DetailLine]:
    """Paid lines, then undue lines (negative), of an insurer's period (streamed)."""
    paid = (
        select(
            claim_lines.c.claim_id,
            claim_lines.c.line_no,
            claims.c.invoice_number,
            providers.c.am_number,
            providers.c.category,
            claims.c.beneficiary_id,
            claim_lines.c.domain,
            claim_lines.c.act_code,
            claim_lines.c.care_date,
            money_runs.c.run_date,
            claim_lines.c.billed_cents,
            claim_lines.c.amo_paid_cents,
            payment_lines.c.paid_cents,
        )
        .select_from(
            payment_lines.join(claim_lines, _line_of(payment_lines))  # type: ignore[arg-type]
            .join(claims, _claim_of(payment_lines))  # type: ignore[arg-type]
            .join(providers, providers.c.id == payment_lines.c.provider_id)
            .join(money_runs, money_runs.c.run_key == payment_lines.c.run_key)
        )
        .where(*_paid_in(insurer_id, period))  # type: ignore[arg-type]
        .order_by(payment_lines.c.claim_id, payment_lines.c.line_no)
    )
    for r in conn.execution_options(yield_per=5000).execute(paid):
        yield _detail("paid", r, r.run_date, int(r.paid_cents))
    undue = (
        select(
            claim_lines.c.claim_id,
            claim_lines.c.line_no,
            claims.c.invoice_number,
            providers.c.am_number,
            providers.c.category,
            claims.c.beneficiary_id,
            claim_lines.c.domain,
            claim_lines.c.act_code,
            claim_lines.c.care_date,
            overpayments.c.flagged_at,
            claim_lines.c.billed_cents,
            claim_lines.c.amo_paid_cents,
            overpayments.c.cents,
        )
        .select_from(
            overpayments.join(claim_lines, _line_of(overpayments))  # type: ignore[arg-type]
            .join(claims, _claim_of(overpayments))  # type: ignore[arg-type]
            .join(providers, providers.c.id == overpayments.c.provider_id)
        )
        .where(overpayments.c.insurer_id == insurer_id, overpayments.c.bill_period == period)
        .order_by(overpayments.c.claim_id, overpayments.c.line_no)
    )
    for r in conn.execution_options(yield_per=5000).execute(undue):
        yield _detail("undue", r, r.flagged_at.date(), -int(r.cents))


def _detail(kind: str, r: object, on: date, amc_cents: int) -> DetailLine:
    return DetailLine(
        kind=kind,
        claim_id=int(r.claim_id),  # type: ignore[attr-defined]
        line_no=int(r.line_no),  # type: ignore[attr-defined]
        invoice_number=r.invoice_number,  # type: ignore[attr-defined]
        provider_am_number=r.am_number,  # type: ignore[attr-defined]
        provider_category=r.category,  # type: ignore[attr-defined]
        beneficiary_id=int(r.beneficiary_id),  # type: ignore[attr-defined]
        domain=r.domain,  # type: ignore[attr-defined]
        act_code=r.act_code,  # type: ignore[attr-defined]
        care_date=r.care_date,  # type: ignore[attr-defined]
        payment_date=on,
        billed_cents=int(r.billed_cents),  # type: ignore[attr-defined]
        amo_cents=int(r.amo_paid_cents),  # type: ignore[attr-defined]
        amc_cents=amc_cents,
    )


@dataclass(frozen=True, slots=True)
class MandateRow:
    mandate_id: str
    signed_on: date
    iban_ct: bytes
    key_version: int
    bic: str | None


def mandate_of(conn: Connection, insurer_id: int) -> MandateRow | None:
    row = conn.execute(
        select(insurer_mandates).where(insurer_mandates.c.insurer_id == insurer_id)
    ).first()
    if row is None:
        return None
    return MandateRow(
        row.mandate_id, row.signed_on, bytes(row.iban_ct), int(row.key_version), row.bic
    )


def put_mandate(
    conn: Connection,
    *,
    insurer_id: int,
    mandate_id: str,
    signed_on: date,
    iban_ct: bytes,
    key_version: int,
    bic: str | None,
    at: datetime,
) -> None:
    """Record the insurer's mandate, replacing an earlier one (a new mandate supersedes)."""
    values = {
        "mandate_id": mandate_id,
        "signed_on": signed_on,
        "iban_ct": iban_ct,
        "key_version": key_version,
        "bic": bic,
        "created_at": at,
    }
    if mandate_of(conn, insurer_id) is None:
        conn.execute(insurer_mandates.insert().values(insurer_id=insurer_id, **values))
    else:
        conn.execute(
            update(insurer_mandates)
            .where(insurer_mandates.c.insurer_id == insurer_id)
            .values(**values)
        )
