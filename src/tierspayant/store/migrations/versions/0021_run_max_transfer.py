"""Each payment run keeps the maximum of one transfer it used: ``money_runs``
gains ``max_transfer_cents`` (NOT NULL, between 1 cent and the EPC maximum).

A payment above the maximum went as several transfers (``split_cents``); a returned
part is matched by cutting the payment again with the run's own maximum, which only the
run can say. Runs made before this migration used the EPC maximum (the only one the
platform ever ran with outside tests): they get it as the column's default. Billing
runs carry the default too, unused.

``money_runs`` is a plain table on both engines (one row per run, not partitioned): the
column is added in place on PostgreSQL, by a copy of the table on SQLite (its CHECK
constraint). The downgrade drops it.

Revision ID: 0021
Revises: 0020
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None

# Written out (not imported): the migration keeps the value and the rule it created.
EPC_MAX_TRANSFER_CENTS = 99_999_999_999  # 999,999,999.99 EUR (EPC SCT rulebook)
RULE = f"max_transfer_cents >= 1 AND max_transfer_cents <= {EPC_MAX_TRANSFER_CENTS}"


def upgrade() -> None:
    with op.batch_alter_table("money_runs") as batch:
        batch.add_column(
            sa.Column(
                "max_transfer_cents",
                sa.BigInteger(),
                server_default=str(EPC_MAX_TRANSFER_CENTS),
                nullable=False,
            )
        )
        batch.create_check_constraint("max_transfer", RULE)


def downgrade() -> None:
    with op.batch_alter_table("money_runs") as batch:
        batch.drop_constraint("max_transfer", type_="check")
        batch.drop_column("max_transfer_cents")
