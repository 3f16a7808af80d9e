"""Payment delays in TARGET2 business days, and their summary (median, 95th percentile).

The delay of an invoice is the number of business days after the Paris day it was
received up to the execution date of its transfer: received on Monday, executed on
Tuesday is 1; received on Friday evening, executed on Monday is 1; received and executed
the same day is 0. The goal of the scheduled runs is 1 for every accepted invoice.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta

from tierspayant.domain.banking_calendar import is_business_day


def business_days_between(received: date, executed: date) -> int:
    """Business days in (``received``, ``executed``]; never negative (0 if not after)."""
    count = 0
    day = received + timedelta(days=1)
    while day <= executed:
        if is_business_day(day):
            count += 1
        day += timedelta(days=1)
    return count


def nearest_rank(sorted_values: Sequence[int], share: float) -> int:
    """The nearest-rank percentile of a non-empty ascending sequence (0 < share ≤ 1)."""
    if not sorted_values:
        raise ValueError("no values")
    if not 0 < share <= 1:
        raise ValueError("share must be in (0, 1]")
    return sorted_values[max(0, math.ceil(share * len(sorted_values)) - 1)]


@dataclass(frozen=True, slots=True)
class DelaySummary:
    invoices: int
    median: int
    p95: int
    worst: int
    next_day_share_bp: int  # basis points of invoices paid within 1 business day

    @classmethod
    def of(cls, delays: Sequence[int]) -> DelaySummary:
        ordered = sorted(delays)
        within = sum(1 for d in ordered if d <= 1)
        return cls(
            invoices=len(ordered),
            median=nearest_rank(ordered, 0.5),
            p95=nearest_rank(ordered, 0.95),
            worst=ordered[-1],
            next_day_share_bp=within * 10_000 // len(ordered),
        )
