"""What the engine reads and answers: lines, requests, per-line and total results."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from enum import StrEnum
from types import MappingProxyType
from typing import Any, NamedTuple

from tierspayant.domain.care import CareDomain, Exemption

# Counters of what the AMO already deducted: per calendar year, and per day (the day
# counter of the participation is per professional: the caller passes the one of this
# provider on the care date).
COUNTER_PARTICIPATION_YEAR = "amo.participation.year"
COUNTER_PARTICIPATION_DAY = "amo.participation.day"
COUNTER_FRANCHISE_YEAR = "amo.franchise.year"
COUNTER_FRANCHISE_DAY = MappingProxyType(
    {"paramedical": "amo.franchise.paramedical.day", "transport": "amo.franchise.transport.day"}
)
AMO_COUNTERS = (
    COUNTER_PARTICIPATION_YEAR,
    COUNTER_PARTICIPATION_DAY,
    COUNTER_FRANCHISE_YEAR,
    *COUNTER_FRANCHISE_DAY.values(),
)

FULL_RATE = 10_000  # 100 % in basis points
# Exemptions under which the AMO pays 100 % of the BR.
FULL_RATE_EXEMPTIONS = frozenset({Exemption.ALD, Exemption.MATERNITY, Exemption.WORK_ACCIDENT})
ZERO = (0, 0)  # (amount, count) of a counter nothing consumed yet


class RssClass(StrEnum):
    """Price class of optics, dental prostheses and hearing aids."""

    A = "A"  # 100 % Santé basket: legal price limit, nothing left to the patient
    B = "B"  # free price


RSS_CLASSES = frozenset(RssClass)


@dataclass(frozen=True, slots=True)
class PricingLine:
    """One line of a prospective invoice, as the provider's software sends it."""

    act_code: str
    domain: CareDomain
    family: str
    quantity: int
    billed_cents: int
    br_cents: int  # total BR of the line (all units)
    amo_rate_bp: int | None = None  # None: the reference rate of the family
    exemption: Exemption = Exemption.NONE
    in_care_pathway: bool = True
    rss_class: RssClass | None = None
    plv_cents: int | None = None  # legal price limit of the line (class A)
    psychiatry: bool = False  # forfait journalier in psychiatry


@dataclass(frozen=True, slots=True)
class PricingRequest:
    """The beneficiary, provider and history facts a calculation depends on."""

    care_date: date
    age: int  # age in whole years on the care date
    coverage_start: date
    lines: tuple[PricingLine, ...]
    optam: bool = False  # the doctor joined OPTAM / OPTAM-CO
    maternity: bool = False  # maternity insurance (from the 6th month of pregnancy)
    css: bool = False  # complémentaire santé solidaire
    # counter key -> (amount in cents, count) already consumed in the counter's window
    counters: Mapping[str, tuple[int, int]] = field(default_factory=dict)
    # frequency key -> date of the last covered equipment
    last_equipment: Mapping[str, date] = field(default_factory=dict)


class LineResult(NamedTuple):
    """The shares of one line, and the rules applied, in plain English.

    A named tuple rather than a frozen dataclass: the engine makes one per line, and a
    frozen dataclass's constructor costs four times as much.
    """

    act_code: str
    domain: CareDomain
    family: str
    quantity: int
    billed_cents: int
    br_cents: int
    amo_rate_bp: int
    amo_base_cents: int
    participation_cents: int
    franchise_cents: int
    amo_paid_cents: int
    tm_cents: int
    depassement_cents: int
    amc_cents: int
    patient_cents: int
    rules: tuple[str, ...]

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready mapping (amounts in cents)."""
        return {
            "act_code": self.act_code,
            "domain": str(self.domain),
            "family": self.family,
            "quantity": self.quantity,
            "billed_cents": self.billed_cents,
            "br_cents": self.br_cents,
            "amo_rate_bp": self.amo_rate_bp,
            "amo_base_cents": self.amo_base_cents,
            "participation_cents": self.participation_cents,
            "franchise_cents": self.franchise_cents,
            "amo_paid_cents": self.amo_paid_cents,
            "tm_cents": self.tm_cents,
            "depassement_cents": self.depassement_cents,
            "amc_cents": self.amc_cents,
            "patient_cents": self.patient_cents,
            "rules": list(self.rules),
        }


@dataclass(frozen=True, slots=True)
class PricingResult:
    """Per-line and total shares, and what the invoice would consume from counters."""

    contract_code: str
    care_date: date
    lines: tuple[LineResult, ...]
    billed_cents: int
    br_cents: int
    amo_base_cents: int
    participation_cents: int
    franchise_cents: int
    amo_paid_cents: int
    tm_cents: int
    depassement_cents: int
    amc_cents: int
    patient_cents: int
    counter_consumption: Mapping[str, tuple[int, int]]
    renewals: Mapping[str, date]  # frequency key -> care date, for covered equipment
    # The engagement on amounts a calculation answer carries (``ENG1-C-…``), and its last
    # day; None from the engine itself (the calculation service sets them).
    engagement_number: str | None = None
    engagement_valid_until: date | None = None

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready mapping (amounts in cents, dates in ISO format)."""
        return {
            "engagement_number": self.engagement_number,
            "engagement_valid_until": None
            if self.engagement_valid_until is None
            else self.engagement_valid_until.isoformat(),
            "contract_code": self.contract_code,
            "care_date": self.care_date.isoformat(),
            "lines": [line.as_dict() for line in self.lines],
            "totals": {
                "billed_cents": self.billed_cents,
                "br_cents": self.br_cents,
                "amo_base_cents": self.amo_base_cents,
                "participation_cents": self.participation_cents,
                "franchise_cents": self.franchise_cents,
                "amo_paid_cents": self.amo_paid_cents,
                "tm_cents": self.tm_cents,
                "depassement_cents": self.depassement_cents,
                "amc_cents": self.amc_cents,
                "patient_cents": self.patient_cents,
            },
            "counter_consumption": {
                key: {"amount_cents": amount, "count": count}
                for key, (amount, count) in sorted(self.counter_consumption.items())
            },
            "renewals": {key: day.isoformat() for key, day in sorted(self.renewals.items())},
        }
