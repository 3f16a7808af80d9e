"""Rules of a bank details change: the cooling-off period in business days, and the
postings of a returned transfer and of its payment again (balanced, mirrored)."""

from __future__ import annotations

from datetime import date, timedelta

from hypothesis import given
from hypothesis import strategies as st

from tierspayant.domain import accounting
from tierspayant.domain.bank_details import first_payment_day, iban_tail
from tierspayant.domain.banking_calendar import is_business_day
from tierspayant.domain.ledger import BANK


def test_worked_examples_of_the_cooling_off_period() -> None:
    # Verified on a Monday: 3 business days → Thursday
    assert first_payment_day(date(2026, 11, 16), 3) == date(2026, 11, 19)
    # Verified on a Friday: Mon, Tue, Wed → Wednesday
    assert first_payment_day(date(2026, 12, 4), 3) == date(2026, 12, 9)
    # Verified on a Saturday: Mon, Tue, Wed
    assert first_payment_day(date(2026, 12, 5), 3) == date(2026, 12, 9)
    # TARGET2 holidays are skipped: verified on 23 December 2026, 3 business days → the
    # 24th, the 28th, the 29th (the 25th and 26th closed)
    assert first_payment_day(date(2026, 12, 23), 3) == date(2026, 12, 29)
    # No cooling-off: the day itself
    assert first_payment_day(date(2026, 12, 5), 0) == date(2026, 12, 5)
    assert iban_tail("FR7630006000011234567890189") == "0189"


@given(st.dates(date(2020, 1, 1), date(2035, 1, 1)), st.integers(1, 30))
def test_the_first_payment_day_is_a_business_day_exactly_n_business_days_later(
    start: date, days: int
) -> None:
    end = first_payment_day(start, days)
    assert is_business_day(end)
    between = [start + timedelta(days=k) for k in range(1, (end - start).days + 1)]
    assert sum(1 for d in between if is_business_day(d)) == days


@given(st.integers(1, 10**11), st.integers(1, 10**6))
def test_a_return_and_its_payment_again_balance_and_cancel_out(cents: int, provider: int) -> None:
    back = accounting.transfer_return(
        f"TP20261110-{provider}", provider, cents, date(2026, 11, 13), "AC04"
    )
    again = accounting.transfer_reissue("pay:2026-11-19", provider, date(2026, 11, 19), cents)
    net: dict[str, int] = {}
    for posting in (back, again):
        assert posting.total_debit == posting.total_credit == cents
        for entry in posting.entries:
            net[entry.account] = net.get(entry.account, 0) + entry.debit - entry.credit
    # The bank got the money back, then paid it out: both accounts end where they began
    assert all(v == 0 for v in net.values())
    assert BANK in net
