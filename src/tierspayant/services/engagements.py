"""Engagement numbers: issued by the rights check, checked at intake, opened by adjudication.

Issuing costs no query and no write: the number is sealed with the operator's active
keys, already in memory on the rights check's path (the audit pseudonym derives from
them). Intake refuses a number that does not open, or that was issued to another
professional, with one answer (``engagement.invalid``); whether it binds this invoice's
beneficiary and care date is for adjudication to judge, line by line.
"""

from __future__ import annotations

from sqlalchemy import Connection

from tierspayant.app.platform import Platform
from tierspayant.domain.engagements import (
    EngagementError,
    EngagementKind,
    RightsEngagement,
    invalid,
    pack_rights,
    unpack_rights,
)
from tierspayant.security.engagement import EngagementSealError, open_sealed, parse, seal
from tierspayant.store.keys import OPERATOR_SCOPE


def seal_rights(platform: Platform, engagement: RightsEngagement) -> str:
    """The printable number of a rights engagement, under the operator's active keys."""
    return seal(EngagementKind.RIGHTS.value, pack_rights(engagement), platform.operator_keys())


def open_rights(platform: Platform, conn: Connection, number: str) -> RightsEngagement:
    """The rights engagement a number carries, or :class:`EngagementError` (one answer
    whether it is malformed, forged, altered, or sealed under an unknown key)."""
    try:
        kind, version, sealed = parse(number)
        if kind != EngagementKind.RIGHTS.value:
            raise invalid()  # amount engagements are not issued yet
        active = platform.operator_keys()
        keys = (
            active
            if active.version == version
            else platform.keys.version(conn, OPERATOR_SCOPE, version)
        )
        return unpack_rights(open_sealed(kind, sealed, keys))
    except (EngagementSealError, LookupError):
        raise invalid() from None


def check_at_intake(
    platform: Platform, conn: Connection, number: str, provider_id: int
) -> RightsEngagement:
    """An invoice's engagement number, refused unless it opens and is this provider's."""
    engagement = open_rights(platform, conn, number)
    if engagement.provider_id != provider_id:
        raise invalid()
    return engagement


def opened_or_none(
    platform: Platform, conn: Connection, number: str | None
) -> RightsEngagement | None:
    """For adjudication: a stored number opened again (None if absent or no longer opens,
    e.g. its key version was retired: the invoice is then judged as without one)."""
    if number is None:
        return None
    try:
        return open_rights(platform, conn, number)
    except EngagementError:
        return None
