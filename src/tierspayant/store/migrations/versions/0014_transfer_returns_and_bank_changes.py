"""Returned provider credit transfers, guarded bank details changes, reissued amounts.

Revision ID: 0014
Revises: 0013
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "provider_bank_changes",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("provider_id", sa.Integer(), nullable=False),
        sa.Column("iban_ct", sa.LargeBinary(), nullable=False),
        sa.Column("key_version", sa.Integer(), nullable=False),
        sa.Column("bic", sa.String(length=11), nullable=True),
        sa.Column("iban_tail", sa.String(length=4), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("requested_by", sa.String(length=120), nullable=False),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("verified_by", sa.String(length=120), nullable=True),
        sa.Column("verified_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("method", sa.String(length=20), nullable=True),
        sa.Column("effective_on", sa.Date(), nullable=True),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "status IN ('pending', 'verified', 'applied', 'refused')", name="status"
        ),
        sa.CheckConstraint(
            "status = 'pending' OR status = 'refused' OR "
            "(verified_by IS NOT NULL AND effective_on IS NOT NULL "
            "AND verified_by <> requested_by)",
            name="verified",
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "ix_provider_bank_changes_provider",
        "provider_bank_changes",
        ["provider_id", "status"],
    )
    op.create_table(
        "provider_transfer_returns",
        sa.Column("end_to_end_id", sa.String(length=35), nullable=False),
        sa.Column("provider_id", sa.Integer(), nullable=False),
        sa.Column("run_key", sa.String(length=60), nullable=False),
        sa.Column("cents", sa.BigInteger(), nullable=False),
        sa.Column("reason_code", sa.String(length=35), nullable=False),
        sa.Column("report_id", sa.String(length=35), nullable=False),
        sa.Column("value_date", sa.Date(), nullable=False),
        sa.Column("account_version", sa.Integer(), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("recorded_by", sa.String(length=120), nullable=False),
        sa.Column("reissue_run_key", sa.String(length=60), nullable=True),
        sa.CheckConstraint("cents > 0", name="cents"),
        sa.PrimaryKeyConstraint("end_to_end_id"),
    )
    op.create_index(
        "ix_provider_transfer_returns_provider",
        "provider_transfer_returns",
        ["provider_id", "reissue_run_key"],
    )
    with op.batch_alter_table("payments") as batch:
        batch.add_column(
            sa.Column("reissued_cents", sa.BigInteger(), server_default="0", nullable=False)
        )
        batch.create_check_constraint("reissued", "reissued_cents >= 0")


def downgrade() -> None:
    with op.batch_alter_table("payments") as batch:
        batch.drop_constraint("reissued", type_="check")
        batch.drop_column("reissued_cents")
    op.drop_index("ix_provider_transfer_returns_provider", "provider_transfer_returns")
    op.drop_table("provider_transfer_returns")
    op.drop_index("ix_provider_bank_changes_provider", "provider_bank_changes")
    op.drop_table("provider_bank_changes")
