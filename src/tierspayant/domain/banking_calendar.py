"""The TARGET2 banking calendar and the Paris day: on which dates money files may be dated.

Execution dates of credit transfers and collection dates of direct debits are TARGET2
business days: every day but Saturdays, Sundays, 1 January, Good Friday, Easter Monday,
1 May, 25 and 26 December (shared/design/DOMAIN.md). Easter is computed (the Gregorian
computus), never listed, so the calendar has no end year.

"Today", the end of a month and every cut-off are read in Europe/Paris time, daylight
saving included: at 23:30 UTC on 31 March it is already 1 April in Paris.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

PARIS = ZoneInfo("Europe/Paris")
_SATURDAY = 5


def easter_sunday(year: int) -> date:
    """Easter Sunday of a Gregorian year (the anonymous Gregorian algorithm, Meeus/Butcher)."""
    a = year % 19
    b, c = divmod(year, 100)
    d, e = divmod(b, 4)
    f = (b + 8) // 25
    g = (b - f + 1) // 3
    h = (19 * a + b - d - g + 15) % 30
    i, k = divmod(c, 4)
    el = (32 + 2 * e + 2 * i - h - k) % 7
    m = (a + 11 * h + 22 * el) // 451
    month, day = divmod(h + el - 7 * m + 114, 31)
    return date(year, month, day + 1)


@lru_cache(maxsize=64)
def target2_holidays(year: int) -> frozenset[date]:
    """The TARGET2 closing days of ``year`` that fall on any weekday or weekend."""
    easter = easter_sunday(year)
    return frozenset(
        {
            date(year, 1, 1),
            easter - timedelta(days=2),  # Good Friday
            easter + timedelta(days=1),  # Easter Monday
            date(year, 5, 1),
            date(year, 12, 25),
            date(year, 12, 26),
        }
    )


def is_business_day(day: date) -> bool:
    """Whether TARGET2 settles on ``day`` (not a weekend, not one of its closing days)."""
    return day.weekday() < _SATURDAY and day not in target2_holidays(day.year)


def following_business_day(day: date) -> date:
    """``day`` itself if it is a business day, else the next one (the "following" rule)."""
    while not is_business_day(day):
        day += timedelta(days=1)
    return day


def add_business_days(day: date, n: int) -> date:
    """The ``n``-th business day after ``day`` (``n`` ≥ 1); ``day`` need not be one."""
    if n < 1:
        raise ValueError("n must be at least 1")
    for _ in range(n):
        day = following_business_day(day + timedelta(days=1))
    return day


def previous_business_day(day: date) -> date:
    """The last business day strictly before ``day`` (the D-1 of a due date)."""
    day -= timedelta(days=1)
    while not is_business_day(day):
        day -= timedelta(days=1)
    return day


def paris_day(moment: datetime) -> date:
    """The calendar day in Paris at ``moment`` (an aware datetime; naive means UTC)."""
    if moment.tzinfo is None:
        raise ValueError("moment must be timezone-aware")
    return moment.astimezone(PARIS).date()


def collection_date(
    period_end: date, *, delay_days: int, submitted_on: date, notice_business_days: int
) -> date:
    """The due date of a fund call for the month ending ``period_end``.

    The usual date (``delay_days`` after the month's end) moved to the following business
    day, but never earlier than the D-1 rule allows (the file reaches the bank on the
    first business day from ``submitted_on``, and the bank needs it one business day
    before the due date) nor than the debtor's notice (``notice_business_days``
    business days after the day the statement is issued, ``submitted_on``).
    """
    usual = following_business_day(period_end + timedelta(days=delay_days))
    d_minus_one = add_business_days(following_business_day(submitted_on), 1)
    if notice_business_days < 1:
        return max(usual, d_minus_one)
    return max(usual, d_minus_one, add_business_days(submitted_on, notice_business_days))
