"""Merge of the money (0005), cards (0006) and operations (0007) branches.

On PostgreSQL, applies the tenant role's grants and row-level security policies again:
the branches may run in any order, so insurer-owned tables created by 0005 and 0006 may
not have existed when 0007 first applied them.

Revision ID: 0008
Revises: 0005, 0006, 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from tierspayant.store.tenancy import rls_statements

revision = "0008"
down_revision = ("0005", "0006", "0007")
branch_labels = None
depends_on = None


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    for statement in rls_statements(sa.inspect(bind).get_table_names()):
        op.execute(statement)


def downgrade() -> None:
    """The policies of 0007's tables stay (0007's own downgrade removes them)."""
