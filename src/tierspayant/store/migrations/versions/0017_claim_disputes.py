"""Claim disputes: a provider contests a rejected or reduced invoice line, the insurer's
staff answer it (one open dispute per line).

Revision ID: 0017
Revises: 0016
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from tierspayant.store.tenancy import rls_statements

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None

OPEN = sa.text("state = 'open'")


def upgrade() -> None:
    op.create_table(
        "claim_disputes",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("insurer_id", sa.Integer(), nullable=False),
        sa.Column("claim_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("line_no", sa.SmallInteger(), nullable=False),
        sa.Column("provider_id", sa.Integer(), nullable=False),
        sa.Column("invoice_number", sa.String(length=40), nullable=False),
        sa.Column("reason_text", sa.String(length=1000), nullable=False),
        sa.Column("state", sa.String(length=10), nullable=False),
        sa.Column("answer", sa.String(length=1000), nullable=True),
        sa.Column("opened_by", sa.String(length=120), nullable=False),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("answered_by", sa.String(length=120), nullable=True),
        sa.Column("answered_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "state IN ('open', 'accepted', 'refused')", name=op.f("ck_claim_disputes_state")
        ),
        sa.CheckConstraint(
            "state = 'open' OR answer IS NOT NULL", name=op.f("ck_claim_disputes_answered")
        ),
        sa.ForeignKeyConstraint(
            ["insurer_id"], ["insurers.id"], name=op.f("fk_claim_disputes_insurer_id_insurers")
        ),
        sa.ForeignKeyConstraint(
            ["provider_id"], ["providers.id"], name=op.f("fk_claim_disputes_provider_id_providers")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_claim_disputes")),
    )
    op.create_index(
        "uq_claim_disputes_open",
        "claim_disputes",
        ["insurer_id", "claim_id", "line_no"],
        unique=True,
        sqlite_where=OPEN,
        postgresql_where=OPEN,
    )
    op.create_index("ix_claim_disputes_provider", "claim_disputes", ["provider_id", "opened_at"])
    op.create_index(
        "ix_claim_disputes_insurer", "claim_disputes", ["insurer_id", "state", "opened_at"]
    )
    # Insurer-owned: under the tenant role's row-level security on PostgreSQL.
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        for statement in rls_statements(sa.inspect(bind).get_table_names()):
            op.execute(statement)


def downgrade() -> None:
    # Dropping the table drops its policy with it.
    op.drop_index("ix_claim_disputes_insurer", table_name="claim_disputes")
    op.drop_index("ix_claim_disputes_provider", table_name="claim_disputes")
    op.drop_index("uq_claim_disputes_open", table_name="claim_disputes")
    op.drop_table("claim_disputes")
