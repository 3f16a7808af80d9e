"""Queries on human accounts, their second factors, login challenges and portal sessions.

The repository of ``services.accounts``: each function takes the caller's connection
(the service owns the transaction) and returns typed rows. Nothing is decrypted or
verified here; secrets go in and out as the digests and ciphertexts the tables hold.
Datetimes come back timezone-aware (UTC): SQLite hands them back naive.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, func, or_, select, update

from tierspayant.store.accounts_tables import (
    accounts,
    login_challenges,
    recovery_codes,
    sessions,
    webauthn_credentials,
)
from tierspayant.store.tables import beneficiaries, insurers, principals, providers


def _utc(moment: datetime | None) -> datetime | None:
    # Everything stored is UTC; SQLite returns naive datetimes.
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=UTC)


def _utc_set(moment: datetime) -> datetime:
    aware = _utc(moment)
    assert aware is not None
    return aware


def _bytes(value: Any) -> bytes | None:
    return None if value is None else bytes(value)


# --------------------------------------------------------------------------- rows


@dataclass(frozen=True, slots=True)
class AccountRow:
    """One ``accounts`` row (password hash and TOTP ciphertext included: service use)."""

    id: int
    kind: str
    login: str | None
    principal_id: str
    status: str
    insurer_id: int | None
    provider_id: int | None
    beneficiary_id: int | None
    rpps: str | None
    failed_logins: int
    locked_until: datetime | None
    totp_confirmed_at: datetime | None
    totp_last_step: int | None
    totp_key_version: int | None
    password_hash: str | None = field(repr=False)
    totp_secret_ct: bytes | None = field(repr=False)
    webauthn_user_handle: bytes | None = field(repr=False)


def _account(row: Any) -> AccountRow:
    m = row._mapping
    return AccountRow(
        id=int(m["id"]),
        kind=str(m["kind"]),
        login=m["login"],
        principal_id=str(m["principal_id"]),
        status=str(m["status"]),
        insurer_id=m["insurer_id"],
        provider_id=m["provider_id"],
        beneficiary_id=m["beneficiary_id"],
        rpps=m["rpps"],
        failed_logins=int(m["failed_logins"]),
        locked_until=_utc(m["locked_until"]),
        totp_confirmed_at=_utc(m["totp_confirmed_at"]),
        totp_last_step=None if m["totp_last_step"] is None else int(m["totp_last_step"]),
        totp_key_version=None if m["totp_key_version"] is None else int(m["totp_key_version"]),
        password_hash=m["password_hash"],
        totp_secret_ct=_bytes(m["totp_secret_ct"]),
        webauthn_user_handle=_bytes(m["webauthn_user_handle"]),
    )


@dataclass(frozen=True, slots=True)
class ChallengeRow:
    """A login in progress (``login_challenges``)."""

    id_digest: bytes
    account_id: int
    expires_at: datetime
    attempts: int
    consumed_at: datetime | None
    webauthn_challenge: bytes | None = field(repr=False)


@dataclass(frozen=True, slots=True)
class SessionRow:
    """A portal session with the status of its account."""

    token_digest: bytes
    account_id: int
    principal_id: str
    account_status: str
    created_at: datetime
    last_seen_at: datetime
    expires_at: datetime
    mfa_at: datetime | None
    revoked_at: datetime | None
    csrf_secret: bytes = field(repr=False)


@dataclass(frozen=True, slots=True)
class WebAuthnCredentialRow:
    """A registered security key (public key only)."""

    credential_id: bytes
    public_key: bytes
    sign_count: int


@dataclass(frozen=True, slots=True)
class ProviderIdentity:
    """What an account's principal and audit events name of its provider."""

    am_number: str
    finess: str | None
    siret: str | None
    category: str | None


# --------------------------------------------------------------------------- accounts


def account_by_id(conn: Connection, account_id: int) -> AccountRow | None:
    row = conn.execute(select(accounts).where(accounts.c.id == account_id)).first()
    return None if row is None else _account(row)


def account_by_login(conn: Connection, login: str) -> AccountRow | None:
    """By the stored (normalised) login."""
    row = conn.execute(select(accounts).where(accounts.c.login == login)).first()
    return None if row is None else _account(row)


def provider_user_by_rpps(conn: Connection, rpps: str) -> AccountRow | None:
    row = conn.execute(
        select(accounts).where(accounts.c.rpps == rpps, accounts.c.kind == "provider_user")
    ).first()
    return None if row is None else _account(row)


def login_taken(conn: Connection, login: str) -> bool:
    return conn.execute(select(accounts.c.id).where(accounts.c.login == login)).first() is not None


