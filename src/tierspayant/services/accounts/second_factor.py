"""The second factor of a login (TOTP, security key, recovery code), and its
confirmation again inside a session (step-up). Wrong factors count towards the lockout
with wrong passwords."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection

from tierspayant.app.platform import Platform
from tierspayant.domain.codes import AuthCode
from tierspayant.security import mfa
from tierspayant.security.crypto import FieldCipher
from tierspayant.security.secrets import (
    token_digest,
)
from tierspayant.services.accounts.common import (
    AuthPolicy,
    Factor,
    Session,
    SessionInfo,
    _audit,
    _fail_counts,
    _invalid_credentials,
    _load_account,
    _locked,
    _locked_error,
    _login_event,
    _methods,
    _principal_status,
    _totp_aad,
    auth_policy,
)
from tierspayant.services.accounts.login import _consume, _invalid_challenge, _pending
from tierspayant.services.accounts.sessions import (
    _open_session,
    _revoke_account_sessions,
    validate_session,
)
from tierspayant.services.accounts.step_up import satisfy_guard_step_up
from tierspayant.services.errors import (
    Forbidden,
    ServiceError,
    Unauthenticated,
)
from tierspayant.store import accounts as repo
from tierspayant.store.accounts import AccountRow, ChallengeRow
from tierspayant.store.keys import OPERATOR_SCOPE


def _totp_secret(platform: Platform, conn: Connection, row: AccountRow) -> str | None:
    if row.totp_secret_ct is None or row.totp_key_version is None:
        return None
    keys = platform.keys.version(conn, OPERATOR_SCOPE, row.totp_key_version)
    return FieldCipher(keys).decrypt(row.totp_secret_ct, _totp_aad(row.id))


def _check_totp(
    platform: Platform, conn: Connection, row: AccountRow, code: str, now: datetime
) -> str | None:
    """None when the code is accepted (and its step recorded), else the refusal reason."""
    if row.totp_confirmed_at is None:
        return "totp_not_enrolled"
    secret = _totp_secret(platform, conn, row)
    assert secret is not None
    step = mfa.verify_totp(secret, code, now=now, last_used_step=row.totp_last_step)
    if step is None:
        # Tell the audit log a replay apart from a wrong code.
        any_step = mfa.verify_totp(secret, code, now=now, last_used_step=None)
        return "totp_replay" if any_step is not None else "totp_wrong"
    # Conditional update: two concurrent logins with the same code cannot both pass.
    return None if repo.advance_totp_step(conn, row.id, step) else "totp_replay"


def _check_recovery(conn: Connection, row: AccountRow, code: str, now: datetime) -> str | None:
    if not mfa.looks_like_recovery_code(code):
        return "recovery_wrong"
    used = repo.use_recovery_code(conn, row.id, mfa.recovery_code_digest(code), now)
    return None if used else "recovery_wrong"


def _check_webauthn(
    conn: Connection,
    row: AccountRow,
    challenge: ChallengeRow,
    response_json: str,
    rp: mfa.WebAuthnRelyingParty,
    now: datetime,
) -> str | None:
    if challenge.webauthn_challenge is None:
        return "webauthn_no_challenge"
    try:
        credential_id = mfa.webauthn_response_credential_id(response_json)
    except mfa.MfaError:
        return "webauthn_malformed"
    credential = repo.webauthn_credential(conn, row.id, credential_id)
    if credential is None:
        return "webauthn_unknown_key"
    try:
        new_count = mfa.verify_webauthn_authentication(
            rp,
            response_json=response_json,
            expected_challenge=challenge.webauthn_challenge,
            public_key=credential.public_key,
            stored_sign_count=credential.sign_count,
        )
    except mfa.MfaError as exc:
        return exc.code.replace(".", "_")
    done = repo.advance_sign_count(conn, credential_id, credential.sign_count, new_count, now)
    return None if done else "webauthn_sign_count"


def begin_webauthn(platform: Platform, challenge_id: str, rp: mfa.WebAuthnRelyingParty) -> str:
    """Options (JSON) for ``navigator.credentials.get()`` in the second step of a login."""
    now = platform.now()
    with platform.engine.begin() as conn:
        pending = _pending(conn, challenge_id, now)
        if pending is None:
            raise _invalid_challenge()
        ids = repo.webauthn_credential_ids(conn, pending.account.id)
        if not ids:
            raise ServiceError(AuthCode.NO_SECURITY_KEY, "this account has no security key")
        ceremony = mfa.webauthn_authentication_options(rp, allow_credential_ids=ids)
        repo.set_webauthn_challenge(conn, pending.challenge.id_digest, ceremony.challenge)
    return ceremony.options_json


def complete_mfa(
    platform: Platform,
    challenge_id: str,
    *,
    totp_code: str | None = None,
    recovery_code: str | None = None,
    webauthn_response: str | None = None,
    rp: mfa.WebAuthnRelyingParty | None = None,
    ip: str | None = None,
) -> Session:
    """Second step of a login: exactly one of a TOTP code, a recovery code or a WebAuthn
    answer (with ``rp``). Returns the session.

    Failures raise Unauthenticated ``auth.mfa_failed`` (counted with password failures
    towards the lockout), ``auth.invalid_challenge`` (unknown, used, expired, or too many
    tries on it), TooManyRequests ``auth.locked``, Forbidden
    ``auth.mfa_enrolment_required`` when the account has no second factor yet.
    """
    given = [v for v in (totp_code, recovery_code, webauthn_response) if v is not None]
    if len(given) != 1:
        raise ServiceError(AuthCode.MFA_METHOD, "give exactly one second factor")
    if webauthn_response is not None and rp is None:
        raise ServiceError(AuthCode.MFA_METHOD, "WebAuthn needs the relying party settings")
    policy = auth_policy(platform.settings)
    now = platform.now()
    failure: ServiceError | None = None
    session: Session | None = None
    with platform.engine.begin() as conn:
        pending = _pending(conn, challenge_id, now)
        if pending is None:
            _audit(
                conn,
                at=now,
                actor="challenge:unknown",
                action="auth.login",
                allowed=False,
                step="mfa",
                reason="invalid_challenge",
                ip=ip,
            )
            failure = _invalid_challenge()
        else:
            row, challenge = pending.account, pending.challenge
            method = (
                Factor.TOTP
                if totp_code is not None
                else Factor.RECOVERY
                if recovery_code is not None
                else Factor.WEBAUTHN
            )
            reason: str | None
            if (until := _locked(row, now)) is not None:
                reason = "locked"
            elif not _methods(conn, row):
                reason = "not_enrolled"
            elif totp_code is not None:
                reason = _check_totp(platform, conn, row, totp_code, now)
            elif recovery_code is not None:
                reason = _check_recovery(conn, row, recovery_code, now)
            else:
                assert webauthn_response is not None
                assert rp is not None
                reason = _check_webauthn(conn, row, challenge, webauthn_response, rp, now)
            if reason is None and _principal_status(conn, row.principal_id) != "active":
                reason = "suspended"
            if reason is None and row.status != "active":
                reason = "disabled"
            if reason is None:
                _consume(conn, challenge, now)
                session = _open_session(
                    conn,
                    platform,
                    row,
                    now,
                    policy,
                    method=f"password+{method}",
                    mfa_at=now,
                    ip=ip,
                )
                _login_event(conn, now, row, allowed=True, step=method.value, ip=ip)
            else:
                failure, failures = _mfa_failure(conn, row, challenge, reason, now, policy)
                _login_event(
                    conn,
                    now,
                    row,
                    allowed=False,
                    step=method.value,
                    reason=reason,
                    failures=failures,
                    ip=ip,
                )
                if reason == "locked" and until is not None:
                    failure = _locked_error(until, now)
    if failure is not None:
        raise failure
    assert session is not None
    return session


def _mfa_failure(
    conn: Connection,
    row: AccountRow,
    challenge: ChallengeRow,
    reason: str,
    now: datetime,
    policy: AuthPolicy,
) -> tuple[ServiceError, int]:
    if reason == "locked":
        _consume(conn, challenge, now)
        return _invalid_credentials(), row.failed_logins
    if reason == "not_enrolled":
        return (
            Forbidden(AuthCode.MFA_ENROLMENT_REQUIRED, "enrol a second factor first"),
            row.failed_logins,
        )
    if reason in {"suspended", "disabled"}:
        _consume(conn, challenge, now)
        return Forbidden(AuthCode.SUSPENDED, "this account is suspended"), row.failed_logins
    failures, locked_until = _fail_counts(conn, row, now, policy)
    attempts = challenge.attempts + 1
    spent = attempts >= policy.challenge_attempts or locked_until is not None
    repo.count_challenge_attempt(conn, challenge.id_digest, attempts, now if spent else None)
    if locked_until is not None:
        return _locked_error(locked_until, now), failures
    return Unauthenticated(AuthCode.MFA_FAILED, "the second factor was not accepted"), failures


def step_up(
    platform: Platform,
    token: str,
    *,
    totp_code: str | None = None,
    recovery_code: str | None = None,
    ip: str | None = None,
) -> SessionInfo:
    """Confirm the second factor again inside a session (the guard's soft limit asks for
    it); refreshes ``mfa_at``. Failures count towards the lockout like at login."""
    if (totp_code is None) == (recovery_code is None):
        raise ServiceError(AuthCode.MFA_METHOD, "give exactly one second factor")
    info = validate_session(platform, token)
    policy = auth_policy(platform.settings)
    now = platform.now()
    failure: ServiceError | None = None
    with platform.engine.begin() as conn:
        row = _load_account(conn, info.account_id)
        if totp_code is not None:
            reason = _check_totp(platform, conn, row, totp_code, now)
        else:
            assert recovery_code is not None
            reason = _check_recovery(conn, row, recovery_code, now)
        if reason is None:
            repo.set_session_mfa(conn, token_digest(token), now)
            repo.reset_failures(conn, row.id)
            if totp_code is not None:
                # A TOTP code re-entered satisfies a step-up the guard asked for.
                satisfy_guard_step_up(platform, conn, row, now, factor="totp")
        else:
            _, locked_until = _fail_counts(conn, row, now, policy)
            if locked_until is not None:
                # Locked in the middle of a session: end every session of the account.
                _revoke_account_sessions(conn, row.id, now)
                failure = _locked_error(locked_until, now)
            else:
                failure = Unauthenticated(AuthCode.MFA_FAILED, "the second factor was not accepted")
        _audit(
            conn,
            at=now,
            actor=row.principal_id,
            action="auth.step_up",
            allowed=reason is None,
            row=row,
            reason=reason,
            factor="totp" if totp_code is not None else "recovery",
            ip=ip,
        )
    if failure is not None:
        raise failure
    return validate_session(platform, token)
