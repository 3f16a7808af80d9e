"""The engine: each line through the steps, the patient's remainder, the invoice's totals.

Per line: the checks (:mod:`.checks`), the AMO share and its deductions (:mod:`.amo`), the
contract's share (:mod:`.amc`); then, here, the deductions the contract covers, the rule
that the AMC never pays more than the cost the AMO left, and the patient's remainder.
"""

from __future__ import annotations

from datetime import date

from tierspayant.domain.guarantees import Contract
from tierspayant.domain.pricing.amc import ContractShares
from tierspayant.domain.pricing.amo import AmoDeductions, amo_share
from tierspayant.domain.pricing.checks import check_request, line_family
from tierspayant.domain.pricing.model import LineResult, PricingRequest, PricingResult
from tierspayant.domain.reference import ReferenceRules, ReferenceTable


def price(contract: Contract, request: PricingRequest, reference: ReferenceTable) -> PricingResult:
    """Price every line of ``request`` under ``contract`` with the rules in force that day."""
    return price_with_rules(contract, request, reference.on(request.care_date))


def price_with_rules(
    contract: Contract,
    request: PricingRequest,
    rules: ReferenceRules,
    *,
    legal_caps: bool = True,
) -> PricingResult:
    """:func:`price` with the reference snapshot already chosen.

    ``legal_caps=False`` leaves out the contrat responsable caps of optics and hearing aids,
    to measure what a contract alone would pay (used by the catalogue checks).
    """
    check_request(request)
    age = request.age
    deductions = AmoDeductions(contract, request, rules)
    shares = ContractShares(contract, request, rules, legal_caps)
    # A contrat responsable never pays the deductions, whatever its flags say.
    covers_part = contract.covers_participation and not contract.responsable
    covers_fr = contract.covers_franchises and not contract.responsable
    total_billed = total_br = total_base = total_paid = total_tm = total_dep = total_amc = 0

    results: list[LineResult] = []
    for index, line in enumerate(request.lines):
        fam = line_family(line, index, contract, rules)
        billed = line.billed_cents
        br = line.br_cents
        notes: list[str] = []

        # 1. AMO: rate, base, deductions.
        rate, ordinary, amo_base, hors_parcours = amo_share(line, index, fam, rules, age, notes)
        if fam.participation or fam.franchise is not None:
            participation, franchise = deductions.deduct(line, fam, amo_base, notes)
        else:
            participation = franchise = 0
        amo_paid = amo_base - participation - franchise

        # 2. AMC: the guarantee, its conditions, its formula, its ceilings, the legal caps.
        amc = shares.of_line(line, fam, amo_base, ordinary, hors_parcours, notes)
        if covers_part:
            amc += participation
        if covers_fr:
            amc += franchise
        # Never more than the cost: what the AMO did not pay.
        amc = max(0, min(amc, billed - amo_paid))

        # 3. Patient, and the totals.
        tm = br - amo_base
        depassement = billed - br
        total_billed += billed
        total_br += br
        total_base += amo_base
        total_paid += amo_paid
        total_tm += tm
        total_dep += depassement
        total_amc += amc
        results.append(
            LineResult(
                line.act_code,
                line.domain,
                line.family,
                line.quantity,
                billed,
                br,
                rate,
                amo_base,
                participation,
                franchise,
                amo_paid,
                tm,
                depassement,
                amc,
                billed - amo_paid - amc,
                tuple(notes),
            )
        )

    consumption: dict[str, tuple[int, int]] = {
        key: (amount, count) for key, (amount, count) in shares.used.items() if amount or count
    }
    consumption.update(deductions.consumption())
    renewals: dict[str, date] = shares.renewals
    return PricingResult(
        contract.code,
        request.care_date,
        tuple(results),
        total_billed,
        total_br,
        total_base,
        deductions.part_total,
        deductions.fr_total,
        total_paid,
        total_tm,
        total_dep,
        total_amc,
        total_billed - total_paid - total_amc,
        consumption,
        renewals,
    )
