"""Reading and writing the money runs: leases, remitted lines, payments, undue amounts.

The claim lines a run pays are copied into ``payment_lines`` by one INSERT … SELECT per
provider (no line passes through Python), and that table's primary key is the line
itself: a line can be paid once, whatever reruns or concurrent workers do.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import (
    Connection,
    Select,
    String,
    and_,
    case,
    delete,
    exists,
    func,
    insert,
    literal,
    or_,
    select,
    text,
    update,
)

from tierspayant.domain.claims import PAYABLE_LINE_STATES, ClaimStatus, LineStatus
from tierspayant.domain.payments import DetailLine, RecoveredUndue, RemittanceLine
from tierspayant.store.claims_tables import claim_lines, claims
from tierspayant.store.ledger_tables import (
    billing_statements,
    fund_call_returns,
    insurer_fees,
    insurer_mandates,
    money_runs,
    overpayment_recoveries,
    overpayments,
    payment_lines,
    payments,
)
from tierspayant.store.tables import insurers, providers

PAYABLE = tuple(sorted(s.value for s in PAYABLE_LINE_STATES))
UNREMITTED = tuple(s.value for s in (LineStatus.RECEIVED, LineStatus.CANCELLED, LineStatus.UNDUE))
LineKey = tuple[int, int, int]  # (insurer_id, claim_id, line_no)


def amc_number(conn: Connection, insurer_id: int) -> str:
    """The AMC number that names an insurer's ledger accounts."""
    query = select(insurers.c.amc_number).where(insurers.c.id == insurer_id)
    return str(conn.execute(query).scalar_one())


def claim_is_paid(conn: Connection, insurer_id: int, claim_id: int) -> bool:
    """Whether a payment run paid (a positive amount on) any line of this claim.

    On PostgreSQL the claim row is locked first: a payment run remitting this claim holds
    that lock until it commits, so the answer cannot change before the caller's commit.
    """
    if conn.dialect.name == "postgresql":
        conn.execute(
            select(claims.c.id)
            .where(claims.c.insurer_id == insurer_id, claims.c.id == claim_id)
            .with_for_update()
        )
    query = select(
        exists().where(
            payment_lines.c.insurer_id == insurer_id,
            payment_lines.c.claim_id == claim_id,
            payment_lines.c.paid_cents > 0,
        )
    )
    return bool(conn.execute(query).scalar())


@dataclass(frozen=True, slots=True)
class PaidLine:
    line_no: int
    provider_id: int
    paid_cents: int


def paid_lines(
    conn: Connection, insurer_id: int, claim_id: int, line_no: int | None = None
) -> list[PaidLine]:
    """The lines of one claim that a run paid, in line order (one claim: a few rows)."""
    query = select(
        payment_lines.c.line_no, payment_lines.c.provider_id, payment_lines.c.paid_cents
    ).where(
        payment_lines.c.insurer_id == insurer_id,
        payment_lines.c.claim_id == claim_id,
        payment_lines.c.paid_cents > 0,
    )
    if line_no is not None:
        query = query.where(payment_lines.c.line_no == line_no)
    rows = conn.execute(query.order_by(payment_lines.c.line_no))
    return [PaidLine(int(r.line_no), int(r.provider_id), int(r.paid_cents)) for r in rows]


# --- leases of runs ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Run:
    run_key: str
    kind: str
    run_date: date
    period: str | None
    cutoff: datetime
    status: str
    lock_owner: str | None
    lock_expires_at: datetime | None


def _run(row: object) -> Run:
    return Run(
        run_key=row.run_key,  # type: ignore[attr-defined]
        kind=row.kind,  # type: ignore[attr-defined]
        run_date=row.run_date,  # type: ignore[attr-defined]
        period=row.period,  # type: ignore[attr-defined]
        cutoff=row.cutoff,  # type: ignore[attr-defined]
        status=row.status,  # type: ignore[attr-defined]
        lock_owner=row.lock_owner,  # type: ignore[attr-defined]
        lock_expires_at=row.lock_expires_at,  # type: ignore[attr-defined]
    )


