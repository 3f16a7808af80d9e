"""The TARGET2 calendar and the Paris day: known dates of 2026 and 2027, and invariants."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tierspayant.domain.banking_calendar import (
    add_business_days,
    collection_date,
    easter_sunday,
    following_business_day,
    is_business_day,
    paris_day,
    previous_business_day,
    target2_holidays,
)

days = st.dates(min_value=date(1990, 1, 1), max_value=date(2200, 12, 31))
counts = st.integers(min_value=1, max_value=60)


# --- known dates ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("year", "easter"),
    [
        # Published Gregorian Easter dates, including the extremes of the range
        (2024, date(2024, 3, 31)),
        (2025, date(2025, 4, 20)),
        (2026, date(2026, 4, 5)),
        (2027, date(2027, 3, 28)),
        (2028, date(2028, 4, 16)),
        (2038, date(2038, 4, 25)),  # the latest possible date
        (2285, date(2285, 3, 22)),  # the earliest possible date
        (2000, date(2000, 4, 23)),
        (1961, date(1961, 4, 2)),
    ],
)
def test_easter_is_computed(year: int, easter: date) -> None:
    assert easter_sunday(year) == easter


def test_the_closing_days_of_2026_and_2027() -> None:
    # Good Friday and Easter Monday around Easter Sunday 5 April 2026 and 28 March 2027
    assert target2_holidays(2026) == {
        date(2026, 1, 1),
        date(2026, 4, 3),  # Good Friday
        date(2026, 4, 6),  # Easter Monday
        date(2026, 5, 1),
        date(2026, 12, 25),
        date(2026, 12, 26),  # a Saturday this year
    }
    assert target2_holidays(2027) == {
        date(2027, 1, 1),
        date(2027, 3, 26),  # Good Friday
        date(2027, 3, 29),  # Easter Monday
        date(2027, 5, 1),  # a Saturday
        date(2027, 12, 25),
        date(2027, 12, 26),
    }


@pytest.mark.parametrize(
    ("day", "business"),
    [
        (date(2026, 12, 25), False),  # Christmas, a Friday (the issue's `pay --date`)
        (date(2026, 12, 6), False),  # a Sunday
        (date(2026, 12, 5), False),  # a Saturday
        (date(2026, 12, 24), True),  # Christmas Eve is open
        (date(2026, 12, 31), True),
        (date(2027, 1, 1), False),
        (date(2026, 4, 3), False),
        (date(2026, 4, 6), False),
        (date(2026, 4, 2), True),  # Maundy Thursday is open
        (date(2027, 3, 26), False),
        (date(2027, 3, 29), False),
        (date(2026, 5, 1), False),
        (date(2026, 5, 8), True),  # French holidays that TARGET2 does not close
        (date(2026, 5, 14), True),  # Ascension
        (date(2026, 7, 14), True),
        (date(2026, 8, 15), False),  # a Saturday anyway
        (date(2026, 11, 11), True),
        (date(2026, 11, 30), True),
    ],
)
def test_business_days(day: date, business: bool) -> None:
    assert is_business_day(day) is business


def test_adjusting_to_the_following_business_day() -> None:
    # Christmas 2026 is a Friday, 26 December a Saturday: the next day open is Monday 28
    assert following_business_day(date(2026, 12, 25)) == date(2026, 12, 28)
    # Good Friday 2026 → Tuesday 7 April (Easter Monday is closed too)
    assert following_business_day(date(2026, 4, 3)) == date(2026, 4, 7)
    # The fund call for 2026-12: 10 January 2027 is a Sunday → Monday 11
    assert following_business_day(date(2027, 1, 10)) == date(2027, 1, 11)
    assert following_business_day(date(2026, 11, 30)) == date(2026, 11, 30)


def test_counting_business_days() -> None:
    # From Thursday 24 December 2026: 25 (Fri, closed), 26-27 (weekend), 28, 29
    assert add_business_days(date(2026, 12, 24), 1) == date(2026, 12, 28)
    assert add_business_days(date(2026, 12, 24), 2) == date(2026, 12, 29)
    # From Thursday 25 March 2027: Good Friday, weekend, Easter Monday closed → Tuesday 30
    assert add_business_days(date(2027, 3, 25), 1) == date(2027, 3, 30)
    # From a Sunday, the first business day is the Monday
    assert add_business_days(date(2026, 12, 6), 1) == date(2026, 12, 7)
    assert previous_business_day(date(2026, 12, 28)) == date(2026, 12, 24)
    assert previous_business_day(date(2027, 1, 4)) == date(2026, 12, 31)
    with pytest.raises(ValueError, match="at least 1"):
        add_business_days(date(2026, 12, 24), 0)


def test_the_fund_call_of_december_2026() -> None:
    # The case: period 2026-12, billed on Monday 4 January 2027 with 2 business
    # days of notice. Usual date 31 Dec + 10 = Sunday 10 January → Monday 11 January.
    assert collection_date(
        date(2026, 12, 31), delay_days=10, submitted_on=date(2027, 1, 4), notice_business_days=2
    ) == date(2027, 1, 11)
    # Billed late, on Friday 8 January: notice 2 business days → Tuesday 12 January (the
    # 2-day notice in calendar days said Sunday 10 January)
    assert collection_date(
        date(2026, 12, 31), delay_days=10, submitted_on=date(2027, 1, 8), notice_business_days=2
    ) == date(2027, 1, 12)
    # February 2027 billed late, on Thursday 25 March, with 1 day of notice: the file
    # reaches the bank on the 25th, so the earliest due date is Tuesday 30 (Good Friday
    # and Easter Monday are closed). March 2027, billed on 1 April: the usual date
    # (10 April, a Saturday) moves to Monday 12 April.
    assert collection_date(
        date(2027, 2, 28), delay_days=10, submitted_on=date(2027, 3, 25), notice_business_days=1
    ) == date(2027, 3, 30)
    assert collection_date(
        date(2027, 3, 31), delay_days=10, submitted_on=date(2027, 4, 1), notice_business_days=1
    ) == date(2027, 4, 12)


def test_d_minus_one_counts_from_the_day_the_bank_receives_the_file() -> None:
    # Submitted on Saturday 5 December: the bank has it on Monday 7, so the earliest due
    # date is Tuesday 8 (with a notice of one business day, Monday 7 would do otherwise)
    assert collection_date(
        date(2026, 11, 20), delay_days=0, submitted_on=date(2026, 12, 5), notice_business_days=1
    ) == date(2026, 12, 8)


# --- the Paris day, daylight saving included ---------------------------------------------


@pytest.mark.parametrize(
    ("moment", "day"),
    [
        # Winter (UTC+1): 22:59 UTC is 23:59 in Paris, 23:00 UTC is the next day
        (datetime(2026, 1, 31, 22, 59, tzinfo=UTC), date(2026, 1, 31)),
        (datetime(2026, 1, 31, 23, 0, tzinfo=UTC), date(2026, 2, 1)),
        # Summer (UTC+2) from Sunday 29 March 2026: 22:00 UTC on 31 March is 1 April
        (datetime(2026, 3, 31, 21, 59, tzinfo=UTC), date(2026, 3, 31)),
        (datetime(2026, 3, 31, 22, 0, tzinfo=UTC), date(2026, 4, 1)),
        # The night of the change itself: 00:59 UTC is 01:59 CET, 01:00 UTC is 03:00 CEST
        (datetime(2026, 3, 28, 22, 59, tzinfo=UTC), date(2026, 3, 28)),
        (datetime(2026, 3, 28, 23, 0, tzinfo=UTC), date(2026, 3, 29)),
        (datetime(2026, 3, 29, 1, 0, tzinfo=UTC), date(2026, 3, 29)),
        # Back to winter on Sunday 25 October 2026: Saturday 24, 22:00 UTC is midnight
        (datetime(2026, 10, 24, 21, 59, tzinfo=UTC), date(2026, 10, 24)),
        (datetime(2026, 10, 24, 22, 0, tzinfo=UTC), date(2026, 10, 25)),
        # … and on the 31st, an hour later than in summer: 23:00 UTC
        (datetime(2026, 10, 31, 22, 59, tzinfo=UTC), date(2026, 10, 31)),
        (datetime(2026, 10, 31, 23, 0, tzinfo=UTC), date(2026, 11, 1)),
        # Last Sunday of March 2027 is the 28th
        (datetime(2027, 3, 27, 23, 0, tzinfo=UTC), date(2027, 3, 28)),
        (datetime(2027, 3, 28, 21, 59, tzinfo=UTC), date(2027, 3, 28)),
        (datetime(2027, 3, 28, 22, 0, tzinfo=UTC), date(2027, 3, 29)),
    ],
)
def test_the_day_is_the_paris_day(moment: datetime, day: date) -> None:
    assert paris_day(moment) == day


def test_a_naive_moment_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        paris_day(datetime(2026, 12, 6, 12))


# --- invariants -------------------------------------------------------------------------


@given(days)
def test_a_business_day_is_a_weekday_outside_the_closing_days(day: date) -> None:
    assert is_business_day(day) == (day.weekday() < 5 and day not in target2_holidays(day.year))


@given(st.integers(min_value=1583, max_value=4099))
def test_easter_is_a_sunday_between_22_march_and_25_april(year: int) -> None:
    easter = easter_sunday(year)
    assert easter.weekday() == 6
    assert date(year, 3, 22) <= easter <= date(year, 4, 25)


@given(days)
def test_adjusting_gives_the_first_business_day_from_the_day(day: date) -> None:
    adjusted = following_business_day(day)
    assert is_business_day(adjusted)
    assert adjusted >= day
    # nothing open in between: the following day, not any later one
    assert all(not is_business_day(day + timedelta(n)) for n in range((adjusted - day).days))
    # idempotent
    assert following_business_day(adjusted) == adjusted
    # at most four closed days in a row (Good Friday to Easter Monday)
    assert (adjusted - day).days <= 4


@given(days, days)
def test_adjusting_is_monotone(a: date, b: date) -> None:
    first, second = sorted((a, b))
    assert following_business_day(first) <= following_business_day(second)


@given(days, counts)
def test_the_nth_business_day_after(day: date, n: int) -> None:
    later = add_business_days(day, n)
    assert later > day
    assert is_business_day(later)
    # exactly n business days in (day, later]
    span = [day + timedelta(k) for k in range(1, (later - day).days + 1)]
    assert sum(1 for d in span if is_business_day(d)) == n
    # one more is later still, and the previous business day of the n-th is the (n-1)-th
    assert add_business_days(day, n + 1) > later
    if n > 1:
        assert previous_business_day(later) == add_business_days(day, n - 1)


@given(days)
def test_the_previous_business_day(day: date) -> None:
    before = previous_business_day(day)
    assert before < day
    assert is_business_day(before)
    # nothing open strictly between them
    assert all(not is_business_day(before + timedelta(k)) for k in range(1, (day - before).days))


@given(
    days,
    st.integers(min_value=0, max_value=40),
    st.integers(min_value=-10, max_value=120),  # the run's day, from the period's end
    st.integers(min_value=0, max_value=20),
)
def test_a_collection_date_keeps_every_rule(
    period_end: date, delay: int, run_after: int, notice: int
) -> None:
    submitted = period_end + timedelta(days=run_after)
    due = collection_date(
        period_end, delay_days=delay, submitted_on=submitted, notice_business_days=notice
    )
    # a business day, no earlier than the usual date
    assert is_business_day(due)
    assert due >= period_end + timedelta(days=delay)
    # D-1: the bank has the file on a business day strictly before the due date
    assert following_business_day(submitted) <= previous_business_day(due)
    # the notice: at least that many business days from submission to due date
    if notice:
        span = [submitted + timedelta(k) for k in range(1, (due - submitted).days + 1)]
        assert sum(1 for d in span if is_business_day(d)) >= notice


@given(
    st.datetimes(
        min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
    )
)
def test_the_paris_day_is_the_utc_day_or_the_next(moment: datetime) -> None:
    # Paris is one or two hours ahead of UTC, never behind: before 22:00 UTC it is still
    # the UTC day there, from 23:00 UTC always the next one
    day = paris_day(moment)
    assert day in (moment.date(), moment.date() + timedelta(days=1))
    if moment.hour < 22:
        assert day == moment.date()
    if moment.hour == 23:
        assert day == moment.date() + timedelta(days=1)
