"""The calculation (CLC): the AMO, AMC and patient shares of a prospective invoice.

Lines are checked before anyone is looked up, and every answer about the person is the
same (``calculation.no_rights``) whether they are unknown, mismatched or not covered, so a
calculation cannot be used to learn more than a rights check.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from sqlalchemy import Connection

from tierspayant.app.platform import Platform
from tierspayant.domain.codes import CalculationCode
from tierspayant.domain.eligibility import Coverage, age_on, check_care_date
from tierspayant.domain.errors import PricingError
from tierspayant.domain.pricing import (
    PricingLine,
    PricingRequest,
    PricingResult,
    check_lines,
    price,
)
from tierspayant.security.audit import DISCLOSED
from tierspayant.security.principal import Principal
from tierspayant.services.errors import Unprocessable
from tierspayant.services.identification import CardData, Identified
from tierspayant.services.insurers import Insurer
from tierspayant.services.lookup import NO_PROOF, CardProof, Deferred, guarded_read
from tierspayant.services.providers import provider_by_id
from tierspayant.store import audit

# Engine refusals that depend on the person, not on the lines: all look like "no rights".
PERSON_CODES = frozenset({CalculationCode.NOT_COVERED_YET, CalculationCode.DOMAIN_NOT_COVERED})


@dataclass(frozen=True, slots=True)
class Calculation:
    card: CardData
    care_date: date
    lines: tuple[PricingLine, ...]
    maternity: bool = False


def no_rights() -> Unprocessable:
    """The single refusal for unknown, mismatched and uncovered beneficiaries."""
    return Unprocessable(
        CalculationCode.CALCULATION_NO_RIGHTS,
        "no complementary rights for this card data on this date",
    )


def calculate(
    platform: Platform, principal: Principal, request: Calculation, proof: CardProof = NO_PROOF
) -> PricingResult:
    """Check the lines, then guard, identify, price, audit and commit."""
    return start_calculation(platform, principal, request, proof).settle()


def start_calculation(
    platform: Platform, principal: Principal, request: Calculation, proof: CardProof = NO_PROOF
) -> Deferred[PricingResult]:
    """:func:`calculate` up to the audit event's group commit (see ``Deferred``)."""
    card = request.card.normalised()
    check_care_date(request.care_date, platform.today())
    check_lines(request.lines, platform.reference.on(request.care_date))

    def answer(
        conn: Connection, insurer: Insurer, found: Identified | None
    ) -> tuple[PricingResult | None, audit.Entry]:
        result = _price(platform, conn, principal, insurer, found, request)
        entry = audit.Entry(
            at=platform.now(),
            actor=principal.id,
            structure=principal.structure,
            action="calculation",
            purpose="calculation",
            subject=found.subject if found else None,
            insurer=insurer.amc_number,
            decision="miss" if found is None else ("hit" if result else "hit_not_covered"),
            detail={
                "care_date": request.care_date.isoformat(),
                "lines": len(request.lines),
                "proof": proof.present,
                # Anything but ``calculation.no_rights``, the answer of an unknown person.
                DISCLOSED: result is not None,
            },
        )
        return result, entry

    return guarded_read(platform, principal, card, proof, answer).then(_covered)


def _covered(result: PricingResult | None) -> PricingResult:
    if result is None:
        raise no_rights()
    return result


def _price(
    platform: Platform,
    conn: Connection,
    principal: Principal,
    insurer: Insurer,
    found: Identified | None,
    request: Calculation,
) -> PricingResult | None:
    if found is None:
        return None
    record = found.record
    coverage = Coverage(record.contract_code, record.coverage_start, record.coverage_end)
    if not coverage.covers(request.care_date):
        return None
    contract = platform.catalogues.contract(conn, insurer.id, record.contract_code)
    if contract is None:
        return None
    optam = principal.provider_id is not None and provider_by_id(conn, principal.provider_id).optam
    try:
        return price(
            contract,
            PricingRequest(
                care_date=request.care_date,
                age=age_on(found.birth_date, request.care_date),
                coverage_start=record.coverage_start,
                lines=request.lines,
                optam=optam,
                maternity=request.maternity,
                css=record.css,
            ),
            platform.reference,
        )
    except PricingError as exc:
        if exc.code in PERSON_CODES:
            return None
        raise
