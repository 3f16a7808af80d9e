"""Returned credit transfers to providers, and the payment runs that paid them again."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import Connection, exists, func, select, update

from tierspayant.store.bank_tables import provider_transfer_returns
from tierspayant.store.ledger_tables import money_runs, payment_lines, payments


@dataclass(frozen=True, slots=True)
class TransferReturn:
    end_to_end_id: str
    provider_id: int
    run_key: str
    cents: int
    reason_code: str
    report_id: str
    value_date: date
    account_version: int
    recorded_at: datetime
    reissue_run_key: str | None


def _return(row: object) -> TransferReturn:
    return TransferReturn(
        end_to_end_id=row.end_to_end_id,  # type: ignore[attr-defined]
        provider_id=int(row.provider_id),  # type: ignore[attr-defined]
        run_key=row.run_key,  # type: ignore[attr-defined]
        cents=int(row.cents),  # type: ignore[attr-defined]
        reason_code=row.reason_code,  # type: ignore[attr-defined]
        report_id=row.report_id,  # type: ignore[attr-defined]
        value_date=row.value_date,  # type: ignore[attr-defined]
        account_version=int(row.account_version),  # type: ignore[attr-defined]
        recorded_at=row.recorded_at,  # type: ignore[attr-defined]
        reissue_run_key=row.reissue_run_key,  # type: ignore[attr-defined]
    )


@dataclass(frozen=True, slots=True)
class SentTransfer:
    """A provider's credit transfer in a payment run, as the pain.001 carried it."""

    run_key: str
    provider_id: int
    payment_date: date
    cents: int
    created_at: datetime
    max_transfer_cents: int  # its run's maximum of one transfer: above it, sent in parts


def sent_transfer(
    conn: Connection, provider_id: int, payment_date: date, *, lock: bool = False
) -> SentTransfer | None:
    """The transfer a run of ``payment_date`` sent the provider, with the maximum of one
    transfer that run used, or None (none sent); ``lock``: the payment row, on PostgreSQL
    (not the run's, which its lease holder updates)."""
    query = (
        select(payments, money_runs.c.max_transfer_cents)
        .join(money_runs, money_runs.c.run_key == payments.c.run_key)
        .where(payments.c.provider_id == provider_id, payments.c.payment_date == payment_date)
    )
    if lock and conn.dialect.name == "postgresql":
        query = query.with_for_update(of=payments)
    row = conn.execute(query).first()
    if row is None or int(row.net_cents) + int(row.reissued_cents) <= 0:
        return None
    return SentTransfer(
        row.run_key, int(row.provider_id), row.payment_date,
        int(row.net_cents) + int(row.reissued_cents), row.created_at,
        int(row.max_transfer_cents),
    )  # fmt: skip


def return_of(conn: Connection, end_to_end_id: str) -> TransferReturn | None:
    row = conn.execute(
        select(provider_transfer_returns).where(
            provider_transfer_returns.c.end_to_end_id == end_to_end_id
        )
    ).first()
    return None if row is None else _return(row)


def insert_return(conn: Connection, row: TransferReturn, actor: str) -> None:
    conn.execute(
        provider_transfer_returns.insert().values(
            end_to_end_id=row.end_to_end_id,
            provider_id=row.provider_id,
            run_key=row.run_key,
            cents=row.cents,
            reason_code=row.reason_code,
            report_id=row.report_id,
            value_date=row.value_date,
            account_version=row.account_version,
            recorded_at=row.recorded_at,
            recorded_by=actor,
        )
    )


def open_returns(conn: Connection, provider_id: int) -> list[TransferReturn]:
    """The provider's returned transfers not yet paid again, oldest first."""
    rows = conn.execute(
        select(provider_transfer_returns)
        .where(
            provider_transfer_returns.c.provider_id == provider_id,
            provider_transfer_returns.c.reissue_run_key.is_(None),
        )
        .order_by(provider_transfer_returns.c.end_to_end_id)
    )
    return [_return(r) for r in rows]


def providers_with_open_returns(conn: Connection) -> list[int]:
    """Providers with a returned transfer not yet paid again (a handful)."""
    query = (
        select(provider_transfer_returns.c.provider_id)
        .where(provider_transfer_returns.c.reissue_run_key.is_(None))
        .distinct()
        .order_by(provider_transfer_returns.c.provider_id)
    )
    return [int(p) for p in conn.execute(query).scalars()]


def mark_reissued(conn: Connection, end_to_end_ids: list[str], run_key: str) -> None:
    conn.execute(
        update(provider_transfer_returns)
        .where(
            provider_transfer_returns.c.end_to_end_id.in_(end_to_end_ids),
            provider_transfer_returns.c.reissue_run_key.is_(None),
        )
        .values(reissue_run_key=run_key)
    )


def returns_of_provider(
    conn: Connection, provider_id: int, limit: int = 50
) -> list[TransferReturn]:
    """The provider's returned transfers, newest first."""
    rows = conn.execute(
        select(provider_transfer_returns)
        .where(provider_transfer_returns.c.provider_id == provider_id)
        .order_by(
            provider_transfer_returns.c.value_date.desc(), provider_transfer_returns.c.end_to_end_id
        )
        .limit(limit)
    )
    return [_return(r) for r in rows]


def returns_touching_insurer(
    conn: Connection, insurer_id: int, limit: int = 50
) -> list[TransferReturn]:
    """Returned transfers that carried lines of this insurer, newest first."""
    carried = exists().where(
        payment_lines.c.run_key == provider_transfer_returns.c.run_key,
        payment_lines.c.provider_id == provider_transfer_returns.c.provider_id,
        payment_lines.c.insurer_id == insurer_id,
    )
    rows = conn.execute(
        select(provider_transfer_returns)
        .where(carried)
        .order_by(
            provider_transfer_returns.c.value_date.desc(),
            provider_transfer_returns.c.end_to_end_id,
        )
        .limit(limit)
    )
    return [_return(r) for r in rows]


@dataclass(frozen=True, slots=True)
class ReturnTotals:
    returned_cents: int  # every recorded return
    reissued_cents: int  # recorded returns paid again
    payments_reissued_cents: int  # reissued amounts of payments


def totals(conn: Connection) -> ReturnTotals:
    """Sums for ``ledger check``."""
    returned = conn.execute(
        select(func.coalesce(func.sum(provider_transfer_returns.c.cents), 0))
    ).scalar_one()
    reissued = conn.execute(
        select(func.coalesce(func.sum(provider_transfer_returns.c.cents), 0)).where(
            provider_transfer_returns.c.reissue_run_key.is_not(None)
        )
    ).scalar_one()
    in_payments = conn.execute(
        select(func.coalesce(func.sum(payments.c.reissued_cents), 0))
    ).scalar_one()
    return ReturnTotals(int(returned), int(reissued), int(in_payments))
