"""Numbers to ids, for the administration commands: the insurer of an AMC number, the
provider of an AM number (None when nobody holds it; the caller says so its own way)."""

from __future__ import annotations

from tierspayant.services.platform import Platform
from tierspayant.store.read_models import directory


def insurer_id_of(platform: Platform, amc_number: str) -> int | None:
    """The id of the insurer with this AMC number, if any."""
    with platform.engine.connect() as conn:
        return directory.insurer_id_of(conn, amc_number)


def provider_id_of(platform: Platform, am_number: str) -> int | None:
    """The id of the provider with this AM number, if any."""
    with platform.engine.connect() as conn:
        return directory.provider_id_of(conn, am_number)
