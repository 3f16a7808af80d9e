"""Providers (professionnels de santé) and their conventions with insurers, in the database.

The IBAN arrives here already encrypted by the service; nothing in this module is clear
identity data.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, select

from tierspayant.domain.providers import ProviderCategory
from tierspayant.store.tables import conventions, providers


@dataclass(frozen=True, slots=True)
class Provider:
    id: int
    am_number: str
    category: ProviderCategory
    name: str
    optam: bool
    finess: str | None
    rpps: str | None
    siret: str | None
    status: str

    @property
    def structure(self) -> str:
        """The number of the structure it acts for: FINESS, else SIRET, else AM number."""
        return self.finess or self.siret or self.am_number


def _provider(row: Any) -> Provider:
    return Provider(
        id=int(row.id),
        am_number=row.am_number,
        category=ProviderCategory(row.category),
        name=row.name,
        optam=bool(row.optam),
        finess=row.finess,
        rpps=row.rpps,
        siret=row.siret,
        status=row.status,
    )


def insert_provider(conn: Connection, values: Mapping[str, object], created_at: datetime) -> int:
    """Insert one provider (``values``: its columns, IBAN already encrypted); its id."""
    return int(
        conn.execute(
            providers.insert().values(created_at=created_at, **values).returning(providers.c.id)
        ).scalar_one()
    )


def insert_providers(conn: Connection, rows: Sequence[Mapping[str, object]]) -> None:
    """Insert many providers in one statement (every row carries the same keys)."""
    conn.execute(providers.insert(), rows)


def provider_by_am(conn: Connection, am_number: str) -> Provider | None:
    """The provider with this AM (billing) number, or None."""
    row = conn.execute(select(providers).where(providers.c.am_number == am_number)).first()
    return None if row is None else _provider(row)


def provider_by_id(conn: Connection, provider_id: int) -> Provider | None:
    """The provider with this id, or None."""
    row = conn.execute(select(providers).where(providers.c.id == provider_id)).first()
    return None if row is None else _provider(row)


def am_numbers(conn: Connection) -> set[str]:
    """The AM number of every registered provider."""
    return set(conn.execute(select(providers.c.am_number)).scalars())


def category_of(conn: Connection, provider_id: int) -> str | None:
    """The profession of one provider, or None if there is no such provider."""
    value = conn.execute(
        select(providers.c.category).where(providers.c.id == provider_id)
    ).scalar_one_or_none()
    return None if value is None else str(value)


@dataclass(frozen=True, slots=True)
class RppsProvider:
    """A provider known by its practitioner's RPPS number."""

    id: int
    rpps: str


def first_active_with_rpps(conn: Connection) -> RppsProvider | None:
    """The active provider with an RPPS number and the lowest id, or None."""
    row = conn.execute(
        select(providers.c.id, providers.c.rpps)
        .where(providers.c.rpps.is_not(None), providers.c.status == "active")
        .order_by(providers.c.id)
        .limit(1)
    ).first()
    return None if row is None else RppsProvider(int(row.id), str(row.rpps))


# --- conventions -------------------------------------------------------------------------


def convention_domains(conn: Connection, insurer_id: int, provider_id: int) -> set[str]:
    """The care domains (codes) of the provider's conventions with the insurer."""
    return set(
        conn.execute(
            select(conventions.c.domain).where(
                conventions.c.insurer_id == insurer_id,
                conventions.c.provider_id == provider_id,
            )
        ).scalars()
    )


def insert_conventions(conn: Connection, rows: Sequence[Mapping[str, object]]) -> None:
    """Insert conventions (insurer_id, provider_id, domain, valid_from, valid_to)."""
    conn.execute(conventions.insert(), rows)
