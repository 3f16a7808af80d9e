"""What a contract alone pays at most for an equipment: the measure the catalogue checks use.

The contrat responsable checks price an expensive equipment with the engine itself, so
that the check and the computation cannot disagree.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

from tierspayant.domain.errors import PricingError
from tierspayant.domain.guarantees import Contract
from tierspayant.domain.pricing.engine import price_with_rules
from tierspayant.domain.pricing.model import PricingLine, PricingRequest, RssClass
from tierspayant.domain.reference import ReferenceRules

NEVER_COVERED = 10**12  # the "huge" price used to find a contract's maximum cover


def max_equipment_cover(
    contract: Contract,
    rules: ReferenceRules,
    families: Sequence[str],
    age: int,
    include_amo: bool,
) -> int:
    """What ``contract`` alone pays at most for a class B equipment made of ``families``.

    Each item is priced at a huge price on the reference class B base, for a beneficiary of
    ``age`` with no history, without the contrat responsable caps. ``include_amo`` adds
    the AMO share (the hearing aid limit counts it).
    """
    lines = []
    for name in families:
        family = rules.families[name]
        domain = min(family.domains)
        if family.equipment == "hearing_aid":
            br = (
                rules.hearing_br_young_cents
                if age < rules.hearing_young_age
                else rules.hearing_br_adult_cents
            )
        else:
            br = rules.optics_class_b_br_cents
        lines.append(
            PricingLine(
                act_code=name,
                domain=domain,
                family=name,
                quantity=1,
                billed_cents=NEVER_COVERED,
                br_cents=br,
                rss_class=RssClass.B,
            )
        )
    request = PricingRequest(
        care_date=rules.valid_from,
        age=age,
        coverage_start=date(1900, 1, 1),
        lines=tuple(lines),
        optam=True,
    )
    try:
        result = price_with_rules(contract, request, rules, legal_caps=False)
    except PricingError:
        return 0  # a domain the contract lacks: nothing covered
    return result.amc_cents + (result.amo_paid_cents if include_amo else 0)
