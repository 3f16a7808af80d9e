"""Engagements on amounts: the reservations a calculation holds on a person's ceilings.

``amount_reservations`` is insurer-owned (``insurer_id`` leads the primary key), so on
PostgreSQL the tenant role's grants and row-level security are applied again to cover it.

Revision ID: 0012
Revises: 0011
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from tierspayant.store.tenancy import rls_statements

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "amount_reservations",
        sa.Column("insurer_id", sa.Integer(), nullable=False),
        sa.Column("id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("provider_id", sa.Integer(), nullable=False),
        sa.Column("structure", sa.String(length=64), nullable=False),
        sa.Column("beneficiary_id", sa.BigInteger(), nullable=False),
        sa.Column("domains", sa.String(length=64), nullable=False),
        sa.Column("care_date", sa.Date(), nullable=False),
        sa.Column("valid_until", sa.Date(), nullable=False),
        sa.Column("contract_code", sa.String(length=40), nullable=False),
        sa.Column("coverage_start", sa.Date(), nullable=False),
        sa.Column("amc_cents", sa.BigInteger(), nullable=False),
        sa.Column("uses", sa.Text(), nullable=False),
        sa.Column("lines", sa.Text(), nullable=False),
        sa.Column("digest", sa.LargeBinary(length=32), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("cancelled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("consumed_claim_id", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("insurer_id", "id", name=op.f("pk_amount_reservations")),
    )
    op.create_index(
        "ix_amount_reservations_person",
        "amount_reservations",
        ["insurer_id", "beneficiary_id", "valid_until"],
        unique=False,
    )
    # The guard counts what a structure created today at every calculation.
    op.create_index(
        "ix_amount_reservations_structure",
        "amount_reservations",
        ["structure", "created_at"],
        unique=False,
    )
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        for statement in rls_statements(sa.inspect(bind).get_table_names()):
            op.execute(statement)


def downgrade() -> None:
    """Open reservations are promises made to professionals: refuse to drop them."""
    bind = op.get_bind()
    held = bind.execute(
        sa.text(
            "SELECT count(*) FROM amount_reservations"
            " WHERE cancelled_at IS NULL AND consumed_claim_id IS NULL"
        )
    ).scalar_one()
    if held:
        raise RuntimeError(f"{held} amount engagements may still be open: not downgrading")
    op.drop_index("ix_amount_reservations_structure", table_name="amount_reservations")
    op.drop_index("ix_amount_reservations_person", table_name="amount_reservations")
    op.drop_table("amount_reservations")
