"""Setting up a second factor: a TOTP secret or a security key on an account that has
none yet (during its first login), and recovery codes, issued then and renewable from a
session."""

from __future__ import annotations

import os
from datetime import datetime, timedelta

import pyotp
from sqlalchemy import Connection

from tierspayant.app.platform import Platform
from tierspayant.domain.codes import AuthCode
from tierspayant.security import mfa
from tierspayant.security.crypto import FieldCipher
from tierspayant.services.accounts.common import (
    AuthPolicy,
    Enrolled,
    Factor,
    TotpEnrolment,
    _audit,
    _load_account,
    _login_event,
    _methods,
    _totp_aad,
    auth_policy,
)
from tierspayant.services.accounts.login import (
    _consume,
    _invalid_challenge,
    _Pending,
    _pending,
    begin_login,
)
from tierspayant.services.accounts.second_factor import _mfa_failure, _totp_secret
from tierspayant.services.accounts.sessions import _open_session, logout, validate_session
from tierspayant.services.errors import (
    Forbidden,
    ServiceError,
)
from tierspayant.store import accounts as repo
from tierspayant.store.accounts import AccountRow, ChallengeRow


def _setup_pending(conn: Connection, challenge_id: str, now: datetime) -> _Pending:
    pending = _pending(conn, challenge_id, now)
    if pending is None:
        raise _invalid_challenge()
    # Only an account without any second factor may set one up with a password alone:
    # otherwise a stolen password would let the thief replace the victim's factor.
    if _methods(conn, pending.account):
        raise Forbidden(
            AuthCode.ALREADY_ENROLLED, "a second factor is already enrolled on this account"
        )
    return pending


def enrol_totp(
    platform: Platform, challenge_id: str, *, issuer: str = "tierspayant"
) -> TotpEnrolment:
    """Start setting up TOTP in a login whose challenge said ``must_enrol``.

    Returns the secret and its ``otpauth://`` URI (show as a QR code once); the secret is
    stored encrypted and is not usable until :func:`confirm_totp`.
    """
    now = platform.now()
    keys = platform.operator_keys()
    with platform.engine.begin() as conn:
        row = _setup_pending(conn, challenge_id, now).account
        secret = mfa.new_totp_secret()
        sealed = FieldCipher(keys).encrypt(secret, _totp_aad(row.id))
        repo.store_totp_secret(conn, row.id, sealed, keys.version)
    return TotpEnrolment(
        secret, mfa.provisioning_uri(secret, row.login or row.principal_id, issuer)
    )


def confirm_totp(
    platform: Platform, challenge_id: str, code: str, *, ip: str | None = None
) -> Enrolled:
    """Finish setting up TOTP with a first code: opens the session, issues recovery codes."""
    policy = auth_policy(platform.settings)
    now = platform.now()
    failure: ServiceError | None = None
    result: Enrolled | None = None
    with platform.engine.begin() as conn:
        pending = _setup_pending(conn, challenge_id, now)
        row = pending.account
        secret = _totp_secret(platform, conn, row)
        step = (
            None if secret is None else mfa.verify_totp(secret, code, now=now, last_used_step=None)
        )
        if step is None:
            failure, failures = _mfa_failure(
                conn, row, pending.challenge, "totp_wrong", now, policy
            )
            _audit(
                conn,
                at=now,
                actor=row.principal_id,
                action="account.mfa_enrol",
                allowed=False,
                row=row,
                factor="totp",
                failures=failures,
                ip=ip,
            )
        else:
            repo.confirm_totp(conn, row.id, now, step)
            result = _finish_setup(
                conn, platform, row, pending.challenge, now, policy, factor=Factor.TOTP, ip=ip
            )
    if failure is not None:
        raise failure
    assert result is not None
    return result


def begin_webauthn_enrolment(
    platform: Platform, challenge_id: str, rp: mfa.WebAuthnRelyingParty
) -> str:
    """Options (JSON) for ``navigator.credentials.create()`` while setting up a key."""
    now = platform.now()
    with platform.engine.begin() as conn:
        pending = _setup_pending(conn, challenge_id, now)
        row = pending.account
        handle = row.webauthn_user_handle
        if handle is None:
            handle = os.urandom(32)
            repo.set_webauthn_user_handle(conn, row.id, handle)
        ceremony = mfa.webauthn_registration_options(
            rp, user_handle=handle, user_name=row.login or row.principal_id
        )
        repo.set_webauthn_challenge(conn, pending.challenge.id_digest, ceremony.challenge)
    return ceremony.options_json