def find_run(conn: Connection, run_key: str, *, skip_locked: bool = False) -> Run | None:
    """The run, read under a row lock on PostgreSQL (skipped if another worker holds it)."""
    query = select(money_runs).where(money_runs.c.run_key == run_key)
    if conn.dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=skip_locked)
    row = conn.execute(query).first()
    return None if row is None else _run(row)


def run_exists(conn: Connection, run_key: str) -> bool:
    query = select(exists().where(money_runs.c.run_key == run_key))
    return bool(conn.execute(query).scalar())


def create_run(
    conn: Connection,
    *,
    run_key: str,
    kind: str,
    run_date: date,
    period: str | None,
    owner: str,
    now: datetime,
    ttl: timedelta,
) -> Run:
    conn.execute(
        money_runs.insert().values(
            run_key=run_key,
            kind=kind,
            run_date=run_date,
            period=period,
            cutoff=now,
            status="open",
            lock_owner=owner,
            lock_expires_at=now + ttl,
            started_at=now,
        )
    )
    found = find_run(conn, run_key)
    assert found is not None
    return found


def take_lease(conn: Connection, run_key: str, owner: str, now: datetime, ttl: timedelta) -> None:
    conn.execute(
        update(money_runs)
        .where(money_runs.c.run_key == run_key)
        .values(lock_owner=owner, lock_expires_at=now + ttl)
    )


def renew_lease(conn: Connection, run_key: str, owner: str, now: datetime, ttl: timedelta) -> bool:
    """Extend the lease if this worker still holds it (False: another worker took it)."""
    result = conn.execute(
        update(money_runs)
        .where(money_runs.c.run_key == run_key, money_runs.c.lock_owner == owner)
        .values(lock_expires_at=now + ttl)
    )
    return result.rowcount == 1


def release_lease(conn: Connection, run_key: str, owner: str, *, done_at: datetime | None) -> None:
    values: dict[str, object] = {"lock_owner": None, "lock_expires_at": None}
    if done_at is not None:
        values.update(status="done", finished_at=done_at)
    conn.execute(
        update(money_runs)
        .where(money_runs.c.run_key == run_key, money_runs.c.lock_owner == owner)
        .values(**values)
    )


def open_payment_runs(conn: Connection, first: date, last: date) -> list[str]:
    """Payment runs dated in a period that have not finished (billing must wait)."""
    query = select(money_runs.c.run_key).where(
        money_runs.c.kind == "payment",
        money_runs.c.status != "done",
        money_runs.c.run_date >= first,
        money_runs.c.run_date <= last,
    )
    return [str(k) for k in conn.execute(query.order_by(money_runs.c.run_key)).scalars()]


def period_billed(conn: Connection, period: str) -> bool:
    query = select(exists().where(billing_statements.c.period == period))
    return bool(conn.execute(query).scalar())


# --- payment runs -----------------------------------------------------------------------


def _claim_join() -> object:
    return claim_lines.join(
        claims,
        and_(
            claims.c.insurer_id == claim_lines.c.insurer_id, claims.c.id == claim_lines.c.claim_id
        ),
    )


def _not_remitted() -> object:
    return ~exists().where(
        payment_lines.c.insurer_id == claim_lines.c.insurer_id,
        payment_lines.c.claim_id == claim_lines.c.claim_id,
        payment_lines.c.line_no == claim_lines.c.line_no,
    )


def _remittable(cutoff: datetime) -> tuple[object, ...]:
    return (
        claims.c.status == ClaimStatus.ADJUDICATED.value,
        or_(claims.c.adjudicated_at.is_(None), claims.c.adjudicated_at <= cutoff),
        # "Decided and not withdrawn", said as NOT IN so that SQLite joins the lines by
        # their primary key instead of scanning the (insurer, status) index per claim.
        claim_lines.c.status.not_in(UNREMITTED),
        _not_remitted(),
    )


