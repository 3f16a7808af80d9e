"""Rights of a beneficiary on a care date, per care domain (the IDB answer).

The answer of an unknown beneficiary, of identifiers that do not match and of a person not
covered is the same value: :func:`no_rights`. Callers must not be able to tell them apart.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, timedelta

from tierspayant.domain.care import CareDomain
from tierspayant.domain.codes import EligibilityCode
from tierspayant.domain.errors import EligibilityError

# How far from today a care date may be: claims on a complementary insurer are
# time-barred after two years (Code de la mutualité L.221-11, Code des assurances
# L.114-1, Code de la sécurité sociale L.932-13 for institutions de prévoyance), and a
# check may be made for an appointment within the month.
MAX_PAST_DAYS = 2 * 366
MAX_FUTURE_DAYS = 31


@dataclass(frozen=True, slots=True)
class Coverage:
    """A beneficiary's affiliation to a contract, from ``start`` to ``end`` inclusive."""

    contract_code: str
    start: date
    end: date | None

    def covers(self, day: date) -> bool:
        """Whether ``day`` falls within the coverage period."""
        return self.start <= day and (self.end is None or day <= self.end)


@dataclass(frozen=True, slots=True)
class DomainTerms:
    """What a contract prints on the card for one care domain."""

    tiers_payant: bool
    coverage_code: str


@dataclass(frozen=True, slots=True)
class DomainRight:
    """The rights-check answer for one domain. Carries no identity data."""

    domain: CareDomain
    covered: bool
    tiers_payant: bool
    coverage_code: str | None
    valid_until: date | None


def age_on(birth: date, day: date) -> int:
    """Age in whole years on ``day`` (born 29 February: a year older on 1 March)."""
    years = day.year - birth.year
    if (day.month, day.day) < (birth.month, birth.day):
        years -= 1
    return years


def check_care_date(care_date: date, today: date) -> None:
    """Refuse a care date too far in the past or the future, with a specific code."""
    if care_date > today + timedelta(days=MAX_FUTURE_DAYS):
        raise EligibilityError(
            EligibilityCode.CARE_DATE_FUTURE,
            f"care date is more than {MAX_FUTURE_DAYS} days ahead",
            field="care_date",
        )
    if care_date < today - timedelta(days=MAX_PAST_DAYS):
        raise EligibilityError(
            EligibilityCode.CARE_DATE_PAST,
            "care date is more than two years ago",
            field="care_date",
        )


def no_rights(domains: Iterable[CareDomain]) -> tuple[DomainRight, ...]:
    """The single answer for unknown, mismatched or uncovered beneficiaries."""
    return tuple(DomainRight(d, False, False, None, None) for d in _unique(domains))


def evaluate_rights(
    coverage: Coverage | None,
    terms: Mapping[CareDomain, DomainTerms],
    care_date: date,
    domains: Iterable[CareDomain],
) -> tuple[DomainRight, ...]:
    """Per requested domain: covered, tiers payant allowed, coverage code, end of validity."""
    if coverage is None or not coverage.covers(care_date):
        return no_rights(domains)
    rights = []
    for domain in _unique(domains):
        term = terms.get(domain)
        if term is None:
            rights.append(DomainRight(domain, False, False, None, None))
        else:
            rights.append(
                DomainRight(domain, True, term.tiers_payant, term.coverage_code, coverage.end)
            )
    return tuple(rights)


def _unique(domains: Iterable[CareDomain]) -> list[CareDomain]:
    seen: dict[CareDomain, None] = {}
    for domain in domains:
        seen.setdefault(domain, None)
    return list(seen)
