"""Ledger tables: postings and their entries, append-only like the audit log.

Every posting belongs to one insurer (migration 0020): a posting is unique by
``(insurer_id, journal, reference)``, which is what makes a retried or rerun movement
find its first occurrence instead of moving money twice; its entries carry the same
``insurer_id``. On PostgreSQL both tables are hash-partitioned by ``insurer_id`` and
their keys lead with it (SQLite keeps a plain ``id`` key on postings, autoincremented).
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
    LargeBinary,
    PrimaryKeyConstraint,
    SmallInteger,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from tierspayant.domain.amount_limits import EPC_MAX_TRANSFER_CENTS
from tierspayant.store.tables import BigId, metadata

ledger_postings = Table(
    "ledger_postings",
    metadata,
    Column("id", BigId, nullable=False, autoincrement=True),
    Column("insurer_id", Integer, nullable=False),  # the insurer the movement belongs to
    Column("journal", String(40), nullable=False),
    Column("reference", String(120), nullable=False),
    Column("value_date", Date, nullable=False),
    Column("posted_at", DateTime(timezone=True), nullable=False),
    Column("memo", Text, nullable=False, server_default=""),
    Column("total_cents", BigInteger, nullable=False),
    PrimaryKeyConstraint("insurer_id", "id"),
    UniqueConstraint(
        "insurer_id", "journal", "reference", name="uq_ledger_postings_insurer_journal_reference"
    ),
    Index("ix_ledger_postings_insurer_date", "insurer_id", "value_date"),
)

ledger_entries = Table(
    "ledger_entries",
    metadata,
    Column("insurer_id", Integer, primary_key=True),  # its posting's
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

# --- runs, payments, overpayments and billing (migration 0005) --------------------------
#
# What the ledger cannot say by itself: which claim line a payment paid (so that no line
# is ever paid twice: ``payment_lines`` has the line as its primary key), which undue
# amount a payment recovered, and which period each insurer was billed for. None of these
# rows is ever updated except the lease of a run, so a rerun finds exactly what the
# interrupted run had committed.

money_runs = Table(
    "money_runs",
    metadata,
    Column("run_key", String(60), primary_key=True),  # pay:2026-11-30 | bill:2026-11
    Column("kind", String(12), nullable=False),
    Column("run_date", Date, nullable=False),  # payment date, or direct debit collection date
    Column("period", String(7), nullable=True),  # billing runs: YYYY-MM
    # Work adjudicated after the cutoff waits for the next run: reruns see the same work.
    Column("cutoff", DateTime(timezone=True), nullable=False),
    Column("status", String(12), nullable=False),
    Column("lock_owner", String(120), nullable=True),
    Column("lock_expires_at", DateTime(timezone=True), nullable=True),
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("finished_at", DateTime(timezone=True), nullable=True),
    # Payment runs: the most one SEPA transfer of the run carries (migration 0021). A
    # payment above it went as several transfers, and a returned one is matched by
    # cutting the payment again with this maximum, never another.
    Column(
        "max_transfer_cents",
        BigInteger,
        nullable=False,
        server_default=str(EPC_MAX_TRANSFER_CENTS),
    ),
    CheckConstraint("kind IN ('payment', 'billing')", name="kind"),
    CheckConstraint("status IN ('open', 'done')", name="status"),
    CheckConstraint(
        f"max_transfer_cents >= 1 AND max_transfer_cents <= {EPC_MAX_TRANSFER_CENTS}",
        name="max_transfer",
    ),
)

payments = Table(
    "payments",
    metadata,
    Column("run_key", String(60), primary_key=True),
    Column("provider_id", Integer, primary_key=True),
    Column("payment_date", Date, nullable=False),
    Column("lines", Integer, nullable=False),  # lines remitted, paid or rejected
    Column("gross_cents", BigInteger, nullable=False),  # accepted amounts of those lines
    Column("recovered_cents", BigInteger, nullable=False),  # undue amounts deducted
    Column("net_cents", BigInteger, nullable=False),  # the credit transfer
    Column("created_at", DateTime(timezone=True), nullable=False),
    # Returned transfers paid again with this payment (migration 0014): the credit
    # transfer is net_cents + reissued_cents.
    Column("reissued_cents", BigInteger, nullable=False, server_default="0"),
    CheckConstraint(
        "net_cents >= 0 AND recovered_cents >= 0 AND net_cents + recovered_cents = gross_cents",
        name="netting",
    ),
    CheckConstraint("reissued_cents >= 0", name="reissued"),
    Index("ix_payments_provider", "provider_id", "payment_date"),
)

payment_lines = Table(
    "payment_lines",
    metadata,
    Column("insurer_id", Integer, primary_key=True),
    Column("claim_id", BigInteger, primary_key=True),
    Column("line_no", SmallInteger, primary_key=True),
    Column("run_key", String(60), nullable=False),
    Column("provider_id", Integer, nullable=False),
    Column("paid_cents", BigInteger, nullable=False),  # 0 for a rejected line (advised only)
    Column("line_status", String(12), nullable=False),  # as remitted: accepted|reduced|rejected
    Column("bill_period", String(7), nullable=False),  # the insurer's billing period
    CheckConstraint("paid_cents >= 0", name="paid"),
    Index("ix_payment_lines_run", "run_key", "provider_id"),
    Index("ix_payment_lines_bill", "insurer_id", "bill_period"),
    Index("ix_payment_lines_insurer_provider", "insurer_id", "provider_id"),  # migration 0016
)

overpayments = Table(
    "overpayments",
    metadata,
    Column("insurer_id", Integer, primary_key=True),
    Column("claim_id", BigInteger, primary_key=True),
    Column("line_no", SmallInteger, primary_key=True),
    Column("provider_id", Integer, nullable=False),
    Column("cents", BigInteger, nullable=False),
    Column("reason_code", String(60), nullable=False),
    Column("flagged_at", DateTime(timezone=True), nullable=False),
    Column("flagged_by", String(120), nullable=False),
    Column("bill_period", String(7), nullable=False),  # credited to the insurer then
    CheckConstraint("cents > 0", name="cents"),
    Index("ix_overpayments_provider", "provider_id", "flagged_at"),
    Index("ix_overpayments_bill", "insurer_id", "bill_period"),
)

overpayment_recoveries = Table(
    "overpayment_recoveries",
    metadata,
    Column("insurer_id", Integer, primary_key=True),
    Column("claim_id", BigInteger, primary_key=True),
    Column("line_no", SmallInteger, primary_key=True),
    Column("run_key", String(60), primary_key=True),
    Column("provider_id", Integer, nullable=False),
    Column("cents", BigInteger, nullable=False),
    CheckConstraint("cents > 0", name="cents"),
    Index("ix_overpayment_recoveries_run", "run_key", "provider_id"),
)

billing_statements = Table(
    "billing_statements",
    metadata,
    Column("insurer_id", Integer, primary_key=True),
    Column("period", String(7), primary_key=True),
    Column("run_key", String(60), nullable=False),
    Column("lines", Integer, nullable=False),
    Column("paid_cents", BigInteger, nullable=False),  # paid to providers on its behalf
    Column("undue_cents", BigInteger, nullable=False),  # undue amounts credited back
    Column("due_cents", BigInteger, nullable=False),  # paid - undue + fee: the fund call
    Column("collection_date", Date, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    # Operator fees (migration 0009): the rate in force when the statement was issued, and
    # lines x rate, so that a rerun writes the same statement whatever the rate is today.
    Column("fee_per_line_cents", BigInteger, nullable=False, server_default="0"),
    Column("fee_cents", BigInteger, nullable=False, server_default="0"),
    CheckConstraint("due_cents = paid_cents - undue_cents + fee_cents", name="due"),
    CheckConstraint(
        "fee_per_line_cents >= 0 AND fee_cents = lines * fee_per_line_cents", name="fee"
    ),
)

# --- operator fees and returned direct debits (migration 0009) ----------------------------

insurer_fees = Table(
    "insurer_fees",
    metadata,
    Column("insurer_id", Integer, primary_key=True),
    # The management fee charged per paid line; no row: the platform default applies.
    Column("per_line_cents", BigInteger, nullable=False),
    Column("set_at", DateTime(timezone=True), nullable=False),
    Column("set_by", String(120), nullable=False),
    CheckConstraint("per_line_cents >= 0", name="per_line"),
)

fund_call_returns = Table(
    "fund_call_returns",
    metadata,
    # One fund call per insurer and period, returned at most once.
    Column("insurer_id", Integer, primary_key=True),
    Column("period", String(7), primary_key=True),
    Column("end_to_end_id", String(35), nullable=False),
    Column("cents", BigInteger, nullable=False),  # the amount of the fund call, returned
    Column("reason_code", String(35), nullable=False),  # ISO 20022 reason (AM04, MD01...)
    Column("report_id", String(35), nullable=False),  # MsgId of the pain.002 that said so
    Column("value_date", Date, nullable=False),
    Column("recorded_at", DateTime(timezone=True), nullable=False),
    Column("recorded_by", String(120), nullable=False),
    CheckConstraint("cents > 0", name="cents"),
)

insurer_mandates = Table(
    "insurer_mandates",
    metadata,
    Column("insurer_id", Integer, primary_key=True),
    Column("mandate_id", String(35), nullable=False),  # SEPA direct debit mandate (RUM)
    Column("signed_on", Date, nullable=False),
    Column("iban_ct", LargeBinary, nullable=False),  # operator-scope key, like provider IBANs
    Column("key_version", Integer, nullable=False),
    Column("bic", String(11), nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
)
