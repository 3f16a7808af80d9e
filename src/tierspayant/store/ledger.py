"""Writing and reading the ledger. Every posting belongs to one insurer and is idempotent
by ``(insurer_id, journal, reference)``."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Final

from sqlalchemy import ColumnElement, Connection, func, select

from tierspayant.domain.codes import LedgerCode
from tierspayant.domain.ledger import BANK, Entry, LedgerError, Posting
from tierspayant.store.bulk import bound, copy_in, is_postgres, stage
from tierspayant.store.claims_tables import claims
from tierspayant.store.ledger_tables import (
    billing_statements,
    fund_call_returns,
    ledger_entries,
    ledger_postings,
    overpayment_recoveries,
    overpayments,
    payment_lines,
    payments,
)
from tierspayant.store.tables import insurers


@dataclass(frozen=True, slots=True)
class Posted:
    id: int
    created: bool  # False when the same posting already existed


def post(conn: Connection, posting: Posting, *, at: datetime, insurer_id: int) -> Posted:
    """Write ``posting`` in ``conn``'s transaction, once, in the books of ``insurer_id``.

    A second call with the same insurer, journal and reference returns the first posting
    if its entries are identical, and raises ``ledger.reference_reused`` if they differ.
    """
    existing = conn.execute(
        select(ledger_postings.c.id).where(
            ledger_postings.c.insurer_id == insurer_id,
            ledger_postings.c.journal == posting.journal,
            ledger_postings.c.reference == posting.reference,
        )
    ).scalar_one_or_none()
    if existing is not None:
        if entries_of(conn, insurer_id, int(existing)) != posting.entries:
            raise LedgerError(
                LedgerCode.REFERENCE_REUSED,
                f"posting {posting.journal}/{posting.reference} of insurer {insurer_id} "
                "exists with other entries",
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
                "insurer_id": insurer_id,
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


def entries_of(conn: Connection, insurer_id: int, posting_id: int) -> tuple[Entry, ...]:
    rows = conn.execute(
        select(
            ledger_entries.c.account, ledger_entries.c.debit_cents, ledger_entries.c.credit_cents
        )
        .where(ledger_entries.c.insurer_id == insurer_id, ledger_entries.c.posting_id == posting_id)
        .order_by(ledger_entries.c.line_no)
    )
    return tuple(
        Entry(r.account, debit=int(r.debit_cents), credit=int(r.credit_cents)) for r in rows
    )


def _posting_of_entry() -> ColumnElement[bool]:
    """The join of an entry to its posting: same insurer (the partition), same id."""
    return (ledger_postings.c.insurer_id == ledger_entries.c.insurer_id) & (
        ledger_postings.c.id == ledger_entries.c.posting_id
    )


def balance(conn: Connection, account_name: str, *, until: date | None = None) -> int:
    """Debits minus credits of one account (optionally up to a value date), in cents."""
    query = select(
        func.coalesce(func.sum(ledger_entries.c.debit_cents - ledger_entries.c.credit_cents), 0)
    ).where(ledger_entries.c.account == account_name)
    if until is not None:
        query = query.join(ledger_postings, _posting_of_entry()).where(
            ledger_postings.c.value_date <= until
        )
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
    # Insurers whose own postings do not sum to zero, and entries that belong to no
    # posting of their insurer (an entry filed in another insurer's books).
    unbalanced_insurers: tuple[int, ...] = ()
    stray_entries: int = 0

    @property
    def ok(self) -> bool:
        return (
            not self.unbalanced
            and not self.mismatched_totals
            and self.total_debit == self.total_credit
            and not self.unbalanced_insurers
            and not self.stray_entries
        )


def check(conn: Connection) -> LedgerCheck:
    """Prove every posting balances, every insurer's postings balance, and the whole
    ledger sums to zero."""
    per_posting = (
        select(
            ledger_entries.c.insurer_id.label("iid"),
            ledger_entries.c.posting_id.label("pid"),
            func.sum(ledger_entries.c.debit_cents).label("d"),
            func.sum(ledger_entries.c.credit_cents).label("c"),
            func.count().label("n"),
        )
        .group_by(ledger_entries.c.insurer_id, ledger_entries.c.posting_id)
        .subquery()
    )
    rows = conn.execute(
        select(
            ledger_postings.c.id, ledger_postings.c.total_cents, per_posting.c.d, per_posting.c.c,
            per_posting.c.n,
        ).outerjoin(
            per_posting,
            (per_posting.c.iid == ledger_postings.c.insurer_id)
            & (per_posting.c.pid == ledger_postings.c.id),
        )
    ).all()  # fmt: skip
    unbalanced = tuple(int(r.id) for r in rows if r.d is None or r.n < 2 or int(r.d) != int(r.c))
    mismatched = tuple(
        int(r.id) for r in rows if r.d is not None and int(r.d) != int(r.total_cents)
    )
    per_insurer = conn.execute(
        select(
            ledger_entries.c.insurer_id,
            func.sum(ledger_entries.c.debit_cents),
            func.sum(ledger_entries.c.credit_cents),
        ).group_by(ledger_entries.c.insurer_id)
    ).all()
    unbalanced_insurers = tuple(sorted(int(i) for i, d, c in per_insurer if int(d) != int(c)))
    stray = conn.execute(
        select(func.count())
        .select_from(ledger_entries.outerjoin(ledger_postings, _posting_of_entry()))
        .where(ledger_postings.c.id.is_(None))
    ).scalar_one()
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
        unbalanced_insurers=unbalanced_insurers,
        stray_entries=int(stray),
    )


def bank_shares(
    conn: Connection, journals: Sequence[str], references: Sequence[str]
) -> dict[int, int]:
    """What the postings of ``journals`` with ``references`` took out of the operator's
    bank account, per insurer (credits minus debits, in cents; negative: put in).

    How a provider's netted transfer splits by insurer: its payment and reissue shares.
    """
    if not references:
        return {}
    query = (
        select(
            ledger_entries.c.insurer_id,
            func.sum(ledger_entries.c.credit_cents - ledger_entries.c.debit_cents),
        )
        .join(ledger_postings, _posting_of_entry())
        .where(
            ledger_postings.c.journal.in_(journals),
            ledger_postings.c.reference.in_(references),
            ledger_entries.c.account == BANK,
        )
        .group_by(ledger_entries.c.insurer_id)
    )
    return {int(i): int(c) for i, c in conn.execute(query) if int(c)}


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
        .join(ledger_postings, _posting_of_entry())
        .where(ledger_postings.c.journal == journal, ledger_entries.c.account == account_name)
    )
    return int(conn.execute(query).scalar_one())


@dataclass(frozen=True, slots=True)
class RecordTotals:
    """What the records other than the ledger say, summed, for ``ledger check``."""

    claims_accepted_cents: int  # accepted AMC totals of claims
    remitted_gross_cents: int  # remittances, before deductions
    remitted_net_cents: int  # remittances, as transferred
    recovered_cents: int  # undue deducted on remittances
    paid_line_cents: int  # paid lines of remittances
    undue_cents: int  # undue records
    undue_recovered_cents: int  # undue recovered, per item
    called_cents: int  # fund calls of statements
    fee_cents: int  # operator fees of statements
    returned_cents: int  # recorded returns of fund calls
    returned_calls_cents: int  # amounts due of the statements whose fund call was returned


def _sum(conn: Connection, column: ColumnElement[Any]) -> int:
    return int(conn.execute(select(func.coalesce(func.sum(column), 0))).scalar_one())


def _returned_calls(conn: Connection) -> int:
    """The amounts due of the statements whose fund call was returned."""
    query = select(func.coalesce(func.sum(billing_statements.c.due_cents), 0)).select_from(
        fund_call_returns.join(
            billing_statements,
            (billing_statements.c.insurer_id == fund_call_returns.c.insurer_id)
            & (billing_statements.c.period == fund_call_returns.c.period),
        )
    )
    return int(conn.execute(query).scalar_one())


def record_totals(conn: Connection) -> RecordTotals:
    """The sums of the claims, remittances, undue records and statements, one query each."""
    return RecordTotals(
        claims_accepted_cents=_sum(conn, claims.c.amc_accepted_cents),
        remitted_gross_cents=_sum(conn, payments.c.gross_cents),
        remitted_net_cents=_sum(conn, payments.c.net_cents),
        recovered_cents=_sum(conn, payments.c.recovered_cents),
        paid_line_cents=_sum(conn, payment_lines.c.paid_cents),
        undue_cents=_sum(conn, overpayments.c.cents),
        undue_recovered_cents=_sum(conn, overpayment_recoveries.c.cents),
        called_cents=_sum(conn, billing_statements.c.due_cents),
        fee_cents=_sum(conn, billing_statements.c.fee_cents),
        returned_cents=_sum(conn, fund_call_returns.c.cents),
        returned_calls_cents=_returned_calls(conn),
    )


def amc_number(conn: Connection, insurer_id: int) -> str:
    """The AMC number that names an insurer's ledger accounts."""
    query = select(insurers.c.amc_number).where(insurers.c.id == insurer_id)
    return str(conn.execute(query).scalar_one())


