"""The delay summary read from counts (business days → invoices), as the portals and the
report build it while the paid invoices stream in: the same figures as from the list."""

from __future__ import annotations

import math
from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tierspayant.domain.delays import DelaySummary


def test_the_summary_of_counts_reads_the_ranks_across_the_counts() -> None:
    # Given 20 invoices: 10 paid in 0 business days, 9 in 1, 1 in 3
    counts = Counter({3: 1, 0: 10, 1: 9})
    # When summarised from the counts
    summary = DelaySummary.of_counts(counts)
    # Then the median is the 10th value (ceil(0.5 × 20) = 10: the last 0), the 95th
    # percentile the 19th (ceil(0.95 × 20) = 19: the last 1), the worst 3, and
    # 19 of 20 within a business day = 9,500 basis points.
    assert summary == DelaySummary(invoices=20, median=0, p95=1, worst=3, next_day_share_bp=9500)
    # 21 invoices: the median is the 11th value (ceil(10.5)), the last of 11 zeros;
    # 19 invoices: the 10th (ceil(9.5)), the first 1 after 9 zeros.
    assert DelaySummary.of_counts(Counter({0: 11, 1: 9, 3: 1})).median == 0
    assert DelaySummary.of_counts(Counter({0: 9, 1: 9, 3: 1})).median == 1


def test_zero_counts_are_skipped_and_negative_or_no_counts_refused() -> None:
    assert DelaySummary.of_counts({7: 0, 2: 1}) == DelaySummary.of([2])
    with pytest.raises(ValueError, match="no values"):
        DelaySummary.of_counts(Counter())
    with pytest.raises(ValueError, match="no values"):
        DelaySummary.of_counts({4: 0})
    with pytest.raises(ValueError, match="negative"):
        DelaySummary.of_counts({1: 3, 2: -1})


@given(st.lists(st.integers(min_value=0, max_value=60), min_size=1, max_size=400))
def test_the_summary_of_counts_is_the_summary_of_the_list(delays: list[int]) -> None:
    assert DelaySummary.of_counts(Counter(delays)) == DelaySummary.of(delays)


@given(st.dictionaries(st.integers(0, 30), st.integers(1, 10**7), min_size=1, max_size=25))
def test_large_counts_give_nearest_rank_percentiles(counts: dict[int, int]) -> None:
    # National volumes (millions of invoices per delay), too many to expand into a list:
    # the percentile at share s is the delay where the ceil(s × n)-th invoice falls.
    summary = DelaySummary.of_counts(counts)
    invoices = sum(counts.values())
    assert summary.invoices == invoices
    assert summary.worst == max(counts)
    for share, value in ((0.5, summary.median), (0.95, summary.p95)):
        rank = math.ceil(share * invoices)
        shorter = sum(n for d, n in counts.items() if d < value)
        assert shorter < rank <= shorter + counts[value]
    within = sum(n for d, n in counts.items() if d <= 1)
    assert summary.next_day_share_bp == within * 10_000 // invoices
