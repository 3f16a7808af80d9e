"""API clients of provider software and the access tokens they are granted.

Secrets and tokens are stored only as digests, computed by the caller.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import Connection, bindparam, select, update

from tierspayant.store.tables import access_tokens, api_clients, principals, providers


def insert_client(
    conn: Connection,
    *,
    client_id: str,
    provider_id: int,
    secret_digest: bytes,
    label: str,
    created_at: datetime,
) -> None:
    """Record the credentials of one API client bound to a provider."""
    conn.execute(
        api_clients.insert().values(
            client_id=client_id,
            provider_id=provider_id,
            secret_digest=secret_digest,
            label=label,
            created_at=created_at,
        )
    )


@dataclass(frozen=True, slots=True)
class ClientRow:
    """An API client with the numbers of the provider it acts for."""

    client_id: str
    provider_id: int
    secret_digest: bytes = field(repr=False)
    revoked_at: datetime | None
    am_number: str
    finess: str | None
    siret: str | None


def client_by_id(conn: Connection, client_id: str) -> ClientRow | None:
    """The API client ``client_id`` and its provider's numbers, or None."""
    row = conn.execute(
        select(api_clients, providers.c.am_number, providers.c.finess, providers.c.siret)
        .join(providers, providers.c.id == api_clients.c.provider_id)
        .where(api_clients.c.client_id == client_id)
    ).first()
    if row is None:
        return None
    return ClientRow(
        client_id=row.client_id,
        provider_id=row.provider_id,
        secret_digest=bytes(row.secret_digest),
        revoked_at=row.revoked_at,
        am_number=row.am_number,
        finess=row.finess,
        siret=row.siret,
    )


def insert_token(
    conn: Connection,
    *,
    token_digest: bytes,
    principal: str,
    client_id: str,
    provider_id: int,
    issued_at: datetime,
    expires_at: datetime,
) -> None:
    """Record one access token (its digest) granted to a client's principal."""
    conn.execute(
        access_tokens.insert().values(
            token_digest=token_digest,
            principal=principal,
            client_id=client_id,
            provider_id=provider_id,
            issued_at=issued_at,
            expires_at=expires_at,
        )
    )


@dataclass(frozen=True, slots=True)
class TokenRow:
    """An access token with its principal's status and its provider's numbers."""

    principal: str
    expires_at: datetime
    revoked_at: datetime | None
    provider_id: int | None
    status: str
    am_number: str | None
    finess: str | None
    siret: str | None
    category: str | None


# Built once: every request with a token not in the principal cache runs it.
_TOKEN = (
    select(
        access_tokens.c.principal,
        access_tokens.c.expires_at,
        access_tokens.c.revoked_at,
        access_tokens.c.provider_id,
        principals.c.status,
        providers.c.am_number,
        providers.c.finess,
        providers.c.siret,
        providers.c.category,
    )
    .join(principals, principals.c.id == access_tokens.c.principal)
    .outerjoin(providers, providers.c.id == access_tokens.c.provider_id)
    .where(access_tokens.c.token_digest == bindparam("digest"))
)


def token_by_digest(conn: Connection, digest: bytes) -> TokenRow | None:
    """The token with this digest, its principal's status and provider, or None."""
    row = conn.execute(_TOKEN, {"digest": digest}).first()
    return None if row is None else TokenRow(*row)


def revoke_tokens(conn: Connection, principal_id: str, at: object) -> int:
    """Revoke every live token of a principal; returns how many."""
    result = conn.execute(
        update(access_tokens)
        .where(access_tokens.c.principal == principal_id, access_tokens.c.revoked_at.is_(None))
        .values(revoked_at=at)
    )
    return int(result.rowcount)
