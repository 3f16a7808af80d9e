"""Leases of the money runs (payment and billing), and what one kind of run must know
of the other: the payment runs still open in a period, whether a period is billed.

A run is one row of ``money_runs``; the worker holding its lease renews it while it
works and releases it at the end, so a crashed worker's run is taken over.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import Connection, exists, func, select, update

from tierspayant.store.ledger_tables import billing_statements, money_runs


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
    # The most one transfer of a payment run carries (the EPC maximum for billing runs).
    max_transfer_cents: int


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
        max_transfer_cents=int(row.max_transfer_cents),  # type: ignore[attr-defined]
    )


def find_run(conn: Connection, run_key: str, *, skip_locked: bool = False) -> Run | None:
    """The run, read under a row lock on PostgreSQL (skipped if another worker holds it)."""
    query = select(money_runs).where(money_runs.c.run_key == run_key)
    if conn.dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=skip_locked)
    row = conn.execute(query).first()
    return None if row is None else _run(row)


def read_run(conn: Connection, run_key: str) -> Run | None:
    """The run as last committed, without any row lock."""
    row = conn.execute(select(money_runs).where(money_runs.c.run_key == run_key)).first()
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
    max_transfer_cents: int | None = None,
) -> Run:
    """Record a new run, its lease held by ``owner``; ``max_transfer_cents`` the most one
    transfer of a payment run carries (None: the column's default, the EPC maximum)."""
    values: dict[str, object] = {}
    if max_transfer_cents is not None:
        values["max_transfer_cents"] = max_transfer_cents
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
            **values,
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
    """Whether the period is closed to payments: a billing run started for it or for a
    later period (billing goes in order, so an earlier month is never billed again), or
    it has statements (issued before runs were recorded)."""
    later_run = exists().where(money_runs.c.kind == "billing", money_runs.c.period >= period)
    statements = exists().where(billing_statements.c.period == period)
    return bool(conn.execute(select(later_run | statements)).scalar())


def run_status(conn: Connection, run_key: str) -> str | None:
    """The run's status (``open``, ``done``), or None if it never started; no row lock."""
    query = select(money_runs.c.status).where(money_runs.c.run_key == run_key)
    found = conn.execute(query).scalar()
    return None if found is None else str(found)


def last_billing_period(conn: Connection) -> str | None:
    """The latest period a billing run started for (finished or not), or None."""
    query = select(func.max(money_runs.c.period)).where(money_runs.c.kind == "billing")
    found = conn.execute(query).scalar()
    return None if found is None else str(found)


def last_done_payment_date(conn: Connection) -> date | None:
    """The execution date of the newest finished payment run, or None."""
    query = select(func.max(money_runs.c.run_date)).where(
        money_runs.c.kind == "payment", money_runs.c.status == "done"
    )
    found = conn.execute(query).scalar()
    return None if found is None else found
