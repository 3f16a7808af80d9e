"""Engagements (engagement de prise en charge): what a counter answer binds for the invoice.

A rights check that answers "covered" issues an *engagement number*: the operator's word
that an invoice of this professional, for this beneficiary, on this care date, in the
engaged care domains, will not be rejected for lack of rights, even if the insurer ends
the coverage retroactively later. The number is self-verifying (sealed by
:mod:`tierspayant.security.engagement`): the rights check writes nothing.

This module holds the value, its byte layout (the sealed plaintext) and the rule that
says whether an engagement applies to an invoice. Kinds: ``R`` rights (built now);
``C`` calculation (amount engagements with ceiling reservations, later) will share the
format with its own body.

Plaintext of a rights engagement (integers big-endian, dates as days since 2000-01-01)::

    insurer id (4) | provider id (4) | beneficiary id (8) | care date (2)
    | valid until (2) | coverage start (2) | covered domains (2, bit per domain)
    | tiers payant domains (2) | contract code length (1) | contract code (ASCII)

The beneficiary is named by the platform's internal row id, never a NIR; the whole
plaintext is encrypted, so the number shows nothing but its kind to whoever reads it.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, timedelta
from enum import StrEnum

from tierspayant.domain.care import CareDomain
from tierspayant.domain.codes import EngagementCode
from tierspayant.domain.eligibility import DomainRight
from tierspayant.domain.errors import DomainError

EPOCH = date(2000, 1, 1)
# Domains in a fixed bit order: a new domain is appended, never inserted.
DOMAIN_BITS: tuple[CareDomain, ...] = tuple(CareDomain)
_BIT = {domain: 1 << bit for bit, domain in enumerate(DOMAIN_BITS)}
_FIXED = struct.Struct(">IIQHHHHHB")
MAX_CONTRACT_CODE = 40


class EngagementError(DomainError):
    """An engagement number is malformed, forged, or not the caller's (one answer for all)."""


def invalid() -> EngagementError:
    """The single refusal of an engagement number at intake (it tells nothing more)."""
    return EngagementError(
        EngagementCode.INVALID,
        "this engagement number cannot be accepted",
        field="engagement_number",
    )


class EngagementKind(StrEnum):
    """What an engagement binds: rights now, a calculated amount later."""

    RIGHTS = "R"
    CALCULATION = "C"  # reserved: amount engagements (not issued yet)


class EngagementFault(StrEnum):
    """Why an engagement does not apply to an invoice (adjudication names the reason)."""

    NOT_YOURS = "not_yours"  # another professional, beneficiary or insurer
    EXPIRED = "expired"  # the care date is outside its validity


@dataclass(frozen=True, slots=True)
class RightsEngagement:
    """The rights an answer engaged, as the sealed number carries them."""

    insurer_id: int
    provider_id: int
    beneficiary_id: int
    care_date: date
    valid_until: date
    coverage_start: date
    domains: frozenset[CareDomain]  # answered covered
    tiers_payant: frozenset[CareDomain]  # among them, with tiers payant
    contract_code: str

    kind = EngagementKind.RIGHTS

    def covers(self, domain: CareDomain) -> bool:
        """Whether a line of ``domain`` is engaged."""
        return domain in self.domains

    def fault(
        self, *, insurer_id: int, provider_id: int, beneficiary_id: int, care_date: date
    ) -> EngagementFault | None:
        """None when the engagement applies to an invoice with these facts."""
        if (
            insurer_id != self.insurer_id
            or provider_id != self.provider_id
            or beneficiary_id != self.beneficiary_id
        ):
            return EngagementFault.NOT_YOURS
        if not self.care_date <= care_date <= self.valid_until:
            return EngagementFault.EXPIRED
        return None


@dataclass(frozen=True, slots=True)
class HonouredLine:
    """A line paid on an engagement, as statements and portals list it."""

    claim_id: int
    line_no: int
    invoice_number: str
    provider_am_number: str
    care_date: date
    domain: str
    contract_code: str
    cents: int


def rights_engagement(
    *,
    insurer_id: int,
    provider_id: int,
    beneficiary_id: int,
    care_date: date,
    coverage_start: date,
    contract_code: str,
    rights: Iterable[DomainRight],
) -> RightsEngagement | None:
    """The engagement a rights answer gives, or None when no domain is covered.

    A rights engagement is valid for the care date it was asked for, and that day only.
    """
    rights = tuple(rights)
    covered = frozenset(r.domain for r in rights if r.covered)
    if not covered:
        return None
    return RightsEngagement(
        insurer_id=insurer_id,
        provider_id=provider_id,
        beneficiary_id=beneficiary_id,
        care_date=care_date,
        valid_until=care_date,
        coverage_start=coverage_start,
        domains=covered,
        tiers_payant=frozenset(r.domain for r in rights if r.covered and r.tiers_payant),
        contract_code=contract_code,
    )


def _days(day: date) -> int:
    days = (day - EPOCH).days
    if not 0 <= days <= 0xFFFF:
        raise ValueError(f"date {day} is outside the engagement format's range")
    return days


def _mask(domains: Iterable[CareDomain]) -> int:
    mask = 0
    for domain in domains:
        mask |= _BIT[domain]
    return mask


def _domains(mask: int) -> frozenset[CareDomain]:
    if mask >> len(DOMAIN_BITS):
        raise invalid()
    return frozenset(d for bit, d in enumerate(DOMAIN_BITS) if mask >> bit & 1)


def pack_rights(engagement: RightsEngagement) -> bytes:
    """The plaintext bytes of a rights engagement (sealed by the security layer)."""
    code = engagement.contract_code.encode("ascii")
    if not 1 <= len(code) <= MAX_CONTRACT_CODE:
        raise ValueError("contract code must be 1 to 40 ASCII characters")
    return (
        _FIXED.pack(
            engagement.insurer_id,
            engagement.provider_id,
            engagement.beneficiary_id,
            _days(engagement.care_date),
            _days(engagement.valid_until),
            _days(engagement.coverage_start),
            _mask(engagement.domains),
            _mask(engagement.tiers_payant),
            len(code),
        )
        + code
    )


def unpack_rights(plain: bytes) -> RightsEngagement:
    """Inverse of :func:`pack_rights`; :class:`EngagementError` for bytes it never writes."""
    if len(plain) <= _FIXED.size:
        raise invalid()
    (insurer, provider, beneficiary, care, until, start, covered, tp, length) = _FIXED.unpack(
        plain[: _FIXED.size]
    )
    code = plain[_FIXED.size :]
    if len(code) != length or not 1 <= length <= MAX_CONTRACT_CODE or not code.isascii():
        raise invalid()
    domains, tiers_payant = _domains(covered), _domains(tp)
    if not domains or not tiers_payant <= domains or until < care:
        raise invalid()
    return RightsEngagement(
        insurer_id=insurer,
        provider_id=provider,
        beneficiary_id=beneficiary,
        care_date=EPOCH + timedelta(days=care),
        valid_until=EPOCH + timedelta(days=until),
        coverage_start=EPOCH + timedelta(days=start),
        domains=domains,
        tiers_payant=tiers_payant,
        contract_code=code.decode("ascii"),
    )
