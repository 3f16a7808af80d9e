"""Claims desk indexes: the insurer portal's invoice search and provider page filter an
insurer's claims by care date, by provider (then care date) or by invoice number, and an
insurer's payment lines by provider; each index leads with ``insurer_id``.

Revision ID: 0016
Revises: 0015
"""

from __future__ import annotations

from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_claims_insurer_care", "claims", ["insurer_id", "care_date", "id"])
    op.create_index(
        "ix_claims_insurer_provider", "claims", ["insurer_id", "provider_id", "care_date"]
    )
    op.create_index("ix_claims_insurer_invoice", "claims", ["insurer_id", "invoice_number"])
    op.create_index(
        "ix_payment_lines_insurer_provider", "payment_lines", ["insurer_id", "provider_id"]
    )


def downgrade() -> None:
    op.drop_index("ix_payment_lines_insurer_provider", table_name="payment_lines")
    op.drop_index("ix_claims_insurer_invoice", table_name="claims")
    op.drop_index("ix_claims_insurer_provider", table_name="claims")
    op.drop_index("ix_claims_insurer_care", table_name="claims")
