"""The facts of one pricing, applied the same way at the counter and in adjudication.

A calculation (CLC), a prior authorisation (PEC) and the adjudication of an invoice all
price lines for one person at one provider. What they read beyond the lines is the same:
the person's coverage, contract and age, what earlier accepted invoices consumed of the
contract's ceilings and when equipment was last covered (the counter history), and the
provider's conventions with the insurer. This module turns those facts into the refusal
they imply (:func:`refusal`) and into the engine's request (:func:`pricing_request`);
no caller builds either on its own, so what the counter quotes is what adjudication
accepts for the same lines on the same day.

The facts are read in bulk per batch by adjudication and per person by the counter's
services (both through ``store/``); the rules that apply them are here, once.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from enum import StrEnum

from tierspayant.domain.care import CareDomain
from tierspayant.domain.eligibility import Coverage
from tierspayant.domain.guarantees import Contract, counter_window
from tierspayant.domain.pricing import PricingLine, PricingRequest

RENEWAL_PREFIX = "renewal."

# A convention's first and last day (None: open-ended).
ConventionPeriod = tuple[date, date | None]


@dataclass(frozen=True, slots=True)
class CounterUse:
    """What one claim consumed of one counter on one care date."""

    key: str
    care_date: date
    cents: int
    units: int


class Refusal(StrEnum):
    """Why the facts allow no pricing at all (each caller answers it with its own code)."""

    # Outside the coverage, no contract, or a domain without tiers payant: what an
    # unknown person gets, so that the answer tells nothing more.
    NO_RIGHTS = "no_rights"
    DOMAIN_NOT_COVERED = "domain_not_covered"
    # The provider has no convention with the insurer for the domain on the date.
    NO_CONVENTION = "no_convention"


@dataclass(frozen=True, slots=True)
class PricingFacts:
    """Everything pricing reads about a person and a provider, besides the lines."""

    contract: Contract
    coverage: Coverage
    age: int  # whole years on the care date
    css: bool = False
    optam: bool = False
    conventions: Mapping[CareDomain, ConventionPeriod] = field(default_factory=dict)
    history: Sequence[CounterUse] = ()  # earlier consumption, in care-date order
    # What open engagements on amounts of this person hold of the ceilings (the one being
    # consumed excepted): counted as consumed, so no two engagements promise the same
    # ceiling. Their renewal keys are not counted (the equipment is not delivered yet).
    reserved: Sequence[CounterUse] = ()

    def refusal(self, domains: Iterable[CareDomain], day: date) -> Refusal | None:
        """:func:`refusal` for these facts."""
        return refusal(self.contract, self.coverage, domains, day, self.conventions)


def under_convention(
    conventions: Mapping[CareDomain, ConventionPeriod], domain: CareDomain, day: date
) -> bool:
    """Whether the provider is under the insurer's convention for ``domain`` on ``day``."""
    period = conventions.get(domain)
    if period is None:
        return False
    first, last = period
    return first <= day and (last is None or day <= last)


def with_tiers_payant(contract: Contract, domain: CareDomain) -> bool:
    """Whether the contract lists ``domain`` with tiers payant (what its card prints)."""
    terms = contract.domains.get(domain)
    return terms is not None and terms.tiers_payant


def refusal(
    contract: Contract | None,
    coverage: Coverage | None,
    domains: Iterable[CareDomain],
    day: date,
    conventions: Mapping[CareDomain, ConventionPeriod] | None = None,
) -> Refusal | None:
    """The first reason the facts allow no pricing of lines in ``domains`` on ``day``.

    In this order: rights on the date, each domain in the contract, with tiers payant,
    then (when ``conventions`` is given) each domain under the provider's convention.
    """
    if contract is None or coverage is None or not coverage.covers(day):
        return Refusal.NO_RIGHTS
    wanted = sorted(set(domains))
    for domain in wanted:
        if domain not in contract.domains:
            return Refusal.DOMAIN_NOT_COVERED
        if not with_tiers_payant(contract, domain):
            return Refusal.NO_RIGHTS
    if conventions is not None:
        for domain in wanted:
            if not under_convention(conventions, domain, day):
                return Refusal.NO_CONVENTION
    return None


def without_convention(
    conventions: Mapping[CareDomain, ConventionPeriod],
    needs: Iterable[tuple[CareDomain, date]],
) -> tuple[CareDomain, ...]:
    """The domains of ``needs`` (domain, care date) not under convention on their date."""
    return tuple(
        sorted({domain for domain, day in needs if not under_convention(conventions, domain, day)})
    )


def counters_on(
    contract: Contract,
    care_date: date,
    history: Iterable[CounterUse],
    reserved: Iterable[CounterUse] = (),
) -> tuple[dict[str, tuple[int, int]], dict[str, date]]:
    """Consumption in each ceiling's window (reservations included), and the last covered
    equipment per key (consumption only)."""
    windows: dict[str, tuple[date, date]] = {}
    for guarantee in contract.guarantees:
        for ceiling in guarantee.ceilings:
            windows.setdefault(ceiling.counter, counter_window(ceiling.period, care_date))
    counters: dict[str, tuple[int, int]] = {}
    last: dict[str, date] = {}
    for use in history:
        if use.key.startswith(RENEWAL_PREFIX):
            key = use.key[len(RENEWAL_PREFIX) :]
            if use.care_date < care_date and (key not in last or last[key] < use.care_date):
                last[key] = use.care_date
            continue
        window = windows.get(use.key)
        if window is not None and window[0] <= use.care_date <= window[1]:
            cents, units = counters.get(use.key, (0, 0))
            counters[use.key] = (cents + use.cents, units + use.units)
    for use in reserved:
        window = windows.get(use.key)
        if window is not None and window[0] <= use.care_date <= window[1]:
            cents, units = counters.get(use.key, (0, 0))
            counters[use.key] = (cents + use.cents, units + use.units)
    return counters, last


def held_by(
    reservations: Iterable[tuple[int, Sequence[CounterUse]]], but: int | None
) -> tuple[CounterUse, ...]:
    """The counter uses reserved by ``(id, uses)`` pairs, except those of reservation ``but``
    (the one an invoice consumes, or a calculation replaces)."""
    return tuple(use for rid, uses in reservations if rid != but for use in uses)


def pricing_request(
    facts: PricingFacts,
    care_date: date,
    lines: tuple[PricingLine, ...],
    *,
    maternity: bool = False,
    history: Iterable[CounterUse] | None = None,
) -> PricingRequest:
    """The engine's request for ``lines`` on ``care_date``: the one way to build it.

    ``history`` replaces ``facts.history`` when the caller has consumption of its own to
    add (adjudication: the earlier care dates of the same invoice).
    """
    counters, last = counters_on(
        facts.contract, care_date, facts.history if history is None else history, facts.reserved
    )
    return PricingRequest(
        care_date=care_date,
        age=facts.age,
        coverage_start=facts.coverage.start,
        lines=lines,
        optam=facts.optam,
        maternity=maternity,
        css=facts.css,
        counters=counters,
        last_equipment=last,
    )