def rpps_taken(conn: Connection, rpps: str) -> bool:
    return conn.execute(select(accounts.c.id).where(accounts.c.rpps == rpps)).first() is not None


def insert_account(conn: Connection, **values: Any) -> int:
    """Insert an account row (``values`` are its columns); returns its id."""
    return int(
        conn.execute(accounts.insert().values(**values).returning(accounts.c.id)).scalar_one()
    )


def set_principal_id(conn: Connection, account_id: int, principal_id: str) -> None:
    conn.execute(
        update(accounts).where(accounts.c.id == account_id).values(principal_id=principal_id)
    )


def set_status(conn: Connection, account_id: int, status: str) -> None:
    conn.execute(update(accounts).where(accounts.c.id == account_id).values(status=status))


def set_password_hash(conn: Connection, account_id: int, password_hash: str) -> None:
    conn.execute(
        update(accounts).where(accounts.c.id == account_id).values(password_hash=password_hash)
    )


def count_failure(conn: Connection, account_id: int, locked_until: datetime | None) -> None:
    """One more failed login (in the database, not from the row read); lock if given."""
    values: dict[str, Any] = {"failed_logins": accounts.c.failed_logins + 1}
    if locked_until is not None:
        values["locked_until"] = locked_until
    conn.execute(update(accounts).where(accounts.c.id == account_id).values(**values))


def reset_failures(conn: Connection, account_id: int) -> None:
    conn.execute(update(accounts).where(accounts.c.id == account_id).values(failed_logins=0))


def clear_lockout(conn: Connection, account_id: int) -> None:
    conn.execute(
        update(accounts)
        .where(accounts.c.id == account_id)
        .values(failed_logins=0, locked_until=None)
    )


def record_login(conn: Connection, account_id: int, at: datetime) -> None:
    """A session was opened: failures and lockout cleared, last login noted."""
    conn.execute(
        update(accounts)
        .where(accounts.c.id == account_id)
        .values(failed_logins=0, locked_until=None, last_login_at=at)
    )


def record_oidc_login(conn: Connection, account_id: int, subject: str, at: datetime) -> None:
    conn.execute(
        update(accounts)
        .where(accounts.c.id == account_id)
        .values(oidc_subject=subject, last_login_at=at, failed_logins=0)
    )


# --------------------------------------------------------------------------- principals and
# what accounts point at


def insert_principal(conn: Connection, principal_id: str, kind: str) -> None:
    conn.execute(principals.insert().values(id=principal_id, kind=kind, status="active"))


def principal_status(conn: Connection, principal_id: str) -> str | None:
    status = conn.execute(
        select(principals.c.status).where(principals.c.id == principal_id)
    ).scalar()
    return None if status is None else str(status)


def insurer_amc_number(conn: Connection, insurer_id: int) -> str | None:
    amc = conn.execute(select(insurers.c.amc_number).where(insurers.c.id == insurer_id)).scalar()
    return None if amc is None else str(amc)


def provider_identity(conn: Connection, provider_id: int) -> ProviderIdentity | None:
    row = conn.execute(
        select(
            providers.c.am_number, providers.c.finess, providers.c.siret, providers.c.category
        ).where(providers.c.id == provider_id)
    ).first()
    if row is None:
        return None
    return ProviderIdentity(str(row.am_number), row.finess, row.siret, row.category)


def insurer_exists(conn: Connection, insurer_id: int) -> bool:
    found = conn.execute(select(insurers.c.id).where(insurers.c.id == insurer_id)).first()
    return found is not None


def provider_exists(conn: Connection, provider_id: int) -> bool:
    found = conn.execute(select(providers.c.id).where(providers.c.id == provider_id)).first()
    return found is not None


def beneficiary_exists(conn: Connection, insurer_id: int, beneficiary_id: int) -> bool:
    found = conn.execute(
        select(beneficiaries.c.id).where(
            beneficiaries.c.insurer_id == insurer_id, beneficiaries.c.id == beneficiary_id
        )
    ).first()
    return found is not None


def active_provider_ids_by_rpps(conn: Connection, rpps: str) -> list[int]:
    found = conn.execute(
        select(providers.c.id).where(providers.c.rpps == rpps, providers.c.status == "active")
    ).scalars()
    return [int(i) for i in found]


# --------------------------------------------------------------------------- second factors


