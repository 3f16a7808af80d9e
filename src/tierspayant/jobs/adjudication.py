"""Background adjudication (wired into ``serve`` by the lead).

A daemon thread judges the received claims batch after batch, then sleeps
``interval_seconds`` and looks again. Several workers, in one process or several, may run
side by side on PostgreSQL: each batch is claimed with ``FOR UPDATE SKIP LOCKED``. On
SQLite run one (it has one writer). A failing batch is rolled back whole, logged, and
retried at the next tick.
"""

from __future__ import annotations

import threading

import structlog

from tierspayant.app.platform import Platform
from tierspayant.services.adjudication import AdjudicationRun, adjudicate_pending
from tierspayant.services.run_failures import RUN_FAILURES

log = structlog.get_logger("tierspayant.jobs.adjudication")


class AdjudicationWorker:
    """Adjudicates pending claims every ``interval_seconds`` in a background thread."""

    def __init__(
        self, platform: Platform, interval_seconds: float = 10.0, *, batch_size: int = 500
    ) -> None:
        if interval_seconds <= 0:
            raise ValueError("the adjudication interval must be positive")
        self.platform = platform
        self.interval_seconds = interval_seconds
        self.batch_size = batch_size
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.runs = 0  # completed ticks, for tests and health checks

    def run_once(self) -> AdjudicationRun | None:
        """Judge everything pending now; None if the run failed (logged)."""
        try:
            run = adjudicate_pending(self.platform, batch_size=self.batch_size)
        except RUN_FAILURES as exc:
            code = getattr(exc, "code", type(exc).__name__)
            log.error("adjudication.failed", code=code, error=str(exc))
            return None
        finally:
            self.runs += 1
        if run.claims:
            log.info(
                "adjudication.done",
                claims=run.claims,
                lines=run.lines,
                accepted_cents=run.accepted_cents,
            )
        return run

    def start(self) -> None:
        """Start the background thread (idempotent)."""
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="adjudication", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Ask the thread to finish its batch and wait for it."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.run_once()
            if self._stop.wait(self.interval_seconds):
                return
