"""Administration of accounts: creation (password policy, principal), look-ups,
disabling and unlocking. Every change is audited with the administrator as actor."""

from __future__ import annotations

import re
import secrets as pysecrets
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection

from tierspayant.app.platform import Platform
from tierspayant.domain.codes import AuthCode
from tierspayant.security.breached import check_password_policy
from tierspayant.security.secrets import (
    hash_password,
)
from tierspayant.services.accounts.common import (
    _LOGIN,
    Account,
    AccountKind,
    _audit,
    _load_account,
    _principal_kind,
    normalise_login,
)
from tierspayant.services.accounts.sessions import _revoke_account_sessions
from tierspayant.services.errors import (
    Conflict,
    NotFound,
    ServiceError,
)
from tierspayant.store import accounts as repo
from tierspayant.store.accounts import AccountRow


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


def get_account(platform: Platform, account_id: int) -> Account:
    """One account by id (NotFound ``account.unknown``)."""
    with platform.engine.connect() as conn:
        return _account(_load_account(conn, account_id))


def find_account(platform: Platform, login: str) -> Account | None:
    """The account with this login, if any (administration use, not for login forms)."""
    with platform.engine.connect() as conn:
        row = repo.account_by_login(conn, normalise_login(login))
    return None if row is None else _account(row)


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
        raise ServiceError(AuthCode.ACCOUNT_KIND, "unknown account kind", field="kind") from None
    clean_login = normalise_login(login) if login else None
    if clean_login is not None and not _LOGIN.fullmatch(clean_login):
        raise ServiceError(
            AuthCode.ACCOUNT_LOGIN, "the login must be an e-mail address", field="login"
        )
    password_hash: str | None = None
    if account_kind is AccountKind.PROVIDER_USER:
        if password is not None:
            raise ServiceError(
                AuthCode.ACCOUNT_PASSWORD_NOT_ALLOWED,
                "health professionals log in with Pro Santé Connect, not a password",
                field="password",
            )
        if provider_id is None or rpps is None or not re.fullmatch(r"\d{11}", rpps):
            raise ServiceError(
                AuthCode.ACCOUNT_PROVIDER, "a provider user needs a provider and an 11-digit RPPS"
            )
    else:
        if clean_login is None:
            raise ServiceError(AuthCode.ACCOUNT_LOGIN, "a login is required", field="login")
        if password is None:
            raise ServiceError(
                AuthCode.ACCOUNT_PASSWORD, "a password is required", field="password"
            )
        words = [clean_login, *(display_name or "").split(), "tierspayant", *context_words]
        check_password_policy(password, context_words=words)
        password_hash = hash_password(password)
    if account_kind is AccountKind.INSURER_STAFF and insurer_id is None:
        raise ServiceError(
            AuthCode.ACCOUNT_INSURER, "insurer staff need an insurer", field="insurer"
        )
    if account_kind is AccountKind.MEMBER and (insurer_id is None or beneficiary_id is None):
        raise ServiceError(AuthCode.ACCOUNT_BENEFICIARY, "a member account needs its beneficiary")
    now = platform.now()
    with platform.engine.begin() as conn:
        if clean_login is not None and repo.login_taken(conn, clean_login):
            raise Conflict(
                AuthCode.ACCOUNT_EXISTS, "an account with this login exists", field="login"
            )
        if rpps is not None and repo.rpps_taken(conn, rpps):
            raise Conflict(
                AuthCode.ACCOUNT_EXISTS, "an account with this RPPS exists", field="rpps"
            )
        if insurer_id is not None and not repo.insurer_exists(conn, insurer_id):
            raise NotFound(AuthCode.ACCOUNT_INSURER, "no such insurer", field="insurer")
        if provider_id is not None and not repo.provider_exists(conn, provider_id):
            raise NotFound(AuthCode.ACCOUNT_PROVIDER, "no such provider", field="provider")
        if account_kind is AccountKind.MEMBER and (
            insurer_id is None
            or beneficiary_id is None
            or not repo.beneficiary_exists(conn, insurer_id, beneficiary_id)
        ):
            raise NotFound(AuthCode.ACCOUNT_BENEFICIARY, "no such beneficiary", field="beneficiary")
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
