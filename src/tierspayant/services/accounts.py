"""Human accounts of the portals: logins, second factors, sessions.

Who logs in how (details and references in ``docs/authentication.md``):

- health professionals: OpenID Connect (Pro Santé Connect), :func:`login_oidc`, after
  :mod:`tierspayant.security.oidc` has checked the ID token (acr, amr, auth_time);
- insurer staff, operator staff, members: :func:`begin_login` (argon2id password) then
  :func:`complete_mfa` (TOTP, WebAuthn or a one-time recovery code). The second factor is
  mandatory: an account without one enrols first (:func:`enrol_totp` then
  :func:`confirm_totp`, or the WebAuthn pair) and only then gets a session.

Failures all look alike to the caller (``auth.invalid_credentials``, ``auth.mfa_failed``);
the audit log records the precise reason. Ten consecutive failures (passwords and second
factors together) lock the account for 15 minutes; any further failure while the count
stays at ten locks it again. Sessions end after 15 minutes without activity and 8 hours
after login, whichever comes first, and can be revoked one by one, per account or per
principal (suspension by the guard).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
import secrets as pysecrets
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from functools import cache
from typing import Any

from sqlalchemy import Connection

from tierspayant.config import Settings
from tierspayant.security import mfa
from tierspayant.security.breached import check_password_policy
from tierspayant.security.crypto import FieldCipher, row_aad
from tierspayant.security.oidc import OidcError, OidcIdentity
from tierspayant.security.principal import AuthStrength, Principal, PrincipalKind
from tierspayant.security.secrets import (
    hash_password,
    needs_rehash,
    new_access_token,
    token_digest,
    verify_password,
)
from tierspayant.services.errors import (
    Conflict,
    Forbidden,
    NotFound,
    ServiceError,
    TooManyRequests,
    Unauthenticated,
)
from tierspayant.services.platform import Platform
from tierspayant.store import accounts as repo
from tierspayant.store import audit
from tierspayant.store.accounts import AccountRow, ChallengeRow
from tierspayant.store.keys import OPERATOR_SCOPE

# NIST SP 800-63B 5.2.2 allows at most 100 consecutive failures; the CNIL and the France
# Travail sanction (2026) point to far fewer. Ten is the ceiling the design sets.
MAX_FAILED_LOGINS_CEILING = 10
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
    """The policy, with overrides from ``settings.extra`` (values in seconds).

    Keys: ``session_idle_seconds``, ``session_absolute_seconds``, ``lockout_seconds``,
    ``max_failed_logins``.
    """
    extra = settings.extra
    default = AuthPolicy()

    def seconds(name: str, fallback: timedelta) -> timedelta:
        raw = extra.get(name)
        return fallback if not raw else timedelta(seconds=int(raw))

    return AuthPolicy(
        max_failed_logins=int(extra.get("max_failed_logins") or default.max_failed_logins),
        lockout=seconds("lockout_seconds", default.lockout),
        session_idle=seconds("session_idle_seconds", default.session_idle),
        session_absolute=seconds("session_absolute_seconds", default.session_absolute),
    )


# --------------------------------------------------------------------------- values


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
    and must enrol one (TOTP or WebAuthn) before any session is opened.
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


# --------------------------------------------------------------------------- helpers


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


def _account(row: AccountRow) -> Account:
    return Account(
        id=row.id,
        kind=AccountKind(row.kind),
        login=row.login,
        principal_id=row.principal_id,
        status=row.status,
        insurer_id=row.insurer_id,
        provider_id=row.provider_id,
        beneficiary_id=row.beneficiary_id,
        rpps=row.rpps,
        has_totp=row.totp_confirmed_at is not None,
        failed_logins=row.failed_logins,
        locked_until=row.locked_until,
    )


def _principal_id(conn: Connection, kind: AccountKind, row: AccountRow) -> str:
    if kind is AccountKind.OPERATOR_STAFF:
        return f"operator/staff:{row.id}"
    if kind is AccountKind.PROVIDER_USER:
        assert row.provider_id is not None
        provider = repo.provider_identity(conn, row.provider_id)
        assert provider is not None
        return f"provider:{provider.am_number}/user:{row.id}"
    assert row.insurer_id is not None
    amc = repo.insurer_amc_number(conn, row.insurer_id)
    assert amc is not None
    role = "staff" if kind is AccountKind.INSURER_STAFF else "member"
    return f"insurer:{amc}/{role}:{row.id}"


def _load_account(conn: Connection, account_id: int) -> AccountRow:
    row = repo.account_by_id(conn, account_id)
    if row is None:
        raise NotFound("account.unknown", "no such account")
    return row


def get_account(platform: Platform, account_id: int) -> Account:
    """One account by id (NotFound ``account.unknown``)."""
    with platform.engine.connect() as conn:
        return _account(_load_account(conn, account_id))


def find_account(platform: Platform, login: str) -> Account | None:
    """The account with this login, if any (administration use, not for login forms)."""
    with platform.engine.connect() as conn:
        row = repo.account_by_login(conn, normalise_login(login))
    return None if row is None else _account(row)


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


# --------------------------------------------------------------------------- accounts


def create_account(
    platform: Platform,
    kind: AccountKind | str,
    login: str | None,
    password: str | None,
    *,
    actor: str,
    insurer_id: int | None = None,
    provider_id: int | None = None,
    beneficiary_id: int | None = None,
    rpps: str | None = None,
    display_name: str | None = None,
    context_words: Sequence[str] = (),
) -> Account:
    """Create a human account (audited as ``account.create``).

    Staff and members need a login (e-mail) and a password that passes the policy
    (:func:`~tierspayant.security.breached.check_password_policy`; the login, the name and
    ``context_words`` may not appear in it). Provider users need ``provider_id`` and
    ``rpps`` and have no password: they log in through OpenID Connect. Insurer staff
    need ``insurer_id``; members ``insurer_id`` and ``beneficiary_id``.
    """
    try:
        account_kind = AccountKind(kind)
    except ValueError:
        raise ServiceError("account.kind", "unknown account kind", field="kind") from None
    clean_login = normalise_login(login) if login else None
    if clean_login is not None and not _LOGIN.fullmatch(clean_login):
        raise ServiceError("account.login", "the login must be an e-mail address", field="login")
    password_hash: str | None = None
    if account_kind is AccountKind.PROVIDER_USER:
        if password is not None:
            raise ServiceError(
                "account.password_not_allowed",
                "health professionals log in with Pro Santé Connect, not a password",
                field="password",
            )
        if provider_id is None or rpps is None or not re.fullmatch(r"\d{11}", rpps):
            raise ServiceError(
                "account.provider", "a provider user needs a provider and an 11-digit RPPS"
            )
    else:
        if clean_login is None:
            raise ServiceError("account.login", "a login is required", field="login")
        if password is None:
            raise ServiceError("account.password", "a password is required", field="password")
        words = [clean_login, *(display_name or "").split(), "tierspayant", *context_words]
        check_password_policy(password, context_words=words)
        password_hash = hash_password(password)
    if account_kind is AccountKind.INSURER_STAFF and insurer_id is None:
        raise ServiceError("account.insurer", "insurer staff need an insurer", field="insurer")
    if account_kind is AccountKind.MEMBER and (insurer_id is None or beneficiary_id is None):
        raise ServiceError("account.beneficiary", "a member account needs its beneficiary")
    now = platform.now()
    with platform.engine.begin() as conn:
        if clean_login is not None and repo.login_taken(conn, clean_login):
            raise Conflict("account.exists", "an account with this login exists", field="login")
        if rpps is not None and repo.rpps_taken(conn, rpps):
            raise Conflict("account.exists", "an account with this RPPS exists", field="rpps")
        if insurer_id is not None and not repo.insurer_exists(conn, insurer_id):
            raise NotFound("account.insurer", "no such insurer", field="insurer")
        if provider_id is not None and not repo.provider_exists(conn, provider_id):
            raise NotFound("account.provider", "no such provider", field="provider")
        if account_kind is AccountKind.MEMBER and (
            insurer_id is None
            or beneficiary_id is None
            or not repo.beneficiary_exists(conn, insurer_id, beneficiary_id)
        ):
            raise NotFound("account.beneficiary", "no such beneficiary", field="beneficiary")
        row = _insert_account(
            conn,
            now,
            kind=account_kind,
            login=clean_login,
            password_hash=password_hash,
            insurer_id=insurer_id,
            provider_id=provider_id if account_kind is AccountKind.PROVIDER_USER else None,
            beneficiary_id=beneficiary_id if account_kind is AccountKind.MEMBER else None,
            rpps=rpps,
            display_name=display_name,
        )
        _audit(
            conn,
            at=now,
            actor=actor,
            action="account.create",
            allowed=True,
            row=row,
            account=row.principal_id,
        )
    return _account(row)


def _insert_account(conn: Connection, now: datetime, **values: Any) -> AccountRow:
    kind: AccountKind = values["kind"]
    placeholder = "pending:" + pysecrets.token_hex(16)  # the id is known only after insert
    account_id = repo.insert_account(
        conn,
        principal_id=placeholder,
        failed_logins=0,
        status="active",
        created_at=now,
        password_changed_at=now if values.get("password_hash") else None,
        **{**values, "kind": kind.value},
    )
    row = _load_account(conn, account_id)
    principal_id = _principal_id(conn, kind, row)
    repo.set_principal_id(conn, account_id, principal_id)
    repo.insert_principal(conn, principal_id, _principal_kind(kind).value)
    return _load_account(conn, account_id)


def disable_account(platform: Platform, account_id: int, *, actor: str) -> int:
    """Disable an account and end its sessions; returns how many sessions were revoked."""
    now = platform.now()
    with platform.engine.begin() as conn:
        row = _load_account(conn, account_id)
        repo.set_status(conn, account_id, "disabled")
        revoked = _revoke_account_sessions(conn, account_id, now)
        _audit(
            conn,
            at=now,
            actor=actor,
            action="account.disable",
            allowed=True,
            row=row,
            account=row.principal_id,
            sessions=revoked,
        )
    return revoked


# --------------------------------------------------------------------------- password step


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
        "auth.locked",
        "too many failed attempts: this account is locked for a while",
        retry_after=wait,
    )


def _invalid_credentials() -> Unauthenticated:
    return Unauthenticated("auth.invalid_credentials", "invalid login or password")


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
                "auth.suspended", "this account is suspended; contact your administrator"
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
        "auth.invalid_challenge", "this login attempt has expired; please log in again"
    )


def _consume(conn: Connection, challenge: ChallengeRow, now: datetime) -> None:
    repo.consume_challenge(conn, challenge.id_digest, now)


# --------------------------------------------------------------------------- second factor


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
            raise ServiceError("auth.no_security_key", "this account has no security key")
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
        raise ServiceError("auth.mfa_method", "give exactly one second factor")
    if webauthn_response is not None and rp is None:
        raise ServiceError("auth.mfa_method", "WebAuthn needs the relying party settings")
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
            Forbidden("auth.mfa_enrolment_required", "enrol a second factor first"),
            row.failed_logins,
        )
    if reason in {"suspended", "disabled"}:
        _consume(conn, challenge, now)
        return Forbidden("auth.suspended", "this account is suspended"), row.failed_logins
    failures, locked_until = _fail_counts(conn, row, now, policy)
    attempts = challenge.attempts + 1
    spent = attempts >= policy.challenge_attempts or locked_until is not None
    repo.count_challenge_attempt(conn, challenge.id_digest, attempts, now if spent else None)
    if locked_until is not None:
        return _locked_error(locked_until, now), failures
    return Unauthenticated("auth.mfa_failed", "the second factor was not accepted"), failures


# --------------------------------------------------------------------------- enrolment


def _enrolment_row(conn: Connection, challenge_id: str, now: datetime) -> _Pending:
    pending = _pending(conn, challenge_id, now)
    if pending is None:
        raise _invalid_challenge()
    # Only an account without any second factor may enrol with a password alone:
    # otherwise a stolen password would let the thief replace the victim's factor.
    if _methods(conn, pending.account):
        raise Forbidden(
            "auth.already_enrolled", "a second factor is already enrolled on this account"
        )
    return pending


def enrol_totp(
    platform: Platform, challenge_id: str, *, issuer: str = "tierspayant"
) -> TotpEnrolment:
    """Start TOTP enrolment in a login whose challenge said ``must_enrol``.

    Returns the secret and its ``otpauth://`` URI (show as a QR code once); the secret is
    stored encrypted and is not usable until :func:`confirm_totp`.
    """
    now = platform.now()
    keys = platform.operator_keys()
    with platform.engine.begin() as conn:
        row = _enrolment_row(conn, challenge_id, now).account
        secret = mfa.new_totp_secret()
        sealed = FieldCipher(keys).encrypt(secret, _totp_aad(row.id))
        repo.store_totp_secret(conn, row.id, sealed, keys.version)
    return TotpEnrolment(
        secret, mfa.provisioning_uri(secret, row.login or row.principal_id, issuer)
    )


def confirm_totp(
    platform: Platform, challenge_id: str, code: str, *, ip: str | None = None
) -> Enrolled:
    """Finish TOTP enrolment with a first code: opens the session, issues recovery codes."""
    policy = auth_policy(platform.settings)
    now = platform.now()
    failure: ServiceError | None = None
    result: Enrolled | None = None
    with platform.engine.begin() as conn:
        pending = _enrolment_row(conn, challenge_id, now)
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
            result = _finish_enrolment(
                conn, platform, row, pending.challenge, now, policy, factor=Factor.TOTP, ip=ip
            )
    if failure is not None:
        raise failure
    assert result is not None
    return result


def begin_webauthn_enrolment(
    platform: Platform, challenge_id: str, rp: mfa.WebAuthnRelyingParty
) -> str:
    """Options (JSON) for ``navigator.credentials.create()`` during enrolment."""
    now = platform.now()
    with platform.engine.begin() as conn:
        pending = _enrolment_row(conn, challenge_id, now)
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
        pending = _enrolment_row(conn, challenge_id, now)
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
            result = _finish_enrolment(
                conn, platform, row, challenge, now, policy, factor=Factor.WEBAUTHN, ip=ip
            )
    if failure is not None:
        raise failure
    assert result is not None
    return result


def _finish_enrolment(
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
        raise Forbidden("auth.step_up_required", "confirm your second factor first")
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


# --------------------------------------------------------------------------- OIDC


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
                "auth.unknown_professional",
                "no provider registered with us matches this professional identity",
            )
        elif row.status != "active" or _principal_status(conn, row.principal_id) != "active":
            _login_event(conn, now, row, allowed=False, step="oidc", reason="suspended", ip=ip)
            failure = Forbidden("auth.suspended", "this account is suspended")
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


# --------------------------------------------------------------------------- sessions


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
    return Unauthenticated("auth.session_expired", "your session has expired; log in again")


def _session_invalid() -> Unauthenticated:
    return Unauthenticated("auth.session_invalid", "not logged in")


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
        raise ServiceError("auth.mfa_method", "give exactly one second factor")
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
        else:
            _, locked_until = _fail_counts(conn, row, now, policy)
            if locked_until is not None:
                # Locked in the middle of a session: end every session of the account.
                _revoke_account_sessions(conn, row.id, now)
                failure = _locked_error(locked_until, now)
            else:
                failure = Unauthenticated("auth.mfa_failed", "the second factor was not accepted")
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


def unlock_account(platform: Platform, account_id: int, *, actor: str) -> None:
    """Clear a lockout (support, after checking who asks); audited."""
    now = platform.now()
    with platform.engine.begin() as conn:
        row = _load_account(conn, account_id)
        repo.clear_lockout(conn, account_id)
        _audit(
            conn,
            at=now,
            actor=actor,
            action="account.unlock",
            allowed=True,
            row=row,
            account=row.principal_id,
        )