_PROVIDER_LOCK = 7_272_050  # advisory lock class: one provider's payment


def lock_provider(conn: Connection, provider_id: int) -> None:
    """Serialise payments of one provider until the end of the transaction.

    Two runs of different dates may pay the same provider at the same time; its open
    undue amounts must be read and deducted by one of them at a time. SQLite has a
    single writer already.
    """
    if conn.dialect.name == "postgresql":
        conn.execute(
            text("SELECT pg_advisory_xact_lock(:k, :p)"), {"k": _PROVIDER_LOCK, "p": provider_id}
        )


def providers_with_work(conn: Connection, cutoff: datetime) -> list[int]:
    """Providers that have adjudicated lines not yet remitted (ids only: a few per line)."""
    query = (
        select(claims.c.provider_id)
        .select_from(_claim_join())  # type: ignore[arg-type]
        .where(*_remittable(cutoff))  # type: ignore[arg-type]
        .distinct()
        .order_by(claims.c.provider_id)
    )
    return [int(p) for p in conn.execute(query).scalars()]


def remit_lines(
    conn: Connection, *, run_key: str, provider_id: int, cutoff: datetime, bill_period: str
) -> tuple[int, int]:
    """Copy the provider's remittable lines into this run; returns (lines, paid cents)."""
    paid = case((claim_lines.c.status.in_(PAYABLE), claim_lines.c.amc_accepted_cents), else_=0)
    chosen = (
        select(
            claim_lines.c.insurer_id,
            claim_lines.c.claim_id,
            claim_lines.c.line_no,
            literal(run_key, String),
            claims.c.provider_id,
            paid,
            claim_lines.c.status,
            literal(bill_period, String),
        )
        .select_from(_claim_join())  # type: ignore[arg-type]
        .where(claims.c.provider_id == provider_id, *_remittable(cutoff))  # type: ignore[arg-type]
    )
    if conn.dialect.name == "postgresql":
        # Claims being paid stay locked until the payment commits (see claim_is_paid).
        chosen = chosen.with_for_update(of=claims)
        # psycopg prepares a statement run five times, and PostgreSQL may then reuse a
        # generic plan that ignores the provider: measured 30× slower. Plan each time.
        conn.execute(text("SET LOCAL plan_cache_mode = force_custom_plan"))
    conn.execute(
        insert(payment_lines).from_select(
            [
                "insurer_id",
                "claim_id",
                "line_no",
                "run_key",
                "provider_id",
                "paid_cents",
                "line_status",
                "bill_period",
            ],
            chosen,
        )
    )
    return run_lines_total(conn, run_key, provider_id)


def run_lines_total(conn: Connection, run_key: str, provider_id: int) -> tuple[int, int]:
    row = conn.execute(
        select(func.count(), func.coalesce(func.sum(payment_lines.c.paid_cents), 0)).where(
            payment_lines.c.run_key == run_key, payment_lines.c.provider_id == provider_id
        )
    ).one()
    return int(row[0]), int(row[1])


def payment_exists(conn: Connection, run_key: str, provider_id: int) -> bool:
    query = select(
        exists().where(payments.c.run_key == run_key, payments.c.provider_id == provider_id)
    )
    return bool(conn.execute(query).scalar())


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


@dataclass(frozen=True, slots=True)
class PaymentRow:
    run_key: str
    provider_id: int
    payment_date: date
    lines: int
    gross_cents: int
    recovered_cents: int
    net_cents: int


def _payment(row: object) -> PaymentRow:
    return PaymentRow(
        run_key=row.run_key,  # type: ignore[attr-defined]
        provider_id=int(row.provider_id),  # type: ignore[attr-defined]
        payment_date=row.payment_date,  # type: ignore[attr-defined]
        lines=int(row.lines),  # type: ignore[attr-defined]
        gross_cents=int(row.gross_cents),  # type: ignore[attr-defined]
        recovered_cents=int(row.recovered_cents),  # type: ignore[attr-defined]
        net_cents=int(row.net_cents),  # type: ignore[attr-defined]
    )


