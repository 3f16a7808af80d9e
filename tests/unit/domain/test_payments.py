"""Netting of undue amounts, recovery allocation, periods and identifiers of the runs."""

from __future__ import annotations

from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tierspayant.domain.errors import DomainError
from tierspayant.domain.payments import (
    DetailLine,
    allocate_recovery,
    billing_run_key,
    end_to_end_id,
    message_id,
    net_payment,
    parse_period,
    parse_remittance_id,
    payment_run_key,
    period_of,
    remittance_id,
)


@given(st.integers(0, 10**12), st.integers(-(10**6), 10**12))
def test_netting_never_pays_negative_nor_recovers_more_than_owed(gross: int, undue: int) -> None:
    netting = net_payment(gross, undue)
    assert netting.net_cents >= 0
    assert 0 <= netting.recovered_cents <= max(undue, 0)
    assert netting.net_cents + netting.recovered_cents == gross


def test_a_negative_gross_is_refused() -> None:
    with pytest.raises(DomainError):
        net_payment(-1, 0)


@given(
    st.lists(st.integers(1, 10**6), max_size=10),
    st.integers(0, 2 * 10**6),
)
def test_recovery_settles_oldest_items_first_and_exactly(opens: list[int], wanted: int) -> None:
    items = [((1, n, 1), cents) for n, cents in enumerate(opens)]
    recovered = min(wanted, sum(opens))
    taken = list(allocate_recovery(recovered, items))
    assert sum(c for _, c in taken) == recovered
    for (key, cents), (item_key, open_cents) in zip(taken, items, strict=False):
        assert key == item_key
        assert 0 < cents <= open_cents
    # every item but the last touched is settled in full
    for (_, cents), (_, open_cents) in zip(taken[:-1], items, strict=False):
        assert cents == open_cents


def test_periods() -> None:
    assert period_of(date(2026, 2, 14)) == "2026-02"
    assert parse_period("2024-02") == (date(2024, 2, 1), date(2024, 2, 29))
    for bad in ("2026-13", "2026-1", "26-01", ""):
        with pytest.raises(DomainError) as refused:
            parse_period(bad)
        assert refused.value.code == "billing.period"


def test_identifiers_come_from_the_run_key_and_fit_sepa_lengths() -> None:
    day = date(2026, 11, 30)
    assert payment_run_key(day) == "pay:2026-11-30"
    assert billing_run_key("2026-11") == "bill:2026-11"
    assert message_id(payment_run_key(day)) == "TP-PAY-2026-11-30"
    assert len(end_to_end_id(day, "9" * 40)) == 35
    assert remittance_id(day, 42) == "R20261130-42"
    assert parse_remittance_id("R20261130-42") == (day, 42)
    for bad in ("R20261331-1", "X20261130-1", "R2026113-1", "R20261130-"):
        assert parse_remittance_id(bad) is None


def test_the_remainder_of_a_detail_row() -> None:
    paid = DetailLine(
        "paid", 1, 1, "F1", "752234567", "pharmacy", 7, "PHAR", "PH7",
        date(2026, 11, 2), date(2026, 11, 30), billed_cents=1000, amo_cents=650, amc_cents=350,
    )  # fmt: skip
    assert paid.remainder_cents == 0
    undue = DetailLine(
        "undue", 1, 1, "F1", "752234567", "pharmacy", 7, "PHAR", "PH7",
        date(2026, 11, 2), date(2026, 12, 2), billed_cents=1000, amo_cents=650, amc_cents=-350,
    )  # fmt: skip
    assert undue.remainder_cents == 0
