"""The calculation (CLC): the AMO, AMC and patient shares of a prospective invoice.

Lines are checked before anyone is looked up, and every answer about the person is the
same (``calculation.no_rights``) whether they are unknown, mismatched, not covered or
covered without tiers payant for a domain of the lines, so a calculation cannot be used
to learn more than a rights check. A professional without the insurer's convention for a
domain of the lines is refused (``calculation.no_convention``) whoever the card designates.

The calculation reads the facts adjudication reads (the person's counters and ceilings
consumed by earlier accepted invoices, the last covered equipment, the waiting period,
the conventions, the tiers payant flags) and applies them through
:mod:`tierspayant.domain.facts`, as adjudication does: the invoice that repeats the
calculation's lines the same day is accepted for the amount calculated.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from sqlalchemy import Connection

from tierspayant.app.platform import Platform
from tierspayant.domain.codes import CalculationCode
from tierspayant.domain.eligibility import check_care_date
from tierspayant.domain.errors import PricingError
from tierspayant.domain.facts import pricing_request
from tierspayant.domain.pricing import PricingLine, PricingResult, check_lines, price
from tierspayant.security.audit import DISCLOSED
from tierspayant.security.principal import Principal
from tierspayant.services.errors import Unprocessable
from tierspayant.services.identification import CardData, Identified
from tierspayant.services.insurers import Insurer
from tierspayant.services.lookup import NO_PROOF, CardProof, Deferred, guarded_read
from tierspayant.services.pricing_facts import person_facts, provider_under_convention
from tierspayant.store import audit
from tierspayant.store.adjudication import ProviderTerms

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
        # The provider's convention first: its refusal does not depend on the person.
        terms = provider_under_convention(
            conn,
            insurer.id,
            principal.provider_id,
            ((line.domain, request.care_date) for line in request.lines),
            CalculationCode.NO_CONVENTION,
        )
        result = _price(platform, conn, insurer, found, request, terms)
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
    insurer: Insurer,
    found: Identified | None,
    request: Calculation,
    terms: ProviderTerms,
) -> PricingResult | None:
    if found is None:
        return None
    facts = person_facts(platform, conn, insurer, found, request.care_date, terms)
    if facts is None:
        return None
    if facts.refusal((line.domain for line in request.lines), request.care_date) is not None:
        return None
    try:
        return price(
            facts.contract,
            pricing_request(facts, request.care_date, request.lines, maternity=request.maternity),
            platform.reference,
        )
    except PricingError as exc:
        if exc.code in PERSON_CODES:
            return None
        raise
