"""Engagement numbers: issued by the rights check, checked at intake, opened by adjudication.

A rights number costs no query and no write to issue: it is sealed with the operator's active
keys, already in memory on the rights check's path (the audit pseudonym derives from
them). Intake refuses a number that does not open, or that was issued to another
professional, with one answer (``engagement.invalid``); whether it binds this invoice's
beneficiary and care date is for adjudication to judge, line by line.

An amount number (kind ``C``, from a calculation) seals the key of a stored reservation
(:mod:`tierspayant.store.reservations`); its professional may cancel it
(:func:`cancel_amount`), the invoice that carries it consumes it.
"""

from __future__ import annotations

from sqlalchemy import Connection

from tierspayant.app.platform import Platform
from tierspayant.domain.codes import EngagementCode
from tierspayant.domain.engagements import (
    AmountKey,
    EngagementError,
    EngagementKind,
    Reservation,
    RightsEngagement,
    invalid,
    pack_amount,
    pack_rights,
    unpack_amount,
    unpack_rights,
)
from tierspayant.security.engagement import EngagementSealError, open_sealed, parse, seal
from tierspayant.security.principal import Principal
from tierspayant.services.errors import NotFound
from tierspayant.store import audit, reservations
from tierspayant.store.insurers import amc_number_of
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
) -> RightsEngagement | AmountKey:
    """An invoice's engagement number (rights or amounts), refused unless it opens and is
    this provider's. Whether an amount engagement is still open is adjudication's to say
    (``engagement.cancelled``, ``engagement.expired``), line by line."""
    engagement = open_number(platform, conn, number)
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


# --- Engagements on amounts (kind C) ---------------------------------------------------


def seal_amount(platform: Platform, key: AmountKey) -> str:
    """The printable number of a calculation engagement (a stored reservation's key)."""
    return seal(EngagementKind.CALCULATION.value, pack_amount(key), platform.operator_keys())


def open_number(platform: Platform, conn: Connection, number: str) -> RightsEngagement | AmountKey:
    """What a number of either kind seals, or :class:`EngagementError` (one answer)."""
    try:
        kind, version, sealed = parse(number)
        active = platform.operator_keys()
        keys = (
            active
            if active.version == version
            else platform.keys.version(conn, OPERATOR_SCOPE, version)
        )
        plain = open_sealed(kind, sealed, keys)
    except (EngagementSealError, LookupError):
        raise invalid() from None
    if kind == EngagementKind.CALCULATION.value:
        return unpack_amount(plain)
    return unpack_rights(plain)


def opened_any(
    platform: Platform, conn: Connection, number: str | None
) -> RightsEngagement | AmountKey | None:
    """:func:`opened_or_none` for numbers of either kind."""
    if number is None:
        return None
    try:
        return open_number(platform, conn, number)
    except EngagementError:
        return None


def not_found() -> NotFound:
    """The one answer for a number that is unknown, malformed or someone else's."""
    return NotFound(EngagementCode.NOT_FOUND, "no such engagement")


def cancel_amount(platform: Platform, principal: Principal, number: str) -> Reservation:
    """Cancel one of the professional's engagements on amounts (again: the same answer).

    Unknown, forged, rights (kind R, nothing stored to cancel) or another professional's:
    one 404 code. A consumed engagement cannot be cancelled any more (the same 404: the
    invoice has it)."""
    if principal.provider_id is None:
        raise not_found()
    with platform.engine.begin() as conn:
        try:
            key = open_number(platform, conn, number)
        except EngagementError:
            raise not_found() from None
        if not isinstance(key, AmountKey) or key.provider_id != principal.provider_id:
            raise not_found()
        found = reservations.get(conn, key.insurer_id, key.reservation_id)
        if found is None or found.provider_id != principal.provider_id:
            raise not_found()
        if found.consumed_by is not None:
            raise not_found()
        reservations.cancel(conn, key.insurer_id, key.reservation_id, platform.now())
        audit.append(
            conn,
            at=platform.now(),
            actor=principal.id,
            structure=principal.structure,
            action="engagement.cancel",
            decision="allow",
            purpose="calculation",
            insurer=amc_number_of(conn, key.insurer_id),
            detail={"reservation": key.reservation_id, "again": found.cancelled},
        )
    return found


def provider_engagements(platform: Platform, principal: Principal) -> list[tuple[str, Reservation]]:
    """A professional's open engagements on amounts, with their numbers (portal list)."""
    if principal.provider_id is None:
        return []
    with platform.engine.connect() as conn:
        held = reservations.of_provider(conn, principal.provider_id, platform.today())
    return [(seal_amount(platform, r.key), r) for r in held]
