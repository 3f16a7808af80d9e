"""Which jobs are due when (Paris time, TARGET2 calendar), and the delay arithmetic."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tierspayant.domain.delays import DelaySummary, business_days_between, nearest_rank
from tierspayant.domain.schedule import JobKind, Timetable, due_jobs

TIMES = Timetable()


def _keys(moment: datetime, timetable: Timetable = TIMES) -> list[str]:
    return [job.key for job in due_jobs(moment, timetable)]


def test_the_payment_run_is_due_from_the_paris_cutoff_on_business_days() -> None:
    # Monday 7 December 2026, winter: 16:00 in Paris is 15:00 UTC.
    assert "payment:2026-12-07" not in _keys(datetime(2026, 12, 7, 14, 59, tzinfo=UTC))
    due = due_jobs(datetime(2026, 12, 7, 15, 0, tzinfo=UTC), TIMES)
    payment = [j for j in due if j.kind is JobKind.PAYMENT]
    assert [(j.key, j.execution_date) for j in payment] == [
        ("payment:2026-12-07", date(2026, 12, 7))
    ]


def test_summer_time_moves_the_cutoff_in_utc() -> None:
    # Monday 6 July 2026: 16:00 in Paris is 14:00 UTC.
    assert "payment:2026-07-06" in _keys(datetime(2026, 7, 6, 14, 0, tzinfo=UTC))
    assert "payment:2026-07-06" not in _keys(datetime(2026, 7, 6, 13, 59, tzinfo=UTC))


@pytest.mark.parametrize(
    "day",
    [date(2026, 12, 25), date(2026, 12, 26), date(2026, 12, 27), date(2027, 1, 1),
     date(2026, 4, 3), date(2026, 4, 6), date(2026, 5, 1)],
)  # fmt: skip
def test_no_payment_run_nor_billing_on_holidays_and_weekends(day: date) -> None:
    evening = datetime.combine(day, time(20, 0), tzinfo=UTC)
    kinds = {job.kind for job in due_jobs(evening, TIMES)}
    assert kinds == {JobKind.CHECKPOINT, JobKind.GUARD_FIGURES, JobKind.SUBJECT_INDEX}


def test_billing_waits_for_the_first_business_day_of_the_next_month() -> None:
    # January 2027: Friday 1st is a holiday, 2nd and 3rd a weekend; billing on Monday 4th.
    assert not any(k.startswith("billing") for k in _keys(datetime(2027, 1, 1, 12, tzinfo=UTC)))
    assert "billing:2026-12" in _keys(datetime(2027, 1, 4, 0, 30, tzinfo=UTC))
    assert "billing:2026-12" in _keys(datetime(2027, 1, 20, 9, tzinfo=UTC))  # caught up
    # 31 March 2026 at 23:30 UTC is already 1 April in Paris: March's billing is due.
    assert "billing:2026-03" in _keys(datetime(2026, 3, 31, 23, 30, tzinfo=UTC))


def test_the_nightly_jobs_are_due_from_their_paris_time() -> None:
    timetable = Timetable(payment_cutoff=time(16, 0), nightly_at=time(3, 30))
    assert _keys(datetime(2026, 12, 6, 2, 29, tzinfo=UTC), timetable) == []  # Sunday 03:29
    assert _keys(datetime(2026, 12, 6, 2, 30, tzinfo=UTC), timetable) == [
        "checkpoint:2026-12-06",
        "guard_figures:2026-12-06",
        "subject_index:2026-12-06",
    ]


def test_a_naive_moment_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        due_jobs(datetime(2026, 12, 7, 15), TIMES)


@given(
    st.datetimes(
        min_value=datetime(2024, 1, 1), max_value=datetime(2030, 12, 31), timezones=st.just(UTC)
    )
)
def test_job_keys_are_unique_and_payments_only_on_business_days(moment: datetime) -> None:
    due = due_jobs(moment, TIMES)
    assert len({j.key for j in due}) == len(due)
    for job in due:
        if job.kind in (JobKind.PAYMENT, JobKind.BILLING):
            assert job.day.weekday() < 5


def test_business_days_between_counts_after_the_day_received() -> None:
    assert business_days_between(date(2026, 12, 7), date(2026, 12, 7)) == 0
    assert business_days_between(date(2026, 12, 7), date(2026, 12, 8)) == 1
    assert business_days_between(date(2026, 12, 24), date(2026, 12, 28)) == 1  # over Christmas
    assert business_days_between(date(2026, 12, 31), date(2027, 1, 4)) == 1  # over New Year
    assert business_days_between(date(2026, 12, 8), date(2026, 12, 7)) == 0


@given(st.dates(date(2024, 1, 1), date(2030, 12, 31)), st.integers(0, 40), st.integers(0, 40))
def test_business_days_add_up(start: date, a: int, b: int) -> None:
    middle = start + timedelta(days=a)
    end = middle + timedelta(days=b)
    assert business_days_between(start, end) == business_days_between(
        start, middle
    ) + business_days_between(middle, end)
    assert business_days_between(start, end) <= (end - start).days


def test_the_summary_uses_nearest_rank_percentiles() -> None:
    delays = [0] * 10 + [1] * 9 + [3]
    summary = DelaySummary.of(delays)
    assert (summary.invoices, summary.median, summary.p95, summary.worst) == (20, 0, 1, 3)
    assert summary.next_day_share_bp == 9500
    assert nearest_rank([5], 0.95) == 5
    with pytest.raises(ValueError, match="no values"):
        nearest_rank([], 0.5)
