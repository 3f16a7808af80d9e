"""Providers (professionnels de santé): registry, conventions, API clients and tokens."""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path

from sqlalchemy import Connection
from sqlalchemy.exc import IntegrityError

from tierspayant.app.platform import Platform
from tierspayant.domain.care import CareDomain
from tierspayant.domain.codes import AuthCode, DirectoryCode, GuardCode
from tierspayant.domain.errors import DomainError
from tierspayant.domain.identifiers import (
    parse_am_number,
    parse_bic,
    parse_finess,
    parse_iban,
    parse_rpps,
    parse_siret,
)
from tierspayant.domain.providers import ProviderCategory, default_domains
from tierspayant.security import secrets
from tierspayant.security.crypto import FieldCipher, row_aad
from tierspayant.security.principal import AuthStrength, Principal, PrincipalKind
from tierspayant.services.errors import (
    Conflict,
    NotFound,
    ServiceError,
    TooManyRequests,
    Unauthenticated,
)
from tierspayant.services.insurers import get_insurer
from tierspayant.store import audit, principals, tokens
from tierspayant.store import providers as store
from tierspayant.store.keys import OPERATOR_SCOPE
from tierspayant.store.providers import Provider as Provider


@dataclass(frozen=True, slots=True)
class NewProvider:
    """A provider as declared, before validation."""

    am_number: str
    category: str
    name: str
    rpps: str | None = None
    finess: str | None = None
    siret: str | None = None
    optam: bool = False
    iban: str | None = None
    bic: str | None = None


def _category(value: str) -> ProviderCategory:
    try:
        return ProviderCategory(value)
    except ValueError:
        allowed = ", ".join(c.value for c in ProviderCategory)
        raise ServiceError(
            DirectoryCode.PROVIDER_CATEGORY, f"category must be one of {allowed}", field="category"
        ) from None


def _provider_values(platform: Platform, conn: Connection, new: NewProvider) -> dict[str, object]:
    am = parse_am_number(new.am_number)
    values: dict[str, object] = {
        "am_number": am,
        "category": _category(new.category).value,
        "name": new.name.strip(),
        "rpps": parse_rpps(new.rpps) if new.rpps else None,
        "finess": parse_finess(new.finess) if new.finess else None,
        "siret": parse_siret(new.siret) if new.siret else None,
        "optam": new.optam,
        "bic": parse_bic(new.bic) if new.bic else None,
        "status": "active",
    }
    if not values["name"]:
        raise ServiceError(DirectoryCode.PROVIDER_NAME, "name must not be empty", field="name")
    if new.iban:
        iban = parse_iban(new.iban)
        keys = platform.keys.active(conn, OPERATOR_SCOPE)
        values["iban_ct"] = FieldCipher(keys).encrypt(iban, row_aad(0, "providers", am, "iban"))
        values["key_version"] = keys.version
    return values


def add_provider(platform: Platform, new: NewProvider, actor: str) -> Provider:
    """Register one provider (identifiers checked, IBAN encrypted)."""
    now = platform.now()
    try:
        with platform.engine.begin() as conn:
            values = _provider_values(platform, conn, new)
            provider_id = store.insert_provider(conn, values, now)
            audit.append(
                conn,
                at=now,
                actor=actor,
                action="provider.add",
                decision="allow",
                structure=str(values["am_number"]),
            )
    except IntegrityError as exc:
        raise Conflict(
            DirectoryCode.PROVIDER_EXISTS,
            "a provider with this AM number exists",
            field="am_number",
        ) from exc
    return get_provider(platform, str(values["am_number"]), _id=int(provider_id))


def get_provider(platform: Platform, am_number: str, *, _id: int | None = None) -> Provider:
    """The provider with this billing number, or NotFound ``provider.unknown``."""
    with platform.engine.connect() as conn:
        return provider_by_am(conn, am_number)


def provider_by_am(conn: Connection, am_number: str) -> Provider:
    """The provider with this billing number, or NotFound ``provider.unknown``."""
    provider = store.provider_by_am(conn, am_number)
    if provider is None:
        raise NotFound(
            DirectoryCode.PROVIDER_UNKNOWN, "no provider has this AM number", field="am_number"
        )
    return provider


def provider_by_id(conn: Connection, provider_id: int) -> Provider:
    """The provider with this id, or NotFound ``provider.unknown``."""
    provider = store.provider_by_id(conn, provider_id)
    if provider is None:
        raise NotFound(DirectoryCode.PROVIDER_UNKNOWN, "no such provider")
    return provider


PROVIDER_CSV_COLUMNS = (
    "am_number",
    "category",
    "name",
    "rpps",
    "finess",
    "siret",
    "optam",
    "iban",
    "bic",
)


