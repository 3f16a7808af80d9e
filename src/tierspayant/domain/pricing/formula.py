"""Step 2: what the guarantee's formula pays, before any cap or ceiling.

Actual costs (frais réels); or a percentage of the BR *including* the AMO share, at the
non-OPTAM level for doctors outside the OPTAM options when the guarantee has one, plus a
flat amount per unit; never more than the cost left after the AMO.
"""

from __future__ import annotations

from tierspayant.domain.guarantees import Guarantee
from tierspayant.domain.money import apply_rate
from tierspayant.domain.pricing.explain import eur, pct
from tierspayant.domain.pricing.model import FULL_RATE


def contract_formula(
    guarantee: Guarantee,
    doctor_fees: bool,
    optam: bool,
    billed: int,
    br: int,
    quantity: int,
    reference_amo: int,
    cost_left: int,
    notes: list[str],
) -> int:
    """What the guarantee's formula pays, before its ceilings, at most ``cost_left``."""
    if guarantee.actual_costs:
        notes.append(
            f"AMC actual costs: billed {eur(billed)} − AMO {eur(reference_amo)} = {eur(cost_left)}"
        )
        return cost_left
    amc = 0
    g_rate = guarantee.rate_bp
    if g_rate is not None:
        # Two levels only when the guarantee distinguishes OPTAM doctors.
        two_levels = doctor_fees and guarantee.rate_non_optam_bp is not None
        if two_levels and not optam:
            g_rate = guarantee.rate_non_optam_bp or 0
        ceiling_total = apply_rate(br, g_rate)
        amc = max(0, min(billed, ceiling_total) - reference_amo)
        level = (" (OPTAM)" if optam else " (non-OPTAM)") if two_levels else ""
        if g_rate == FULL_RATE:
            notes.append(f"AMC 100 % BR including AMO{level} → ticket modérateur {eur(amc)}")
        else:
            notes.append(
                f"AMC {pct(g_rate)} BR including AMO{level}: min(billed {eur(billed)}, "
                f"{eur(ceiling_total)}) − AMO {eur(reference_amo)} = {eur(amc)}"
            )
    flat = guarantee.flat_cents
    if flat:
        amc += flat * quantity
        if quantity == 1:
            notes.append(f"AMC flat amount {eur(flat)}")
        else:
            notes.append(f"AMC flat amount {eur(flat)} × {quantity} = {eur(flat * quantity)}")
    if amc > cost_left:
        amc = cost_left
        notes.append(f"limited to the cost left after the AMO: {eur(cost_left)}")
    return amc
