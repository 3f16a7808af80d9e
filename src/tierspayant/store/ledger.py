"""Writing and reading the ledger. Postings are idempotent by ``(journal, reference)``."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import Connection, func, select

from tierspayant.domain.codes import LedgerCode
from tierspayant.domain.ledger import Entry, LedgerError, Posting
from tierspayant.store.ledger_tables import ledger_entries, ledger_postings


@dataclass(frozen=True, slots=True)
class Posted:
    id: int
    created: bool  # False when the same posting already existed


def post(
    conn: Connection, posting: Posting, *, at: datetime, insurer_id: int | None = None
) -> Posted:
    """Write ``posting`` in ``conn``'s transaction, once.

    A second call with the same journal and reference returns the first posting if its
    entries are identical, and raises ``ledger.reference_reused`` if they differ.
    """
    existing = conn.execute(
        select(ledger_postings.c.id).where(
            ledger_postings.c.journal == posting.journal,
            ledger_postings.c.reference == posting.reference,
        )
    ).scalar_one_or_none()
    if existing is not None:
        if entries_of(conn, int(existing)) != posting.entries:
            raise LedgerError(
                LedgerCode.REFERENCE_REUSED,
                f"posting {posting.journal}/{posting.reference} exists with other entries",
            )
        return Posted(int(existing), False)
    posting_id = conn.execute(
        ledger_postings.insert()
        .values(
            insurer_id=insurer_id,
            journal=posting.journal,
            reference=posting.reference,
            value_date=posting.value_date,
            posted_at=at,
            memo=posting.memo,
            total_cents=posting.total_debit,
        )
        .returning(ledger_postings.c.id)
    ).scalar_one()
    conn.execute(
        ledger_entries.insert(),
        [
            {
                "posting_id": posting_id,
                "line_no": n,
                "account": e.account,
                "debit_cents": e.debit,
                "credit_cents": e.credit,
            }
            for n, e in enumerate(posting.entries, start=1)
        ],
    )
    return Posted(int(posting_id), True)


def post_many(
    conn: Connection, postings: Iterable[Posting], *, at: datetime, insurer_id: int | None = None
) -> int:
    """Post each of ``postings``; return how many were new."""
    return sum(post(conn, p, at=at, insurer_id=insurer_id).created for p in postings)


def entries_of(conn: Connection, posting_id: int) -> tuple[Entry, ...]:
    rows = conn.execute(
        select(
            ledger_entries.c.account, ledger_entries.c.debit_cents, ledger_entries.c.credit_cents
        )
        .where(ledger_entries.c.posting_id == posting_id)
        .order_by(ledger_entries.c.line_no)
    )
    return tuple(
        Entry(r.account, debit=int(r.debit_cents), credit=int(r.credit_cents)) for r in rows
    )


def balance(conn: Connection, account_name: str, *, until: date | None = None) -> int:
    """Debits minus credits of one account (optionally up to a value date), in cents."""
    query = select(
        func.coalesce(func.sum(ledger_entries.c.debit_cents - ledger_entries.c.credit_cents), 0)
    ).where(ledger_entries.c.account == account_name)
    if until is not None:
        query = query.join(
            ledger_postings, ledger_postings.c.id == ledger_entries.c.posting_id
        ).where(ledger_postings.c.value_date <= until)
    return int(conn.execute(query).scalar_one())


def balances(conn: Connection, *, prefix: str = "") -> dict[str, int]:
    """Debits minus credits of every account (whose name starts with ``prefix``)."""
    query = select(
        ledger_entries.c.account,
        func.sum(ledger_entries.c.debit_cents - ledger_entries.c.credit_cents),
    ).group_by(ledger_entries.c.account)
    if prefix:
        query = query.where(ledger_entries.c.account.startswith(prefix, autoescape=True))
    return {str(a): int(b) for a, b in conn.execute(query)}


@dataclass(frozen=True, slots=True)
class LedgerCheck:
    postings: int
    entries: int
    unbalanced: tuple[int, ...]  # ids of postings whose entries do not balance
    mismatched_totals: tuple[int, ...]  # postings whose stored total differs from entries
    total_debit: int
    total_credit: int

    @property
    def ok(self) -> bool:
        return (
            not self.unbalanced
            and not self.mismatched_totals
            and self.total_debit == self.total_credit
        )


def check(conn: Connection) -> LedgerCheck:
    """Prove every posting balances and the whole ledger sums to zero."""
    per_posting = (
        select(
            ledger_entries.c.posting_id.label("pid"),
            func.sum(ledger_entries.c.debit_cents).label("d"),
            func.sum(ledger_entries.c.credit_cents).label("c"),
            func.count().label("n"),
        )
        .group_by(ledger_entries.c.posting_id)
        .subquery()
    )
    rows = conn.execute(
        select(
            ledger_postings.c.id, ledger_postings.c.total_cents, per_posting.c.d, per_posting.c.c,
            per_posting.c.n,
        ).outerjoin(per_posting, per_posting.c.pid == ledger_postings.c.id)
    ).all()  # fmt: skip
    unbalanced = tuple(int(r.id) for r in rows if r.d is None or r.n < 2 or int(r.d) != int(r.c))
    mismatched = tuple(
        int(r.id) for r in rows if r.d is not None and int(r.d) != int(r.total_cents)
    )
    totals = conn.execute(
        select(
            func.coalesce(func.sum(ledger_entries.c.debit_cents), 0),
            func.coalesce(func.sum(ledger_entries.c.credit_cents), 0),
            func.count(),
        )
    ).one()
    return LedgerCheck(
        postings=len(rows),
        entries=int(totals[2]),
        unbalanced=unbalanced,
        mismatched_totals=mismatched,
        total_debit=int(totals[0]),
        total_credit=int(totals[1]),
    )


def journal_totals(conn: Connection) -> dict[str, int]:
    """Total moved (debit side) per journal, in cents."""
    query = select(ledger_postings.c.journal, func.sum(ledger_postings.c.total_cents)).group_by(
        ledger_postings.c.journal
    )
    return {str(j): int(t) for j, t in conn.execute(query)}


def signed_journal_total(conn: Connection, journal: str, account_name: str) -> int:
    """Debits minus credits of one account over one journal's postings."""
    query = (
        select(
            func.coalesce(func.sum(ledger_entries.c.debit_cents - ledger_entries.c.credit_cents), 0)
        )
        .join(ledger_postings, ledger_postings.c.id == ledger_entries.c.posting_id)
        .where(ledger_postings.c.journal == journal, ledger_entries.c.account == account_name)
    )
    return int(conn.execute(query).scalar_one())
