"""Guard counters, security alerts, staff and member accounts.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29 08:26:20.908081
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table(
        "guard_daily",
        sa.Column("structure", sa.String(length=20), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("distinct_lookups", sa.Integer(), nullable=False),
        sa.Column("distinct_invoiced", sa.Integer(), nullable=False),
        sa.Column("category", sa.String(length=20), nullable=False),
        sa.PrimaryKeyConstraint("structure", "day", name=op.f("pk_guard_daily")),
    )
    op.create_table(
        "security_alerts",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("level", sa.String(length=8), nullable=False),
        sa.Column("code", sa.String(length=60), nullable=False),
        sa.Column("principal", sa.String(length=120), nullable=True),
        sa.Column("structure", sa.String(length=20), nullable=True),
        sa.Column("insurer", sa.String(length=10), nullable=True),
        sa.Column("message", sa.String(length=300), nullable=False),
        sa.Column("figures", sa.Text(), nullable=False),
        sa.Column("acknowledged_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("acknowledged_by", sa.String(length=120), nullable=True),
        sa.CheckConstraint("level IN ('soft', 'hard')", name=op.f("ck_security_alerts_level")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_security_alerts")),
    )
    with op.batch_alter_table("security_alerts", schema=None) as batch_op:
        batch_op.create_index("ix_security_alerts_at", ["at"], unique=False)
        batch_op.create_index("ix_security_alerts_principal_at", ["principal", "at"], unique=False)

    op.create_table(
        "accounts",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("login", sa.String(length=254), nullable=True),
        sa.Column("principal_id", sa.String(length=120), nullable=False),
        sa.Column("display_name", sa.String(length=200), nullable=True),
        sa.Column("password_hash", sa.String(length=256), nullable=True),
        sa.Column("password_changed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("insurer_id", sa.Integer(), nullable=True),
        sa.Column("provider_id", sa.Integer(), nullable=True),
        sa.Column(
            "beneficiary_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True
        ),
        sa.Column("rpps", sa.String(length=11), nullable=True),
        sa.Column("oidc_subject", sa.String(length=255), nullable=True),
        sa.Column("totp_secret_ct", sa.LargeBinary(), nullable=True),
        sa.Column("totp_key_version", sa.Integer(), nullable=True),
        sa.Column("totp_confirmed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("totp_last_step", sa.BigInteger(), nullable=True),
        sa.Column("webauthn_user_handle", sa.LargeBinary(length=32), nullable=True),
        sa.Column("failed_logins", sa.SmallInteger(), nullable=False),
        sa.Column("locked_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_login_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.CheckConstraint(
            "kind <> 'insurer_staff' OR insurer_id IS NOT NULL",
            name=op.f("ck_accounts_staff_insurer"),
        ),
        sa.CheckConstraint(
            "kind <> 'member' OR (insurer_id IS NOT NULL AND beneficiary_id IS NOT NULL)",
            name=op.f("ck_accounts_member_beneficiary"),
        ),
        sa.CheckConstraint(
            "kind <> 'provider_user' OR password_hash IS NULL",
            name=op.f("ck_accounts_provider_no_pw"),
        ),
        sa.CheckConstraint(
            "kind <> 'provider_user' OR provider_id IS NOT NULL",
            name=op.f("ck_accounts_user_provider"),
        ),
        sa.CheckConstraint(
            "kind = 'provider_user' OR login IS NOT NULL", name=op.f("ck_accounts_login_required")
        ),
        sa.CheckConstraint(
            "kind IN ('provider_user', 'insurer_staff', 'operator_staff', 'member')",
            name=op.f("ck_accounts_kind"),
        ),
        sa.CheckConstraint("status IN ('active', 'disabled')", name=op.f("ck_accounts_status")),
        sa.ForeignKeyConstraint(
            ["insurer_id"], ["insurers.id"], name=op.f("fk_accounts_insurer_id_insurers")
        ),
        sa.ForeignKeyConstraint(
            ["provider_id"], ["providers.id"], name=op.f("fk_accounts_provider_id_providers")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_accounts")),
        sa.UniqueConstraint("login", name=op.f("uq_accounts_login")),
        sa.UniqueConstraint("principal_id", name=op.f("uq_accounts_principal_id")),
        sa.UniqueConstraint("rpps", name=op.f("uq_accounts_rpps")),
    )
    with op.batch_alter_table("accounts", schema=None) as batch_op:
        batch_op.create_index("ix_accounts_insurer", ["insurer_id"], unique=False)
        batch_op.create_index("ix_accounts_provider", ["provider_id"], unique=False)

    op.create_table(
        "login_challenges",
        sa.Column("id_digest", sa.LargeBinary(length=32), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("attempts", sa.SmallInteger(), nullable=False),
        sa.Column("webauthn_challenge", sa.LargeBinary(length=64), nullable=True),
        sa.Column("consumed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ip", sa.String(length=45), nullable=True),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_login_challenges_account_id_accounts")
        ),
        sa.PrimaryKeyConstraint("id_digest", name=op.f("pk_login_challenges")),
    )
    with op.batch_alter_table("login_challenges", schema=None) as batch_op:
        batch_op.create_index("ix_login_challenges_account", ["account_id"], unique=False)

    op.create_table(
        "recovery_codes",
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("digest", sa.LargeBinary(length=32), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_recovery_codes_account_id_accounts")
        ),
        sa.PrimaryKeyConstraint("account_id", "digest", name=op.f("pk_recovery_codes")),
    )
    op.create_table(
        "sessions",
        sa.Column("token_digest", sa.LargeBinary(length=32), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("principal_id", sa.String(length=120), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("mfa_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("csrf_secret", sa.LargeBinary(length=32), nullable=False),
        sa.Column("method", sa.String(length=20), nullable=False),
        sa.Column("ip", sa.String(length=45), nullable=True),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_sessions_account_id_accounts")
        ),
        sa.PrimaryKeyConstraint("token_digest", name=op.f("pk_sessions")),
    )
    with op.batch_alter_table("sessions", schema=None) as batch_op:
        batch_op.create_index("ix_sessions_account", ["account_id"], unique=False)
        batch_op.create_index("ix_sessions_principal", ["principal_id"], unique=False)

    op.create_table(
        "webauthn_credentials",
        sa.Column("credential_id", sa.LargeBinary(length=1023), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("public_key", sa.LargeBinary(), nullable=False),
        sa.Column("sign_count", sa.BigInteger(), nullable=False),
        sa.Column("label", sa.String(length=100), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name=op.f("fk_webauthn_credentials_account_id_accounts"),
        ),
        sa.PrimaryKeyConstraint("credential_id", name=op.f("pk_webauthn_credentials")),
    )
    with op.batch_alter_table("webauthn_credentials", schema=None) as batch_op:
        batch_op.create_index("ix_webauthn_credentials_account", ["account_id"], unique=False)


def downgrade() -> None:

    with op.batch_alter_table("webauthn_credentials", schema=None) as batch_op:
        batch_op.drop_index("ix_webauthn_credentials_account")

    op.drop_table("webauthn_credentials")
    with op.batch_alter_table("sessions", schema=None) as batch_op:
        batch_op.drop_index("ix_sessions_principal")
        batch_op.drop_index("ix_sessions_account")

    op.drop_table("sessions")
    op.drop_table("recovery_codes")
    with op.batch_alter_table("login_challenges", schema=None) as batch_op:
        batch_op.drop_index("ix_login_challenges_account")

    op.drop_table("login_challenges")
    with op.batch_alter_table("accounts", schema=None) as batch_op:
        batch_op.drop_index("ix_accounts_provider")
        batch_op.drop_index("ix_accounts_insurer")

    op.drop_table("accounts")
    with op.batch_alter_table("security_alerts", schema=None) as batch_op:
        batch_op.drop_index("ix_security_alerts_principal_at")
        batch_op.drop_index("ix_security_alerts_at")

    op.drop_table("security_alerts")
    op.drop_table("guard_daily")