# Bulk postings (adjudication: one posting per claim judged) are written through the
# driver's own executemany (SQLite) or COPY (PostgreSQL), as the decisions are.
_ENTRY_INSERT = (
    "INSERT INTO ledger_entries"
    " (insurer_id, posting_id, line_no, account, debit_cents, credit_cents)"
    " VALUES (?, ?, ?, ?, ?, ?)"
)
_ENTRIES_COPY = (
    "COPY ledger_entries (insurer_id, posting_id, line_no, account, debit_cents, credit_cents)"
    " FROM STDIN (FORMAT BINARY)"
)
_ENTRIES_TYPES: Final = ["int4", "int8", "int2", "text", "int8", "int8"]
_POSTINGS_STAGE: Final = (
    "ledger_postings_stage",
    "n int, journal text, reference text, value_date date, memo text, total bigint",
)
_POSTINGS_STAGE_COPY = (
    "COPY ledger_postings_stage (n, journal, reference, value_date, memo, total)"
    " FROM STDIN (FORMAT BINARY)"
)
_POSTINGS_STAGE_TYPES: Final = ["int4", "text", "text", "date", "text", "int8"]
# Rows that conflict with a posting already made are skipped, not returned: the caller
# compares them with what exists. ``n`` maps the ids back to the postings.
_POSTING_INSERT_PG = (
    "INSERT INTO ledger_postings"
    " (insurer_id, journal, reference, value_date, posted_at, memo, total_cents)"
    " SELECT %s, journal, reference, value_date, %s, memo, total"
    " FROM ledger_postings_stage ORDER BY n"
    " ON CONFLICT (insurer_id, journal, reference) DO NOTHING RETURNING id, journal, reference"
)
_POSTING_COLUMNS = "insurer_id, journal, reference, value_date, posted_at, memo, total_cents"
_POSTINGS_PER_STATEMENT = 1000  # 7 parameters each: far below SQLite's 32,766


