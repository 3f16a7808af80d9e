"""Operations tables; on PostgreSQL, the tenant role and row-level security.

Revision ID: 0007
Revises: 0004
Create Date: 2026-11-29 09:00:00

On PostgreSQL this creates the role ``tierspayant_tenant`` (NOLOGIN; roles are shared by
the whole cluster, so creation is idempotent and the downgrade leaves it in place), grants
it what a use case scoped to one insurer needs, and enables row-level security on the
insurer-owned tables that exist at this point, with one policy: a row is visible and
writable only when its ``insurer_id`` equals the transaction's
``tierspayant.insurer_id`` setting (see ``store/tenancy.py``). Without the setting the
cast fails, so a forgotten scope refuses instead of showing everything.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from tierspayant.store.tenancy import drop_rls_statements, rls_statements

revision = "0007"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "audit_checkpoints",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("up_to_seq", sa.BigInteger(), nullable=False),
        sa.Column("last_hash", sa.LargeBinary(length=32), nullable=False),
        sa.Column("merkle_root", sa.LargeBinary(length=32), nullable=False),
        sa.Column("signed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("key_id", sa.String(length=32), nullable=False),
        sa.Column("file_name", sa.String(length=200), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_checkpoints")),
    )
    with op.batch_alter_table("audit_checkpoints", schema=None) as batch_op:
        batch_op.create_index("ix_audit_checkpoints_seq", ["up_to_seq"], unique=False)

    op.create_table(
        "breakglass_grants",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("requester", sa.String(length=120), nullable=False),
        sa.Column("reason", sa.String(length=500), nullable=False),
        sa.Column("scope", sa.String(length=12), nullable=False),
        sa.Column("insurer_id", sa.Integer(), nullable=True),
        sa.Column(
            "beneficiary_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True
        ),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("approver", sa.String(length=120), nullable=True),
        sa.Column("approved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("dpo_notice", sa.String(length=300), nullable=True),
        sa.CheckConstraint(
            "scope IN ('beneficiary', 'bulk', 'export')", name=op.f("ck_breakglass_grants_scope")
        ),
        sa.CheckConstraint(
            "status IN ('pending', 'active', 'closed')", name=op.f("ck_breakglass_grants_status")
        ),
        sa.CheckConstraint(
            "scope <> 'beneficiary' OR (insurer_id IS NOT NULL AND beneficiary_id IS NOT NULL)",
            name=op.f("ck_breakglass_grants_one_beneficiary"),
        ),
        sa.ForeignKeyConstraint(
            ["insurer_id"],
            ["insurers.id"],
            name=op.f("fk_breakglass_grants_insurer_id_insurers"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_breakglass_grants")),
    )
    with op.batch_alter_table("breakglass_grants", schema=None) as batch_op:
        batch_op.create_index("ix_breakglass_grants_status", ["status", "expires_at"], unique=False)

    op.create_table(
        "incident_runs",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("actor", sa.String(length=120), nullable=False),
        sa.Column("criteria", sa.Text(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("events_scanned", sa.BigInteger(), nullable=False),
        sa.Column("subjects", sa.BigInteger(), nullable=False),
        sa.Column("revealed", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_incident_runs")),
    )
    if op.get_bind().dialect.name == "postgresql":
        _tenant_role_and_policies()


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        _drop_policies()
    op.drop_table("incident_runs")
    with op.batch_alter_table("breakglass_grants", schema=None) as batch_op:
        batch_op.drop_index("ix_breakglass_grants_status")
    op.drop_table("breakglass_grants")
    with op.batch_alter_table("audit_checkpoints", schema=None) as batch_op:
        batch_op.drop_index("ix_audit_checkpoints_seq")
    op.drop_table("audit_checkpoints")


def _tables() -> list[str]:
    return list(sa.inspect(op.get_bind()).get_table_names())


def _tenant_role_and_policies() -> None:
    for statement in rls_statements(_tables()):
        op.execute(statement)


def _drop_policies() -> None:
    for statement in drop_rls_statements(_tables()):
        op.execute(statement)