@dataclass(frozen=True, slots=True)
class ProviderImportSummary:
    lines: int
    inserted: int
    unchanged: int
    rejected: tuple[tuple[int, str, str], ...]  # (line, code, message)


def import_providers(
    platform: Platform,
    path: Path,
    actor: str,
    progress: Callable[[int], None] | None = None,
) -> ProviderImportSummary:
    """Import a provider registry CSV (``;``-separated, header row); one transaction.

    Providers already registered under the same AM number are left as they are.
    """
    now = platform.now()
    inserted = unchanged = lines = 0
    rejected: list[tuple[int, str, str]] = []
    with path.open(newline="", encoding="utf-8") as handle, platform.engine.begin() as conn:
        reader = csv.DictReader(handle, delimiter=";")
        missing = set(PROVIDER_CSV_COLUMNS[:3]) - set(reader.fieldnames or ())
        if missing:
            raise ServiceError(
                DirectoryCode.PROVIDER_FILE_COLUMNS,
                f"missing columns: {', '.join(sorted(missing))}",
            )
        known = store.am_numbers(conn)
        batch: list[dict[str, object]] = []
        for line_no, record in enumerate(reader, start=2):
            lines += 1
            try:
                new = NewProvider(
                    am_number=record["am_number"] or "",
                    category=record["category"] or "",
                    name=record["name"] or "",
                    rpps=record.get("rpps") or None,
                    finess=record.get("finess") or None,
                    siret=record.get("siret") or None,
                    optam=(record.get("optam") or "0").strip() in {"1", "true", "oui"},
                    iban=record.get("iban") or None,
                    bic=record.get("bic") or None,
                )
                values = _provider_values(platform, conn, new)
            except DomainError as exc:
                rejected.append((line_no, exc.code, exc.message))
                continue
            if values["am_number"] in known:
                unchanged += 1
                continue
            known.add(str(values["am_number"]))
            batch.append({"created_at": now, **values})
            if len(batch) >= 2000:
                _insert_providers(conn, batch)
                inserted += len(batch)
                batch.clear()
            if progress is not None:
                progress(lines)
        if batch:
            _insert_providers(conn, batch)
            inserted += len(batch)
        audit.append(
            conn,
            at=now,
            actor=actor,
            action="provider.import",
            decision="allow",
            detail={"lines": lines, "inserted": inserted, "rejected": len(rejected)},
        )
    return ProviderImportSummary(lines, inserted, unchanged, tuple(rejected))


def _insert_providers(conn: Connection, batch: list[dict[str, object]]) -> None:
    # Every row carries the same keys: optional columns are filled with None.
    columns = {key for row in batch for key in row}
    rows = [{column: row.get(column) for column in columns} for row in batch]
    store.insert_providers(conn, rows)


def add_conventions(
    platform: Platform,
    am_number: str,
    amc_number: str,
    domains: Iterable[CareDomain] | None,
    valid_from: date,
    actor: str,
) -> tuple[CareDomain, ...]:
    """Record that a provider signed the insurer's convention for some care domains."""
    with platform.engine.begin() as conn:
        provider = provider_by_am(conn, am_number)
        insurer = get_insurer(conn, amc_number)
        chosen = tuple(domains) if domains else tuple(sorted(default_domains(provider.category)))
        existing = store.convention_domains(conn, insurer.id, provider.id)
        rows = [
            {
                "insurer_id": insurer.id,
                "provider_id": provider.id,
                "domain": d.value,
                "valid_from": valid_from,
                "valid_to": None,
            }
            for d in chosen
            if d.value not in existing
        ]
        if rows:
            store.insert_conventions(conn, rows)
        audit.append(
            conn,
            at=platform.now(),
            actor=actor,
            action="convention.add",
            decision="allow",
            structure=provider.am_number,
            insurer=insurer.amc_number,
            detail={"domains": ",".join(d.value for d in chosen)},
        )
    return chosen


# --- API clients of provider software (OAuth2 client credentials) --------------------


@dataclass(frozen=True, slots=True)
class ClientCredentials:
    client_id: str
    client_secret: str
    provider_am_number: str


def client_principal_id(am_number: str, client_id: str) -> str:
    return f"provider:{am_number}/client:{client_id}"


