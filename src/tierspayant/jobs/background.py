"""The background work of a platform, as ``tierspayant serve`` and ``tierspayant work``
run it: a signed checkpoint of the audit log exported outside the database every few
minutes, and either the scheduler (``TIERSPAYANT_SCHEDULER=1``, the default: continuous
adjudication, the payment run of each TARGET2 business day at its cut-off, monthly
billing, the nightly checkpoint and guard figures) or, without it, adjudication and the
guard's daily figures only (the money runs are then left to systemd timers,
docs/operations.md).
"""

from __future__ import annotations

from typing import Protocol

from tierspayant.app.platform import Platform
from tierspayant.domain.schedule import Timetable
from tierspayant.jobs.adjudication import AdjudicationWorker
from tierspayant.jobs.checkpoints import CheckpointWorker
from tierspayant.jobs.guard_figures import GuardFiguresWorker
from tierspayant.jobs.scheduler import Scheduler


class Worker(Protocol):
    def start(self) -> None: ...

    def stop(self) -> None: ...


def background_workers(platform: Platform) -> tuple[Worker, ...]:
    """The workers of the platform's background work (not started)."""
    settings = platform.settings
    jobs = settings.jobs
    checkpoint_dir = jobs.checkpoint_dir(settings.data_dir)
    checkpoints = CheckpointWorker(platform, checkpoint_dir, jobs.checkpoint_interval_seconds)
    if jobs.scheduler:
        timetable = Timetable(payment_cutoff=jobs.payment_cutoff, nightly_at=jobs.nightly_at)
        scheduler = Scheduler(
            platform,
            checkpoint_dir=checkpoint_dir,
            timetable=timetable,
            tick_seconds=jobs.scheduler_tick_seconds,
        )
        return (scheduler, checkpoints)
    return (
        AdjudicationWorker(platform, jobs.adjudication_interval_seconds),
        checkpoints,
        GuardFiguresWorker(platform),
    )
