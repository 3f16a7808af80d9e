"""The scheduler of ``tierspayant serve``: adjudication continuously, the payment run
every TARGET2 business day at its cut-off, billing monthly, the audit checkpoint, the
guard's daily figures and the incident subject index nightly (the calendar:
:mod:`tierspayant.domain.schedule`).

One daemon thread ticks every ``tick_seconds``: it adjudicates what is pending (each batch
``FOR UPDATE SKIP LOCKED``, so several processes share the backlog), then runs each due
job whose key it can claim (:func:`~tierspayant.services.scheduling.claim_job`): two
``serve`` processes never run the same job twice, and a job that failed (database down,
payments still running at billing time) is given back and retried at the next tick.
:meth:`Scheduler.tick` does one round on the platform's clock, so tests step a simulated
clock through a month without sleeping.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path

import structlog

from tierspayant.app.platform import Platform
from tierspayant.domain.codes import BillingCode
from tierspayant.domain.schedule import DueJob, JobKind, Timetable, due_jobs
from tierspayant.services.adjudication import adjudicate_pending
from tierspayant.services.billing import run_billing
from tierspayant.services.checkpoints import write_checkpoint
from tierspayant.services.guard_figures import last_complete_day, record_daily_figures
from tierspayant.services.incident.subjects import index_subjects
from tierspayant.services.payments import run_payments
from tierspayant.services.run_failures import RUN_FAILURES
from tierspayant.services.scheduling import claim_job, finish_job, new_owner

# What a job may meet: a coded refusal, the database gone, the checkpoint directory full.
JOB_FAILURES: tuple[type[Exception], ...] = (*RUN_FAILURES, OSError)

log = structlog.get_logger("tierspayant.jobs.scheduler")


@dataclass
class TickResult:
    adjudicated: int = 0  # claims judged this tick
    ran: list[str] = field(default_factory=list)  # job keys run to the end
    failed: list[str] = field(default_factory=list)  # job keys given back for a retry


class Scheduler:
    """Runs the platform's scheduled work; :meth:`tick` once, or :meth:`start` a thread."""

    def __init__(
        self,
        platform: Platform,
        *,
        checkpoint_dir: Path,
        timetable: Timetable | None = None,
        tick_seconds: float = 5.0,
    ) -> None:
        if tick_seconds <= 0:
            raise ValueError("the scheduler's tick must be positive")
        self.platform = platform
        self.checkpoint_dir = checkpoint_dir
        self.timetable = timetable or Timetable()
        self.tick_seconds = tick_seconds
        self.owner = new_owner()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def tick(self) -> TickResult:
        """Adjudicate what is pending, then run every due job nobody ran yet."""
        result = TickResult()
        try:
            result.adjudicated = adjudicate_pending(self.platform).claims
        except RUN_FAILURES as exc:
            log.error("scheduler.adjudication_failed", code=getattr(exc, "code", str(exc)))
        for job in due_jobs(self.platform.now(), self.timetable):
            if not claim_job(self.platform, job.key, job.kind.value, self.owner):
                continue
            try:
                outcome = self._run(job)
            except JOB_FAILURES as exc:
                code = str(getattr(exc, "code", type(exc).__name__))
                log.error("scheduler.job_failed", job=job.key, code=code, error=str(exc))
                finish_job(self.platform, job.key, self.owner, done=False, outcome=code)
                result.failed.append(job.key)
                continue
            finish_job(self.platform, job.key, self.owner, done=True, outcome=outcome)
            log.info("scheduler.job_done", job=job.key, outcome=outcome)
            result.ran.append(job.key)
        return result

    def _run(self, job: DueJob) -> str:
        platform = self.platform
        if job.kind is JobKind.PAYMENT:
            assert job.execution_date is not None
            paid = run_payments(platform, job.execution_date, actor="job:scheduler")
            return (
                f"paid {paid.new_payments} providers {paid.new_net_cents} cents "
                f"on {job.execution_date.isoformat()}"
            )
        if job.kind is JobKind.BILLING:
            assert job.period is not None
            try:
                billed = run_billing(platform, job.period, actor="job:scheduler")
            except RUN_FAILURES as exc:
                if getattr(exc, "code", None) == BillingCode.PERIOD_BILLED:
                    return "already billed"  # billed by hand: nothing left to do
                raise
            return f"billed {billed.insurers} insurers {billed.due_cents} cents"
        if job.kind is JobKind.CHECKPOINT:
            written = write_checkpoint(platform, self.checkpoint_dir)
            return "no new event" if written is None else f"up to {written.checkpoint.up_to_seq}"
        if job.kind is JobKind.SUBJECT_INDEX:
            # The ids issued since the last night (imports, enrolments): indexed here, so
            # that an incident's scope never pays for a large import first.
            indexed = index_subjects(platform)
            return f"{sum(indexed.values())} ids indexed for {len(indexed)} insurers"
        if platform.guard is None:
            return "guard off"
        recorded = record_daily_figures(platform, last_complete_day(platform))
        return f"{recorded.day.isoformat()}: {recorded.structures} structures"

    def start(self) -> None:
        """Start the background thread (idempotent)."""
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="scheduler", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 60.0) -> None:
        """Ask the thread to finish its tick and wait for it."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.tick()
            except JOB_FAILURES as exc:  # the lease table itself unreachable
                log.error("scheduler.tick_failed", error=str(exc))
            if self._stop.wait(self.tick_seconds):
                return
