"""The ledger by insurer: every posting belongs to one insurer, its entries carry the
insurer, the idempotency key is ``(insurer_id, journal, reference)``, and on PostgreSQL
both tables are hash-partitioned by ``insurer_id`` (16 partitions, like migration 0018;
docs/decisions/0010-partitioning.md).

Until now a payment run posted one payment, recovery and reissue per provider, netting
every insurer's lines, and a returned transfer one posting: those postings had no
insurer. They are split here as the payment run now posts them (services/payments.py):

- recovery: per insurer, the undue items of that insurer recovered in the run
  (``overpayment_recoveries``);
- payment: per insurer, its lines paid in the run (``payment_lines``) less its recovery,
  negative (the other way round) when more of its undue was recovered than its lines;
- reissue: per insurer, its shares of the returns paid again;
- transfer return: per insurer, its shares of the transfer returned (payment + reissue).

The split is checked against the postings it replaces (same amount per journal and
reference, signed on the bank account); a posting without an insurer that these records
cannot explain stops the migration with a message naming it. Other postings without an
insurer (none written by this code) take the insurer their reference names, or stop it.

The downgrade merges the shares of each such movement back into one posting without an
insurer (the accounts netted; a movement whose shares cancel out leaves no posting, as the
old payment run did not post a zero transfer). The rows are moved with INSERT … SELECT;
time the migration on a copy of production (one transaction).

SQLite keeps plain tables (a single ``id`` key on postings, autoincremented) with the same
columns and unique key.

Revision ID: 0020
Revises: 0019
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime
from typing import Any, NamedTuple

import sqlalchemy as sa
from alembic import op

from tierspayant.domain import accounting
from tierspayant.domain.ledger import Posting
from tierspayant.domain.payments import insurer_shares
from tierspayant.store.partitions import (
    HASH_PARTITIONS,
    hash_partition_name,
    name_partition_indexes,
)

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None

TABLES = ("ledger_postings", "ledger_entries")
OLD = "__before_0020"
# The journals whose postings netted several insurers (one posting per provider).
SPLIT = ("recovery", "payment", "payment.reissue", "payment.return")
SHARE_NOTE = " (undue recovered for this insurer beyond its lines)"

_PG_POSTINGS = """
CREATE TABLE ledger_postings (
  id bigint NOT NULL DEFAULT nextval('ledger_postings_id_seq'::regclass),
  insurer_id integer NOT NULL,
  journal varchar(40) NOT NULL,
  reference varchar(120) NOT NULL,
  value_date date NOT NULL,
  posted_at timestamp with time zone NOT NULL,
  memo text NOT NULL DEFAULT '',
  total_cents bigint NOT NULL,
  CONSTRAINT pk_ledger_postings PRIMARY KEY (insurer_id, id),
  CONSTRAINT uq_ledger_postings_insurer_journal_reference
    UNIQUE (insurer_id, journal, reference)
) PARTITION BY HASH (insurer_id)
"""
_PG_ENTRIES = """
CREATE TABLE ledger_entries (
  insurer_id integer NOT NULL,
  posting_id bigint NOT NULL,
  line_no smallint NOT NULL,
  account varchar(80) NOT NULL,
  debit_cents bigint NOT NULL,
  credit_cents bigint NOT NULL,
  CONSTRAINT pk_ledger_entries PRIMARY KEY (insurer_id, posting_id, line_no),
  CONSTRAINT ck_ledger_entries_one_side CHECK
    (debit_cents >= 0 AND credit_cents >= 0 AND (debit_cents = 0) <> (credit_cents = 0))
) PARTITION BY HASH (insurer_id)
"""
_ONE_SIDE = "debit_cents >= 0 AND credit_cents >= 0 AND (debit_cents = 0) <> (credit_cents = 0)"
_PG_FUNCTION = """
CREATE OR REPLACE FUNCTION tierspayant_ledger_append_only() RETURNS trigger AS $$
BEGIN
  RAISE EXCEPTION '% is append-only (% refused)', TG_TABLE_NAME, TG_OP
    USING ERRCODE = 'insufficient_privilege';
