"""What every part of the accounts service shares: kinds of accounts and factors, the
authentication policy, the values handed to callers, and the helpers of the audit trail
and of the failure count (lockout)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets as pysecrets
import unicodedata
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from functools import cache

from sqlalchemy import Connection

from tierspayant.app.platform import Platform
from tierspayant.config import MAX_FAILED_LOGINS_CEILING as MAX_FAILED_LOGINS_CEILING
from tierspayant.config import Settings
from tierspayant.domain.codes import AuthCode
from tierspayant.security.crypto import row_aad
from tierspayant.security.principal import Principal, PrincipalKind
from tierspayant.security.secrets import (
    hash_password,
)
from tierspayant.services.errors import (
    NotFound,
    TooManyRequests,
    Unauthenticated,
)
from tierspayant.store import accounts as repo
from tierspayant.store import audit
from tierspayant.store.accounts import AccountRow

_LOGIN = re.compile(r"[^@\s]{1,64}@[^@\s]{1,189}\.[^@\s]{1,63}")
_AUDIT_LOGIN_PURPOSE = "audit.login"


class AccountKind(StrEnum):
    """The kinds of human accounts (each is also a :class:`PrincipalKind`)."""

    PROVIDER_USER = "provider_user"
    INSURER_STAFF = "insurer_staff"
    OPERATOR_STAFF = "operator_staff"
    MEMBER = "member"


class Factor(StrEnum):
    """Second factors a login challenge can be completed with."""

    TOTP = "totp"
    WEBAUTHN = "webauthn"
    RECOVERY = "recovery"


@dataclass(frozen=True, slots=True)
class AuthPolicy:
    """Limits of authentication and sessions (defaults from the security design)."""

    max_failed_logins: int = 10
    lockout: timedelta = timedelta(minutes=15)
    session_idle: timedelta = timedelta(minutes=15)
    session_absolute: timedelta = timedelta(hours=8)
    challenge_ttl: timedelta = timedelta(minutes=5)
    challenge_attempts: int = 5

    def __post_init__(self) -> None:
        if not 1 <= self.max_failed_logins <= MAX_FAILED_LOGINS_CEILING:
            raise ValueError(f"max_failed_logins must be between 1 and {MAX_FAILED_LOGINS_CEILING}")
        if self.session_idle <= timedelta(0) or self.session_absolute < self.session_idle:
            raise ValueError("session limits must be positive and idle <= absolute")


def auth_policy(settings: Settings) -> AuthPolicy:
    """The policy, with the limits of ``settings.sessions`` (checked at start-up)."""
    limits = settings.sessions
    return AuthPolicy(
        max_failed_logins=limits.max_failed_logins,
        lockout=timedelta(seconds=limits.lockout_seconds),
        session_idle=timedelta(seconds=limits.idle_seconds),
        session_absolute=timedelta(seconds=limits.absolute_seconds),
    )


@dataclass(frozen=True, slots=True)
class Account:
    """An account as the portals and the administration see it (no secrets)."""

    id: int
    kind: AccountKind
    login: str | None
    principal_id: str
    status: str
    insurer_id: int | None
    provider_id: int | None
    beneficiary_id: int | None
    rpps: str | None
    has_totp: bool
    failed_logins: int
    locked_until: datetime | None


@dataclass(frozen=True, slots=True)
class LoginChallenge:
    """A password step that succeeded: what the second step may use.

    ``challenge_id`` is a secret: keep it in an HttpOnly cookie (or a hidden field of the
    next form) and pass it back. ``must_enrol`` means the account has no second factor yet
    and must set one up (TOTP or WebAuthn) before any session is opened.
    """

    challenge_id: str
    expires_at: datetime
    methods: tuple[Factor, ...]
    must_enrol: bool


@dataclass(frozen=True, slots=True)
class Session:
    """A new portal session. Put ``token`` in the session cookie; it is shown only once."""

    token: str
    csrf_token: str
    account_id: int
    principal: Principal
    created_at: datetime
    expires_at: datetime  # absolute limit
    idle_timeout: timedelta


@dataclass(frozen=True, slots=True)
class SessionInfo:
    """A session found valid by :func:`validate_session`."""

    account_id: int
    account_kind: AccountKind
    principal: Principal
    csrf_token: str
    created_at: datetime
    last_seen_at: datetime
    expires_at: datetime
    mfa_at: datetime | None
    beneficiary_id: int | None = None

    def check_csrf(self, submitted: str | None) -> bool:
        """Whether a form's CSRF token is this session's (constant-time)."""
        return submitted is not None and hmac.compare_digest(
            self.csrf_token.encode(), submitted.encode()
        )


@dataclass(frozen=True, slots=True)
class TotpEnrolment:
    """A TOTP secret to show once (as a QR code of ``uri``) until it is confirmed."""

    secret: str
    uri: str


@dataclass(frozen=True, slots=True)
class Enrolled:
    """A confirmed second factor: the first session, and recovery codes to show once."""

    session: Session
    recovery_codes: tuple[str, ...]


def normalise_login(login: str) -> str:
    """A login as stored: NFKC, trimmed, lower case."""
    return unicodedata.normalize("NFKC", login).strip().lower()


def _csrf_token(secret: bytes) -> str:
    return base64.urlsafe_b64encode(secret).rstrip(b"=").decode("ascii")


@cache
def _dummy_hash() -> str:
    # Verified when the login is unknown, so that an unknown login takes as long as a
    # wrong password and the timing does not reveal which logins exist.
    return hash_password(pysecrets.token_urlsafe(16))


def _login_pseudonym(platform: Platform, login: str) -> str:
    """Audit actor for a login that matched no account: keyed, so not reversible."""
    key = platform.operator_keys().derive(_AUDIT_LOGIN_PURPOSE)
    digest = hmac.new(key, normalise_login(login).encode("utf-8"), hashlib.sha256).hexdigest()
    return f"login:{digest[:24]}"


def _totp_aad(account_id: int) -> bytes:
    return row_aad(0, "accounts", str(account_id), "totp_secret")


def _principal_kind(kind: AccountKind) -> PrincipalKind:
    return PrincipalKind(kind.value)


def _load_account(conn: Connection, account_id: int) -> AccountRow:
    row = repo.account_by_id(conn, account_id)
    if row is None:
        raise NotFound(AuthCode.ACCOUNT_UNKNOWN, "no such account")
    return row


def _principal_status(conn: Connection, principal_id: str) -> str | None:
    return repo.principal_status(conn, principal_id)


def _methods(conn: Connection, row: AccountRow) -> tuple[Factor, ...]:
    methods: list[Factor] = []
    if row.totp_confirmed_at is not None:
        methods.append(Factor.TOTP)
    if repo.webauthn_credential_count(conn, row.id):
        methods.append(Factor.WEBAUTHN)
    if methods and repo.unused_recovery_code_count(conn, row.id):
        methods.append(Factor.RECOVERY)
    return tuple(methods)


def _audit_scope(conn: Connection, row: AccountRow) -> dict[str, str | None]:
    """``structure`` and ``insurer`` of the audit events of an account."""
    insurer = structure = None
    if row.insurer_id is not None:
        insurer = repo.insurer_amc_number(conn, row.insurer_id)
    if row.provider_id is not None:
        prov = repo.provider_identity(conn, row.provider_id)
        if prov is not None:
            structure = prov.finess or prov.siret or prov.am_number
    return {"insurer": insurer, "structure": structure}


def _audit(
    conn: Connection,
    *,
    at: datetime,
    actor: str,
    action: str,
    allowed: bool,
    row: AccountRow | None = None,
    **detail: str | int | bool | None,
) -> None:
    scope = _audit_scope(conn, row) if row is not None else {"insurer": None, "structure": None}
    audit.append(
        conn,
        at=at,
        actor=actor,
        action=action,
        decision="allow" if allowed else "deny",
        structure=scope["structure"],
        insurer=scope["insurer"],
        detail={k: v for k, v in detail.items() if v is not None},
    )


def _login_event(
    conn: Connection, now: datetime, row: AccountRow, **detail: str | int | bool | None
) -> None:
    """Audit one authentication step of a known account (action ``auth.login``)."""
    allowed = bool(detail.pop("allowed"))
    _audit(
        conn,
        at=now,
        actor=row.principal_id,
        action="auth.login",
        allowed=allowed,
        row=row,
        **detail,
    )


def _fail_counts(
    conn: Connection, row: AccountRow, now: datetime, policy: AuthPolicy
) -> tuple[int, datetime | None]:
    """Count one failure; lock when the count reaches the maximum. Returns both."""
    failures = row.failed_logins + 1
    locked_until = now + policy.lockout if failures >= policy.max_failed_logins else None
    repo.count_failure(conn, row.id, locked_until)
    return failures, locked_until


def _locked(row: AccountRow, now: datetime) -> datetime | None:
    until = row.locked_until
    return until if until is not None and until > now else None


def _locked_error(until: datetime, now: datetime) -> TooManyRequests:
    wait = max(1, int((until - now).total_seconds()))
    return TooManyRequests(
        AuthCode.LOCKED,
        "too many failed attempts: this account is locked for a while",
        retry_after=wait,
    )


def _invalid_credentials() -> Unauthenticated:
    return Unauthenticated(AuthCode.INVALID_CREDENTIALS, "invalid login or password")