def insert_payment(conn: Connection, row: PaymentRow, at: datetime) -> None:
    conn.execute(
        payments.insert().values(
            run_key=row.run_key,
            provider_id=row.provider_id,
            payment_date=row.payment_date,
            lines=row.lines,
            gross_cents=row.gross_cents,
            recovered_cents=row.recovered_cents,
            net_cents=row.net_cents,
            created_at=at,
        )
    )


def run_payments(conn: Connection, run_key: str) -> Iterator[PaymentRow]:
    """The payments of a run in provider order (one row per provider, streamed)."""
    query = select(payments).where(payments.c.run_key == run_key).order_by(payments.c.provider_id)
    for row in conn.execution_options(yield_per=2000).execute(query):
        yield _payment(row)


def run_totals(conn: Connection, run_key: str) -> tuple[int, int, int, int]:
    """(payments, transfers, gross cents, net cents) of a run."""
    row = conn.execute(
        select(
            func.count(),
            func.coalesce(func.sum(case((payments.c.net_cents > 0, 1), else_=0)), 0),
            func.coalesce(func.sum(payments.c.gross_cents), 0),
            func.coalesce(func.sum(payments.c.net_cents), 0),
        ).where(payments.c.run_key == run_key)
    ).one()
    return int(row[0]), int(row[1]), int(row[2]), int(row[3])


def provider_payment(conn: Connection, provider_id: int, payment_date: date) -> PaymentRow | None:
    row = conn.execute(
        select(payments).where(
            payments.c.provider_id == provider_id, payments.c.payment_date == payment_date
        )
    ).first()
    return None if row is None else _payment(row)


def provider_payments(conn: Connection, provider_id: int, limit: int) -> list[PaymentRow]:
    rows = conn.execute(
        select(payments)
        .where(payments.c.provider_id == provider_id)
        .order_by(payments.c.payment_date.desc())
        .limit(limit)
    )
    return [_payment(r) for r in rows]


def remittance_lines(
    conn: Connection, run_key: str, provider_id: int, *, offset: int = 0, limit: int | None = None
) -> Iterator[RemittanceLine]:
    """The lines one payment remitted, by insurer, invoice and line (streamed)."""
    query = (
        select(
            insurers.c.amc_number,
            claims.c.invoice_number,
            claim_lines.c.claim_id,
            claim_lines.c.line_no,
            claim_lines.c.care_date,
            claim_lines.c.act_code,
            claim_lines.c.domain,
            claim_lines.c.amc_requested_cents,
            payment_lines.c.paid_cents,
            payment_lines.c.line_status,
            claim_lines.c.reason_code,
        )
        .select_from(
            payment_lines.join(
                claim_lines,
                and_(
                    claim_lines.c.insurer_id == payment_lines.c.insurer_id,
                    claim_lines.c.claim_id == payment_lines.c.claim_id,
                    claim_lines.c.line_no == payment_lines.c.line_no,
                ),
            )
            .join(
                claims,
                and_(
                    claims.c.insurer_id == payment_lines.c.insurer_id,
                    claims.c.id == payment_lines.c.claim_id,
                ),
            )
            .join(insurers, insurers.c.id == payment_lines.c.insurer_id)
        )
        .where(payment_lines.c.run_key == run_key, payment_lines.c.provider_id == provider_id)
        .order_by(payment_lines.c.insurer_id, payment_lines.c.claim_id, payment_lines.c.line_no)
        .offset(offset)
    )
    if limit is not None:
        query = query.limit(limit)
    for r in conn.execution_options(yield_per=5000).execute(query):
        yield RemittanceLine(
            amc_number=r.amc_number,
            invoice_number=r.invoice_number,
            claim_id=int(r.claim_id),
            line_no=int(r.line_no),
            care_date=r.care_date,
            act_code=r.act_code,
            domain=r.domain,
            requested_cents=int(r.amc_requested_cents),
            paid_cents=int(r.paid_cents),
            status=r.line_status,
            reason_code=r.reason_code,
        )