END;
$$ LANGUAGE plpgsql
"""


def _pg() -> bool:
    return bool(op.get_bind().dialect.name == "postgresql")


def _rows(sql: str, **params: object) -> list[Any]:
    return list(op.get_bind().execute(sa.text(sql), params).all())


# --- append-only triggers (migration 0005) ----------------------------------------------


def _drop_triggers(table: str) -> None:
    if _pg():
        op.execute(f"DROP TRIGGER IF EXISTS {table}_append_only ON {table}")
        op.execute(f"DROP TRIGGER IF EXISTS {table}_no_truncate ON {table}")
    else:
        op.execute(f"DROP TRIGGER IF EXISTS {table}_no_update")
        op.execute(f"DROP TRIGGER IF EXISTS {table}_no_delete")


def _create_triggers(table: str) -> None:
    if _pg():
        op.execute(_PG_FUNCTION)
        op.execute(
            f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
            "FOR EACH ROW EXECUTE FUNCTION tierspayant_ledger_append_only()"
        )
        op.execute(
            f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
            "FOR EACH STATEMENT EXECUTE FUNCTION tierspayant_ledger_append_only()"
        )
    else:
        for verb in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER {table}_no_{verb.lower()} BEFORE {verb} ON {table} "
                f"BEGIN SELECT RAISE(ABORT, '{table} is append-only'); END"
            )


def _set_aside() -> None:
    """Rename the current tables (and, on PostgreSQL, their schema-wide index names) so
    that the new ones take their names; the id sequence is kept for the new postings."""
    names = _rows(
        "SELECT indexname FROM pg_indexes WHERE schemaname = 'public' AND tablename = ANY(:t)",
        t=list(TABLES),
    ) if _pg() else _rows(
        "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name IN"
        " ('ledger_postings', 'ledger_entries') AND sql IS NOT NULL"
    )  # fmt: skip
    for table in TABLES:
        _drop_triggers(table)
    if _pg():
        for (name,) in names:
            op.execute(f'ALTER INDEX "{name}" RENAME TO "{name}{OLD}"')
        op.execute("ALTER SEQUENCE ledger_postings_id_seq OWNED BY NONE")
    else:
        for (name,) in names:
            op.execute(f'DROP INDEX "{name}"')
    for table in TABLES:
        op.execute(f"ALTER TABLE {table} RENAME TO {table}{OLD}")


def _finish() -> None:
    for table in TABLES:
        op.execute(f"DROP TABLE {table}{OLD}")
        _create_triggers(table)
    if _pg():
        op.execute("ALTER SEQUENCE ledger_postings_id_seq OWNED BY ledger_postings.id")
        for table in TABLES:
            name_partition_indexes(op.get_bind(), table)


def _create_partitioned() -> None:
    for ddl, table in ((_PG_POSTINGS, "ledger_postings"), (_PG_ENTRIES, "ledger_entries")):
        op.execute(ddl)
        for remainder in range(HASH_PARTITIONS):
            op.execute(
                f"CREATE TABLE {hash_partition_name(table, remainder)} PARTITION OF {table}"
                f" FOR VALUES WITH (MODULUS {HASH_PARTITIONS}, REMAINDER {remainder})"
            )
    op.execute(
        "CREATE INDEX ix_ledger_postings_insurer_date ON ledger_postings (insurer_id, value_date)"
    )
    op.execute("CREATE INDEX ix_ledger_entries_account ON ledger_entries (account)")


def _create_plain(by_insurer: bool) -> None:
    """SQLite (both ways), and PostgreSQL's downgrade (``by_insurer`` False)."""
    op.create_table(
        "ledger_postings",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            # PostgreSQL: the sequence kept from the table set aside, not a new serial.
            autoincrement=not _pg(),
            nullable=False,
            server_default=sa.text("nextval('ledger_postings_id_seq'::regclass)")
            if _pg()
            else None,
        ),
        sa.Column("insurer_id", sa.Integer(), nullable=not by_insurer),
        sa.Column("journal", sa.String(length=40), nullable=False),
        sa.Column("reference", sa.String(length=120), nullable=False),
        sa.Column("value_date", sa.Date(), nullable=False),
        sa.Column("posted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("memo", sa.Text(), server_default="", nullable=False),
        sa.Column("total_cents", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_ledger_postings"),
        sa.UniqueConstraint(
            "insurer_id",
            "journal",
            "reference",
            name="uq_ledger_postings_insurer_journal_reference",
        )
        if by_insurer
        else sa.UniqueConstraint(
            "journal", "reference", name="uq_ledger_postings_journal_reference"
        ),
    )
    op.create_index(
        "ix_ledger_postings_insurer_date", "ledger_postings", ["insurer_id", "value_date"]
    )
    entry_key = ("insurer_id", "posting_id", "line_no") if by_insurer else ("posting_id", "line_no")
    op.create_table(
        "ledger_entries",
        *([sa.Column("insurer_id", sa.Integer(), nullable=False)] if by_insurer else []),
        sa.Column("posting_id", sa.BigInteger(), nullable=False),
        sa.Column("line_no", sa.SmallInteger(), nullable=False),
        sa.Column("account", sa.String(length=80), nullable=False),
        sa.Column("debit_cents", sa.BigInteger(), nullable=False),
        sa.Column("credit_cents", sa.BigInteger(), nullable=False),
        sa.CheckConstraint(_ONE_SIDE, name="ck_ledger_entries_one_side"),
        sa.PrimaryKeyConstraint(*entry_key, name="pk_ledger_entries"),
    )
    op.create_index("ix_ledger_entries_account", "ledger_entries", ["account"])


# --- the split ----------------------------------------------------------------------------


class _Old(NamedTuple):  # not a dataclass: Alembic loads this module outside sys.modules
    id: int
    insurer_id: int | None
    journal: str
    reference: str
    value_date: date
    posted_at: datetime
    memo: str
    total_cents: int


_POSTING_COLUMNS = "id, insurer_id, journal, reference, value_date, posted_at, memo, total_cents"


def _old_postings(where: str, suffix: str = OLD, **params: object) -> list[_Old]:
    query = f"SELECT {_POSTING_COLUMNS} FROM ledger_postings{suffix} WHERE {where}"  # noqa: S608
    return [
        _Old(int(r[0]), None if r[1] is None else int(r[1]), str(r[2]), str(r[3]), r[4], r[5],
             str(r[6]), int(r[7]))
        for r in _rows(query, **params)
    ]  # fmt: skip


def _old_entries(posting_id: int, suffix: str = OLD) -> list[tuple[str, int, int]]:
    return [
        (str(a), int(d), int(c))
        for a, d, c in _rows(
            f"SELECT account, debit_cents, credit_cents FROM ledger_entries{suffix}"  # noqa: S608
            " WHERE posting_id = :p ORDER BY line_no",
            p=posting_id,
        )
    ]


def _bank_out(entries: list[tuple[str, int, int]]) -> int:
    """Cents out of the operator's bank account (credits minus debits)."""
    return sum(c - d for a, d, c in entries if a == "bank:operator")


def _by_insurer(sql: str, **params: object) -> dict[int, int]:
    return {int(i): int(c) for i, c in _rows(sql, **params) if int(c)}


class _Shares:
    """Each insurer's share of a provider's payment, recovery, reissue and returns, from
    the records of the runs (memoised: a return's shares are its transfer's)."""

    def __init__(self) -> None:
        self._transfers: dict[tuple[str, int], dict[int, int]] = {}

    def recovered(self, run_key: str, provider_id: int) -> dict[int, int]:
        return _by_insurer(
            "SELECT insurer_id, sum(cents) FROM overpayment_recoveries"
            " WHERE run_key = :r AND provider_id = :p GROUP BY insurer_id",
            r=run_key,
            p=provider_id,
        )

    def payment(self, run_key: str, provider_id: int) -> dict[int, int]:
        paid = _by_insurer(
            "SELECT insurer_id, sum(paid_cents) FROM payment_lines"
            " WHERE run_key = :r AND provider_id = :p GROUP BY insurer_id",
            r=run_key,
            p=provider_id,
        )
        recovered = [((i, 0, 0), c) for i, c in self.recovered(run_key, provider_id).items()]
        return insurer_shares(paid, recovered)

    def reissue(self, run_key: str, provider_id: int) -> dict[int, int]:
        total: dict[int, int] = {}
        for (e2e,) in _rows(
            "SELECT end_to_end_id FROM provider_transfer_returns"
            " WHERE reissue_run_key = :r AND provider_id = :p ORDER BY end_to_end_id",
            r=run_key,
            p=provider_id,
        ):
            for insurer_id, cents in self.returned(str(e2e)).items():
                total[insurer_id] = total.get(insurer_id, 0) + cents
        return {i: c for i, c in sorted(total.items()) if c}

    def transfer(self, run_key: str, provider_id: int) -> dict[int, int]:
        key = (run_key, provider_id)
        if key not in self._transfers:
            total = dict(self.payment(run_key, provider_id))
            for insurer_id, cents in self.reissue(run_key, provider_id).items():
                total[insurer_id] = total.get(insurer_id, 0) + cents
            self._transfers[key] = {i: c for i, c in sorted(total.items()) if c}
        return self._transfers[key]

    def returned(self, end_to_end_id: str) -> dict[int, int]:
        row = _rows(
            "SELECT run_key, provider_id FROM provider_transfer_returns WHERE end_to_end_id = :e",
            e=end_to_end_id,
        )
        if not row:
            raise RuntimeError(f"migration 0020: no recorded return {end_to_end_id}")
        return self.transfer(str(row[0][0]), int(row[0][1]))


def _refuse(old: _Old, why: str) -> RuntimeError:
    return RuntimeError(
        f"migration 0020 cannot give ledger posting {old.id} ({old.journal}/{old.reference},"
        f" {old.total_cents} cents) an insurer: {why}. Nothing was changed; correct the"
        " records or post the split by hand, then migrate again."
    )


def _reference_insurer(old: _Old) -> int:
    """The insurer a posting's reference names (journals posted per insurer)."""
    parts = old.reference.split(":")
    try:
        if old.journal.startswith(("adjudication", "engagement", "undue")):
            return int(parts[1])
        if old.journal in ("fees", "billing", "billing.return"):
            return int(parts[-1])
    except (IndexError, ValueError):
        pass
    raise _refuse(old, "its reference names no insurer")


Build = Callable[[int], Posting]


def _split(old: _Old, shares: _Shares) -> list[tuple[int, Posting]]:
    """The per-insurer postings that replace ``old``; checked to move the same money."""
    build: Build
    if old.journal == "payment.return":
        e2e = old.reference.removeprefix("return:")
        row = _rows(
            "SELECT provider_id FROM provider_transfer_returns WHERE end_to_end_id = :e", e=e2e
        )
        if not row:
            raise _refuse(old, "no recorded return has this end-to-end id")
        provider_id = int(row[0][0])
        by = shares.returned(e2e)

        def build(cents: int) -> Posting:
            made = accounting.transfer_return(e2e, provider_id, cents, old.value_date, "")
            return Posting(made.journal, made.reference, made.value_date, made.entries, old.memo)

    else:
        run_key, _, provider = old.reference.rpartition(":")
        try:
            provider_id = int(provider)
        except ValueError:
            raise _refuse(old, "its reference names no provider") from None
        if old.journal == "recovery":
            by = shares.recovered(run_key, provider_id)

            def build(cents: int) -> Posting:
                return accounting.recovery(run_key, provider_id, old.value_date, cents)

        elif old.journal == "payment":
            by = shares.payment(run_key, provider_id)

            def build(cents: int) -> Posting:
                return accounting.payment(run_key, provider_id, old.value_date, cents)

        else:
            by = shares.reissue(run_key, provider_id)

            def build(cents: int) -> Posting:
                return accounting.transfer_reissue(run_key, provider_id, old.value_date, cents)

    made = [(insurer_id, build(cents)) for insurer_id, cents in by.items()]
    entries = _old_entries(old.id, "")
    if old.journal == "recovery":
        expected, found = old.total_cents, sum(p.total_debit for _, p in made)
    else:
        expected = _bank_out(entries)
        found = sum(_bank_out([(e.account, e.debit, e.credit) for e in p.entries]) for _, p in made)
    if expected != found:
        raise _refuse(
            old, f"the run's records split {found} cents by insurer, the posting moved {expected}"
        )
    return made


def _insert_posting(insurer_id: int, posting: Posting, old: _Old) -> None:
    bind = op.get_bind()
    new_id = bind.execute(
        sa.text(
            "INSERT INTO ledger_postings (insurer_id, journal, reference, value_date,"
            " posted_at, memo, total_cents) VALUES (:i, :j, :r, :v, :t, :m, :c) RETURNING id"
        ),
        {
            "i": insurer_id, "j": posting.journal, "r": posting.reference, "v": old.value_date,
            "t": old.posted_at, "m": posting.memo, "c": posting.total_debit,
        },
    ).scalar_one()  # fmt: skip
    _insert_entries(
        insurer_id, int(new_id), [(e.account, e.debit, e.credit) for e in posting.entries]
    )


def _insert_entries(
    insurer_id: int | None, posting_id: int, entries: list[tuple[str, int, int]]
) -> None:
    columns = "posting_id, line_no, account, debit_cents, credit_cents"
    values = ":p, :n, :a, :d, :c"
    if insurer_id is not None:
        columns, values = f"insurer_id, {columns}", f":i, {values}"
    op.get_bind().execute(
        sa.text(f"INSERT INTO ledger_entries ({columns}) VALUES ({values})"),  # noqa: S608
        [
            {"i": insurer_id, "p": posting_id, "n": n, "a": a, "d": d, "c": c}
            for n, (a, d, c) in enumerate(entries, start=1)
        ],
    )


def _copy_old(by_insurer: bool, where: str) -> None:
    """Move the postings that need no change, with their ids, and their entries."""
    op.execute(
        f"INSERT INTO ledger_postings ({_POSTING_COLUMNS})"  # noqa: S608
        f" SELECT {_POSTING_COLUMNS} FROM ledger_postings{OLD} p WHERE {where}"
    )
    insurer = "p.insurer_id, " if by_insurer else ""
    op.execute(
        f"INSERT INTO ledger_entries ({'insurer_id, ' if by_insurer else ''}posting_id, line_no,"  # noqa: S608
        " account, debit_cents, credit_cents)"
        f" SELECT {insurer}e.posting_id, e.line_no, e.account, e.debit_cents, e.credit_cents"
        f" FROM ledger_entries{OLD} e JOIN ledger_postings{OLD} p ON p.id = e.posting_id"
        f" WHERE {where}"
    )


def _insert_kept(insurer_id: int, old: _Old, entries: list[tuple[str, int, int]]) -> None:
    op.get_bind().execute(
        sa.text(
            f"INSERT INTO ledger_postings ({_POSTING_COLUMNS})"  # noqa: S608
            f" SELECT {_POSTING_COLUMNS.replace('insurer_id', ':i')}"
            f" FROM ledger_postings{OLD} WHERE id = :p"
        ),
        {"i": insurer_id, "p": old.id},
    )
    _insert_entries(insurer_id, old.id, entries)


class _Plan(NamedTuple):
    """What the upgrade writes besides the postings that keep their insurer, worked out
    and checked before any table changes (SQLite's DDL is not rolled back by Alembic)."""

    split: list[tuple[int, Posting, _Old]]  # new postings, by insurer
    kept: list[tuple[int, _Old, list[tuple[str, int, int]]]]  # the insurer their reference names


def _plan() -> _Plan:
    shares = _Shares()
    plan = _Plan([], [])
    for old in _old_postings("insurer_id IS NULL ORDER BY id", ""):
        if old.journal in SPLIT:
            plan.split.extend((i, p, old) for i, p in _split(old, shares))
        else:
            plan.kept.append((_reference_insurer(old), old, _old_entries(old.id, "")))
    # Payments whose transfer was zero had no payment posting; their insurers' shares may
    # still be other than zero (one insurer's recovery paid another's lines): posted now,
    # as the payment run posts them.
    zero = (
        "SELECT y.run_key, y.provider_id, y.payment_date, y.created_at FROM payments y"
        " WHERE y.net_cents = 0 AND NOT EXISTS (SELECT 1 FROM ledger_postings p"
        " WHERE p.journal = 'payment' AND p.reference = y.run_key || ':' || y.provider_id)"
        " ORDER BY y.payment_date, y.provider_id"
    )
    for run_key, provider_id, day, created in _rows(zero):
        for insurer_id, cents in shares.payment(str(run_key), int(provider_id)).items():
            posting = accounting.payment(str(run_key), int(provider_id), day, cents)
            held = _Old(0, insurer_id, posting.journal, posting.reference, day, created, "", 0)
            plan.split.append((insurer_id, posting, held))
    return plan


def upgrade() -> None:
    plan = _plan()
    _set_aside()
    if _pg():
        _create_partitioned()
    else:
        _create_plain(True)
    _copy_old(True, "p.insurer_id IS NOT NULL")
    for insurer_id, old, entries in plan.kept:
        _insert_kept(insurer_id, old, entries)
    for insurer_id, posting, old in plan.split:
        _insert_posting(insurer_id, posting, old)
    _finish()


# --- the downgrade: one posting per movement again ---------------------------------------


def _merged(entries: list[tuple[str, int, int]]) -> list[tuple[str, int, int]]:
    """The accounts of several shares netted: debits first, then credits, zeros left out."""
    net: dict[str, int] = {}
    for account, d, c in entries:
        net[account] = net.get(account, 0) + d - c
    debits = [(a, n, 0) for a, n in net.items() if n > 0]
    credits = [(a, 0, -n) for a, n in net.items() if n < 0]
    return debits + credits


def downgrade() -> None:
    journals = ", ".join(f"'{j}'" for j in SPLIT)
    clash = _rows(
        "SELECT journal, reference FROM ledger_postings"  # noqa: S608
        f" WHERE journal NOT IN ({journals}) GROUP BY journal, reference HAVING count(*) > 1"
    )
    if clash:
        journal, reference = clash[0]
        raise RuntimeError(
            f"migration 0020 cannot be undone: {len(clash)} references are posted for several"
            f" insurers in journals kept per insurer (first: {journal}/{reference})"
        )
    _set_aside()
    _create_plain(False)
    _copy_old(False, f"p.journal NOT IN ({journals})")
    groups = _rows(
        f"SELECT journal, reference, min(id) FROM ledger_postings{OLD}"  # noqa: S608
        f" WHERE journal IN ({journals}) GROUP BY journal, reference ORDER BY min(id)"
    )
    bind = op.get_bind()
    for journal, reference, first in groups:
        parts = _old_postings(
            "journal = :j AND reference = :r ORDER BY id", OLD, j=journal, r=reference
        )
        entries = _merged([e for p in parts for e in _old_entries(p.id)])
        if not entries:
            continue  # the shares cancel out: no transfer, as before
        head = next((p for p in parts if not p.memo.endswith(SHARE_NOTE)), parts[0])
        total = sum(d for _a, d, _c in entries)
        bind.execute(
            sa.text(
                "INSERT INTO ledger_postings (id, insurer_id, journal, reference, value_date,"
                " posted_at, memo, total_cents) VALUES (:id, NULL, :j, :r, :v, :t, :m, :c)"
            ),
            {
                "id": int(first), "j": journal, "r": reference, "v": head.value_date,
                "t": head.posted_at, "m": head.memo.removesuffix(SHARE_NOTE), "c": total,
            },
        )  # fmt: skip
        _insert_entries(None, int(first), entries)
    _finish()
