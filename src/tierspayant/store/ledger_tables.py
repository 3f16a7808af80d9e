"""Ledger tables: postings and their entries, append-only like the audit log.

A posting is unique by ``(journal, reference)``: that is what makes a retried or rerun
movement find its first occurrence instead of moving money twice.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    Date,
    DateTime,
    Index,
    Integer,
    SmallInteger,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from tierspayant.store.tables import BigId, metadata

ledger_postings = Table(
    "ledger_postings",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("insurer_id", Integer, nullable=True),  # the insurer the movement belongs to
    Column("journal", String(40), nullable=False),
    Column("reference", String(120), nullable=False),
    Column("value_date", Date, nullable=False),
    Column("posted_at", DateTime(timezone=True), nullable=False),
    Column("memo", Text, nullable=False, server_default=""),
    Column("total_cents", BigInteger, nullable=False),
    UniqueConstraint("journal", "reference", name="uq_ledger_postings_journal_reference"),
    Index("ix_ledger_postings_insurer_date", "insurer_id", "value_date"),
)

ledger_entries = Table(
    "ledger_entries",
    metadata,
    Column("posting_id", BigInteger, primary_key=True),
    Column("line_no", SmallInteger, primary_key=True),
    Column("account", String(80), nullable=False),
    Column("debit_cents", BigInteger, nullable=False),
    Column("credit_cents", BigInteger, nullable=False),
    CheckConstraint(
        "debit_cents >= 0 AND credit_cents >= 0 AND (debit_cents = 0) <> (credit_cents = 0)",
        name="one_side",
    ),
    Index("ix_ledger_entries_account", "account"),
)
