"""The guard's daily figures: each structure's day, recorded for calibration and the console.

The guard counts, per structure and local day, the distinct people answered and the
distinct people invoiced (in its counter store, Redis or memory). Those sets expire a few
days later; the calibration of each structure's cap (``GuardDailyHistory``) and the
security console read the per-day totals from the ``guard_daily`` table instead. This use
case copies one day's totals into that table. It is idempotent (a day recorded twice holds
the second figures), so the nightly job and an operator may both run it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

from tierspayant.app.platform import Platform
from tierspayant.domain.codes import GuardCode
from tierspayant.security.guard import GuardUnavailable
from tierspayant.services.errors import Unavailable
from tierspayant.store.guard_figures import save_daily


def _guard_off() -> Unavailable:
    return Unavailable(GuardCode.DISABLED, "le garde-fou est désactivé : il ne compte rien")


@dataclass(frozen=True, slots=True)
class RecordedDay:
    """What one roll-up wrote."""

    day: date
    structures: int
    distinct_lookups: int


def last_complete_day(platform: Platform) -> date:
    """Yesterday in the guard's time zone (the last day whose counts can no longer grow)."""
    guard = platform.guard
    if guard is None:
        raise _guard_off()
    return guard.day_of(platform.now()) - timedelta(days=1)


def record_daily_figures(platform: Platform, day: date) -> RecordedDay:
    """Copy the guard's counts of ``day`` for every structure active that day into
    ``guard_daily``. Raises :class:`Unavailable` when the guard is off or its store is down."""
    guard = platform.guard
    if guard is None:
        raise _guard_off()
    try:
        figures = guard.day_summary(day)
        # Invoices lag: the day ``invoice_lag_days`` earlier is recorded again while its
        # sets are still held, so its count of people invoiced includes late invoices
        # (the calibration of the allowances without card proof reads it).
        late = guard.day_summary(day - timedelta(days=guard.policy.invoice_lag_days))
    except GuardUnavailable as exc:
        raise Unavailable(exc.code, "the guard's counter store cannot be read") from exc
    with platform.engine.begin() as conn:
        for one in (*late, *figures):
            save_daily(conn, one)
    return RecordedDay(day, len(figures), sum(f.distinct_lookups for f in figures))
