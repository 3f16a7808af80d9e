"""Containment switches: a scope in card-proof-only mode or off, proposed and approved by
two operators (``docs/incident-response.md``). An operator table, no insurer data.

Revision ID: 0013
Revises: 0012
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "containment_switches",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("scope_kind", sa.String(length=12), nullable=False),
        sa.Column("scope_value", sa.String(length=40), nullable=False),
        sa.Column("mode", sa.String(length=16), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.String(length=500), nullable=False),
        sa.Column("proposer", sa.String(length=120), nullable=False),
        sa.Column("proposed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("approver", sa.String(length=120), nullable=True),
        sa.Column("approved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("lift_proposer", sa.String(length=120), nullable=True),
        sa.Column("lift_reason", sa.String(length=500), nullable=True),
        sa.Column("lift_proposed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("lifter", sa.String(length=120), nullable=True),
        sa.Column("lifted_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "scope_kind IN ('platform', 'insurer', 'structure', 'category', 'route')",
            name=op.f("ck_containment_switches_scope_kind"),
        ),
        sa.CheckConstraint(
            "mode IN ('card_proof_only', 'off')", name=op.f("ck_containment_switches_mode")
        ),
        sa.CheckConstraint(
            "state IN ('proposed', 'active', 'lift_proposed', 'lifted')",
            name=op.f("ck_containment_switches_state"),
        ),
        sa.CheckConstraint(
            "approver IS NULL OR approver <> proposer",
            name=op.f("ck_containment_switches_two_operators"),
        ),
        sa.CheckConstraint(
            "lifter IS NULL OR lifter <> lift_proposer",
            name=op.f("ck_containment_switches_two_operators_lift"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_containment_switches")),
    )
    op.create_index(
        "ix_containment_switches_state", "containment_switches", ["state"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_containment_switches_state", table_name="containment_switches")
    op.drop_table("containment_switches")
