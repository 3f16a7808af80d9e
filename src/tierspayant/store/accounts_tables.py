"""Tables of human accounts, second factors and portal sessions, on the shared metadata.

Nothing here is usable if stolen alone: passwords are argon2id hashes, TOTP secrets are
AES-256-GCM ciphertext under the operator's data keys, recovery codes and session tokens
are SHA-256 digests of high-entropy values, WebAuthn holds public keys only.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    SmallInteger,
    String,
    Table,
)

from tierspayant.store.tables import BigId, metadata

ACCOUNT_KINDS = ("provider_user", "insurer_staff", "operator_staff", "member")

accounts = Table(
    "accounts",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("kind", String(20), nullable=False),
    # Lower-cased e-mail; None for professionals who only log in through OpenID Connect.
    Column("login", String(254), nullable=True, unique=True),
    Column("principal_id", String(120), nullable=False, unique=True),
    Column("display_name", String(200), nullable=True),
    Column("password_hash", String(256), nullable=True),  # argon2id PHC string
    Column("password_changed_at", DateTime(timezone=True), nullable=True),
    Column("insurer_id", Integer, ForeignKey("insurers.id"), nullable=True),
    Column("provider_id", Integer, ForeignKey("providers.id"), nullable=True),
    # Members: the beneficiary row they are (no foreign key: retention purges beneficiaries
    # and the account must then be closed, not block the purge).
    Column("beneficiary_id", BigId, nullable=True),
    Column("rpps", String(11), nullable=True, unique=True),  # provider users (OIDC)
    Column("oidc_subject", String(255), nullable=True),  # last `sub` seen from the issuer
    # TOTP secret sealed with the operator's FieldCipher; the row id is in the AAD.
    Column("totp_secret_ct", LargeBinary, nullable=True),
    Column("totp_key_version", Integer, nullable=True),
    Column("totp_confirmed_at", DateTime(timezone=True), nullable=True),
    Column("totp_last_step", BigInteger, nullable=True),  # replay guard
    Column("webauthn_user_handle", LargeBinary(32), nullable=True),
    Column("failed_logins", SmallInteger, nullable=False, default=0),
    Column("locked_until", DateTime(timezone=True), nullable=True),
    Column("last_login_at", DateTime(timezone=True), nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("status", String(12), nullable=False, default="active"),  # active | disabled
    CheckConstraint(
        "kind IN ('provider_user', 'insurer_staff', 'operator_staff', 'member')", name="kind"
    ),
    CheckConstraint("status IN ('active', 'disabled')", name="status"),
    # Staff and members log in with a login and a password; professionals may not have one.
    CheckConstraint("kind = 'provider_user' OR login IS NOT NULL", name="login_required"),
    # Since 2026, a plain password is not acceptable for health professionals.
    CheckConstraint("kind <> 'provider_user' OR password_hash IS NULL", name="provider_no_pw"),
    CheckConstraint("kind <> 'insurer_staff' OR insurer_id IS NOT NULL", name="staff_insurer"),
    CheckConstraint(
        "kind <> 'member' OR (insurer_id IS NOT NULL AND beneficiary_id IS NOT NULL)",
        name="member_beneficiary",
    ),
    CheckConstraint("kind <> 'provider_user' OR provider_id IS NOT NULL", name="user_provider"),
    Index("ix_accounts_insurer", "insurer_id"),
    Index("ix_accounts_provider", "provider_id"),
)

recovery_codes = Table(
    "recovery_codes",
    metadata,
    Column("account_id", Integer, ForeignKey("accounts.id"), primary_key=True),
    Column("digest", LargeBinary(32), primary_key=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("used_at", DateTime(timezone=True), nullable=True),
)

webauthn_credentials = Table(
    "webauthn_credentials",
    metadata,
    Column("credential_id", LargeBinary(1023), primary_key=True),
    Column("account_id", Integer, ForeignKey("accounts.id"), nullable=False),
    Column("public_key", LargeBinary, nullable=False),  # COSE key
    Column("sign_count", BigInteger, nullable=False, default=0),
    Column("label", String(100), nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("last_used_at", DateTime(timezone=True), nullable=True),
    Index("ix_webauthn_credentials_account", "account_id"),
)

# A login in progress, between the password (or the start of enrolment) and the second
# factor. The browser holds the challenge token; only its digest is stored.
login_challenges = Table(
    "login_challenges",
    metadata,
    Column("id_digest", LargeBinary(32), primary_key=True),
    Column("account_id", Integer, ForeignKey("accounts.id"), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Column("attempts", SmallInteger, nullable=False, default=0),
    Column("webauthn_challenge", LargeBinary(64), nullable=True),
    Column("consumed_at", DateTime(timezone=True), nullable=True),
    Column("ip", String(45), nullable=True),
    Index("ix_login_challenges_account", "account_id"),
)

sessions = Table(
    "sessions",
    metadata,
    Column("token_digest", LargeBinary(32), primary_key=True),
    Column("account_id", Integer, ForeignKey("accounts.id"), nullable=False),
    Column("principal_id", String(120), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("last_seen_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),  # absolute limit
    Column("mfa_at", DateTime(timezone=True), nullable=True),  # last second factor (step-up)
    Column("revoked_at", DateTime(timezone=True), nullable=True),
    # Per-session secret behind the CSRF token of every form. Useless without the session
    # token, which is stored only as a digest.
    Column("csrf_secret", LargeBinary(32), nullable=False),
    Column("method", String(20), nullable=False),  # password+totp, oidc, …
    Column("ip", String(45), nullable=True),
    Index("ix_sessions_account", "account_id"),
    Index("ix_sessions_principal", "principal_id"),
)

__all__ = [
    "ACCOUNT_KINDS",
    "accounts",
    "login_challenges",
    "recovery_codes",
    "sessions",
    "webauthn_credentials",
]