def store_totp_secret(
    conn: Connection, account_id: int, ciphertext: bytes, key_version: int
) -> None:
    """A new, unconfirmed TOTP secret (replaces any previous one)."""
    conn.execute(
        update(accounts)
        .where(accounts.c.id == account_id)
        .values(
            totp_secret_ct=ciphertext,
            totp_key_version=key_version,
            totp_confirmed_at=None,
            totp_last_step=None,
        )
    )


def confirm_totp(conn: Connection, account_id: int, at: datetime, step: int) -> None:
    conn.execute(
        update(accounts)
        .where(accounts.c.id == account_id)
        .values(totp_confirmed_at=at, totp_last_step=step)
    )


def advance_totp_step(conn: Connection, account_id: int, step: int) -> bool:
    """Record the step of an accepted code, only if it is past the last one recorded.

    Conditional: two concurrent logins with the same code cannot both pass."""
    done = conn.execute(
        update(accounts)
        .where(
            accounts.c.id == account_id,
            or_(accounts.c.totp_last_step.is_(None), accounts.c.totp_last_step < step),
        )
        .values(totp_last_step=step)
    ).rowcount
    return bool(done == 1)


def set_webauthn_user_handle(conn: Connection, account_id: int, handle: bytes) -> None:
    conn.execute(
        update(accounts).where(accounts.c.id == account_id).values(webauthn_user_handle=handle)
    )


def webauthn_credential_count(conn: Connection, account_id: int) -> int:
    return int(
        conn.execute(
            select(func.count())
            .select_from(webauthn_credentials)
            .where(webauthn_credentials.c.account_id == account_id)
        ).scalar_one()
    )


def webauthn_credential_ids(conn: Connection, account_id: int) -> tuple[bytes, ...]:
    found = conn.execute(
        select(webauthn_credentials.c.credential_id).where(
            webauthn_credentials.c.account_id == account_id
        )
    ).scalars()
    return tuple(bytes(c) for c in found)


def webauthn_credential(
    conn: Connection, account_id: int, credential_id: bytes
) -> WebAuthnCredentialRow | None:
    row = conn.execute(
        select(webauthn_credentials).where(
            webauthn_credentials.c.credential_id == credential_id,
            webauthn_credentials.c.account_id == account_id,
        )
    ).first()
    if row is None:
        return None
    return WebAuthnCredentialRow(
        bytes(row.credential_id), bytes(row.public_key), int(row.sign_count)
    )


def advance_sign_count(
    conn: Connection, credential_id: bytes, seen: int, new: int, at: datetime
) -> bool:
    """Store a key's new signature counter, only if it still holds ``seen``."""
    done = conn.execute(
        update(webauthn_credentials)
        .where(
            webauthn_credentials.c.credential_id == credential_id,
            webauthn_credentials.c.sign_count == seen,
        )
        .values(sign_count=new, last_used_at=at)
    ).rowcount
    return bool(done == 1)


def insert_webauthn_credential(
    conn: Connection,
    account_id: int,
    *,
    credential_id: bytes,
    public_key: bytes,
    sign_count: int,
    label: str,
    at: datetime,
) -> None:
    conn.execute(
        webauthn_credentials.insert().values(
            credential_id=credential_id,
            account_id=account_id,
            public_key=public_key,
            sign_count=sign_count,
            label=label,
            created_at=at,
        )
    )


def unused_recovery_code_count(conn: Connection, account_id: int) -> int:
    return int(
        conn.execute(
            select(func.count())
            .select_from(recovery_codes)
            .where(recovery_codes.c.account_id == account_id, recovery_codes.c.used_at.is_(None))
        ).scalar_one()
    )


def use_recovery_code(conn: Connection, account_id: int, digest: bytes, at: datetime) -> bool:
    """Mark an unused recovery code used; False when no such unused code."""
    used = conn.execute(
        update(recovery_codes)
        .where(
            recovery_codes.c.account_id == account_id,
            recovery_codes.c.digest == digest,
            recovery_codes.c.used_at.is_(None),
        )
        .values(used_at=at)
    ).rowcount
    return bool(used == 1)


def replace_recovery_codes(
    conn: Connection, account_id: int, digests: Iterable[bytes], at: datetime
) -> None:
    """Delete an account's recovery codes and store these instead (none: just delete)."""
    conn.execute(recovery_codes.delete().where(recovery_codes.c.account_id == account_id))
    rows = [{"account_id": account_id, "digest": d, "created_at": at} for d in digests]
    if rows:
        conn.execute(recovery_codes.insert(), rows)


# --------------------------------------------------------------------------- login challenges


