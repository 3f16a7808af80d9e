"""Rules of eligibility that depend on dates alone."""

from __future__ import annotations

from datetime import date

import pytest

from tierspayant.domain.eligibility import age_on


@pytest.mark.parametrize(
    ("birth", "day", "age"),
    [
        # Given a birth on 15 May 1990, when the day is the eve of the 36th birthday, then 35.
        (date(1990, 5, 15), date(2026, 5, 14), 35),
        (date(1990, 5, 15), date(2026, 5, 15), 36),
        # A minor turns 18 on the birthday itself (the participation forfaitaire then applies).
        (date(2008, 3, 16), date(2026, 3, 15), 17),
        (date(2008, 3, 16), date(2026, 3, 16), 18),
        # Born on 29 February: in a common year, still 17 on 28 February, 18 on 1 March.
        (date(2008, 2, 29), date(2026, 2, 28), 17),
        (date(2008, 2, 29), date(2026, 3, 1), 18),
        # The day of birth: 0.
        (date(2026, 3, 16), date(2026, 3, 16), 0),
    ],
)
def test_age_in_whole_years_on_a_day(birth: date, day: date, age: int) -> None:
    assert age_on(birth, day) == age
