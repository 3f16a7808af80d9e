"""Operator fees on billing statements; returned direct debits (fund calls).

``billing_statements`` gains the fee rate and amount, and its amount due now includes
the fee (statements issued before have a fee of 0, so the new check holds for them).
``insurer_fees`` holds per-insurer rates, ``fund_call_returns`` the fund calls an
insurer's bank returned. Both are insurer-owned: on PostgreSQL the tenant role's
grants and row-level security policies are applied again to cover them.

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from tierspayant.store.tenancy import rls_statements

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

_TZ = sa.DateTime(timezone=True)
_NEW_TABLES = ("insurer_fees", "fund_call_returns")


def upgrade() -> None:
    with op.batch_alter_table("billing_statements", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("fee_per_line_cents", sa.BigInteger(), nullable=False, server_default="0")
        )
        batch_op.add_column(
            sa.Column("fee_cents", sa.BigInteger(), nullable=False, server_default="0")
        )
        batch_op.drop_constraint(op.f("ck_billing_statements_due"), type_="check")
        batch_op.create_check_constraint(
            op.f("ck_billing_statements_due"), "due_cents = paid_cents - undue_cents + fee_cents"
        )
        batch_op.create_check_constraint(
            op.f("ck_billing_statements_fee"),
            "fee_per_line_cents >= 0 AND fee_cents = lines * fee_per_line_cents",
        )
    op.create_table(
        "insurer_fees",
        sa.Column("insurer_id", sa.Integer(), nullable=False),
        sa.Column("per_line_cents", sa.BigInteger(), nullable=False),
        sa.Column("set_at", _TZ, nullable=False),
        sa.Column("set_by", sa.String(length=120), nullable=False),
        sa.CheckConstraint("per_line_cents >= 0", name=op.f("ck_insurer_fees_per_line")),
        sa.PrimaryKeyConstraint("insurer_id", name=op.f("pk_insurer_fees")),
    )
    op.create_table(
        "fund_call_returns",
        sa.Column("insurer_id", sa.Integer(), nullable=False),
        sa.Column("period", sa.String(length=7), nullable=False),
        sa.Column("end_to_end_id", sa.String(length=35), nullable=False),
        sa.Column("cents", sa.BigInteger(), nullable=False),
        sa.Column("reason_code", sa.String(length=35), nullable=False),
        sa.Column("report_id", sa.String(length=35), nullable=False),
        sa.Column("value_date", sa.Date(), nullable=False),
        sa.Column("recorded_at", _TZ, nullable=False),
        sa.Column("recorded_by", sa.String(length=120), nullable=False),
        sa.CheckConstraint("cents > 0", name=op.f("ck_fund_call_returns_cents")),
        sa.PrimaryKeyConstraint("insurer_id", "period", name=op.f("pk_fund_call_returns")),
    )
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        for statement in rls_statements(sa.inspect(bind).get_table_names()):
            op.execute(statement)


def downgrade() -> None:
    """Statements with a fee cannot go back under the old check: refuse rather than lose it."""
    bind = op.get_bind()
    charged = bind.execute(
        sa.text("SELECT count(*) FROM billing_statements WHERE fee_cents <> 0")
    ).scalar_one()
    if charged:
        raise RuntimeError(f"{charged} billing statements carry operator fees: not downgrading")
    op.drop_table("fund_call_returns")
    op.drop_table("insurer_fees")
    with op.batch_alter_table("billing_statements", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("ck_billing_statements_fee"), type_="check")
        batch_op.drop_constraint(op.f("ck_billing_statements_due"), type_="check")
        batch_op.create_check_constraint(
            op.f("ck_billing_statements_due"), "due_cents = paid_cents - undue_cents"
        )
        batch_op.drop_column("fee_cents")
        batch_op.drop_column("fee_per_line_cents")