def issue_client(platform: Platform, am_number: str, label: str, actor: str) -> ClientCredentials:
    """Create API credentials bound to one provider; the secret is shown once, stored hashed."""
    client_id, client_secret = secrets.new_client_credentials()
    now = platform.now()
    with platform.engine.begin() as conn:
        provider = provider_by_am(conn, parse_am_number(am_number))
        tokens.insert_client(
            conn,
            client_id=client_id,
            provider_id=provider.id,
            secret_digest=secrets.hash_secret(client_secret),
            label=label or "provider software",
            created_at=now,
        )
        principal_id = client_principal_id(provider.am_number, client_id)
        principals.insert_principal(conn, principal_id, PrincipalKind.PROVIDER_CLIENT.value)
        audit.append(
            conn,
            at=now,
            actor=actor,
            action="client.issue",
            decision="allow",
            structure=provider.structure,
            detail={"client_id": client_id},
        )
    return ClientCredentials(client_id, client_secret, provider.am_number)


@dataclass(frozen=True, slots=True)
class AccessToken:
    access_token: str
    expires_in: int
    token_type: str = "Bearer"  # noqa: S105 - the OAuth2 token type, not a secret


def grant_client_token(platform: Platform, client_id: str, client_secret: str) -> AccessToken:
    """Exchange client credentials for a short-lived access token (audited either way)."""
    decision = platform.limits.hit("auth.client", client_id[:64])
    if not decision.allowed:
        raise TooManyRequests(
            GuardCode.LIMITS_EXCEEDED, "too many token requests", retry_after=decision.retry_after
        )
    now = platform.now()
    with platform.engine.begin() as conn:
        row = tokens.client_by_id(conn, client_id)
        valid = row is not None and secrets.verify_secret(client_secret, row.secret_digest)
        principal_id = client_principal_id(row.am_number, client_id) if row else "unknown"
        status = principals.principal_status(conn, principal_id) if row else None
        allowed = valid and row is not None and row.revoked_at is None and status == "active"
        audit.append(
            conn,
            at=now,
            actor=principal_id if row else f"client:{client_id[:64]}",
            action="auth.token",
            decision="allow" if allowed else "deny",
            structure=(row.finess or row.siret or row.am_number) if row else None,
        )
        if not allowed or row is None:
            # Commit the audit event, then refuse without saying which part was wrong.
            conn.commit()
            raise Unauthenticated(AuthCode.INVALID_CLIENT, "invalid client credentials")
        token = secrets.new_access_token()
        ttl = platform.settings.access_token_ttl_seconds
        tokens.insert_token(
            conn,
            token_digest=secrets.token_digest(token),
            principal=principal_id,
            client_id=client_id,
            provider_id=row.provider_id,
            issued_at=now,
            expires_at=now + timedelta(seconds=ttl),
        )
    return AccessToken(token, ttl)


def authenticate_token(platform: Platform, conn: Connection, token: str) -> Principal:
    """The principal behind a bearer token, or Unauthenticated ``auth.invalid_token``."""
    return _authenticate(platform, conn, secrets.token_digest(token))[0]


def authenticate_token_cached(platform: Platform, token: str) -> Principal:
    """:func:`authenticate_token` through the platform's short-lived principal cache.

    A token revoked or a principal suspended by this process is forgotten at once
    (``suspend_principal`` clears the cache); by another process, within
    ``TIERSPAYANT_CACHE_SECONDS``. Expiry is checked on every call.
    """
    digest = secrets.token_digest(token)
    cached = _from_cache(platform, digest)
    if cached is not None:
        return cached
    with platform.engine.connect() as conn:
        principal, expires_at = _authenticate(platform, conn, digest)
    platform.principals.put(digest, (principal, expires_at))
    return principal


def cached_principal(platform: Platform, token: str) -> Principal | None:
    """The principal of a provider token still in the cache and not expired, else None."""
    return _from_cache(platform, secrets.token_digest(token))


def _from_cache(platform: Platform, digest: bytes) -> Principal | None:
    cached = platform.principals.get(digest)
    if cached is None:
        return None
    principal, expires_at = cached
    if expires_at > platform.now():
        return principal
    platform.principals.discard(digest)
    return None


def _authenticate(
    platform: Platform, conn: Connection, digest: bytes
) -> tuple[Principal, datetime]:
    now = platform.now()
    row = tokens.token_by_digest(conn, digest)
    if row is None:
        raise Unauthenticated(AuthCode.INVALID_TOKEN, "invalid or expired access token")
    expires_at = (
        row.expires_at if row.expires_at.tzinfo else row.expires_at.replace(tzinfo=now.tzinfo)
    )
    if row.revoked_at is not None or expires_at <= now or row.status != "active":
        raise Unauthenticated(AuthCode.INVALID_TOKEN, "invalid or expired access token")
    principal = Principal(
        id=row.principal,
        kind=PrincipalKind.PROVIDER_CLIENT,
        strength=AuthStrength.AAL2,
        provider_id=row.provider_id,
        provider_am_number=row.am_number,
        structure=row.finess or row.siret or row.am_number,
        provider_category=row.category,
    )
    return principal, expires_at
