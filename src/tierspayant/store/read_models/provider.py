"""Read models of the provider portal."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from sqlalchemy import Connection, select

from tierspayant.store.tables import conventions, insurers


@dataclass(frozen=True, slots=True)
class ConventionRow:
    insurer: str
    amc_number: str
    domain: str
    valid_from: date
    valid_to: date | None


def provider_conventions(conn: Connection, provider_id: int) -> list[ConventionRow]:
    """The tiers payant agreements of one provider (its own only)."""
    query = (
        select(
            insurers.c.name,
            insurers.c.amc_number,
            conventions.c.domain,
            conventions.c.valid_from,
            conventions.c.valid_to,
        )
        .join(insurers, insurers.c.id == conventions.c.insurer_id)
        .where(conventions.c.provider_id == provider_id)
        .order_by(insurers.c.name, conventions.c.domain)
    )
    return [ConventionRow(*row) for row in conn.execute(query)]
