"""Numbers to ids (the insurer of an AMC number, the provider of an AM number), and the
names the portals' header shows of the logged-in account."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection, select

from tierspayant.store.accounts_tables import accounts
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


@dataclass(frozen=True, slots=True)
class AccountHeader:
    """What the portals' header says of the logged-in account: its own names only."""

    kind: str
    display_name: str | None
    login: str | None
    rpps: str | None
    provider_name: str | None
    finess: str | None
    siret: str | None
    am_number: str | None
    insurer_name: str | None
    amc_number: str | None


def account_header(conn: Connection, account_id: int) -> AccountHeader | None:
    """The account's name and its structure (provider or insurer), if it exists."""
    row = conn.execute(
        select(
            accounts.c.kind,
            accounts.c.display_name,
            accounts.c.login,
            accounts.c.rpps,
            providers.c.name,
            providers.c.finess,
            providers.c.siret,
            providers.c.am_number,
            insurers.c.name,
            insurers.c.amc_number,
        )
        .select_from(accounts)
        .outerjoin(providers, providers.c.id == accounts.c.provider_id)
        .outerjoin(insurers, insurers.c.id == accounts.c.insurer_id)
        .where(accounts.c.id == account_id)
    ).first()
    if row is None:
        return None
    kind, display, login, rpps, provider, finess, siret, am, insurer, amc = row
    return AccountHeader(kind, display, login, rpps, provider, finess, siret, am, insurer, amc)
