"""Adjudication of an invoice: each line accepted, reduced or rejected, with a reason code.

Pure rules: the caller gathers the facts (coverage, contract, conventions, agreement,
counters, lines already paid for) and records the decision. The facts that price a line
are applied through :mod:`tierspayant.domain.facts`, as at the counter (calculation,
prior authorisation), so that both price the same lines the same way. The order of the checks is
part of the contract, since a line gets the code of the first rule it fails:

1. rights at the care date (unknown person, before or after coverage: one code, so the
   answer tells no more than a rights check), care date not in the future;
2. the care domain in the contract, with tiers payant (without it the insurer pays the
   member, not the provider: ``rights.none``, as for no rights);
3. the act (family known, in that domain) and the amounts (AMO paid within BR × rate,
   AMC asked within billed − AMO paid, the engine's own consistency checks);
4. the provider's convention with the insurer for that domain on that date;
5. the prior authorisation, where the act needs one: present, granted, for this person and
   provider, valid on the date, not used by another invoice;
6. duplicates: the same act, person and day already paid for (same provider: duplicate;
   another provider: near-duplicate, also refused);
7. the guarantee formula through the calculation engine, its ceilings and counters, and
   the agreement's guaranteed amount: the AMC share asked is accepted if it is at most what
   the contract pays, else reduced to it.

Then the engagement, when the invoice carries one (``domain/engagements.py``): a line
refused for lack of rights (rule 1 or 2) whose care domain the engagement binds, for this
insurer, provider, beneficiary and care date, is judged again by rules 1 to 7 on the
contract the engagement names, as in force at the check; paid so, it is *engaged*. A
line refused for lack of rights under an engagement that does not apply carries the
engagement's reason instead (``engagement.not_yours``, ``engagement.expired``, and for an
engagement on amounts cancelled or consumed by another invoice ``engagement.cancelled``).
An engagement on amounts also engages the rights of its domains over its validity; the
ceilings it reserved are not counted against the invoice that consumes it.

Every reason code is listed in :data:`REASONS` and in ``docs/reason-codes.md``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from datetime import date
from enum import StrEnum
from itertools import groupby

from tierspayant.domain.care import CareDomain, Exemption
from tierspayant.domain.claims import (
    ACT_CODE,
    UNKNOWN_BENEFICIARY,
    ClaimLine,
    LineStatus,
    duplicate_key,
    near_key,
)
from tierspayant.domain.codes import CalculationCode
from tierspayant.domain.eligibility import Coverage
from tierspayant.domain.engagements import EngagementFault, RightsEngagement
from tierspayant.domain.errors import PricingError
from tierspayant.domain.facts import (
    RENEWAL_PREFIX,
    CounterUse,
    PricingFacts,
    pricing_request,
    under_convention,
    with_tiers_payant,
)
from tierspayant.domain.guarantees import Contract
from tierspayant.domain.money import apply_rate
from tierspayant.domain.pricing import AMO_COUNTERS, check_lines, price_with_rules
from tierspayant.domain.prior_auth import PriorAuthStatus
from tierspayant.domain.reference import ReferenceDataError, ReferenceTable

# Act families that need the insurer's prior agreement (PEC): optical equipment, dental
# prostheses, hearing aids, hospital stays.
PRIOR_AUTH_FAMILIES = frozenset(
    {
        "optics_frame",
        "optics_lens_simple",
        "optics_lens_complex",
        "optics_lens_very_complex",
        "dental_prosthesis",
        "hearing_aid",
        "hospital_stay",
    }
)


class Reason(StrEnum):
    """Stable reason codes of line decisions (never renamed once published)."""

    RIGHTS_NONE = "rights.none"
    CARE_DATE_FUTURE = "claim.care_date_future"
    DOMAIN_NOT_COVERED = "rights.domain_not_covered"
    ACT_UNKNOWN = "act.unknown"
    AMO_ABOVE_RATE = "amounts.amo_above_rate"
    AMC_ABOVE_COST = "amounts.amc_above_cost"
    AMOUNTS_INCONSISTENT = "amounts.inconsistent"
    NO_CONVENTION = "provider.no_convention"
    PRIOR_AUTH_MISSING = "prior_auth.missing"
    PRIOR_AUTH_NOT_FOUND = "prior_auth.not_found"
    PRIOR_AUTH_NOT_GRANTED = "prior_auth.not_granted"
    PRIOR_AUTH_MISMATCH = "prior_auth.mismatch"
    PRIOR_AUTH_EXPIRED = "prior_auth.expired"
    PRIOR_AUTH_USED = "prior_auth.already_used"
    PRIOR_AUTH_EXCEEDED = "prior_auth.exceeded"
    DUPLICATE = "duplicate.same_provider"
    NEAR_DUPLICATE = "duplicate.other_provider"
    GUARANTEE_NONE = "guarantee.none"
    WAITING_PERIOD = "guarantee.waiting_period"
    RENEWAL_PERIOD = "guarantee.renewal_period"
    CEILING_REACHED = "ceiling.reached"
    ABOVE_GUARANTEE = "amount.above_guarantee"
    UNPROCESSABLE = "claim.unprocessable"
    ENGAGEMENT_NOT_YOURS = "engagement.not_yours"
    ENGAGEMENT_EXPIRED = "engagement.expired"
    ENGAGEMENT_CANCELLED = "engagement.cancelled"


# What the provider reads next to a code (French: shown in portals and remittance advice).
REASONS: Mapping[Reason, str] = {
    Reason.RIGHTS_NONE: "Pas de droits complémentaires à la date des soins",
    Reason.CARE_DATE_FUTURE: "Date des soins dans le futur",
    Reason.DOMAIN_NOT_COVERED: "Domaine de soins non couvert par le contrat",
    Reason.ACT_UNKNOWN: "Acte inconnu ou hors de ce domaine de soins",
    Reason.AMO_ABOVE_RATE: "Part AMO supérieure à la base × taux",
    Reason.AMC_ABOVE_COST: "Part AMC demandée supérieure au reste après AMO",
    Reason.AMOUNTS_INCONSISTENT: "Montants incohérents",
    Reason.NO_CONVENTION: "Professionnel hors convention pour ce domaine",
    Reason.PRIOR_AUTH_MISSING: "Accord préalable requis et absent",
    Reason.PRIOR_AUTH_NOT_FOUND: "Accord préalable inconnu",
    Reason.PRIOR_AUTH_NOT_GRANTED: "Accord préalable non accordé",
    Reason.PRIOR_AUTH_MISMATCH: "Accord préalable d'un autre bénéficiaire",
    Reason.PRIOR_AUTH_EXPIRED: "Accord préalable expiré à la date des soins",
    Reason.PRIOR_AUTH_USED: "Accord préalable déjà utilisé par une autre facture",
    Reason.PRIOR_AUTH_EXCEEDED: "Montant limité à l'accord préalable",
    Reason.DUPLICATE: "Doublon d'une facture déjà prise en charge",
    Reason.NEAR_DUPLICATE: "Même acte, même jour, déjà pris en charge chez un autre professionnel",
    Reason.GUARANTEE_NONE: "Pas de garantie pour cet acte",
    Reason.WAITING_PERIOD: "Délai de carence en cours",
    Reason.RENEWAL_PERIOD: "Renouvellement avant la période autorisée",
    Reason.CEILING_REACHED: "Plafond de garantie atteint",
    Reason.ABOVE_GUARANTEE: "Part AMC ramenée au montant de la garantie",
    Reason.UNPROCESSABLE: "Facture impossible à liquider en l'état : à renvoyer corrigée",
    Reason.ENGAGEMENT_NOT_YOURS: (
        "Pas de droits à la date des soins, et l'engagement porté par la facture "
        "concerne un autre professionnel ou un autre bénéficiaire"
    ),
    Reason.ENGAGEMENT_EXPIRED: (
        "Pas de droits à la date des soins, et l'engagement porté par la facture "
        "ne vaut pas pour cette date de soins"
    ),
    Reason.ENGAGEMENT_CANCELLED: (
        "Pas de droits à la date des soins, et l'engagement sur montants porté par la "
        "facture a été annulé ou déjà utilisé par une autre facture"
    ),
}

# Refusals for lack of rights: the ones an engagement lifts.
RIGHTS_REASONS = frozenset({Reason.RIGHTS_NONE, Reason.DOMAIN_NOT_COVERED})
_FAULT_REASONS: Mapping[EngagementFault, Reason] = {
    EngagementFault.NOT_YOURS: Reason.ENGAGEMENT_NOT_YOURS,
    EngagementFault.EXPIRED: Reason.ENGAGEMENT_EXPIRED,
    EngagementFault.CANCELLED: Reason.ENGAGEMENT_CANCELLED,
}

_ENGINE_REASONS: dict[str, Reason] = {
    CalculationCode.UNKNOWN_FAMILY: Reason.ACT_UNKNOWN,
    CalculationCode.FAMILY_DOMAIN_MISMATCH: Reason.ACT_UNKNOWN,
    CalculationCode.DOMAIN_NOT_COVERED: Reason.DOMAIN_NOT_COVERED,
    CalculationCode.NOT_COVERED_YET: Reason.RIGHTS_NONE,
}


@dataclass(frozen=True, slots=True)
class Agreement:
    """A prior authorisation as adjudication needs it."""

    number: str
    status: str  # granted | refused | pending | expired
    provider_id: int
    beneficiary_id: int
    valid_until: date | None
    guaranteed_by_family: Mapping[str, int]  # family -> guaranteed AMC cents
    used_by_other_claim: bool = False


@dataclass(frozen=True, slots=True)
class ClaimFacts:
    """Everything adjudication reads about one claim."""

    provider_id: int
    beneficiary_id: int
    age: int | None
    lines: tuple[ClaimLine, ...]
    coverage: Coverage | None
    contract: Contract | None
    css: bool = False
    maternity: bool = False
    optam: bool = False
    conventions: Mapping[CareDomain, tuple[date, date | None]] = field(default_factory=dict)
    agreement_number: str | None = None
    agreement: Agreement | None = None
    history: tuple[CounterUse, ...] = ()  # earlier consumption of this beneficiary
    reserved: tuple[CounterUse, ...] = ()  # held by open engagements on amounts (not its own)
    # Keys of the lines already paid for (read only: the caller may share one set).
    paid_exact: AbstractSet[bytes] = frozenset()  # duplicate keys
    paid_near: AbstractSet[bytes] = frozenset()  # near keys
    # Per line, its (duplicate, near) keys when the caller has them stored; else computed.
    line_keys: tuple[tuple[bytes | None, bytes | None], ...] = ()
    # The engagement the invoice carries, opened, and the contract it names (None when
    # that contract is no longer in the catalogue).
    insurer_id: int = 0
    engagement: RightsEngagement | None = None
    engaged_contract: Contract | None = None
    # An engagement on amounts cancelled or consumed by another invoice (read from its row).
    engagement_fault: EngagementFault | None = None


@dataclass(frozen=True, slots=True)
class LineDecision:
    status: LineStatus
    accepted_cents: int
    computed_cents: int | None
    reason: Reason | None
    rules: tuple[str, ...]
    engaged: bool = False  # paid on an engagement, rights having ended since the check

    @property
    def payable(self) -> bool:
        return self.status in (LineStatus.ACCEPTED, LineStatus.REDUCED)


@dataclass(frozen=True, slots=True)
class ClaimDecision:
    lines: tuple[LineDecision, ...]
    consumption: tuple[CounterUse, ...]

    @property
    def accepted_cents(self) -> int:
        return sum(d.accepted_cents for d in self.lines)


def reject(reason: Reason, *rules: str) -> LineDecision:
    return LineDecision(LineStatus.REJECTED, 0, None, reason, (REASONS[reason], *rules))


def adjudicate(facts: ClaimFacts, reference: ReferenceTable, today: date) -> ClaimDecision:
    """Decide every line of one claim. Deterministic: same facts, same decision."""
    decision = _adjudicate(facts, reference, today)
    if facts.engagement is None:
        return decision
    return _honour(facts, facts.engagement, decision, reference, today)


def _honour(
    facts: ClaimFacts,
    engagement: RightsEngagement,
    decision: ClaimDecision,
    reference: ReferenceTable,
    today: date,
) -> ClaimDecision:
    """Lines refused for lack of rights, judged again on the engagement when it applies."""
    lines = list(decision.lines)
    candidates: list[int] = []
    for index, line_decision in enumerate(lines):
        if line_decision.reason not in RIGHTS_REASONS:
            continue
        line = facts.lines[index]
        fault = (
            EngagementFault.NOT_YOURS  # nobody matched: the same answer as someone else
            if facts.beneficiary_id == UNKNOWN_BENEFICIARY
            else engagement.fault(
                insurer_id=facts.insurer_id,
                provider_id=facts.provider_id,
                beneficiary_id=facts.beneficiary_id,
                care_date=line.care_date,
            )
            or facts.engagement_fault
        )
        if fault is not None:
            lines[index] = reject(_FAULT_REASONS[fault])
        elif engagement.covers(line.domain) and facts.engaged_contract is not None:
            candidates.append(index)
    if not candidates:
        return ClaimDecision(tuple(lines), decision.consumption)
    engaged = ClaimFacts(
        provider_id=facts.provider_id,
        beneficiary_id=facts.beneficiary_id,
        age=facts.age,
        lines=tuple(facts.lines[i] for i in candidates),
        coverage=Coverage(
            engagement.contract_code, engagement.coverage_start, engagement.valid_until
        ),
        contract=facts.engaged_contract,
        css=facts.css,
        maternity=facts.maternity,
        optam=facts.optam,
        conventions=facts.conventions,
        agreement_number=facts.agreement_number,
        agreement=facts.agreement,
        history=facts.history + decision.consumption,
        reserved=facts.reserved,
        paid_exact=facts.paid_exact,
        paid_near=facts.paid_near,
        line_keys=tuple(facts.line_keys[i] for i in candidates) if facts.line_keys else (),
        insurer_id=facts.insurer_id,
    )
    again = _adjudicate(engaged, reference, today)
    note = (
        f"engagement of {engagement.care_date.isoformat()} honoured "
        f"on contract {engagement.contract_code}"
    )
    for index, line_decision in zip(candidates, again.lines, strict=True):
        if line_decision.payable:
            line_decision = LineDecision(
                line_decision.status,
                line_decision.accepted_cents,
                line_decision.computed_cents,
                line_decision.reason,
                (*line_decision.rules, note),
                engaged=True,
            )
        lines[index] = line_decision
    return ClaimDecision(tuple(lines), decision.consumption + again.consumption)


def _adjudicate(facts: ClaimFacts, reference: ReferenceTable, today: date) -> ClaimDecision:
    decisions: dict[int, LineDecision] = {}
    eligible: list[int] = []
    for index, line in enumerate(facts.lines):
        refusal = _precheck(facts, index, line, reference, today)
        if refusal is None:
            eligible.append(index)
        else:
            decisions[index] = refusal
    consumption: list[CounterUse] = []
    if eligible:
        _judge_priced(facts, eligible, reference, decisions, consumption)
    return ClaimDecision(tuple(decisions[i] for i in range(len(facts.lines))), tuple(consumption))


def _precheck(
    facts: ClaimFacts, index: int, line: ClaimLine, reference: ReferenceTable, today: date
) -> LineDecision | None:
    """Rules 1 to 6 for one line; None when the line goes on to pricing."""
    coverage = facts.coverage
    if (
        facts.beneficiary_id == UNKNOWN_BENEFICIARY
        or coverage is None
        or facts.contract is None
        or facts.age is None
    ):
        return reject(Reason.RIGHTS_NONE)
    if line.care_date > today:
        return reject(Reason.CARE_DATE_FUTURE, f"care date {line.care_date.isoformat()}")
    if not coverage.covers(line.care_date):
        return reject(Reason.RIGHTS_NONE)
    if line.domain not in facts.contract.domains:
        return reject(Reason.DOMAIN_NOT_COVERED, f"domain {line.domain}")
    if not with_tiers_payant(facts.contract, line.domain):
        # The insurer pays the member, not the provider: as for no rights at all.
        return reject(Reason.RIGHTS_NONE)
    amounts = _amounts(line, reference)
    if amounts is not None:
        return amounts
    if not under_convention(facts.conventions, line.domain, line.care_date):
        return reject(Reason.NO_CONVENTION, f"domain {line.domain}")
    if line.family in PRIOR_AUTH_FAMILIES:
        refusal = _prior_auth(facts, line)
        if refusal is not None:
            return refusal
    exact, near = facts.line_keys[index] if facts.line_keys else (None, None)
    if exact is None:
        exact = duplicate_key(
            facts.beneficiary_id, line.act_code, line.care_date, facts.provider_id
        )
    if near is None:
        near = near_key(facts.beneficiary_id, line.act_code, line.care_date)
    if exact in facts.paid_exact:
        return reject(Reason.DUPLICATE, f"act {line.act_code} on {line.care_date.isoformat()}")
    if near in facts.paid_near:
        return reject(Reason.NEAR_DUPLICATE, f"act {line.act_code} on {line.care_date.isoformat()}")
    return None


def _amounts(line: ClaimLine, reference: ReferenceTable) -> LineDecision | None:
    if not ACT_CODE.match(line.act_code):
        return reject(Reason.ACT_UNKNOWN, f"act code {line.act_code!r}")
    try:
        rules = reference.on(line.care_date)
    except ReferenceDataError:
        return reject(Reason.AMOUNTS_INCONSISTENT, "no reference data on the care date")
    family = rules.families.get(line.family)
    if family is None or line.domain not in family.domains:
        return reject(Reason.ACT_UNKNOWN, f"family {line.family} in domain {line.domain}")
    amo_max = apply_rate(line.br_cents, line.amo_rate_bp)
    if line.amo_paid_cents > amo_max:
        return reject(
            Reason.AMO_ABOVE_RATE,
            f"AMO paid {line.amo_paid_cents} > BR {line.br_cents} × {line.amo_rate_bp} bp "
            f"= {amo_max} cents",
        )
    cost_left = line.billed_cents - line.amo_paid_cents
    if line.amc_requested_cents > cost_left:
        return reject(
            Reason.AMC_ABOVE_COST,
            f"AMC asked {line.amc_requested_cents} > billed − AMO paid {cost_left} cents",
        )
    # The engine's full checks only when a cheap test says the line is unusual.
    unusual = (
        line.quantity < 1
        or line.br_cents < 0
        or line.billed_cents < line.br_cents
        or line.rss_class is not None
        or family.daily_charge
        or line.exemption is not Exemption.NONE
        or not line.in_care_pathway
        or line.amo_rate_bp != rules.family_rates_bp[line.family]
    )
    if unusual:
        try:
            check_lines((line.pricing_line(),), rules)
        except PricingError as exc:
            return reject(Reason.AMOUNTS_INCONSISTENT, exc.message)
    return None


def _prior_auth(facts: ClaimFacts, line: ClaimLine) -> LineDecision | None:
    agreement = facts.agreement
    if facts.agreement_number is None:
        return reject(Reason.PRIOR_AUTH_MISSING, f"family {line.family}")
    if agreement is None or agreement.provider_id != facts.provider_id:
        return reject(Reason.PRIOR_AUTH_NOT_FOUND, f"agreement {facts.agreement_number}")
    if agreement.beneficiary_id != facts.beneficiary_id:
        return reject(Reason.PRIOR_AUTH_MISMATCH, f"agreement {agreement.number}")
    if agreement.status != PriorAuthStatus.GRANTED:
        return reject(Reason.PRIOR_AUTH_NOT_GRANTED, f"agreement {agreement.number}")
    if agreement.valid_until is not None and line.care_date > agreement.valid_until:
        return reject(Reason.PRIOR_AUTH_EXPIRED, f"valid until {agreement.valid_until.isoformat()}")
    if agreement.used_by_other_claim:
        return reject(Reason.PRIOR_AUTH_USED, f"agreement {agreement.number}")
    return None


def _judge_priced(
    facts: ClaimFacts,
    eligible: Sequence[int],
    reference: ReferenceTable,
    decisions: dict[int, LineDecision],
    consumption: list[CounterUse],
) -> None:
    """Rule 7: price the eligible lines, one engine call per care date."""
    contract = facts.contract
    coverage = facts.coverage
    assert contract is not None
    assert coverage is not None
    assert facts.age is not None
    pricing = PricingFacts(
        contract,
        coverage,
        facts.age,
        facts.css,
        facts.optam,
        facts.conventions,
        facts.history,
        facts.reserved,
    )
    history = list(facts.history)
    pa_left = dict(facts.agreement.guaranteed_by_family) if facts.agreement else {}
    by_date = sorted(eligible, key=lambda i: (facts.lines[i].care_date, i))
    for care_date, group in groupby(by_date, key=lambda i: facts.lines[i].care_date):
        indexes = list(group)
        lines = tuple(facts.lines[i].pricing_line() for i in indexes)
        request = pricing_request(
            pricing, care_date, lines, maternity=facts.maternity, history=history
        )
        try:
            result = price_with_rules(contract, request, reference.on(care_date))
        except PricingError as exc:
            reason = _ENGINE_REASONS.get(exc.code, Reason.AMOUNTS_INCONSISTENT)
            for i in indexes:
                decisions[i] = reject(reason, exc.message)
            continue
        accepted_total = 0
        for i, priced in zip(indexes, result.lines, strict=True):
            line = facts.lines[i]
            decision = _decide(line, priced.amc_cents, priced.rules, pa_left)
            decisions[i] = decision
            accepted_total += decision.accepted_cents
        if accepted_total > 0:
            uses = _consumed(result.counter_consumption, result.renewals, care_date, accepted_total)
            consumption.extend(uses)
            history.extend(uses)


def _decide(
    line: ClaimLine, engine_amc: int, notes: tuple[str, ...], pa_left: dict[str, int]
) -> LineDecision:
    computed = max(0, min(engine_amc, line.billed_cents - line.amo_paid_cents))
    rules = list(notes)
    capped_by_agreement = False
    if line.family in PRIOR_AUTH_FAMILIES:
        left = pa_left.get(line.family, 0)
        if computed > left:
            computed = left
            capped_by_agreement = True
            rules.append(f"limited to the agreement's guaranteed amount: {left} cents left")
        pa_left[line.family] = left - min(computed, line.amc_requested_cents)
    requested = line.amc_requested_cents
    if requested <= computed:
        if requested < computed:
            rules.append(f"AMC asked {requested} cents, below the {computed} cents covered")
        return LineDecision(LineStatus.ACCEPTED, requested, computed, None, tuple(rules))
    reason = _shortfall_reason(notes, capped_by_agreement)
    status = LineStatus.REDUCED if computed > 0 else LineStatus.REJECTED
    return LineDecision(status, computed, computed, reason, (REASONS[reason], *rules))


def _shortfall_reason(notes: Sequence[str], capped_by_agreement: bool) -> Reason:
    """Why the contract pays less than asked, read from the engine's explanations."""
    if capped_by_agreement:
        return Reason.PRIOR_AUTH_EXCEEDED
    for note in notes:
        if note.startswith("waiting period"):
            return Reason.WAITING_PERIOD
        if note.startswith("renewal:"):
            return Reason.RENEWAL_PERIOD
        if note.startswith("no guarantee"):
            return Reason.GUARANTEE_NONE
        if note.startswith("capped by") and "ceiling" in note and "contrat responsable" not in note:
            return Reason.CEILING_REACHED
    return Reason.ABOVE_GUARANTEE


def _consumed(
    consumption: Mapping[str, tuple[int, int]],
    renewals: Mapping[str, date],
    care_date: date,
    accepted_total: int,
) -> list[CounterUse]:
    """The contract counters an accepted group uses: never more than what was accepted."""
    uses = [
        CounterUse(key, care_date, min(cents, accepted_total), units)
        for key, (cents, units) in sorted(consumption.items())
        if key not in AMO_COUNTERS and not key.startswith("amo.")
    ]
    uses += [CounterUse(RENEWAL_PREFIX + key, day, 0, 1) for key, day in sorted(renewals.items())]
    return uses
