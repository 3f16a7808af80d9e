"""Step 2, last: the guarantee's ceilings, amounts or counts per beneficiary and period.

A ceiling caps what the guarantee pays above the ticket modérateur (the whole share when
it ``includes_tm``); the counters say what earlier invoices consumed in the period, and
``used`` what the lines before this one did.
"""

from __future__ import annotations

from collections.abc import Mapping

from tierspayant.domain.guarantees import PERIOD_LABELS, Guarantee
from tierspayant.domain.pricing.explain import eur
from tierspayant.domain.pricing.model import ZERO


def apply_ceilings(
    guarantee: Guarantee,
    amc: int,
    tm_part: int,
    quantity: int,
    counters: Mapping[str, tuple[int, int]],
    used: dict[str, list[int]],
    notes: list[str],
) -> int:
    """Cap ``amc`` by the guarantee's ceilings and record what it consumes in ``used``."""
    ceilings = guarantee.ceilings
    units_allowed: list[int] = []
    bound: list[bool] = []
    for ceiling in ceilings:
        # Unless the ceiling includes it, the ticket modérateur is paid outside it.
        base = 0 if ceiling.includes_tm else min(amc, tm_part)
        cappable = amc - base
        before = counters.get(ceiling.counter, ZERO)
        now = used.get(ceiling.counter) or (0, 0)
        label = f"{PERIOD_LABELS[ceiling.period]} ceiling {ceiling.counter}"
        units = quantity
        binds = False
        if ceiling.count is not None:
            units = min(quantity, max(0, ceiling.count - before[1] - now[1]))
            if units < quantity:
                cappable = cappable * units // quantity
                binds = True
                notes.append(f"capped by {label} of {ceiling.count} per period ({units} left)")
        if ceiling.amount_cents is not None:
            left = max(0, ceiling.amount_cents - before[0] - now[0])
            if cappable > left:
                cappable = left
                binds = True
                notes.append(f"capped by {label} {eur(ceiling.amount_cents)} ({eur(left)} left)")
        units_allowed.append(units)
        bound.append(binds)
        amc = base + cappable
    # Consume what was finally paid under each ceiling (the tightest one bound them all).
    for ceiling, units, binds in zip(ceilings, units_allowed, bound, strict=True):
        consumed = amc - (0 if ceiling.includes_tm else min(amc, tm_part))
        slot = used.setdefault(ceiling.counter, [0, 0])
        slot[0] += consumed
        if consumed > 0:
            slot[1] += units
        if not binds and ceiling.amount_cents is not None:
            before = counters.get(ceiling.counter, ZERO)
            left = max(0, ceiling.amount_cents - before[0] - slot[0])
            notes.append(
                f"{PERIOD_LABELS[ceiling.period]} ceiling {ceiling.counter} "
                f"{eur(ceiling.amount_cents)}: {eur(consumed)} used, {eur(left)} left"
            )
    return amc
