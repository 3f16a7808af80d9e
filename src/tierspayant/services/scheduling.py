"""The scheduler's leases and record (``jobs/scheduler.py`` runs the jobs themselves).

:func:`claim_job` gives a job key (``payment:2026-12-07``) to exactly one process: the
first to insert its row, or the first to take over a lease whose holder stopped renewing
it (a job renews nothing: the lease lasts :data:`JOB_LEASE`, longer than any run). A job
recorded done is never claimed again, whichever process asks, so two ``serve`` processes
run each dated job once. The money runs inside a job keep their own leases as well.
"""

from __future__ import annotations

from datetime import timedelta

from tierspayant.app.platform import Platform
from tierspayant.services.run_leases import lease_owner
from tierspayant.store import audit
from tierspayant.store import scheduled_jobs as store
from tierspayant.store.scheduled_jobs import ScheduledJob

JOB_LEASE = timedelta(hours=2)
ACTOR = "job:scheduler"


def new_owner() -> str:
    """A lease owner for one scheduler (host, process, a random part)."""
    return lease_owner()


def claim_job(platform: Platform, job_key: str, job: str, owner: str) -> bool:
    """Whether this scheduler got the job to run now (False: done, or held elsewhere)."""
    with platform.engine.begin() as conn:
        return store.claim(conn, job_key, job, owner, platform.now(), JOB_LEASE)


def finish_job(platform: Platform, job_key: str, owner: str, *, done: bool, outcome: str) -> None:
    """Record the job done (audited as ``scheduler.job``), or release it for a retry."""
    with platform.engine.begin() as conn:
        store.finish(conn, job_key, owner, platform.now(), done=done, outcome=outcome)
        if done:
            audit.append(
                conn,
                at=platform.now(),
                actor=ACTOR,
                action="scheduler.job",
                decision="allow",
                detail={"job": job_key, "outcome": outcome[:200]},
            )


def done_jobs(platform: Platform) -> list[ScheduledJob]:
    with platform.engine.connect() as conn:
        return store.done_jobs(conn)
