"""Engagement numbers on invoices, and the lines paid on an engagement.

``claims.engagement_number`` keeps the number an invoice carries (checked at intake,
opened again by adjudication). ``engaged_lines`` lists the lines adjudication paid on an
engagement although the person's rights were ended (or the contract changed) after the
rights check: insurer-owned, so on PostgreSQL the tenant role's grants and row-level
security are applied again to cover it.

Revision ID: 0011
Revises: 0010
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from tierspayant.store.tenancy import rls_statements

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("claims", schema=None) as batch_op:
        batch_op.add_column(sa.Column("engagement_number", sa.String(length=160), nullable=True))
    op.create_table(
        "engaged_lines",
        sa.Column("insurer_id", sa.Integer(), nullable=False),
        sa.Column("claim_id", sa.BigInteger(), nullable=False),
        sa.Column("line_no", sa.SmallInteger(), nullable=False),
        sa.Column("provider_id", sa.Integer(), nullable=False),
        sa.Column("care_date", sa.Date(), nullable=False),
        sa.Column("domain", sa.String(length=5), nullable=False),
        sa.Column("contract_code", sa.String(length=40), nullable=False),
        sa.Column("cents", sa.BigInteger(), nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("withdrawn", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.PrimaryKeyConstraint("insurer_id", "claim_id", "line_no", name=op.f("pk_engaged_lines")),
    )
    op.create_index(
        "ix_engaged_lines_date", "engaged_lines", ["insurer_id", "decided_at"], unique=False
    )
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        for statement in rls_statements(sa.inspect(bind).get_table_names()):
            op.execute(statement)


def downgrade() -> None:
    """Engagements honoured are money facts: refuse to drop them rather than lose them."""
    bind = op.get_bind()
    honoured = bind.execute(sa.text("SELECT count(*) FROM engaged_lines")).scalar_one()
    if honoured:
        raise RuntimeError(f"{honoured} lines were paid on an engagement: not downgrading")
    op.drop_index("ix_engaged_lines_date", table_name="engaged_lines")
    op.drop_table("engaged_lines")
    with op.batch_alter_table("claims", schema=None) as batch_op:
        batch_op.drop_column("engagement_number")
