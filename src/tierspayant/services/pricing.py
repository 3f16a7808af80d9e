"""The calculation (CLC): the AMO, AMC and patient shares of a prospective invoice.

Lines are checked before anyone is looked up, and every answer about the person is the
same (``calculation.no_rights``) whether they are unknown, mismatched or not covered, so a
calculation cannot be used to learn more than a rights check.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from tierspayant.domain.errors import PricingError
from tierspayant.domain.pricing import PricingLine, PricingRequest, PricingResult, check_lines, price
from tierspayant.domain.eligibility import Coverage, check_care_date
from tierspayant.security.principal import Principal
from tierspayant.services.eligibility import authorise_provider
from tierspayant.services.errors import ServiceError
from tierspayant.services.identification import CardData, age_on, identify
from tierspayant.services.platform import Platform
from tierspayant.services.providers import provider_by_id
from tierspayant.store import audit

# Engine refusals that depend on the person, not on the lines: all look like "no rights".
PERSON_CODES = frozenset({"pricing.not_covered_yet", "pricing.domain_not_covered"})


@dataclass(frozen=True, slots=True)
class Calculation:
    card: CardData
    care_date: date
    lines: tuple[PricingLine, ...]
    maternity: bool = False


def no_rights() -> ServiceError:
    return ServiceError(
        "calculation.no_rights",
        "no complementary rights for this card data on this date",
        status=422,
    )


def calculate(platform: Platform, principal: Principal, request: Calculation) -> PricingResult:
    """Authorise, guard, check the lines, identify, price, audit and commit."""
    card = request.card.normalised()
    check_care_date(request.care_date, platform.today())
    rules = platform.reference.on(request.care_date)
    check_lines(request.lines, rules)
    authorise_provider(platform, principal, "calculation")
    with platform.engine.begin() as conn:
        insurer, found = identify(platform, conn, card)
        result: PricingResult | None = None
        record = found.record if found is not None else None
        coverage = (
            Coverage(record.contract_code, record.coverage_start, record.coverage_end)
            if record is not None
            else None
        )
        if found is not None and coverage is not None and coverage.covers(request.care_date):
            contract = platform.catalogues.contract(conn, insurer.id, found.record.contract_code)
            optam = False
            if principal.provider_id is not None:
                optam = provider_by_id(conn, principal.provider_id).optam
            if contract is not None:
                try:
                    result = price(
                        contract,
                        PricingRequest(
                            care_date=request.care_date,
                            age=age_on(found.birth_date, request.care_date),
                            coverage_start=found.record.coverage_start,
                            lines=request.lines,
                            optam=optam,
                            maternity=request.maternity,
                            css=found.record.css,
                        ),
                        platform.reference,
                    )
                except PricingError as exc:
                    if exc.code not in PERSON_CODES:
                        raise
        audit.append(
            conn,
            at=platform.now(),
            actor=principal.id,
            structure=principal.structure,
            action="calculation",
            purpose="calculation",
            subject=found.subject if found else None,
            insurer=insurer.amc_number,
            decision="miss" if found is None else ("hit" if result else "hit_not_covered"),
            detail={"care_date": request.care_date.isoformat(), "lines": len(request.lines)},
        )
    if result is None:
        raise no_rights()
    return result
