"""Engagements (engagement de prise en charge): what a counter answer binds for the invoice.

A rights check that answers "covered" issues an *engagement number*: the operator's word
that an invoice of this professional, for this beneficiary, on this care date, in the
engaged care domains, will not be rejected for lack of rights, even if the insurer ends
the coverage retroactively later. The number is self-verifying (sealed by
:mod:`tierspayant.security.engagement`): the rights check writes nothing.

This module holds the value, its byte layout (the sealed plaintext) and the rule that
says whether an engagement applies to an invoice. Kinds: ``R`` rights, and
``C`` calculation: an engagement on amounts, stored as a *reservation* of the AMC amount
against the person's ceilings (``amount_reservations``), whose number seals the row's key
(plaintext: insurer id (4) | reservation id (8) | provider id (4) | beneficiary id (8)).

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
from tierspayant.domain.facts import CounterUse

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
    CALCULATION = "C"  # amounts: a stored reservation against the person's ceilings


class EngagementFault(StrEnum):
    """Why an engagement does not apply to an invoice (adjudication names the reason)."""

    NOT_YOURS = "not_yours"  # another professional, beneficiary or insurer
    EXPIRED = "expired"  # the care date is outside its validity
    CANCELLED = "cancelled"  # an amount engagement cancelled, or consumed by another invoice


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


# --- Engagements on amounts (kind C) ---------------------------------------------------

_CALC = struct.Struct(">IQIQ")
# Care domains of equipment, whose invoice follows the calculation by days or weeks.
EQUIPMENT_DOMAINS = frozenset({CareDomain.OPTI, CareDomain.DENT, CareDomain.AUDI})
MAX_AMOUNT_DAYS = 366
MAX_OPEN_LIMIT = 50


@dataclass(frozen=True, slots=True)
class AmountPolicy:
    """Validity (days after the care date) and the open reservations allowed per person
    and care domain."""

    equipment_days: int = 30
    other_days: int = 0  # the care day itself
    max_open: int = 3

    def valid_until(self, care_date: date, domains: Iterable[CareDomain]) -> date:
        """The last day an engagement for ``domains`` holds: the longest of their validities."""
        days = max(
            self.equipment_days if d in EQUIPMENT_DOMAINS else self.other_days for d in domains
        )
        return care_date + timedelta(days=days)


AMOUNT_DEFAULTS = AmountPolicy()


@dataclass(frozen=True, slots=True)
class AmountKey:
    """What a calculation engagement number seals: the reservation's key and its owners."""

    insurer_id: int
    reservation_id: int
    provider_id: int
    beneficiary_id: int


def pack_amount(key: AmountKey) -> bytes:
    return _CALC.pack(key.insurer_id, key.reservation_id, key.provider_id, key.beneficiary_id)


def unpack_amount(plain: bytes) -> AmountKey:
    if len(plain) != _CALC.size:
        raise invalid()
    return AmountKey(*_CALC.unpack(plain))


@dataclass(frozen=True, slots=True)
class EngagedAmount:
    """One line of a calculation engagement: its act, domain and engaged AMC amount."""

    act_code: str
    domain: CareDomain
    cents: int


@dataclass(frozen=True, slots=True)
class Reservation:
    """An engagement on amounts as stored: what it reserves of the person's counters
    (``uses``, dated on the care date) until it is consumed, cancelled or expired."""

    insurer_id: int
    id: int
    provider_id: int
    structure: str
    beneficiary_id: int
    domains: frozenset[CareDomain]
    care_date: date
    valid_until: date
    contract_code: str
    coverage_start: date
    amc_cents: int
    uses: tuple[CounterUse, ...]
    lines: tuple[EngagedAmount, ...]
    cancelled: bool = False
    consumed_by: int | None = None
    digest: bytes = b""  # of the calculation's request: a retry finds its engagement

    @property
    def key(self) -> AmountKey:
        return AmountKey(self.insurer_id, self.id, self.provider_id, self.beneficiary_id)

    def open_on(self, today: date) -> bool:
        """Whether it still reserves: neither cancelled nor consumed, and not past its
        validity (computed when read: an expired reservation needs no job to free it)."""
        return not self.cancelled and self.consumed_by is None and today <= self.valid_until

    def fault_for(self, claim_id: int) -> EngagementFault | None:
        """CANCELLED when an invoice cannot consume it any more (the rest is judged as for
        a rights engagement, by :meth:`RightsEngagement.fault`)."""
        if self.cancelled or (self.consumed_by is not None and self.consumed_by != claim_id):
            return EngagementFault.CANCELLED
        return None

    def as_rights(self) -> RightsEngagement:
        """The rights it engages too: its domains, on its contract, over its validity."""
        return RightsEngagement(
            insurer_id=self.insurer_id,
            provider_id=self.provider_id,
            beneficiary_id=self.beneficiary_id,
            care_date=self.care_date,
            valid_until=self.valid_until,
            coverage_start=self.coverage_start,
            domains=self.domains,
            tiers_payant=self.domains,
            contract_code=self.contract_code,
        )


def open_in(
    reservations: Iterable[Reservation], domain: CareDomain, today: date
) -> list[Reservation]:
    """The reservations still open on ``today`` that cover ``domain``."""
    return [r for r in reservations if r.open_on(today) and domain in r.domains]


def carried_by(
    reservations: Iterable[Reservation],
    provider_id: int,
    care_date: date,
    lines: Iterable[tuple[str, CareDomain]],
) -> Reservation | None:
    """The open engagement on amounts a later step of the same care matches: the same
    professional's, for the same care date and the same lines (act code and domain, in any
    order), the newest if several. A prior authorisation of those lines does not count
    what that engagement reserved against itself (it asks for the very amounts the
    calculation promised); every other reservation still counts, so no two engagements
    promise the same ceiling."""
    wanted = sorted((act, domain.value) for act, domain in lines)
    found: Reservation | None = None
    for r in reservations:
        if (
            r.provider_id == provider_id
            and r.care_date == care_date
            and sorted((x.act_code, x.domain.value) for x in r.lines) == wanted
        ):
            found = r
    return found
