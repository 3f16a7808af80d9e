"""Tiers payant cards, their signing keys, and canary marks.

Revision ID: 0006
Revises: 0004
Create Date: 2026-11-29 09:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "card_signing_keys",
        sa.Column("insurer_id", sa.Integer(), nullable=False),
        sa.Column("key_id", sa.String(length=16), nullable=False),
        sa.Column("public_key", sa.LargeBinary(length=32), nullable=False),
        sa.Column("wrapped_private", sa.LargeBinary(), nullable=False),
        sa.Column("kek_id", sa.String(length=64), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("retired_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["insurer_id"],
            ["insurers.id"],
            name=op.f("fk_card_signing_keys_insurer_id_insurers"),
        ),
        sa.PrimaryKeyConstraint("insurer_id", "key_id", name=op.f("pk_card_signing_keys")),
    )
    op.create_table(
        "cards",
        sa.Column("insurer_id", sa.Integer(), nullable=False),
        sa.Column("serial", sa.String(length=16), nullable=False),
        sa.Column("key_id", sa.String(length=16), nullable=False),
        sa.Column("family_binding", sa.LargeBinary(length=16), nullable=False),
        sa.Column("secret_digest", sa.LargeBinary(length=32), nullable=False),
        sa.Column("year", sa.SmallInteger(), nullable=False),
        sa.Column("valid_from", sa.Date(), nullable=False),
        sa.Column("valid_until", sa.Date(), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("issued_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status_changed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("status_reason", sa.String(length=200), nullable=True),
        sa.Column("superseded_by", sa.String(length=16), nullable=True),
        sa.CheckConstraint(
            "status IN ('active', 'revoked', 'superseded')", name=op.f("ck_cards_status")
        ),
        sa.ForeignKeyConstraint(
            ["insurer_id"], ["insurers.id"], name=op.f("fk_cards_insurer_id_insurers")
        ),
        sa.PrimaryKeyConstraint("insurer_id", "serial", name=op.f("pk_cards")),
    )
    with op.batch_alter_table("cards", schema=None) as batch_op:
        batch_op.create_index(
            "ix_cards_family", ["insurer_id", "family_binding", "status"], unique=False
        )
    op.create_table(
        "canary_marks",
        sa.Column("insurer_id", sa.Integer(), nullable=False),
        sa.Column("mark", sa.LargeBinary(length=16), nullable=False),
        sa.Column("ref_ct", sa.LargeBinary(), nullable=False),
        sa.Column("planted_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["insurer_id"], ["insurers.id"], name=op.f("fk_canary_marks_insurer_id_insurers")
        ),
        sa.PrimaryKeyConstraint("insurer_id", "mark", name=op.f("pk_canary_marks")),
    )


def downgrade() -> None:
    op.drop_table("canary_marks")
    with op.batch_alter_table("cards", schema=None) as batch_op:
        batch_op.drop_index("ix_cards_family")
    op.drop_table("cards")
    op.drop_table("card_signing_keys")
