"""Money runs: payments, remitted lines, overpayments, billing; append-only ledger.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29 09:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_TZ = sa.DateTime(timezone=True)
_LEDGER_TABLES = ("ledger_postings", "ledger_entries")

# A posting is corrected by another posting, never edited: the database refuses UPDATE,
# DELETE and TRUNCATE of the ledger to every role but one that drops the trigger first.
_PG_FUNCTION = """
CREATE OR REPLACE FUNCTION tierspayant_ledger_append_only() RETURNS trigger AS $$
BEGIN
  RAISE EXCEPTION '% is append-only (% refused)', TG_TABLE_NAME, TG_OP
    USING ERRCODE = 'insufficient_privilege';
END;
$$ LANGUAGE plpgsql
"""


def upgrade() -> None:
    op.create_table(
        "money_runs",
        sa.Column("run_key", sa.String(length=60), nullable=False),
        sa.Column("kind", sa.String(length=12), nullable=False),
        sa.Column("run_date", sa.Date(), nullable=False),
        sa.Column("period", sa.String(length=7), nullable=True),
        sa.Column("cutoff", _TZ, nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("lock_owner", sa.String(length=120), nullable=True),
        sa.Column("lock_expires_at", _TZ, nullable=True),
        sa.Column("started_at", _TZ, nullable=False),
        sa.Column("finished_at", _TZ, nullable=True),
        sa.CheckConstraint("kind IN ('payment', 'billing')", name=op.f("ck_money_runs_kind")),
        sa.CheckConstraint("status IN ('open', 'done')", name=op.f("ck_money_runs_status")),
        sa.PrimaryKeyConstraint("run_key", name=op.f("pk_money_runs")),
    )
    op.create_table(
        "payments",
        sa.Column("run_key", sa.String(length=60), nullable=False),
        sa.Column("provider_id", sa.Integer(), nullable=False),
        sa.Column("payment_date", sa.Date(), nullable=False),
        sa.Column("lines", sa.Integer(), nullable=False),
        sa.Column("gross_cents", sa.BigInteger(), nullable=False),
        sa.Column("recovered_cents", sa.BigInteger(), nullable=False),
        sa.Column("net_cents", sa.BigInteger(), nullable=False),
        sa.Column("created_at", _TZ, nullable=False),
        sa.CheckConstraint(
            "net_cents >= 0 AND recovered_cents >= 0 AND net_cents + recovered_cents = gross_cents",
            name=op.f("ck_payments_netting"),
        ),
        sa.PrimaryKeyConstraint("run_key", "provider_id", name=op.f("pk_payments")),
    )
    with op.batch_alter_table("payments", schema=None) as batch_op:
        batch_op.create_index("ix_payments_provider", ["provider_id", "payment_date"])

    op.create_table(
        "payment_lines",
        sa.Column("insurer_id", sa.Integer(), nullable=False),
        sa.Column("claim_id", sa.BigInteger(), nullable=False),
        sa.Column("line_no", sa.SmallInteger(), nullable=False),
        sa.Column("run_key", sa.String(length=60), nullable=False),
        sa.Column("provider_id", sa.Integer(), nullable=False),
        sa.Column("paid_cents", sa.BigInteger(), nullable=False),
        sa.Column("line_status", sa.String(length=12), nullable=False),
        sa.Column("bill_period", sa.String(length=7), nullable=False),
        sa.CheckConstraint("paid_cents >= 0", name=op.f("ck_payment_lines_paid")),
        sa.PrimaryKeyConstraint("insurer_id", "claim_id", "line_no", name=op.f("pk_payment_lines")),
    )
    with op.batch_alter_table("payment_lines", schema=None) as batch_op:
        batch_op.create_index("ix_payment_lines_run", ["run_key", "provider_id"])
        batch_op.create_index("ix_payment_lines_bill", ["insurer_id", "bill_period"])

    op.create_table(
        "overpayments",
        sa.Column("insurer_id", sa.Integer(), nullable=False),
        sa.Column("claim_id", sa.BigInteger(), nullable=False),
        sa.Column("line_no", sa.SmallInteger(), nullable=False),
        sa.Column("provider_id", sa.Integer(), nullable=False),
        sa.Column("cents", sa.BigInteger(), nullable=False),
        sa.Column("reason_code", sa.String(length=60), nullable=False),
        sa.Column("flagged_at", _TZ, nullable=False),
        sa.Column("flagged_by", sa.String(length=120), nullable=False),
        sa.Column("bill_period", sa.String(length=7), nullable=False),
        sa.CheckConstraint("cents > 0", name=op.f("ck_overpayments_cents")),
        sa.PrimaryKeyConstraint("insurer_id", "claim_id", "line_no", name=op.f("pk_overpayments")),
    )
    with op.batch_alter_table("overpayments", schema=None) as batch_op:
        batch_op.create_index("ix_overpayments_provider", ["provider_id", "flagged_at"])
        batch_op.create_index("ix_overpayments_bill", ["insurer_id", "bill_period"])

    op.create_table(
        "overpayment_recoveries",
        sa.Column("insurer_id", sa.Integer(), nullable=False),
        sa.Column("claim_id", sa.BigInteger(), nullable=False),
        sa.Column("line_no", sa.SmallInteger(), nullable=False),
        sa.Column("run_key", sa.String(length=60), nullable=False),
        sa.Column("provider_id", sa.Integer(), nullable=False),
        sa.Column("cents", sa.BigInteger(), nullable=False),
        sa.CheckConstraint("cents > 0", name=op.f("ck_overpayment_recoveries_cents")),
        sa.PrimaryKeyConstraint(
            "insurer_id", "claim_id", "line_no", "run_key", name=op.f("pk_overpayment_recoveries")
        ),
    )
    with op.batch_alter_table("overpayment_recoveries", schema=None) as batch_op:
        batch_op.create_index("ix_overpayment_recoveries_run", ["run_key", "provider_id"])

    op.create_table(
        "billing_statements",
        sa.Column("insurer_id", sa.Integer(), nullable=False),
        sa.Column("period", sa.String(length=7), nullable=False),
        sa.Column("run_key", sa.String(length=60), nullable=False),
        sa.Column("lines", sa.Integer(), nullable=False),
        sa.Column("paid_cents", sa.BigInteger(), nullable=False),
        sa.Column("undue_cents", sa.BigInteger(), nullable=False),
        sa.Column("due_cents", sa.BigInteger(), nullable=False),
        sa.Column("collection_date", sa.Date(), nullable=False),
        sa.Column("created_at", _TZ, nullable=False),
        sa.CheckConstraint(
            "due_cents = paid_cents - undue_cents", name=op.f("ck_billing_statements_due")
        ),
        sa.PrimaryKeyConstraint("insurer_id", "period", name=op.f("pk_billing_statements")),
    )
    op.create_table(
        "insurer_mandates",
        sa.Column("insurer_id", sa.Integer(), nullable=False),
        sa.Column("mandate_id", sa.String(length=35), nullable=False),
        sa.Column("signed_on", sa.Date(), nullable=False),
        sa.Column("iban_ct", sa.LargeBinary(), nullable=False),
        sa.Column("key_version", sa.Integer(), nullable=False),
        sa.Column("bic", sa.String(length=11), nullable=True),
        sa.Column("created_at", _TZ, nullable=False),
        sa.PrimaryKeyConstraint("insurer_id", name=op.f("pk_insurer_mandates")),
    )
    _ledger_append_only()


def downgrade() -> None:
    _drop_ledger_append_only()
    op.drop_table("insurer_mandates")
    op.drop_table("billing_statements")
    with op.batch_alter_table("overpayment_recoveries", schema=None) as batch_op:
        batch_op.drop_index("ix_overpayment_recoveries_run")
    op.drop_table("overpayment_recoveries")
    with op.batch_alter_table("overpayments", schema=None) as batch_op:
        batch_op.drop_index("ix_overpayments_bill")
        batch_op.drop_index("ix_overpayments_provider")
    op.drop_table("overpayments")
    with op.batch_alter_table("payment_lines", schema=None) as batch_op:
        batch_op.drop_index("ix_payment_lines_bill")
        batch_op.drop_index("ix_payment_lines_run")
    op.drop_table("payment_lines")
    with op.batch_alter_table("payments", schema=None) as batch_op:
        batch_op.drop_index("ix_payments_provider")
    op.drop_table("payments")
    op.drop_table("money_runs")


def _ledger_append_only() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        for table in _LEDGER_TABLES:
            for verb in ("UPDATE", "DELETE"):
                op.execute(
                    f"CREATE TRIGGER {table}_no_{verb.lower()} BEFORE {verb} ON {table} "
                    f"BEGIN SELECT RAISE(ABORT, '{table} is append-only'); END"
                )
    elif dialect == "postgresql":
        op.execute(_PG_FUNCTION)
        for table in _LEDGER_TABLES:
            op.execute(
                f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
                "FOR EACH ROW EXECUTE FUNCTION tierspayant_ledger_append_only()"
            )
            op.execute(
                f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
                "FOR EACH STATEMENT EXECUTE FUNCTION tierspayant_ledger_append_only()"
            )


def _drop_ledger_append_only() -> None:
    dialect = op.get_bind().dialect.name
    for table in _LEDGER_TABLES:
        if dialect == "sqlite":
            op.execute(f"DROP TRIGGER IF EXISTS {table}_no_update")
            op.execute(f"DROP TRIGGER IF EXISTS {table}_no_delete")
        elif dialect == "postgresql":
            op.execute(f"DROP TRIGGER IF EXISTS {table}_append_only ON {table}")
            op.execute(f"DROP TRIGGER IF EXISTS {table}_no_truncate ON {table}")
    if dialect == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS tierspayant_ledger_append_only()")
