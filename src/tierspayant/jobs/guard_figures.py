"""Nightly roll-up of the guard's daily figures (``guard_daily``), run inside ``serve``.

A daemon thread wakes every ``interval`` seconds and records the last complete day (yesterday
in the guard's time zone) once per day, the first time it sees that day. The calibration of
each structure's cap reads those rows, so a missed night only narrows the history; the
roll-up is idempotent and ``tierspayant security daily-figures`` records any day by hand
while its counts are still held (a few days). A failure (counter store or database down) is
logged and retried at the next tick.
"""

from __future__ import annotations

import threading
from datetime import date

import structlog

from tierspayant.app.platform import Platform
from tierspayant.services.guard_figures import (
    RecordedDay,
    last_complete_day,
    record_daily_figures,
)
from tierspayant.services.run_failures import RUN_FAILURES

log = structlog.get_logger("tierspayant.jobs.guard_figures")


class GuardFiguresWorker:
    """Records yesterday's guard figures once a day, checking every ``interval`` seconds."""

    def __init__(self, platform: Platform, interval: float = 600.0) -> None:
        if interval <= 0:
            raise ValueError("the guard figures interval must be positive")
        self.platform = platform
        self.interval = interval
        self.recorded: date | None = None  # the last day this worker recorded
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def run_once(self) -> RecordedDay | None:
        """Record the last complete day unless this worker already did (None then, or on a
        failure, which is logged)."""
        if self.platform.guard is None:
            return None
        try:
            day = last_complete_day(self.platform)
            if day == self.recorded:
                return None
            done = record_daily_figures(self.platform, day)
        except RUN_FAILURES as exc:
            log.error("guard.daily_figures_failed", code=getattr(exc, "code", type(exc).__name__))
            return None
        self.recorded = done.day
        log.info(
            "guard.daily_figures_recorded", day=done.day.isoformat(), structures=done.structures
        )
        return done

    def start(self) -> None:
        """Start the background thread (idempotent); it records at once, then each tick."""
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="guard-figures", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Ask the thread to finish and wait for it."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _loop(self) -> None:
        self.run_once()
        while not self._stop.wait(self.interval):
            self.run_once()
