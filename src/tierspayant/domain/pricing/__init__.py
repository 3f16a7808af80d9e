"""The calculation engine (CLC): AMO, AMC and patient shares of each line of an invoice.

For each line, in integer cents, rounding half up at the line level, in these steps:

1. AMO (:mod:`.amo`): AMO base = AMO rate × BR (rate of the act family on the care date;
   100 % under an exemption; the hors parcours rate outside the care pathway), minus the
   participation forfaitaire and the franchises the AMO deducts (annual and daily caps
   taken from the counters) = AMO paid. Ticket modérateur = BR − AMO base; dépassement =
   billed − BR.
2. AMC (:mod:`.amc`): the contract's guarantee for (domain, family, age), if its waiting
   period and equipment renewal allow it; a class A (100 % Santé) line is paid up to its
   price; otherwise the guarantee's formula (:mod:`.formula`: a percentage of BR including
   the AMO share, a flat amount, actual costs), then the contrat responsable caps of
   optics and hearing aids (:mod:`.caps`), then the guarantee's ceilings and counters
   (:mod:`.ceilings`).
3. Patient (:mod:`.engine`) = billed − AMO paid − AMC. Always: AMC ≥ 0 and AMC ≤ billed −
   AMO paid.

The engine reads its inputs and never changes them: ``counter_consumption`` says what the
invoice would consume, for the caller to record once the invoice is accepted. Checks of
the lines alone (before anyone is looked up) are in :mod:`.checks`; the catalogue checks'
measure of what a contract pays for an equipment is in :mod:`.cover`.
"""

from __future__ import annotations

from tierspayant.domain.pricing.checks import check_lines
from tierspayant.domain.pricing.cover import max_equipment_cover
from tierspayant.domain.pricing.engine import price, price_with_rules
from tierspayant.domain.pricing.model import (
    AMO_COUNTERS,
    COUNTER_FRANCHISE_DAY,
    COUNTER_FRANCHISE_YEAR,
    COUNTER_PARTICIPATION_DAY,
    COUNTER_PARTICIPATION_YEAR,
    FULL_RATE,
    LineResult,
    PricingLine,
    PricingRequest,
    PricingResult,
    RssClass,
)

__all__ = [
    "AMO_COUNTERS",
    "COUNTER_FRANCHISE_DAY",
    "COUNTER_FRANCHISE_YEAR",
    "COUNTER_PARTICIPATION_DAY",
    "COUNTER_PARTICIPATION_YEAR",
    "FULL_RATE",
    "LineResult",
    "PricingLine",
    "PricingRequest",
    "PricingResult",
    "RssClass",
    "check_lines",
    "max_equipment_cover",
    "price",
    "price_with_rules",
]
