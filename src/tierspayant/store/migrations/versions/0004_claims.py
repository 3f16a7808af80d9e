"""Prior authorisations, claims and claim lines.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29 08:30:26.156478
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "claim_lines",
        sa.Column("insurer_id", sa.Integer(), nullable=False),
        sa.Column("claim_id", sa.BigInteger(), nullable=False),
        sa.Column("line_no", sa.SmallInteger(), nullable=False),
        sa.Column("act_code", sa.String(length=13), nullable=False),
        sa.Column("domain", sa.String(length=5), nullable=False),
        sa.Column("family", sa.String(length=40), nullable=True),
        sa.Column("quantity", sa.SmallInteger(), nullable=False),
        sa.Column("care_date", sa.Date(), nullable=False),
        sa.Column("billed_cents", sa.BigInteger(), nullable=False),
        sa.Column("br_cents", sa.BigInteger(), nullable=False),
        sa.Column("amo_rate_bp", sa.Integer(), nullable=False),
        sa.Column("amo_paid_cents", sa.BigInteger(), nullable=False),
        sa.Column("amc_requested_cents", sa.BigInteger(), nullable=False),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("amc_accepted_cents", sa.BigInteger(), nullable=False),
        sa.Column("reason_code", sa.String(length=60), nullable=True),
        sa.Column("rules", sa.Text(), nullable=True),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("duplicate_key", sa.LargeBinary(length=16), nullable=True),
        sa.Column("is_counted", sa.Boolean(), nullable=False),
        sa.Column("near_key", sa.LargeBinary(length=16), nullable=True),
        sa.Column("amc_computed_cents", sa.BigInteger(), nullable=True),
        sa.CheckConstraint(
            "status IN ('received', 'accepted', 'reduced', 'rejected', 'cancelled', 'undue')",
            name=op.f("ck_claim_lines_status"),
        ),
        sa.PrimaryKeyConstraint("insurer_id", "claim_id", "line_no", name=op.f("pk_claim_lines")),
    )
    with op.batch_alter_table("claim_lines", schema=None) as batch_op:
        batch_op.create_index(
            "ix_claim_lines_duplicate", ["insurer_id", "duplicate_key"], unique=False
        )
        batch_op.create_index("ix_claim_lines_status", ["insurer_id", "status"], unique=False)
        batch_op.create_index("ix_claim_lines_near", ["insurer_id", "near_key"], unique=False)

    op.create_table(
        "claims",
        sa.Column("insurer_id", sa.Integer(), nullable=False),
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=False,
            nullable=False,
        ),
        sa.Column("provider_id", sa.Integer(), nullable=False),
        sa.Column("invoice_number", sa.String(length=40), nullable=False),
        sa.Column("version", sa.SmallInteger(), nullable=False),
        sa.Column("beneficiary_id", sa.BigInteger(), nullable=False),
        sa.Column("care_date", sa.Date(), nullable=False),
        sa.Column("agreement_number", sa.String(length=24), nullable=True),
        sa.Column("request_digest", sa.LargeBinary(length=32), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("source", sa.String(length=12), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("adjudicated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("billed_cents", sa.BigInteger(), nullable=False),
        sa.Column("amc_requested_cents", sa.BigInteger(), nullable=False),
        sa.Column("amc_accepted_cents", sa.BigInteger(), nullable=False),
        sa.Column("beneficiary_age", sa.SmallInteger(), nullable=True),
        sa.Column("maternity", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("submitted_by", sa.String(length=120), nullable=True),
        sa.Column("reason_code", sa.String(length=60), nullable=True),
        sa.ForeignKeyConstraint(
            ["insurer_id"], ["insurers.id"], name=op.f("fk_claims_insurer_id_insurers")
        ),
        sa.ForeignKeyConstraint(
            ["provider_id"], ["providers.id"], name=op.f("fk_claims_provider_id_providers")
        ),
        sa.PrimaryKeyConstraint("insurer_id", "id", name=op.f("pk_claims")),
        sa.UniqueConstraint(
            "provider_id", "invoice_number", "version", name="uq_claims_provider_invoice_version"
        ),
    )
    with op.batch_alter_table("claims", schema=None) as batch_op:
        batch_op.create_index(
            "ix_claims_beneficiary", ["insurer_id", "beneficiary_id", "care_date"], unique=False
        )
        batch_op.create_index("ix_claims_status", ["insurer_id", "status"], unique=False)
        batch_op.create_index("ix_claims_agreement", ["agreement_number"], unique=False)

    op.create_table(
        "prior_authorisations",
        sa.Column("insurer_id", sa.Integer(), nullable=False),
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=False,
            nullable=False,
        ),
        sa.Column("agreement_number", sa.String(length=24), nullable=False),
        sa.Column("provider_id", sa.Integer(), nullable=False),
        sa.Column("beneficiary_id", sa.BigInteger(), nullable=False),
        sa.Column("request_key", sa.String(length=80), nullable=False),
        sa.Column("domain", sa.String(length=5), nullable=False),
        sa.Column("care_date", sa.Date(), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("reason_code", sa.String(length=60), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("valid_until", sa.Date(), nullable=True),
        sa.Column("guaranteed_cents", sa.BigInteger(), nullable=False),
        sa.Column("lines", sa.Text(), nullable=False),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("decided_by", sa.String(length=120), nullable=True),
        sa.Column("request_digest", sa.LargeBinary(length=32), nullable=True),
        sa.CheckConstraint(
            "status IN ('granted', 'refused', 'pending', 'expired')",
            name=op.f("ck_prior_authorisations_status"),
        ),
        sa.ForeignKeyConstraint(
            ["insurer_id"],
            ["insurers.id"],
            name=op.f("fk_prior_authorisations_insurer_id_insurers"),
        ),
        sa.ForeignKeyConstraint(
            ["provider_id"],
            ["providers.id"],
            name=op.f("fk_prior_authorisations_provider_id_providers"),
        ),
        sa.PrimaryKeyConstraint("insurer_id", "id", name=op.f("pk_prior_authorisations")),
        sa.UniqueConstraint(
            "agreement_number", name=op.f("uq_prior_authorisations_agreement_number")
        ),
        sa.UniqueConstraint("provider_id", "request_key", name="uq_prior_authorisations_request"),
    )
    op.create_table(
        "benefit_counters",
        sa.Column("insurer_id", sa.Integer(), nullable=False),
        sa.Column("beneficiary_id", sa.BigInteger(), nullable=False),
        sa.Column("counter_key", sa.String(length=70), nullable=False),
        sa.Column("care_date", sa.Date(), nullable=False),
        sa.Column("claim_id", sa.BigInteger(), nullable=False),
        sa.Column("used_cents", sa.BigInteger(), nullable=False),
        sa.Column("used_units", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint(
            "insurer_id",
            "beneficiary_id",
            "counter_key",
            "care_date",
            "claim_id",
            name=op.f("pk_benefit_counters"),
        ),
    )
    with op.batch_alter_table("benefit_counters", schema=None) as batch_op:
        batch_op.create_index("ix_benefit_counters_claim", ["insurer_id", "claim_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("benefit_counters", schema=None) as batch_op:
        batch_op.drop_index("ix_benefit_counters_claim")

    op.drop_table("benefit_counters")

    op.drop_table("prior_authorisations")
    with op.batch_alter_table("claims", schema=None) as batch_op:
        batch_op.drop_index("ix_claims_agreement")
        batch_op.drop_index("ix_claims_status")
        batch_op.drop_index("ix_claims_beneficiary")

    op.drop_table("claims")
    with op.batch_alter_table("claim_lines", schema=None) as batch_op:
        batch_op.drop_index("ix_claim_lines_near")
        batch_op.drop_index("ix_claim_lines_status")
        batch_op.drop_index("ix_claim_lines_duplicate")

    op.drop_table("claim_lines")