def recovered_in(conn: Connection, run_key: str, provider_id: int) -> list[RecoveredUndue]:
    """Undue amounts a payment recovered (a provider has few)."""
    rows = conn.execute(
        select(
            insurers.c.amc_number,
            claims.c.invoice_number,
            overpayment_recoveries.c.claim_id,
            overpayment_recoveries.c.line_no,
            overpayments.c.reason_code,
            overpayment_recoveries.c.cents,
        )
        .select_from(
            overpayment_recoveries.join(
                overpayments,
                and_(
                    overpayments.c.insurer_id == overpayment_recoveries.c.insurer_id,
                    overpayments.c.claim_id == overpayment_recoveries.c.claim_id,
                    overpayments.c.line_no == overpayment_recoveries.c.line_no,
                ),
            )
            .join(
                claims,
                and_(
                    claims.c.insurer_id == overpayment_recoveries.c.insurer_id,
                    claims.c.id == overpayment_recoveries.c.claim_id,
                ),
            )
            .join(insurers, insurers.c.id == overpayment_recoveries.c.insurer_id)
        )
        .where(
            overpayment_recoveries.c.run_key == run_key,
            overpayment_recoveries.c.provider_id == provider_id,
        )
        .order_by(
            overpayment_recoveries.c.insurer_id,
            overpayment_recoveries.c.claim_id,
            overpayment_recoveries.c.line_no,
        )
    )
    return [
        RecoveredUndue(
            amc_number=r.amc_number,
            invoice_number=r.invoice_number,
            claim_id=int(r.claim_id),
            line_no=int(r.line_no),
            reason_code=r.reason_code,
            cents=int(r.cents),
        )
        for r in rows
    ]


# --- undue amounts ----------------------------------------------------------------------


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


@dataclass(frozen=True, slots=True)
class Payee:
    """A provider as a payment run needs it; the IBAN still encrypted."""

    provider_id: int
    am_number: str
    name: str
    iban_ct: bytes | None
    key_version: int | None
    bic: str | None


def payee(conn: Connection, provider_id: int) -> Payee:
    row = conn.execute(
        select(
            providers.c.id,
            providers.c.am_number,
            providers.c.name,
            providers.c.iban_ct,
            providers.c.key_version,
            providers.c.bic,
        ).where(providers.c.id == provider_id)
    ).one()
    return _payee(row)


def _payee(row: object) -> Payee:
    blob = row.iban_ct  # type: ignore[attr-defined]
    version = row.key_version  # type: ignore[attr-defined]
    return Payee(
        provider_id=int(row.id),  # type: ignore[attr-defined]
        am_number=row.am_number,  # type: ignore[attr-defined]
        name=row.name,  # type: ignore[attr-defined]
        iban_ct=bytes(blob) if blob is not None else None,
        key_version=int(version) if version is not None else None,
        bic=row.bic,  # type: ignore[attr-defined]
    )


def run_payees(
    conn: Connection, run_key: str, *, transfers_only: bool
) -> Iterator[tuple[PaymentRow, Payee]]:
    """The payments of a run with their payees, in provider order (streamed)."""
    query = (
        select(
            payments,
            providers.c.id,
            providers.c.am_number,
            providers.c.name,
            providers.c.iban_ct,
            providers.c.key_version,
            providers.c.bic,
        )
        .join(providers, providers.c.id == payments.c.provider_id)
        .where(payments.c.run_key == run_key)
        .order_by(payments.c.provider_id)
    )
    if transfers_only:
        query = query.where(payments.c.net_cents > 0)
    for row in conn.execution_options(yield_per=2000).execute(query):
        yield _payment(row), _payee(row)


# --- billing ----------------------------------------------------------------------------


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


# --- operator fees and returned fund calls ----------------------------------------------


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
