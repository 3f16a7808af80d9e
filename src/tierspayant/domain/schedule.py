"""Which scheduled jobs are due at a moment: the calendar of ``tierspayant serve``.

Read in Europe/Paris time, daylight saving included, on the TARGET2 calendar:

- the **payment run** of a business day is due from its cut-off (``payment_cutoff``,
  16:00 by default, the bank's same-day cut-off); it pays what adjudication accepted
  before the cut-off, executed that same day: an invoice received before the cut-off is
  paid the day it arrives, one received after it (or on a closed day) the next business
  day;
- the **billing** of a month is due on every business day of the following month, from
  its first business day (it runs on the first, and is caught up later in that month if
  every process was down that day);
- the **audit checkpoint** and the **guard's daily figures** are due each night from
  ``nightly_at`` (02:00 by default).

Each due job has a key (``payment:2026-12-07``, ``billing:2026-11``,
``checkpoint:2026-12-07``, ``guard_figures:2026-12-07``): the scheduler runs a key once,
whichever process and however often it looks. No payment run is due on a weekend or a
TARGET2 holiday, and no billing either.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from enum import StrEnum

from tierspayant.domain.banking_calendar import (
    PARIS,
    following_business_day,
    is_business_day,
    previous_business_day,
)


class JobKind(StrEnum):
    PAYMENT = "payment"
    BILLING = "billing"
    CHECKPOINT = "checkpoint"
    GUARD_FIGURES = "guard_figures"
    SUBJECT_INDEX = "subject_index"  # incident scoping's index of pseudonyms, caught up


@dataclass(frozen=True, slots=True)
class DueJob:
    key: str
    kind: JobKind
    day: date  # the Paris day the job belongs to
    execution_date: date | None = None  # payment runs: the transfers' execution date
    period: str | None = None  # billing: YYYY-MM


@dataclass(frozen=True, slots=True)
class Timetable:
    payment_cutoff: time = time(16, 0)
    nightly_at: time = time(2, 0)


def _previous_period(day: date) -> str:
    last = day.replace(day=1) - timedelta(days=1)
    return f"{last.year:04d}-{last.month:02d}"


def due_jobs(moment: datetime, timetable: Timetable) -> list[DueJob]:
    """The jobs due at ``moment`` (aware), in the order they must run: billing of the
    month before, the nightly jobs, then the payment run of the day."""
    if moment.tzinfo is None:
        raise ValueError("moment must be timezone-aware")
    local = moment.astimezone(PARIS)
    today, now = local.date(), local.time()
    due: list[DueJob] = []
    business = is_business_day(today)
    if business and today >= following_business_day(today.replace(day=1)):
        period = _previous_period(today)
        due.append(DueJob(f"billing:{period}", JobKind.BILLING, today, period=period))
    if now >= timetable.nightly_at:
        for kind in (JobKind.CHECKPOINT, JobKind.GUARD_FIGURES, JobKind.SUBJECT_INDEX):
            due.append(DueJob(f"{kind.value}:{today.isoformat()}", kind, today))
    if business and now >= timetable.payment_cutoff:
        due.append(
            DueJob(
                f"payment:{today.isoformat()}",
                JobKind.PAYMENT,
                today,
                execution_date=today,
            )
        )
    return due


def payment_cutoff_at(day: date, timetable: Timetable) -> datetime:
    """The moment (aware, Paris time) from which the payment run of ``day`` is due."""
    return datetime.combine(day, timetable.payment_cutoff, tzinfo=PARIS)


def latest_due_payment_day(moment: datetime, timetable: Timetable) -> date:
    """The newest business day whose payment run is due at ``moment`` (aware): today
    from its cut-off, else the business day before."""
    if moment.tzinfo is None:
        raise ValueError("moment must be timezone-aware")
    local = moment.astimezone(PARIS)
    today = local.date()
    if is_business_day(today) and local.time() >= timetable.payment_cutoff:
        return today
    return previous_business_day(today)