def finish_webauthn_enrolment(
    platform: Platform,
    challenge_id: str,
    response_json: str,
    rp: mfa.WebAuthnRelyingParty,
    *,
    label: str | None = None,
    ip: str | None = None,
) -> Enrolled:
    """Store the new security key, open the session, issue recovery codes."""
    policy = auth_policy(platform.settings)
    now = platform.now()
    failure: ServiceError | None = None
    result: Enrolled | None = None
    with platform.engine.begin() as conn:
        pending = _setup_pending(conn, challenge_id, now)
        row, challenge = pending.account, pending.challenge
        credential: mfa.RegisteredCredential | None = None
        if challenge.webauthn_challenge is not None:
            try:
                credential = mfa.verify_webauthn_registration(
                    rp,
                    response_json=response_json,
                    expected_challenge=challenge.webauthn_challenge,
                )
            except mfa.MfaError:
                credential = None
        if credential is None:
            failure, failures = _mfa_failure(
                conn, row, challenge, "webauthn_registration", now, policy
            )
            _audit(
                conn,
                at=now,
                actor=row.principal_id,
                action="account.mfa_enrol",
                allowed=False,
                row=row,
                factor="webauthn",
                failures=failures,
                ip=ip,
            )
        else:
            repo.insert_webauthn_credential(
                conn,
                row.id,
                credential_id=credential.credential_id,
                public_key=credential.public_key,
                sign_count=credential.sign_count,
                label=(label or "security key")[:100],
                at=now,
            )
            result = _finish_setup(
                conn, platform, row, challenge, now, policy, factor=Factor.WEBAUTHN, ip=ip
            )
    if failure is not None:
        raise failure
    assert result is not None
    return result


def _finish_setup(
    conn: Connection,
    platform: Platform,
    row: AccountRow,
    challenge: ChallengeRow,
    now: datetime,
    policy: AuthPolicy,
    *,
    factor: Factor,
    ip: str | None,
) -> Enrolled:
    codes = _replace_recovery_codes(conn, row.id, now)
    _consume(conn, challenge, now)
    session = _open_session(
        conn, platform, row, now, policy, method=f"password+{factor}", mfa_at=now, ip=ip
    )
    _audit(
        conn,
        at=now,
        actor=row.principal_id,
        action="account.mfa_enrol",
        allowed=True,
        row=row,
        factor=factor.value,
        ip=ip,
    )
    _login_event(conn, now, row, allowed=True, step=factor.value, ip=ip)
    return Enrolled(session, tuple(codes))


def _replace_recovery_codes(conn: Connection, account_id: int, now: datetime) -> list[str]:
    codes = mfa.new_recovery_codes()
    repo.replace_recovery_codes(conn, account_id, (mfa.recovery_code_digest(c) for c in codes), now)
    return codes


def regenerate_recovery_codes(platform: Platform, token: str) -> tuple[str, ...]:
    """New recovery codes for the session's account (the old ones stop working).

    Needs a second factor within the last ``session_idle`` (fresh step-up)."""
    policy = auth_policy(platform.settings)
    info = validate_session(platform, token)
    now = platform.now()
    if info.mfa_at is None or now - info.mfa_at > policy.session_idle:
        raise Forbidden(AuthCode.STEP_UP_REQUIRED, "confirm your second factor first")
    with platform.engine.begin() as conn:
        codes = _replace_recovery_codes(conn, info.account_id, now)
        row = _load_account(conn, info.account_id)
        _audit(
            conn,
            at=now,
            actor=row.principal_id,
            action="account.recovery_codes",
            allowed=True,
            row=row,
        )
    return tuple(codes)


def enrol_totp_now(platform: Platform, login: str, password: str) -> TotpEnrolment:
    """Enrol a TOTP secret for an account that has none, confirming it with a code
    computed here, and close the session this opens. For the demo and the command line,
    where the administrator hands the secret over; people enrol in the portal.

    The code confirming it is the previous step's (accepted: one step of drift either
    side), so the replay guard does not refuse the code the person computes right after
    with the handed-over secret, which is of the current step."""
    challenge = begin_login(platform, login, password)
    enrolment = enrol_totp(platform, challenge.challenge_id)
    previous = platform.now() - timedelta(seconds=mfa.TOTP_PERIOD_SECONDS)
    code = pyotp.TOTP(enrolment.secret).at(previous)
    enrolled = confirm_totp(platform, challenge.challenge_id, code)
    logout(platform, enrolled.session.token)
    return enrolment
