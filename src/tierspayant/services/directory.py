"""Numbers to ids, for the administration commands and the demo: the insurer of an AMC
number, the provider of an AM number, the first insurer, member or professional to attach
accounts to (None when nobody fits; the caller says so its own way)."""

from __future__ import annotations

from tierspayant.app.platform import Platform
from tierspayant.store import beneficiaries, insurers, providers
from tierspayant.store.providers import RppsProvider
from tierspayant.store.read_models import directory


def insurer_id_of(platform: Platform, amc_number: str) -> int | None:
    """The id of the insurer with this AMC number, if any."""
    with platform.engine.connect() as conn:
        return directory.insurer_id_of(conn, amc_number)


def provider_id_of(platform: Platform, am_number: str) -> int | None:
    """The id of the provider with this AM number, if any."""
    with platform.engine.connect() as conn:
        return directory.provider_id_of(conn, am_number)


def first_insurer(platform: Platform, amc_number: str | None = None) -> tuple[int, str] | None:
    """(id, AMC number) of the insurer ``amc_number``, or of the lowest AMC number if None."""
    with platform.engine.connect() as conn:
        return insurers.first_insurer(conn, amc_number)


def first_member_id(platform: Platform, insurer_id: int) -> int | None:
    """The lowest id among the insurer's beneficiaries that are not canaries."""
    with platform.engine.connect() as conn:
        return beneficiaries.first_member_id(conn, insurer_id)


def first_professional(platform: Platform) -> RppsProvider | None:
    """The active provider with an RPPS number and the lowest id."""
    with platform.engine.connect() as conn:
        return providers.first_active_with_rpps(conn)
