"""The password step of a staff or member login, and the login challenge it hands to the
second step. Failures look alike to the caller; the audit log keeps the real reason."""

from __future__ import annotations

import secrets as pysecrets
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection

from tierspayant.app.platform import Platform
from tierspayant.domain.codes import AuthCode
from tierspayant.security.secrets import (
    hash_password,
    needs_rehash,
    token_digest,
    verify_password,
)
from tierspayant.services.accounts.common import (
    AuthPolicy,
    LoginChallenge,
    _audit,
    _dummy_hash,
    _fail_counts,
    _invalid_credentials,
    _load_account,
    _locked,
    _locked_error,
    _login_event,
    _login_pseudonym,
    _methods,
    _principal_status,
    auth_policy,
    normalise_login,
)
from tierspayant.services.errors import (
    Forbidden,
    ServiceError,
    Unauthenticated,
)
from tierspayant.store import accounts as repo
from tierspayant.store.accounts import AccountRow, ChallengeRow


def begin_login(
    platform: Platform, login: str, password: str, ip: str | None = None
) -> LoginChallenge:
    """Check login and password; returns the challenge of the second step.

    Every failure raises Unauthenticated ``auth.invalid_credentials`` whatever the cause
    (unknown login, wrong password, disabled account, professional account), in about the
    same time; TooManyRequests ``auth.locked`` while the account is locked. Each attempt
    is audited (``auth.login``) with its real reason.
    """
    policy = auth_policy(platform.settings)
    now = platform.now()
    pseudonym = _login_pseudonym(platform, login)
    failure: ServiceError | None = None
    challenge: LoginChallenge | None = None
    with platform.engine.begin() as conn:
        row = repo.account_by_login(conn, normalise_login(login))
        if row is None or row.password_hash is None:
            verify_password(_dummy_hash(), password)
            reason = "unknown_login" if row is None else "no_password"
            _audit(
                conn,
                at=now,
                actor=pseudonym if row is None else row.principal_id,
                action="auth.login",
                allowed=False,
                row=row,
                step="password",
                reason=reason,
                ip=ip,
            )
            failure = _invalid_credentials()
        elif (until := _locked(row, now)) is not None:
            verify_password(_dummy_hash(), password)
            _login_event(conn, now, row, allowed=False, step="password", reason="locked", ip=ip)
            failure = _locked_error(until, now)
        elif not verify_password(row.password_hash, password) or row.status != "active":
            if row.status != "active":
                reason = "disabled"
                failures, locked_until = row.failed_logins, None
            else:
                reason = "bad_password"
                failures, locked_until = _fail_counts(conn, row, now, policy)
            _login_event(
                conn,
                now,
                row,
                allowed=False,
                step="password",
                reason=reason,
                failures=failures,
                ip=ip,
            )
            failure = (
                _locked_error(locked_until, now)
                if locked_until is not None
                else _invalid_credentials()
            )
        elif _principal_status(conn, row.principal_id) != "active":
            _login_event(conn, now, row, allowed=False, step="password", reason="suspended", ip=ip)
            failure = Forbidden(
                AuthCode.SUSPENDED, "this account is suspended; contact your administrator"
            )
        else:
            if needs_rehash(row.password_hash):
                repo.set_password_hash(conn, row.id, hash_password(password))
            challenge = _new_challenge(conn, row, now, policy, ip)
            _login_event(
                conn,
                now,
                row,
                allowed=True,
                step="password",
                next="enrol" if challenge.must_enrol else "mfa",
                ip=ip,
            )
    if failure is not None:
        raise failure
    assert challenge is not None
    return challenge


def _new_challenge(
    conn: Connection, row: AccountRow, now: datetime, policy: AuthPolicy, ip: str | None
) -> LoginChallenge:
    challenge_id = pysecrets.token_urlsafe(32)
    expires_at = now + policy.challenge_ttl
    repo.insert_challenge(
        conn, token_digest(challenge_id), row.id, created_at=now, expires_at=expires_at, ip=ip
    )
    methods = _methods(conn, row)
    return LoginChallenge(challenge_id, expires_at, methods, must_enrol=not methods)


@dataclass(frozen=True, slots=True)
class _Pending:
    challenge: ChallengeRow
    account: AccountRow


def _pending(conn: Connection, challenge_id: str, now: datetime) -> _Pending | None:
    challenge = repo.challenge_by_digest(conn, token_digest(challenge_id))
    if challenge is None or challenge.consumed_at is not None:
        return None
    if challenge.expires_at <= now:
        return None
    account = _load_account(conn, challenge.account_id)
    return _Pending(challenge, account)


def _invalid_challenge() -> Unauthenticated:
    return Unauthenticated(
        AuthCode.INVALID_CHALLENGE, "this login attempt has expired; please log in again"
    )


def _consume(conn: Connection, challenge: ChallengeRow, now: datetime) -> None:
    repo.consume_challenge(conn, challenge.id_digest, now)