def insert_challenge(
    conn: Connection,
    id_digest: bytes,
    account_id: int,
    *,
    created_at: datetime,
    expires_at: datetime,
    ip: str | None,
) -> None:
    conn.execute(
        login_challenges.insert().values(
            id_digest=id_digest,
            account_id=account_id,
            created_at=created_at,
            expires_at=expires_at,
            attempts=0,
            ip=ip,
        )
    )


def challenge_by_digest(conn: Connection, id_digest: bytes) -> ChallengeRow | None:
    row = conn.execute(
        select(login_challenges).where(login_challenges.c.id_digest == id_digest)
    ).first()
    if row is None:
        return None
    return ChallengeRow(
        id_digest=bytes(row.id_digest),
        account_id=int(row.account_id),
        expires_at=_utc_set(row.expires_at),
        attempts=int(row.attempts),
        consumed_at=_utc(row.consumed_at),
        webauthn_challenge=_bytes(row.webauthn_challenge),
    )


def consume_challenge(conn: Connection, id_digest: bytes, at: datetime) -> None:
    conn.execute(
        update(login_challenges)
        .where(login_challenges.c.id_digest == id_digest)
        .values(consumed_at=at)
    )


def count_challenge_attempt(
    conn: Connection, id_digest: bytes, attempts: int, consumed_at: datetime | None
) -> None:
    """Store a challenge's attempt count; consume it too when ``consumed_at`` is given."""
    values: dict[str, Any] = {"attempts": attempts}
    if consumed_at is not None:
        values["consumed_at"] = consumed_at
    conn.execute(
        update(login_challenges).where(login_challenges.c.id_digest == id_digest).values(**values)
    )


def set_webauthn_challenge(conn: Connection, id_digest: bytes, challenge: bytes) -> None:
    conn.execute(
        update(login_challenges)
        .where(login_challenges.c.id_digest == id_digest)
        .values(webauthn_challenge=challenge)
    )


# --------------------------------------------------------------------------- sessions


def insert_session(
    conn: Connection,
    token_digest: bytes,
    account_id: int,
    principal_id: str,
    *,
    at: datetime,
    expires_at: datetime,
    mfa_at: datetime | None,
    csrf_secret: bytes,
    method: str,
    ip: str | None,
) -> None:
    conn.execute(
        sessions.insert().values(
            token_digest=token_digest,
            account_id=account_id,
            principal_id=principal_id,
            created_at=at,
            last_seen_at=at,
            expires_at=expires_at,
            mfa_at=mfa_at,
            csrf_secret=csrf_secret,
            method=method,
            ip=ip,
        )
    )


def session_by_digest(conn: Connection, token_digest: bytes) -> SessionRow | None:
    row = conn.execute(
        select(sessions, accounts.c.status.label("account_status"))
        .join(accounts, accounts.c.id == sessions.c.account_id)
        .where(sessions.c.token_digest == token_digest)
    ).first()
    if row is None:
        return None
    return SessionRow(
        token_digest=bytes(row.token_digest),
        account_id=int(row.account_id),
        principal_id=str(row.principal_id),
        account_status=str(row.account_status),
        created_at=_utc_set(row.created_at),
        last_seen_at=_utc_set(row.last_seen_at),
        expires_at=_utc_set(row.expires_at),
        mfa_at=_utc(row.mfa_at),
        revoked_at=_utc(row.revoked_at),
        csrf_secret=bytes(row.csrf_secret),
    )


def revoke_session(conn: Connection, token_digest: bytes, at: datetime) -> None:
    conn.execute(
        update(sessions).where(sessions.c.token_digest == token_digest).values(revoked_at=at)
    )


def touch_session(conn: Connection, token_digest: bytes, at: datetime) -> None:
    conn.execute(
        update(sessions).where(sessions.c.token_digest == token_digest).values(last_seen_at=at)
    )


def set_session_mfa(conn: Connection, token_digest: bytes, at: datetime) -> None:
    conn.execute(update(sessions).where(sessions.c.token_digest == token_digest).values(mfa_at=at))


def revoke_account_sessions(conn: Connection, account_id: int, at: datetime) -> int:
    """Revoke an account's open sessions; returns how many."""
    return int(
        conn.execute(
            update(sessions)
            .where(sessions.c.account_id == account_id, sessions.c.revoked_at.is_(None))
            .values(revoked_at=at)
        ).rowcount
    )


def revoke_principal_sessions(conn: Connection, principal_id: str, at: datetime) -> int:
    """Revoke a principal's open sessions; returns how many."""
    return int(
        conn.execute(
            update(sessions)
            .where(sessions.c.principal_id == principal_id, sessions.c.revoked_at.is_(None))
            .values(revoked_at=at)
        ).rowcount
    )
