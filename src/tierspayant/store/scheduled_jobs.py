"""Leases and records of the scheduler's jobs (table ``scheduled_jobs``).

A job key (``payment:2026-12-07``) is claimed by inserting its row, or by taking over a
``running`` row whose lease expired (its holder died); a ``done`` row is never claimed
again. The claim is one statement that either changes one row or none, so two processes
claiming at once cannot both win, on SQLite and on PostgreSQL.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection, select, update
from sqlalchemy.exc import IntegrityError

from tierspayant.store.operations_tables import scheduled_jobs


@dataclass(frozen=True, slots=True)
class ScheduledJob:
    job_key: str
    job: str
    status: str
    started_at: datetime
    finished_at: datetime | None
    outcome: str | None


def claim(
    conn: Connection, job_key: str, job: str, owner: str, now: datetime, ttl: timedelta
) -> bool:
    """Take the job's lease (True) unless it is done or a live holder has it (False)."""
    taken = conn.execute(
        update(scheduled_jobs)
        .where(
            scheduled_jobs.c.job_key == job_key,
            scheduled_jobs.c.status == "running",
            scheduled_jobs.c.lock_expires_at <= now,
        )
        .values(lock_owner=owner, lock_expires_at=now + ttl, started_at=now)
    )
    if taken.rowcount == 1:
        return True
    exists = conn.execute(
        select(scheduled_jobs.c.job_key).where(scheduled_jobs.c.job_key == job_key)
    ).first()
    if exists is not None:
        return False
    try:
        with conn.begin_nested():
            conn.execute(
                scheduled_jobs.insert().values(
                    job_key=job_key,
                    job=job,
                    status="running",
                    lock_owner=owner,
                    lock_expires_at=now + ttl,
                    started_at=now,
                )
            )
    except IntegrityError:
        return False  # another process inserted it first
    return True


def finish(
    conn: Connection, job_key: str, owner: str, now: datetime, *, done: bool, outcome: str
) -> None:
    """Record the job done, or give its lease back so that a later tick retries it."""
    if done:
        values: dict[str, object] = {
            "status": "done",
            "finished_at": now,
            "lock_owner": None,
            "lock_expires_at": None,
            "outcome": outcome[:200],
        }
    else:
        values = {"lock_expires_at": now, "outcome": outcome[:200]}
    conn.execute(
        update(scheduled_jobs)
        .where(scheduled_jobs.c.job_key == job_key, scheduled_jobs.c.lock_owner == owner)
        .values(**values)
    )


def done_jobs(conn: Connection) -> list[ScheduledJob]:
    """Every finished job, in key order."""
    rows = conn.execute(
        select(scheduled_jobs)
        .where(scheduled_jobs.c.status == "done")
        .order_by(scheduled_jobs.c.job_key)
    )
    return [
        ScheduledJob(r.job_key, r.job, r.status, r.started_at, r.finished_at, r.outcome)
        for r in rows
    ]
