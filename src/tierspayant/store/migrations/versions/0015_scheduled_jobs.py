"""Scheduled jobs: the lease and the record of each job the scheduler of ``serve`` ran
(payment run of a day, billing of a month, nightly checkpoint and guard figures).

Revision ID: 0015
Revises: 0014
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "scheduled_jobs",
        sa.Column("job_key", sa.String(length=60), nullable=False),
        sa.Column("job", sa.String(length=20), nullable=False),
        sa.Column("status", sa.String(length=8), nullable=False),
        sa.Column("lock_owner", sa.String(length=120), nullable=True),
        sa.Column("lock_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("outcome", sa.String(length=200), nullable=True),
        sa.CheckConstraint("status IN ('running', 'done')", name=op.f("ck_scheduled_jobs_status")),
        sa.PrimaryKeyConstraint("job_key", name=op.f("pk_scheduled_jobs")),
    )


def downgrade() -> None:
    op.drop_table("scheduled_jobs")
