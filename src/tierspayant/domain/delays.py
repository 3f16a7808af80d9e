"""Payment delays in TARGET2 business days, and their summary (median, 95th percentile).

The delay of an invoice is the number of business days after the Paris day it was
received up to the execution date of its transfer: received on Monday, executed on
Tuesday is 1; received on Friday evening, executed on Monday is 1; received and executed
the same day is 0. The goal of the scheduled runs is 1 for every accepted invoice.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
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
    return sorted_values[_rank(len(sorted_values), share)]


def _rank(count: int, share: float) -> int:
    """The 0-based index of the nearest-rank percentile among ``count`` ordered values."""
    if count < 1:
        raise ValueError("no values")
    if not 0 < share <= 1:
        raise ValueError("share must be in (0, 1]")
    return max(0, math.ceil(share * count) - 1)


@dataclass(frozen=True, slots=True)
class DelaySummary:
    invoices: int
    median: int
    p95: int
    worst: int
    next_day_share_bp: int  # basis points of invoices paid within 1 business day

    @classmethod
    def of(cls, delays: Sequence[int]) -> DelaySummary:
        """The summary of a non-empty list of delays (business days)."""
        ordered = sorted(delays)
        within = sum(1 for d in ordered if d <= 1)
        return cls(
            invoices=len(ordered),
            median=nearest_rank(ordered, 0.5),
            p95=nearest_rank(ordered, 0.95),
            worst=ordered[-1],
            next_day_share_bp=within * 10_000 // len(ordered),
        )

    @classmethod
    def of_counts(cls, counts: Mapping[int, int]) -> DelaySummary:
        """The summary of delays given as how many invoices took each delay (business
        days → invoices), the same as :meth:`of` the list they count: a national scope
        is millions of invoices but a few dozen distinct delays. Zero counts are skipped;
        a negative count, or none above zero, is refused."""
        if any(n < 0 for n in counts.values()):
            raise ValueError("counts must not be negative")
        ordered = sorted((delay, n) for delay, n in counts.items() if n > 0)
        invoices = sum(n for _, n in ordered)
        within = sum(n for delay, n in ordered if delay <= 1)
        return cls(
            invoices=invoices,
            median=_counted_at(ordered, _rank(invoices, 0.5)),
            p95=_counted_at(ordered, _rank(invoices, 0.95)),
            worst=ordered[-1][0],
            next_day_share_bp=within * 10_000 // invoices,
        )


def _counted_at(ordered: Sequence[tuple[int, int]], index: int) -> int:
    """The value at 0-based ``index`` of the ascending list that (value, count) pairs,
    in ascending value order, stand for."""
    seen = 0
    for value, count in ordered:
        seen += count
        if index < seen:
            return value
    raise ValueError("index beyond the counted values")
