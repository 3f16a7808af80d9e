"""Prior authorisation decisions: statuses, reasons and guaranteed amounts of a quote."""

from __future__ import annotations

from datetime import date

import pytest

from tierspayant.domain.care import CareDomain
from tierspayant.domain.eligibility import Coverage
from tierspayant.domain.guarantees import Contract, DomainTerms, Guarantee
from tierspayant.domain.pricing import PricingLine, PricingRequest
from tierspayant.domain.prior_auth import (
    PriorAuthPolicy,
    PriorAuthStatus,
    decide,
    refusal_before_pricing,
)
from tierspayant.formats.reference import load_default_reference

REFERENCE = load_default_reference()
DAY = date(2026, 3, 16)
START = date(2024, 1, 1)
# A crown at a free price: billed 550.00 on a BR of 120.00 (AMO 60 %: 72.00).
CROWN = PricingLine("HBLD036", CareDomain.DENT, "dental_prosthesis", 1, 55_000, 12_000)
# Under 100 % BR the AMC pays BR − AMO = 120.00 − 72.00 = 48.00.
CROWN_AMC = 4_800


def contract(*domains: CareDomain, guarantees: bool = True) -> Contract:
    terms = {d: DomainTerms(True, "100") for d in (domains or tuple(CareDomain))}
    rules = tuple(Guarantee(d, "*", rate_bp=10_000) for d in terms) if guarantees else ()
    return Contract("PA", "prior auth test", True, terms, rules)


def quote(*lines: PricingLine) -> PricingRequest:
    return PricingRequest(care_date=DAY, age=40, coverage_start=START, lines=lines or (CROWN,))


def test_granted_with_the_amounts_the_contract_pays() -> None:
    decision = decide(contract(), quote(), REFERENCE, PriorAuthPolicy())
    assert decision.status is PriorAuthStatus.GRANTED
    assert (decision.reason_code, decision.reason) == (None, None)
    assert [line.guaranteed_cents for line in decision.lines] == [CROWN_AMC]
    assert decision.lines[0].billed_cents == 55_000


@pytest.mark.parametrize(
    ("review_above", "status"),
    [(CROWN_AMC - 1, PriorAuthStatus.PENDING), (CROWN_AMC, PriorAuthStatus.GRANTED)],
)
def test_a_person_decides_above_the_policy_amount(
    review_above: int, status: PriorAuthStatus
) -> None:
    policy = PriorAuthPolicy(review_above_cents=review_above)
    decision = decide(contract(), quote(), REFERENCE, policy)
    assert decision.status is status
    assert decision.lines[0].guaranteed_cents == CROWN_AMC


def test_a_person_decides_for_the_domains_the_policy_names() -> None:
    policy = PriorAuthPolicy(review_domains=frozenset({CareDomain.DENT}))
    assert decide(contract(), quote(), REFERENCE, policy).status is PriorAuthStatus.PENDING


def test_refused_when_the_contract_pays_nothing() -> None:
    decision = decide(contract(guarantees=False), quote(), REFERENCE, PriorAuthPolicy())
    assert decision.status is PriorAuthStatus.REFUSED
    assert decision.reason_code == "guarantee.none"
    assert [line.guaranteed_cents for line in decision.lines] == [0]


def test_refused_when_the_amounts_are_inconsistent() -> None:
    below_br = PricingLine("HBLD036", CareDomain.DENT, "dental_prosthesis", 1, 100, 12_000)
    decision = decide(contract(), quote(below_br), REFERENCE, PriorAuthPolicy())
    assert decision.status is PriorAuthStatus.REFUSED
    assert decision.reason_code == "amounts.inconsistent"


def test_before_pricing_no_rights_is_one_refusal() -> None:
    covered = Coverage("PA", START, None)
    ended = Coverage("PA", START, date(2025, 12, 31))
    no_contract = refusal_before_pricing((CROWN,), None, covered, DAY)
    not_covered = refusal_before_pricing((CROWN,), contract(), ended, DAY)
    assert no_contract is not None
    assert not_covered is not None
    assert no_contract == not_covered
    assert no_contract.status is PriorAuthStatus.REFUSED
    assert no_contract.reason_code == "rights.none"


def test_before_pricing_a_domain_the_contract_lacks_is_refused() -> None:
    covered = Coverage("PA", START, None)
    refusal = refusal_before_pricing((CROWN,), contract(CareDomain.OPTI), covered, DAY)
    assert refusal is not None
    assert refusal.reason_code == "rights.domain_not_covered"
    assert refusal_before_pricing((CROWN,), contract(), covered, DAY) is None


def test_statuses_keep_the_stored_values() -> None:
    # Stored rows and API answers carry these strings: renaming one breaks both.
    assert [s.value for s in PriorAuthStatus] == ["granted", "refused", "pending", "expired"]
