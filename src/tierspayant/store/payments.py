"""Reading and writing payment runs: remitted lines, payments, payees.

The claim lines a run pays are copied into ``payment_lines`` by one INSERT … SELECT per
provider (no line passes through Python), and that table's primary key is the line
itself: a line can be paid once, whatever reruns or concurrent workers do. Leases of
runs are in ``store/runs.py``, undue amounts and their recoveries in
``store/overpayments.py``, billing in ``store/billing.py``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import (
    Connection,
    String,
    and_,
    case,
    exists,
    func,
    insert,
    literal,
    or_,
    select,
    text,
)

from tierspayant.domain.claims import PAYABLE_LINE_STATES, ClaimStatus, LineStatus
from tierspayant.domain.payments import RecoveredUndue, RemittanceLine
from tierspayant.store.claims_tables import claim_lines, claims
from tierspayant.store.ledger_tables import (
    overpayment_recoveries,
    overpayments,
    payment_lines,
    payments,
)
from tierspayant.store.tables import insurers, providers

PAYABLE = tuple(sorted(s.value for s in PAYABLE_LINE_STATES))
UNREMITTED = tuple(s.value for s in (LineStatus.RECEIVED, LineStatus.CANCELLED, LineStatus.UNDUE))


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
) -> RemittedLines:
    """Copy the provider's remittable lines into this run; how many, and their paid
    cents by insurer."""
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
    return run_lines(conn, run_key, provider_id)


@dataclass(frozen=True, slots=True)
class RemittedLines:
    lines: int
    paid_by_insurer: dict[int, int]  # paid cents of the lines, by insurer (0s kept)

    @property
    def gross_cents(self) -> int:
        return sum(self.paid_by_insurer.values())


def run_lines(conn: Connection, run_key: str, provider_id: int) -> RemittedLines:
    """The provider's lines in a run: how many, and their paid cents by insurer."""
    rows = conn.execute(
        select(payment_lines.c.insurer_id, func.count(), func.sum(payment_lines.c.paid_cents))
        .where(payment_lines.c.run_key == run_key, payment_lines.c.provider_id == provider_id)
        .group_by(payment_lines.c.insurer_id)
    ).all()
    return RemittedLines(sum(int(r[1]) for r in rows), {int(r[0]): int(r[2]) for r in rows})


def payment_exists(conn: Connection, run_key: str, provider_id: int) -> bool:
    query = select(
        exists().where(payments.c.run_key == run_key, payments.c.provider_id == provider_id)
    )
    return bool(conn.execute(query).scalar())


@dataclass(frozen=True, slots=True)
class PaymentRow:
    run_key: str
    provider_id: int
    payment_date: date
    lines: int
    gross_cents: int
    recovered_cents: int
    net_cents: int
    reissued_cents: int = 0  # returned transfers paid again with this one

    @property
    def transfer_cents(self) -> int:
        """The credit transfer: the net payment and the returned transfers paid again."""
        return self.net_cents + self.reissued_cents


def _payment(row: object) -> PaymentRow:
    return PaymentRow(
        run_key=row.run_key,  # type: ignore[attr-defined]
        provider_id=int(row.provider_id),  # type: ignore[attr-defined]
        payment_date=row.payment_date,  # type: ignore[attr-defined]
        lines=int(row.lines),  # type: ignore[attr-defined]
        gross_cents=int(row.gross_cents),  # type: ignore[attr-defined]
        recovered_cents=int(row.recovered_cents),  # type: ignore[attr-defined]
        net_cents=int(row.net_cents),  # type: ignore[attr-defined]
        reissued_cents=int(row.reissued_cents),  # type: ignore[attr-defined]
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
            reissued_cents=row.reissued_cents,
            created_at=at,
        )
    )


def run_payments(conn: Connection, run_key: str) -> Iterator[PaymentRow]:
    """The payments of a run in provider order (one row per provider, streamed)."""
    query = select(payments).where(payments.c.run_key == run_key).order_by(payments.c.provider_id)
    for row in conn.execution_options(yield_per=2000).execute(query):
        yield _payment(row)


def run_totals(conn: Connection, run_key: str) -> tuple[int, int, int, int]:
    """(payments, transfers, gross cents, transferred cents) of a run.

    A transfer carries the net payment and the returned transfers paid again with it.
    """
    transfer = payments.c.net_cents + payments.c.reissued_cents
    row = conn.execute(
        select(
            func.count(),
            func.coalesce(func.sum(case((transfer > 0, 1), else_=0)), 0),
            func.coalesce(func.sum(payments.c.gross_cents), 0),
            func.coalesce(func.sum(transfer), 0),
        ).where(payments.c.run_key == run_key)
    ).one()
    return int(row[0]), int(row[1]), int(row[2]), int(row[3])


def run_transfer_count(conn: Connection, run_key: str, maximum: int) -> int:
    """How many SEPA transfers carry a run: one per paid provider, more for a transfer
    above ``maximum`` (split in parts of at most ``maximum``: ``(amount - 1) // maximum +
    1``). A transfer carries the net payment and the returned transfers paid again with
    it (as :func:`run_totals` counts it)."""
    transfer = payments.c.net_cents + payments.c.reissued_cents
    parts = (transfer - 1) // maximum + 1
    row = conn.execute(
        select(func.coalesce(func.sum(parts), 0)).where(payments.c.run_key == run_key, transfer > 0)
    ).one()
    return int(row[0])


def provider_payment(conn: Connection, provider_id: int, payment_date: date) -> PaymentRow | None:
    row = conn.execute(
        select(payments).where(
            payments.c.provider_id == provider_id, payments.c.payment_date == payment_date
        )
    ).first()
    return None if row is None else _payment(row)


@dataclass(frozen=True, slots=True)
class PaymentSearch:
    """Filters of a provider's payments: the period of payment dates, the amount of the
    credit transfer (net and reissued, in cents), the run (its payment date)."""

    since: date | None = None
    until: date | None = None
    transfer_cents: int | None = None
    run_date: date | None = None


def provider_payments(
    conn: Connection, provider_id: int, limit: int, search: PaymentSearch | None = None
) -> list[PaymentRow]:
    conditions = [payments.c.provider_id == provider_id]
    if search is not None:
        if search.since is not None:
            conditions.append(payments.c.payment_date >= search.since)
        if search.until is not None:
            conditions.append(payments.c.payment_date <= search.until)
        if search.run_date is not None:
            conditions.append(payments.c.payment_date == search.run_date)
        if search.transfer_cents is not None:
            transfer = payments.c.net_cents + payments.c.reissued_cents
            conditions.append(transfer == search.transfer_cents)
    rows = conn.execute(
        select(payments).where(*conditions).order_by(payments.c.payment_date.desc()).limit(limit)
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
        query = query.where(payments.c.net_cents + payments.c.reissued_cents > 0)
    for row in conn.execution_options(yield_per=2000).execute(query):
        yield _payment(row), _payee(row)
