"""Numbers to ids: the insurer of an AMC number, the provider of an AM number."""

from __future__ import annotations

from sqlalchemy import Connection, select

from tierspayant.store.tables import insurers, providers


def insurer_amc(conn: Connection, insurer_id: int) -> tuple[str, str]:
    """AMC number and name of an insurer."""
    row = conn.execute(
        select(insurers.c.amc_number, insurers.c.name).where(insurers.c.id == insurer_id)
    ).one()
    return str(row.amc_number), str(row.name)


def insurer_id_of(conn: Connection, amc_number: str) -> int | None:
    """The id of the insurer with this AMC number, if any."""
    found = conn.execute(select(insurers.c.id).where(insurers.c.amc_number == amc_number)).scalar()
    return None if found is None else int(found)


def provider_id_of(conn: Connection, am_number: str) -> int | None:
    """The id of the provider with this AM number, if any."""
    found = conn.execute(select(providers.c.id).where(providers.c.am_number == am_number)).scalar()
    return None if found is None else int(found)
