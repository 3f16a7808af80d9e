"""Health professionals' logins through OpenID Connect (Pro Santé Connect): the ID token
was checked by :mod:`tierspayant.security.oidc`; here the RPPS maps to an account."""

from __future__ import annotations

import hashlib

from tierspayant.app.platform import Platform
from tierspayant.domain.codes import AuthCode
from tierspayant.security.oidc import OidcError, OidcIdentity
from tierspayant.services.accounts.admin import _insert_account
from tierspayant.services.accounts.common import (
    AccountKind,
    Session,
    _audit,
    _login_event,
    _principal_status,
    auth_policy,
)
from tierspayant.services.accounts.sessions import _open_session
from tierspayant.services.accounts.step_up import satisfy_guard_step_up, strong_and_fresh
from tierspayant.services.errors import (
    Forbidden,
    ServiceError,
)
from tierspayant.store import accounts as repo


def login_oidc(platform: Platform, identity: OidcIdentity, *, ip: str | None = None) -> Session:
    """Open a session for a health professional whose ID token was validated.

    The RPPS maps to the professional's account. Without one, an account is created when
    exactly one active registered provider has this RPPS (the issuer vouched for the
    RPPS, our registry binds it to the provider); otherwise Forbidden
    ``auth.unknown_professional``.
    """
    policy = auth_policy(platform.settings)
    now = platform.now()
    failure: ServiceError | None = None
    session: Session | None = None
    with platform.engine.begin() as conn:
        row = repo.provider_user_by_rpps(conn, identity.rpps)
        if row is None:
            candidates = repo.active_provider_ids_by_rpps(conn, identity.rpps)
            if len(candidates) == 1:
                row = _insert_account(
                    conn,
                    now,
                    kind=AccountKind.PROVIDER_USER,
                    login=None,
                    password_hash=None,
                    provider_id=candidates[0],
                    rpps=identity.rpps,
                    oidc_subject=identity.sub,
                )
                _audit(
                    conn,
                    at=now,
                    actor="oidc",
                    action="account.create",
                    allowed=True,
                    row=row,
                    account=row.principal_id,
                    provisioned=True,
                )
        if row is None:
            _audit(
                conn,
                at=now,
                actor=f"oidc:{_subject_pseudonym(identity)}",
                action="auth.login",
                allowed=False,
                step="oidc",
                reason="unknown_professional",
                ip=ip,
            )
            failure = Forbidden(
                AuthCode.UNKNOWN_PROFESSIONAL,
                "no provider registered with us matches this professional identity",
            )
        elif row.status != "active" or _principal_status(conn, row.principal_id) != "active":
            _login_event(conn, now, row, allowed=False, step="oidc", reason="suspended", ip=ip)
            failure = Forbidden(AuthCode.SUSPENDED, "this account is suspended")
        else:
            repo.record_oidc_login(conn, row.id, identity.sub, now)
            session = _open_session(
                conn, platform, row, now, policy, method="oidc", mfa_at=identity.auth_time, ip=ip
            )
            _login_event(
                conn,
                now,
                row,
                allowed=True,
                step="oidc",
                acr=identity.acr,
                amr=" ".join(identity.amr),
                ip=ip,
            )
            if strong_and_fresh(identity.amr, identity.auth_time, now):
                # A fresh CPS/e-CPS login satisfies a step-up the guard asked for.
                satisfy_guard_step_up(
                    platform, conn, row, now, factor="oidc", acr=identity.acr,
                    amr=" ".join(identity.amr),
                )  # fmt: skip
    if failure is not None:
        raise failure
    assert session is not None
    return session


def _subject_pseudonym(identity: OidcIdentity) -> str:
    return hashlib.sha256(f"{identity.issuer}|{identity.sub}".encode()).hexdigest()[:24]


def record_oidc_failure(platform: Platform, error: OidcError, *, ip: str | None = None) -> None:
    """Audit a refused OpenID Connect callback (bad acr, stale auth_time, forged token…)."""
    now = platform.now()
    with platform.engine.begin() as conn:
        _audit(
            conn,
            at=now,
            actor="oidc",
            action="auth.login",
            allowed=False,
            step="oidc",
            reason=error.code,
            ip=ip,
        )