def _insert_postings(
    conn: Connection, postings: Sequence[Posting], at: datetime, insurer_id: int
) -> dict[tuple[str, str], int]:
    """Insert the posting headers not made yet, in one statement (PostgreSQL) or one per
    thousand (SQLite); the ids of those inserted, by (journal, reference)."""
    if is_postgres(conn):
        stage(conn, *_POSTINGS_STAGE)
        copy_in(
            conn,
            _POSTINGS_STAGE_COPY,
            _POSTINGS_STAGE_TYPES,
            (
                (n, p.journal, p.reference, p.value_date, p.memo, p.total_debit)
                for n, p in enumerate(postings)
            ),
        )
        made = conn.exec_driver_sql(_POSTING_INSERT_PG, (insurer_id, at)).all()
        return {(str(r[1]), str(r[2])): int(r[0]) for r in made}
    day = ledger_postings.c.value_date.type.bind_processor(conn.dialect)
    posted_at = bound(conn, ledger_postings.c.posted_at, at)
    inserted: dict[tuple[str, str], int] = {}
    for start in range(0, len(postings), _POSTINGS_PER_STATEMENT):
        chunk = postings[start : start + _POSTINGS_PER_STATEMENT]
        values = ", ".join("(?, ?, ?, ?, ?, ?, ?)" for _ in chunk)
        statement = (
            f"INSERT INTO ledger_postings ({_POSTING_COLUMNS}) VALUES {values}"  # noqa: S608
            " ON CONFLICT (insurer_id, journal, reference) DO NOTHING"
            " RETURNING id, journal, reference"
        )
        parameters = tuple(
            value
            for p in chunk
            for value in (
                insurer_id,
                p.journal,
                p.reference,
                p.value_date if day is None else day(p.value_date),
                posted_at,
                p.memo,
                p.total_debit,
            )
        )
        for r in conn.exec_driver_sql(statement, parameters).all():
            inserted[(str(r[1]), str(r[2]))] = int(r[0])
    return inserted


def post_bulk(
    conn: Connection, postings: Sequence[Posting], *, at: datetime, insurer_id: int
) -> int:
    """:func:`tierspayant.store.ledger.post` for many postings at once; returns how many
    were new.

    Same rules: idempotent by ``(insurer_id, journal, reference)``, and a reference already posted
    with other entries is ``ledger.reference_reused``. The headers are inserted skipping
    those that exist (``ON CONFLICT DO NOTHING``), so no query looks for them first; only
    the skipped ones, if any, are compared with what is stored.
    """
    if not postings:
        return 0
    seen: set[tuple[str, str]] = set()
    for p in postings:
        key = (p.journal, p.reference)
        if key in seen:
            raise LedgerError(
                LedgerCode.REFERENCE_REUSED, f"posting {p.journal}/{p.reference} given twice"
            )
        seen.add(key)
    inserted = _insert_postings(conn, postings, at, insurer_id)
    for p in postings:
        if (p.journal, p.reference) not in inserted:
            posted = conn.execute(
                select(ledger_postings.c.id).where(
                    ledger_postings.c.insurer_id == insurer_id,
                    ledger_postings.c.journal == p.journal,
                    ledger_postings.c.reference == p.reference,
                )
            ).scalar_one()
            if entries_of(conn, insurer_id, int(posted)) != p.entries:
                raise LedgerError(
                    LedgerCode.REFERENCE_REUSED,
                    f"posting {p.journal}/{p.reference} exists with other entries",
                )
    entries = [
        (insurer_id, inserted[(p.journal, p.reference)], n, e.account, e.debit, e.credit)
        for p in postings
        if (p.journal, p.reference) in inserted
        for n, e in enumerate(p.entries, start=1)
    ]
    if entries:
        if is_postgres(conn):
            copy_in(conn, _ENTRIES_COPY, _ENTRIES_TYPES, entries)
        else:
            conn.exec_driver_sql(_ENTRY_INSERT, entries)
    return len(inserted)
