"""The guarantee model of a complementary insurer (AMC) and the checks of its form.

A :class:`Catalogue` holds an insurer's contracts. A :class:`Contract` says, per care
domain, whether tiers payant applies and which coverage code the card prints, and lists
:class:`Guarantee` rules keyed by care domain and act family (``"*"`` stands for every
family of the domain that has no rule of its own).

A guarantee combines, in this order:

- ``rate_bp``: a percentage of the BR *including* the AMO share: 100 % BR pays the ticket
  modérateur, 200 % BR also pays dépassements up to one more BR. Doctors' fees may have a
  lower ``rate_non_optam_bp`` for doctors outside the OPTAM / OPTAM-CO options;
- ``flat_cents``: a flat amount (forfait) per unit of quantity, added to the above;
- ``actual_costs``: frais réels, everything the AMO leaves (exclusive of the two above);
- ``ceilings``: amounts or counts per beneficiary and period (a per-year forfait is frais
  réels or a percentage under an amount ceiling). A ceiling caps only what the guarantee
  pays *above* the ticket modérateur, unless ``includes_tm``;
- conditions: ages (they select among several rules of one family), a waiting period
  (carence) and a renewal frequency (one pair of glasses per 24 months…).

The 100 % Santé baskets are a contract-level promise (``hundred_percent_sante``): on a
class A line the AMC pays the price, up to the legal limit, minus the AMO share.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta
from enum import StrEnum
from types import MappingProxyType

from tierspayant.domain.care import CareDomain
from tierspayant.domain.codes import CatalogueCode
from tierspayant.domain.eligibility import DomainTerms
from tierspayant.domain.errors import CatalogueError
from tierspayant.domain.reference import (
    ReferenceTable,
)

ANY_FAMILY = "*"
MAX_RATE_BP = 100_000  # 1 000 % of the BR: beyond that a figure is a typo, not a contract
_FAMILY = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
_CODE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,31}$")
_COUNTER = re.compile(r"^[a-z][a-z0-9_.\-]{0,63}$")
# What the harmonised card prints in its standard box (docs/cards.md): the type de
# convention is a short code, the critère secondaire de routage (CSR) digits.
_CONVENTION_TYPE = re.compile(r"^[A-Z0-9]{1,4}$")
_ROUTING_CRITERION = re.compile(r"^[0-9]{1,10}$")
# The insurer's contact for members: a plain e-mail form and a dialable phone number.
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_PHONE = re.compile(r"^[0-9+][0-9 .()\-]{3,24}$")

__all__ = [
    "ANY_FAMILY",
    "Catalogue",
    "Ceiling",
    "Contract",
    "DomainTerms",
    "Frequency",
    "Guarantee",
    "InsurerContact",
    "Period",
    "add_months",
    "counter_window",
    "validate_contract",
]


class Period(StrEnum):
    """The window over which a ceiling counts."""

    CALENDAR_YEAR = "calendar_year"
    MONTHS_12 = "12_months"  # rolling, ending on the care date
    MONTHS_24 = "24_months"
    MONTHS_48 = "48_months"


_PERIOD_MONTHS = {Period.MONTHS_12: 12, Period.MONTHS_24: 24, Period.MONTHS_48: 48}
PERIOD_LABELS = {
    Period.CALENDAR_YEAR: "annual",
    Period.MONTHS_12: "12-month",
    Period.MONTHS_24: "24-month",
    Period.MONTHS_48: "48-month",
}


def add_months(day: date, months: int) -> date:
    """``day`` moved by ``months`` calendar months, clamped to the end of shorter months."""
    index = day.year * 12 + day.month - 1 + months
    year, month = divmod(index, 12)
    month += 1
    next_month = date(year + 1, 1, 1) if month == 12 else date(year, month + 1, 1)
    last_day = (next_month - timedelta(days=1)).day
    return date(year, month, min(day.day, last_day))


def counter_window(period: Period, care_date: date) -> tuple[date, date]:
    """First and last day (inclusive) whose consumption counts against a ceiling.

    The caller sums what the beneficiary consumed in this window and passes it to the
    pricing engine in ``PricingRequest.counters``.
    """
    if period is Period.CALENDAR_YEAR:
        return date(care_date.year, 1, 1), date(care_date.year, 12, 31)
    start = add_months(care_date, -_PERIOD_MONTHS[period]) + timedelta(days=1)
    return start, care_date


@dataclass(frozen=True, slots=True)
class Ceiling:
    """A cap per beneficiary and period, on an amount, a number of units, or both.

    Several guarantees may share a counter (one dental ceiling over prostheses and
    implants). Unless ``includes_tm``, the ticket modérateur is paid outside the ceiling.
    """

    counter: str
    period: Period
    amount_cents: int | None = None
    count: int | None = None
    includes_tm: bool = False

    def __post_init__(self) -> None:
        if not _COUNTER.match(self.counter) or self.counter.startswith("amo."):
            raise CatalogueError(
                CatalogueCode.BAD_COUNTER,
                "a counter key is lower case letters, digits, '_', '.', '-' "
                "and may not start with 'amo.' (reserved)",
                field="counter",
            )
        if self.amount_cents is None and self.count is None:
            raise CatalogueError(
                CatalogueCode.EMPTY_CEILING, "a ceiling needs an amount, a count or both"
            )
        if self.amount_cents is not None and self.amount_cents < 0:
            raise CatalogueError(CatalogueCode.NEGATIVE_AMOUNT, "negative amount", field="amount")
        if self.count is not None and self.count < 1:
            raise CatalogueError(CatalogueCode.BAD_COUNT, "count must be at least 1", field="count")


@dataclass(frozen=True, slots=True)
class Frequency:
    """At most one covered equipment per ``months`` (``months_young`` under ``young_age``)."""

    key: str
    months: int
    months_young: int | None = None
    young_age: int = 16

    def __post_init__(self) -> None:
        if not _COUNTER.match(self.key):
            raise CatalogueError(CatalogueCode.BAD_COUNTER, "bad frequency key", field="key")
        if self.months < 1 or (self.months_young is not None and self.months_young < 1):
            raise CatalogueError(
                CatalogueCode.BAD_FREQUENCY, "months must be at least 1", field="months"
            )
        if not 0 < self.young_age < 150:
            raise CatalogueError(CatalogueCode.BAD_AGE, "bad young_age", field="young_age")

    def months_for(self, age: int) -> int:
        """The renewal period that applies at ``age``."""
        if self.months_young is not None and age < self.young_age:
            return self.months_young
        return self.months

    def next_allowed(self, last: date, age: int) -> date:
        """First care date covered again after an equipment covered on ``last``."""
        return add_months(last, self.months_for(age))


@dataclass(frozen=True, slots=True)
class Guarantee:
    """One rule of a contract: what the AMC pays for a family of acts in a care domain."""

    domain: CareDomain
    family: str
    rate_bp: int | None = None
    rate_non_optam_bp: int | None = None
    flat_cents: int | None = None
    actual_costs: bool = False
    ceilings: tuple[Ceiling, ...] = ()
    waiting_days: int = 0
    min_age: int | None = None
    max_age: int | None = None
    frequency: Frequency | None = None
    label: str = ""

    def __post_init__(self) -> None:
        if self.family != ANY_FAMILY and not _FAMILY.match(self.family):
            raise CatalogueError(
                CatalogueCode.BAD_FAMILY,
                f"family {self.family!r} must be lower case letters, digits and '_', or '*'",
                field="family",
            )
        if self.rate_bp is None and self.flat_cents is None and not self.actual_costs:
            raise CatalogueError(
                CatalogueCode.EMPTY_GUARANTEE,
                "a guarantee needs a rate, a flat amount or actual_costs",
            )
        if self.actual_costs and (self.rate_bp is not None or self.flat_cents is not None):
            raise CatalogueError(
                CatalogueCode.CONFLICTING_FORMULA,
                "actual_costs already pays everything: do not add a rate or a flat amount",
                field="actual_costs",
            )
        for name, value in (("rate", self.rate_bp), ("rate_non_optam", self.rate_non_optam_bp)):
            if value is not None and not 0 <= value <= MAX_RATE_BP:
                raise CatalogueError(
                    CatalogueCode.BAD_RATE, f"{name} must be between 0 and 1000 %", field=name
                )
        if self.rate_non_optam_bp is not None and self.rate_bp is None:
            raise CatalogueError(
                CatalogueCode.CONFLICTING_FORMULA,
                "rate_non_optam needs a rate (the OPTAM level)",
                field="rate_non_optam",
            )
        if self.flat_cents is not None and self.flat_cents < 0:
            raise CatalogueError(CatalogueCode.NEGATIVE_AMOUNT, "negative amount", field="flat")
        if self.waiting_days < 0:
            raise CatalogueError(
                CatalogueCode.BAD_WAITING_PERIOD, "waiting_days must be >= 0", field="waiting_days"
            )
        for name, age in (("min_age", self.min_age), ("max_age", self.max_age)):
            if age is not None and not 0 <= age < 150:
                raise CatalogueError(CatalogueCode.BAD_AGE, f"{name} out of range", field=name)
        if self.min_age is not None and self.max_age is not None and self.min_age > self.max_age:
            raise CatalogueError(CatalogueCode.BAD_AGE, "min_age above max_age", field="min_age")

    def applies_at(self, age: int) -> bool:
        """Whether this rule is the one for a beneficiary of ``age`` (bounds inclusive)."""
        return (self.min_age is None or age >= self.min_age) and (
            self.max_age is None or age <= self.max_age
        )

    def rate_for(self, optam: bool) -> int | None:
        """The percentage of BR that applies for an OPTAM member or not."""
        if not optam and self.rate_non_optam_bp is not None:
            return self.rate_non_optam_bp
        return self.rate_bp


@dataclass(frozen=True, slots=True)
class Contract:
    """A contract (garantie) of an insurer, as members subscribe to it."""

    code: str
    label: str
    responsable: bool
    domains: Mapping[CareDomain, DomainTerms]
    guarantees: tuple[Guarantee, ...]
    hundred_percent_sante: bool = True
    covers_participation: bool = False
    covers_franchises: bool = False
    covers_hors_parcours: bool = False
    # (domain, family) -> the rules to try in order: the family's own, then the domain's "*".
    _index: Mapping[tuple[CareDomain, str], tuple[Guarantee, ...]] = field(
        init=False, repr=False, compare=False
    )
    _wildcards: Mapping[CareDomain, tuple[Guarantee, ...]] = field(
        init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        if not _CODE.match(self.code):
            raise CatalogueError(
                CatalogueCode.BAD_CODE,
                "a contract code is 1 to 32 letters, digits, '_', '.', '-'",
                field="code",
            )
        object.__setattr__(self, "domains", MappingProxyType(dict(self.domains)))
        object.__setattr__(self, "guarantees", tuple(self.guarantees))
        specific: dict[tuple[CareDomain, str], list[Guarantee]] = {}
        wildcards: dict[CareDomain, list[Guarantee]] = {}
        for i, guarantee in enumerate(self.guarantees):
            if guarantee.domain not in self.domains:
                raise CatalogueError(
                    CatalogueCode.GUARANTEE_DOMAIN_NOT_COVERED,
                    f"guarantee {i} is for domain {guarantee.domain}, which the contract "
                    "does not list under domains",
                    field=f"guarantees[{i}].domain",
                )
            if guarantee.family == ANY_FAMILY:
                wildcards.setdefault(guarantee.domain, []).append(guarantee)
            else:
                specific.setdefault((guarantee.domain, guarantee.family), []).append(guarantee)
        frozen_wildcards = {d: tuple(g) for d, g in wildcards.items()}
        index = {
            key: tuple(rules) + frozen_wildcards.get(key[0], ()) for key, rules in specific.items()
        }
        object.__setattr__(self, "_index", MappingProxyType(index))
        object.__setattr__(self, "_wildcards", MappingProxyType(frozen_wildcards))

    def __reduce__(self) -> tuple[type[Contract], tuple[object, ...]]:
        # Read-only mapping proxies do not pickle: rebuild from plain values instead.
        return (
            Contract,
            (
                self.code,
                self.label,
                self.responsable,
                dict(self.domains),
                self.guarantees,
                self.hundred_percent_sante,
                self.covers_participation,
                self.covers_franchises,
                self.covers_hors_parcours,
            ),
        )

    def candidates(self, domain: CareDomain, family: str) -> tuple[Guarantee, ...]:
        """The rules for ``family`` in ``domain``, most specific first."""
        found = self._index.get((domain, family))
        if found is None:
            return self._wildcards.get(domain, ())
        return found

    def guarantee_for(self, domain: CareDomain, family: str, age: int) -> Guarantee | None:
        """The rule that applies to ``family`` in ``domain`` at ``age``, if any."""
        for guarantee in self.candidates(domain, family):
            if guarantee.applies_at(age):
                return guarantee
        return None


@dataclass(frozen=True, slots=True)
class CardRouting:
    """The insurer's routing fields printed on its cards (standard box of the harmonised card).

    ``convention_type``: the type de convention, 1 to 4 capital letters or digits;
    ``routing_criterion``: the critère secondaire de routage (CSR), 1 to 10 digits.
    Either may be empty (printed empty) but not both: then the block is left out.
    """

    convention_type: str = ""
    routing_criterion: str = ""

    def __post_init__(self) -> None:
        if self.convention_type and not _CONVENTION_TYPE.match(self.convention_type):
            raise CatalogueError(
                CatalogueCode.BAD_CARD_ROUTING,
                "a type de convention is 1 to 4 capital letters or digits",
                field="convention_type",
            )
        if self.routing_criterion and not _ROUTING_CRITERION.match(self.routing_criterion):
            raise CatalogueError(
                CatalogueCode.BAD_CARD_ROUTING,
                "a critère secondaire de routage (CSR) is 1 to 10 digits",
                field="routing_criterion",
            )
        if not (self.convention_type or self.routing_criterion):
            raise CatalogueError(
                CatalogueCode.BAD_CARD_ROUTING,
                "a card block gives convention_type, routing_criterion or both",
            )


@dataclass(frozen=True, slots=True)
class InsurerContact:
    """How a member reaches their insurer, as the insurer publishes it (shown to members
    wherever a page tells them to contact their insurer). Every field is optional text;
    at least one must be given."""

    name: str = ""
    phone: str = ""
    email: str = ""
    address: str = ""

    def __post_init__(self) -> None:
        if not (self.name or self.phone or self.email or self.address):
            raise CatalogueError(
                CatalogueCode.MISSING_KEY,
                "a contact block gives a name, phone, email or address",
            )
        if self.email and not _EMAIL.match(self.email):
            raise CatalogueError(
                CatalogueCode.WRONG_TYPE, "email must be an e-mail address", field="email"
            )
        if self.phone and not _PHONE.match(self.phone):
            raise CatalogueError(
                CatalogueCode.WRONG_TYPE,
                "phone must be digits, spaces, '+', '.', '-' or parentheses",
                field="phone",
            )


@dataclass(frozen=True, slots=True)
class Catalogue:
    """The guarantee catalogue of one insurer, identified by its AMC number.

    ``card``: the routing fields its cards print, when the insurer declares them.
    """

    insurer: str
    version: str
    contracts: tuple[Contract, ...]
    name: str = ""
    card: CardRouting | None = None
    contact: InsurerContact | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "contracts", tuple(self.contracts))
        seen: set[str] = set()
        for i, contract in enumerate(self.contracts):
            if contract.code in seen:
                raise CatalogueError(
                    CatalogueCode.DUPLICATE_CONTRACT,
                    f"contract code {contract.code!r} appears twice",
                    field=f"contracts[{i}].code",
                )
            seen.add(contract.code)

    def contract(self, code: str) -> Contract:
        """The contract ``code``, or ``catalogue.unknown_contract``."""
        for contract in self.contracts:
            if contract.code == code:
                return contract
        raise CatalogueError(
            CatalogueCode.UNKNOWN_CONTRACT, f"no contract {code!r} in this catalogue", field="code"
        )


# --- validation against the reference data ------------------------------------------------


def validate_contract(contract: Contract, reference: ReferenceTable, on_date: date) -> None:
    """Check a contract against the act families known on ``on_date`` (any contract)."""
    rules = reference.on(on_date)
    for i, guarantee in enumerate(contract.guarantees):
        if guarantee.family == ANY_FAMILY:
            continue
        family = rules.families.get(guarantee.family)
        where = f"guarantees[{i}].family"
        if family is None:
            raise CatalogueError(
                CatalogueCode.UNKNOWN_FAMILY,
                f"unknown act family {guarantee.family!r}",
                field=where,
            )
        if guarantee.domain not in family.domains:
            allowed = ", ".join(sorted(family.domains))
            raise CatalogueError(
                CatalogueCode.FAMILY_DOMAIN_MISMATCH,
                f"family {guarantee.family} is billed in {allowed}, not {guarantee.domain}",
                field=where,
            )
        if guarantee.rate_non_optam_bp is not None and not family.doctor_fees:
            raise CatalogueError(
                CatalogueCode.CONFLICTING_FORMULA,
                f"rate_non_optam only applies to doctors' fees, not to {guarantee.family}",
                field=f"guarantees[{i}].rate_non_optam",
            )
