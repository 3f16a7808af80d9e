"""Prior authorisation (PEC) decisions: a priced quote in, a status and guaranteed amounts out.

For optics, dental prostheses, hearing aids and hospital stays. A request is refused
without rights (unknown person, no contract, outside the coverage, a domain without tiers
payant: one refusal, ``rights.none``, that tells none of them apart), when the contract
lacks the care domain, when the quote's amounts are inconsistent, or when the contract
pays nothing; it waits for a person (``pending``) for the domains and amounts the policy
names; otherwise it is granted. The service reads the facts, calls
:func:`refusal_before_pricing` and then :func:`decide`, and stores what they return.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from enum import StrEnum

from tierspayant.domain.care import CareDomain
from tierspayant.domain.codes import CalculationCode
from tierspayant.domain.eligibility import Coverage
from tierspayant.domain.errors import PricingError
from tierspayant.domain.facts import Refusal, refusal
from tierspayant.domain.guarantees import Contract
from tierspayant.domain.pricing import PricingLine, PricingRequest, price
from tierspayant.domain.reference import ReferenceTable

PRIOR_AUTH_DOMAINS = frozenset({CareDomain.OPTI, CareDomain.DENT, CareDomain.AUDI, CareDomain.HOSP})
MAX_REVIEW_ABOVE_CENTS = 100_000_000  # 1 000 000 €
MAX_VALIDITY_DAYS = 366


class PriorAuthStatus(StrEnum):
    """Where a request stands (the values are those stored and sent by the API)."""

    GRANTED = "granted"
    REFUSED = "refused"
    PENDING = "pending"  # a person at the insurer decides
    EXPIRED = "expired"  # granted, read after its validity (never stored)


@dataclass(frozen=True, slots=True)
class PriorAuthPolicy:
    """When a request waits for a person, and how long an agreement lasts.

    Defaults: above 1 500 € guaranteed, or any hospital stay, a person decides; an
    agreement is valid 12 weeks after the decision (optical and dental quotes usually
    are valid 3 months).
    """

    review_above_cents: int = 150_000
    review_domains: frozenset[CareDomain] = frozenset({CareDomain.HOSP})
    validity_days: int = 84

    def __post_init__(self) -> None:
        if not 0 <= self.review_above_cents <= MAX_REVIEW_ABOVE_CENTS:
            raise ValueError(f"review_above_cents must be between 0 and {MAX_REVIEW_ABOVE_CENTS}")
        if not 1 <= self.validity_days <= MAX_VALIDITY_DAYS:
            raise ValueError(f"validity_days must be between 1 and {MAX_VALIDITY_DAYS}")


DEFAULT_POLICY = PriorAuthPolicy()


@dataclass(frozen=True, slots=True)
class GuaranteedLine:
    """One line of the quote and the AMC amount the agreement guarantees for it."""

    act_code: str
    family: str
    quantity: int
    billed_cents: int
    guaranteed_cents: int
    # The quote's reimbursement base and compulsory scheme's share, when priced (a
    # request refused before pricing has the base the provider sent and no AMO share).
    br_cents: int | None = None
    amo_cents: int | None = None


@dataclass(frozen=True, slots=True)
class PriorAuthDecision:
    """The status of a request, the coded reason of a refusal, and the guaranteed lines."""

    status: PriorAuthStatus
    reason_code: str | None
    reason: str | None
    lines: tuple[GuaranteedLine, ...]


def _nothing_guaranteed(lines: Sequence[PricingLine]) -> tuple[GuaranteedLine, ...]:
    return tuple(
        GuaranteedLine(ln.act_code, ln.family, ln.quantity, ln.billed_cents, 0, ln.br_cents)
        for ln in lines
    )


def no_rights(lines: Sequence[PricingLine]) -> PriorAuthDecision:
    """The single refusal of an unknown person, of mismatched identifiers and of no rights."""
    return PriorAuthDecision(
        PriorAuthStatus.REFUSED,
        "rights.none",
        "Pas de droits complémentaires",
        _nothing_guaranteed(lines),
    )


def refusal_before_pricing(
    lines: Sequence[PricingLine], contract: Contract | None, coverage: Coverage, care_date: date
) -> PriorAuthDecision | None:
    """The refusal a request gets before its quote is priced, or None to go on pricing.

    ``contract`` is None when the beneficiary's contract is not in the catalogue. The
    facts are judged by :func:`tierspayant.domain.facts.refusal`, as for a calculation
    and an invoice: a domain without tiers payant is refused as no rights.
    """
    found = refusal(contract, coverage, (line.domain for line in lines), care_date)
    if found is Refusal.DOMAIN_NOT_COVERED:
        return PriorAuthDecision(
            PriorAuthStatus.REFUSED,
            "rights.domain_not_covered",
            "Domaine non couvert par le contrat",
            _nothing_guaranteed(lines),
        )
    if found is not None:
        return no_rights(lines)
    return None


def decide(
    contract: Contract,
    request: PricingRequest,
    reference: ReferenceTable,
    policy: PriorAuthPolicy,
) -> PriorAuthDecision:
    """Price the quote of ``request`` under ``contract`` and decide on it under ``policy``."""
    lines = request.lines
    try:
        result = price(contract, request, reference)
    except PricingError as exc:
        if exc.code in (CalculationCode.NOT_COVERED_YET, CalculationCode.DOMAIN_NOT_COVERED):
            return no_rights(lines)
        return PriorAuthDecision(
            PriorAuthStatus.REFUSED, "amounts.inconsistent", exc.message, _nothing_guaranteed(lines)
        )
    guaranteed = tuple(
        GuaranteedLine(
            ln.act_code,
            ln.family,
            ln.quantity,
            ln.billed_cents,
            ln.amc_cents,
            ln.br_cents,
            ln.amo_paid_cents,
        )
        for ln in result.lines
    )
    if result.amc_cents == 0:
        return PriorAuthDecision(
            PriorAuthStatus.REFUSED,
            "guarantee.none",
            "Aucune prise en charge pour ce devis",
            guaranteed,
        )
    review = lines[0].domain in policy.review_domains
    if review or result.amc_cents > policy.review_above_cents:
        return PriorAuthDecision(PriorAuthStatus.PENDING, None, None, guaranteed)
    return PriorAuthDecision(PriorAuthStatus.GRANTED, None, None, guaranteed)
