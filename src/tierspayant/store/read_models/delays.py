"""Payment delays: for each paid invoice, when it was received and the execution date of
the transfer that paid it (the earliest, if its lines were paid by several runs).

A read model over ``claims``, ``payment_lines`` and ``payments``: nothing is stored twice,
and a delay can never disagree with the payment it describes.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import ColumnElement, Connection, Select, func, select

from tierspayant.store.claims_tables import claims
from tierspayant.store.ledger_tables import payment_lines, payments
from tierspayant.store.tables import insurers, providers


@dataclass(frozen=True, slots=True)
class PaidInvoice:
    insurer_id: int
    amc_number: str
    claim_id: int
    provider_id: int
    provider_am: str
    received_at: datetime
    executed_on: date


def paid_invoices(
    conn: Connection,
    *,
    since: date | None = None,
    provider_id: int | None = None,
    insurer_id: int | None = None,
) -> list[PaidInvoice]:
    """Every invoice with at least one line paid (paid cents above 0), and its first
    execution date; ``since``: executed on or after that day; ``provider_id``: that
    provider's invoices only; ``insurer_id``: that insurer's invoices only. One row per
    invoice, all in memory: for checks on a few invoices; figures over a whole scope
    stream :func:`paid_invoice_days` instead."""
    query = _paid(
        (
            claims.c.insurer_id,
            insurers.c.amc_number,
            claims.c.id,
            claims.c.provider_id,
            providers.c.am_number,
            claims.c.received_at,
        ),
        since=since,
        provider_id=provider_id,
        insurer_id=insurer_id,
    ).order_by(claims.c.insurer_id, claims.c.id)
    # SQLite returns the stored UTC instants without their zone.
    return [
        PaidInvoice(r[0], r[1], r[2], r[3], r[4], _utc(r[5]), r[6]) for r in conn.execute(query)
    ]


def paid_invoice_days(
    conn: Connection,
    *,
    since: date | None = None,
    provider_id: int | None = None,
    insurer_id: int | None = None,
    chunk: int = 10_000,
) -> Iterator[tuple[str, str, datetime, date]]:
    """(insurer's AMC number, provider's AM number, received at, first execution date) of
    the invoices :func:`paid_invoices` reads, with the same filters, streamed ``chunk``
    rows at a time and in no order: a national scope is millions of invoices, and the
    caller only counts them."""
    query = _paid(
        (insurers.c.amc_number, providers.c.am_number, claims.c.received_at),
        since=since,
        provider_id=provider_id,
        insurer_id=insurer_id,
    )
    result = conn.execution_options(stream_results=True, yield_per=chunk).execute(query)
    for amc_number, provider_am, received_at, executed_on in result:
        yield amc_number, provider_am, _utc(received_at), executed_on


def _paid(
    columns: tuple[ColumnElement[Any], ...],
    *,
    since: date | None,
    provider_id: int | None,
    insurer_id: int | None,
) -> Select[Any]:
    """``columns`` (of ``claims``, ``insurers``, ``providers``) and the first execution
    date of each invoice with at least one line paid, one row per invoice."""
    executed = func.min(payments.c.payment_date).label("executed_on")
    query = (
        select(*columns, executed)
        .select_from(
            claims.join(
                payment_lines,
                (payment_lines.c.insurer_id == claims.c.insurer_id)
                & (payment_lines.c.claim_id == claims.c.id),
            )
            .join(
                payments,
                (payments.c.run_key == payment_lines.c.run_key)
                & (payments.c.provider_id == payment_lines.c.provider_id),
            )
            .join(insurers, insurers.c.id == claims.c.insurer_id)
            .join(providers, providers.c.id == claims.c.provider_id)
        )
        .where(payment_lines.c.paid_cents > 0)
        .group_by(
            claims.c.insurer_id,
            insurers.c.amc_number,
            claims.c.id,
            claims.c.provider_id,
            providers.c.am_number,
            claims.c.received_at,
        )
    )
    if since is not None:
        query = query.having(executed >= since)
    if provider_id is not None:
        query = query.where(claims.c.provider_id == provider_id)
    if insurer_id is not None:
        query = query.where(claims.c.insurer_id == insurer_id)
    return query


def first_paid_in_run(
    conn: Connection, run_key: str, since: date, *, chunk: int = 10_000
) -> Iterator[tuple[datetime, date]]:
    """(received at, first execution date) of each invoice a line of which run ``run_key``
    paid, and which no run executed before ``since`` paid: the invoices that run paid
    first. Streamed (``chunk`` rows at a time): a day of national volume is a million
    invoices, and the caller only counts them."""
    run_claims = (
        select(payment_lines.c.insurer_id, payment_lines.c.claim_id)
        .where(payment_lines.c.run_key == run_key, payment_lines.c.paid_cents > 0)
        .distinct()
        .subquery("run_claims")
    )
    executed = func.min(payments.c.payment_date)
    query = (
        select(claims.c.received_at, executed)
        .select_from(
            run_claims.join(
                claims,
                (claims.c.insurer_id == run_claims.c.insurer_id)
                & (claims.c.id == run_claims.c.claim_id),
            )
            .join(
                payment_lines,
                (payment_lines.c.insurer_id == claims.c.insurer_id)
                & (payment_lines.c.claim_id == claims.c.id),
            )
            .join(
                payments,
                (payments.c.run_key == payment_lines.c.run_key)
                & (payments.c.provider_id == payment_lines.c.provider_id),
            )
        )
        .where(payment_lines.c.paid_cents > 0)
        .group_by(claims.c.insurer_id, claims.c.id, claims.c.received_at)
        .having(executed >= since)
    )
    result = conn.execution_options(stream_results=True, yield_per=chunk).execute(query)
    for received_at, executed_on in result:
        yield _utc(received_at), executed_on


def _utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
