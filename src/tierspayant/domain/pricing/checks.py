"""Checks of what the provider sends: lines that no contract could make valid, and requests.

The line checks depend on the lines and the reference data only, so they can run before
anyone is looked up and their errors tell nothing about a person.
"""

from __future__ import annotations

from collections.abc import Sequence

from tierspayant.domain.codes import CalculationCode
from tierspayant.domain.errors import PricingError
from tierspayant.domain.guarantees import Contract
from tierspayant.domain.pricing.explain import eur, pct
from tierspayant.domain.pricing.model import (
    FULL_RATE,
    FULL_RATE_EXEMPTIONS,
    RSS_CLASSES,
    PricingLine,
    PricingRequest,
    RssClass,
)
from tierspayant.domain.reference import FamilyRule, ReferenceRules


def check_request(request: PricingRequest) -> None:
    """Refuse a request without lines, with an impossible age, or before the coverage."""
    if not request.lines:
        raise PricingError(
            CalculationCode.NO_LINES, "a calculation needs at least one line", field="lines"
        )
    if not 0 <= request.age < 150:
        raise PricingError(
            CalculationCode.INVALID_REQUEST, "age must be between 0 and 149", field="age"
        )
    if request.care_date < request.coverage_start:
        raise PricingError(
            CalculationCode.NOT_COVERED_YET,
            f"the coverage starts on {request.coverage_start.isoformat()}, after the care date",
            field="care_date",
        )


def line_family(
    line: PricingLine, index: int, contract: Contract, rules: ReferenceRules
) -> FamilyRule:
    """The family rule of ``line``, once the line is known valid under ``contract``."""
    fam = rules.families.get(line.family)
    if fam is None or line.domain not in fam.domains:
        fam = family_of(line, index, rules)  # raises the precise error
    if line.domain not in contract.domains:
        raise PricingError(
            CalculationCode.DOMAIN_NOT_COVERED,
            f"contract {contract.code} does not cover care domain {line.domain}",
            field=f"lines[{index}].domain",
        )
    # The full checks only when a cheap test says something is unusual.
    if (
        line.quantity < 1
        or line.br_cents < 0
        or line.billed_cents < line.br_cents
        or line.rss_class is not None
        or line.amo_rate_bp is not None
        or fam.daily_charge
    ):
        check_amounts(line, index, fam.rss, fam.daily_charge, rules)
    return fam


def check_lines(lines: Sequence[PricingLine], rules: ReferenceRules) -> None:
    """Refuse lines that no contract and no beneficiary could make valid.

    Everything here depends on the lines and the reference data only, so a caller can
    check a request before looking anyone up: the errors cannot tell about a person.
    """
    if not lines:
        raise PricingError(
            CalculationCode.NO_LINES, "a calculation needs at least one line", field="lines"
        )
    for index, line in enumerate(lines):
        family = family_of(line, index, rules)
        check_amounts(line, index, family.rss, family.daily_charge, rules)
        if line.amo_rate_bp is not None:
            check_rate(line, index, family, rules)


def family_of(line: PricingLine, index: int, rules: ReferenceRules) -> FamilyRule:
    """The family rule of ``line``, or the error saying why it has none."""
    family = rules.families.get(line.family)
    if family is None:
        raise PricingError(
            CalculationCode.UNKNOWN_FAMILY,
            f"unknown act family {line.family!r}",
            field=f"lines[{index}].family",
        )
    if line.domain not in family.domains:
        raise PricingError(
            CalculationCode.FAMILY_DOMAIN_MISMATCH,
            f"family {line.family} is not billed in care domain {line.domain}",
            field=f"lines[{index}].domain",
        )
    return family


def check_rate(line: PricingLine, index: int, family: FamilyRule, rules: ReferenceRules) -> None:
    """A rate sent by the caller may be above the reference (local regimes), not below.

    The lowest acceptable rate depends on the line only (not on the beneficiary's age),
    so that this check reveals nothing about the person.
    """
    ordinary = rules.family_rates_bp[family.name]
    if line.exemption in FULL_RATE_EXEMPTIONS:
        lowest = FULL_RATE
    elif family.care_pathway and not line.in_care_pathway:
        lowest = min(ordinary, rules.hors_parcours_rate_bp)
    else:
        lowest = ordinary
    rate = line.amo_rate_bp
    if rate is not None and not lowest <= rate <= FULL_RATE:
        raise PricingError(
            CalculationCode.AMOUNTS_INCONSISTENT,
            f"AMO rate {pct(rate)} is inconsistent: {pct(lowest)} to 100 % expected "
            f"for {family.name}",
            field=f"lines[{index}].amo_rate_bp",
        )


def check_amounts(
    line: PricingLine, index: int, rss_family: bool, daily_charge: bool, rules: ReferenceRules
) -> None:
    """Refuse amounts that cannot describe a real line, naming the field."""
    where = f"lines[{index}]"
    if line.quantity < 1:
        raise PricingError(
            CalculationCode.AMOUNTS_INCONSISTENT,
            "quantity must be at least 1",
            field=f"{where}.quantity",
        )
    if line.br_cents < 0 or line.billed_cents < 0:
        raise PricingError(
            CalculationCode.AMOUNTS_INCONSISTENT,
            "amounts may not be negative",
            field=f"{where}.br_cents" if line.br_cents < 0 else f"{where}.billed_cents",
        )
    if line.billed_cents < line.br_cents:
        raise PricingError(
            CalculationCode.AMOUNTS_INCONSISTENT,
            "billed is below the BR: send the price charged as the BR",
            field=f"{where}.billed_cents",
        )
    if line.amo_rate_bp is not None and not 0 <= line.amo_rate_bp <= FULL_RATE:
        raise PricingError(
            CalculationCode.AMOUNTS_INCONSISTENT,
            "the AMO rate must be between 0 and 100 %",
            field=f"{where}.amo_rate_bp",
        )
    rss = line.rss_class
    if rss is not None:
        if rss not in RSS_CLASSES:
            raise PricingError(
                CalculationCode.AMOUNTS_INCONSISTENT,
                "rss_class must be A (100 % Santé), B (free price) or absent",
                field=f"{where}.rss_class",
            )
        if not rss_family:
            raise PricingError(
                CalculationCode.RSS_NOT_APPLICABLE,
                f"family {line.family} has no 100 % Santé class",
                field=f"{where}.rss_class",
            )
        if rss == RssClass.A:
            plv = line.plv_cents
            if plv is None or plv < 0:
                raise PricingError(
                    CalculationCode.AMOUNTS_INCONSISTENT,
                    "a 100 % Santé (class A) line needs its legal price limit",
                    field=f"{where}.plv_cents",
                )
            if line.billed_cents > plv:
                raise PricingError(
                    CalculationCode.ABOVE_LEGAL_PRICE,
                    f"billed {eur(line.billed_cents)} above the 100 % Santé price limit {eur(plv)}",
                    field=f"{where}.billed_cents",
                )
    if daily_charge:
        unit = (
            rules.hospital_daily_charge_psychiatry_cents
            if line.psychiatry
            else rules.hospital_daily_charge_cents
        )
        if line.br_cents != unit * line.quantity or line.billed_cents != line.br_cents:
            raise PricingError(
                CalculationCode.AMOUNTS_INCONSISTENT,
                f"the forfait journalier is {eur(unit)} per day: expected "
                f"{eur(unit * line.quantity)} for {line.quantity} day(s)",
                field=f"{where}.br_cents",
            )
