"""Portal sessions: opened after a complete login, checked on each request (inactivity
and absolute limits), ended one by one, per account, or per principal (the guard)."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta

from sqlalchemy import Connection

from tierspayant.app.platform import Platform
from tierspayant.domain.codes import AuthCode
from tierspayant.security.principal import AuthStrength, Principal
from tierspayant.security.secrets import (
    new_access_token,
    token_digest,
)
from tierspayant.services.accounts.common import (
    AccountKind,
    AuthPolicy,
    Session,
    SessionInfo,
    _audit,
    _csrf_token,
    _load_account,
    _principal_kind,
    _principal_status,
    auth_policy,
)
from tierspayant.services.errors import (
    ServiceError,
    Unauthenticated,
)
from tierspayant.store import accounts as repo
from tierspayant.store.accounts import AccountRow


def _open_session(
    conn: Connection,
    platform: Platform,
    row: AccountRow,
    now: datetime,
    policy: AuthPolicy,
    *,
    method: str,
    mfa_at: datetime | None,
    ip: str | None,
) -> Session:
    token = new_access_token()
    csrf_secret = os.urandom(32)
    expires_at = now + policy.session_absolute
    repo.insert_session(
        conn,
        token_digest(token),
        row.id,
        row.principal_id,
        at=now,
        expires_at=expires_at,
        mfa_at=mfa_at,
        csrf_secret=csrf_secret,
        method=method,
        ip=ip,
    )
    repo.record_login(conn, row.id, now)
    return Session(
        token=token,
        csrf_token=_csrf_token(csrf_secret),
        account_id=row.id,
        principal=_build_principal(conn, row),
        created_at=now,
        expires_at=expires_at,
        idle_timeout=policy.session_idle,
    )


def _build_principal(conn: Connection, row: AccountRow) -> Principal:
    kind = AccountKind(row.kind)
    provider_am = structure = category = None
    if row.provider_id is not None:
        prov = repo.provider_identity(conn, row.provider_id)
        if prov is not None:
            provider_am = prov.am_number
            structure = prov.finess or prov.siret or prov.am_number
            category = prov.category
    return Principal(
        id=row.principal_id,
        kind=_principal_kind(kind),
        # Password + TOTP/WebAuthn, or an OIDC login at the required acr: AAL2.
        strength=AuthStrength.AAL2,
        provider_id=row.provider_id,
        provider_am_number=provider_am,
        structure=structure,
        insurer_id=row.insurer_id,
        beneficiary_id=row.beneficiary_id,
        provider_category=category,
    )


def _session_expired() -> Unauthenticated:
    return Unauthenticated(AuthCode.SESSION_EXPIRED, "your session has expired; log in again")


def _session_invalid() -> Unauthenticated:
    return Unauthenticated(AuthCode.SESSION_INVALID, "not logged in")


SESSION_TOUCH_INTERVAL = timedelta(seconds=30)


def validate_session(platform: Platform, token: str, now: datetime | None = None) -> SessionInfo:
    """The session behind a cookie token, touched (``last_seen_at``) when valid.

    Unauthenticated ``auth.session_invalid`` when unknown, revoked, or its account or
    principal is no longer active; ``auth.session_expired`` after the inactivity limit or
    the absolute limit (the session is then revoked for good).
    """
    policy = auth_policy(platform.settings)
    moment = now or platform.now()
    failure: ServiceError | None = None
    info: SessionInfo | None = None
    with platform.engine.begin() as conn:
        found = repo.session_by_digest(conn, token_digest(token))
        if found is None or found.revoked_at is not None:
            failure = _session_invalid()
        else:
            last_seen = found.last_seen_at
            expires_at = found.expires_at
            expired = moment >= expires_at or moment - last_seen >= policy.session_idle
            inactive = (
                found.account_status != "active"
                or _principal_status(conn, found.principal_id) != "active"
            )
            if expired or inactive:
                repo.revoke_session(conn, found.token_digest, moment)
                failure = _session_expired() if expired else _session_invalid()
            else:
                if moment - last_seen >= SESSION_TOUCH_INTERVAL:
                    # Touching on every request would make each page view a write; the
                    # inactivity limit is minutes, so a 30 s granularity loses nothing.
                    repo.touch_session(conn, found.token_digest, moment)
                row = _load_account(conn, found.account_id)
                info = SessionInfo(
                    account_id=found.account_id,
                    account_kind=AccountKind(row.kind),
                    principal=_build_principal(conn, row),
                    csrf_token=_csrf_token(found.csrf_secret),
                    created_at=found.created_at,
                    last_seen_at=moment,
                    expires_at=expires_at,
                    mfa_at=found.mfa_at,
                    beneficiary_id=row.beneficiary_id,
                )
    if failure is not None:
        raise failure
    assert info is not None
    return info


def _revoke_account_sessions(conn: Connection, account_id: int, at: datetime) -> int:
    return repo.revoke_account_sessions(conn, account_id, at)


def logout(platform: Platform, token: str) -> None:
    """End one session (idempotent; an unknown token is ignored)."""
    now = platform.now()
    with platform.engine.begin() as conn:
        digest = token_digest(token)
        found = repo.session_by_digest(conn, digest)
        if found is None or found.revoked_at is not None:
            return
        repo.revoke_session(conn, digest, now)
        row = _load_account(conn, found.account_id)
        _audit(conn, at=now, actor=found.principal_id, action="auth.logout", allowed=True, row=row)


def logout_everywhere(platform: Platform, account_id: int, *, actor: str | None = None) -> int:
    """End every session of an account; returns how many were open."""
    now = platform.now()
    with platform.engine.begin() as conn:
        row = _load_account(conn, account_id)
        revoked = _revoke_account_sessions(conn, account_id, now)
        _audit(
            conn,
            at=now,
            actor=actor or row.principal_id,
            action="auth.logout_everywhere",
            allowed=True,
            row=row,
            sessions=revoked,
        )
    return revoked


def revoke_principal_sessions(
    conn: Connection, principal_id: str, at: datetime | None = None
) -> int:
    """Revoke every open session of a principal inside the caller's transaction (used by
    the guard when it suspends a principal); returns how many."""
    return repo.revoke_principal_sessions(conn, principal_id, at or datetime.now(UTC))
