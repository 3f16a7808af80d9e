"""The newest payment run due at a moment (the "payment run missed" alert compares it with
the newest finished run): today from its cut-off, else the business day before."""

from __future__ import annotations

from datetime import date, datetime, time

import pytest

from tierspayant.domain.banking_calendar import PARIS
from tierspayant.domain.schedule import Timetable, latest_due_payment_day, payment_cutoff_at

TIMETABLE = Timetable()


@pytest.mark.parametrize(
    ("moment", "due"),
    [
        (datetime(2027, 3, 2, 16, 0), date(2027, 3, 2)),  # a Tuesday at its cut-off
        (datetime(2027, 3, 2, 15, 59), date(2027, 3, 1)),  # before it: Monday's
        (datetime(2027, 3, 1, 9, 0), date(2027, 2, 26)),  # Monday morning: Friday's
        (datetime(2027, 3, 6, 18, 0), date(2027, 3, 5)),  # Saturday: Friday's
        # Easter 2027 is 28 March: Good Friday 26 and Easter Monday 29 are closed.
        (datetime(2027, 3, 29, 17, 0), date(2027, 3, 25)),
        (datetime(2027, 3, 30, 10, 0), date(2027, 3, 25)),
        (datetime(2027, 3, 30, 16, 30), date(2027, 3, 30)),
        # 25 and 26 December 2028 (Monday, Tuesday) and 1 January 2029 are closed.
        (datetime(2028, 12, 27, 8, 0), date(2028, 12, 22)),
        (datetime(2029, 1, 1, 23, 0), date(2028, 12, 29)),
    ],
)
def test_the_newest_due_payment_day(moment: datetime, due: date) -> None:
    assert latest_due_payment_day(moment.replace(tzinfo=PARIS), TIMETABLE) == due


def test_the_cut_off_follows_summer_time_and_the_setting() -> None:
    winter = payment_cutoff_at(date(2027, 1, 12), TIMETABLE)
    summer = payment_cutoff_at(date(2027, 7, 12), TIMETABLE)
    assert winter.utcoffset() != summer.utcoffset()
    assert winter.astimezone(PARIS).time() == summer.astimezone(PARIS).time() == time(16, 0)
    late = payment_cutoff_at(date(2027, 1, 12), Timetable(payment_cutoff=time(17, 30)))
    assert (late - winter).total_seconds() == 90 * 60


def test_a_naive_moment_is_refused() -> None:
    with pytest.raises(ValueError, match="aware"):
        latest_due_payment_day(datetime(2027, 3, 2, 16, 0), TIMETABLE)
