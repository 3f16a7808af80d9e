"""Enrolment runs: one ``import_runs`` row per import of an insurer's beneficiary file.

A run is started inside the import's own transaction and finished with its counts there;
a failed import (whose transaction was rolled back) is recorded by a transaction of its
own. The beneficiary rows themselves are written by ``store/beneficiary_import.py``.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, update

from tierspayant.store.tables import import_runs


def start_run(
    conn: Connection, insurer_id: int, kind: str, mode: str, file_digest: str, started: datetime
) -> int:
    """Record a run as ``running``; its id.

    On SQLite this is the run's first write to the main database: it takes the write lock
    before the merge reads anything, so no concurrent commit can invalidate it.
    """
    return int(
        conn.execute(
            import_runs.insert()
            .values(
                insurer_id=insurer_id,
                kind=kind,
                mode=mode,
                file_digest=file_digest,
                started_at=started,
                status="running",
            )
            .returning(import_runs.c.id)
        ).scalar_one()
    )


def finish_run(
    conn: Connection,
    run_id: int,
    *,
    finished_at: datetime,
    lines: int,
    inserted: int,
    updated: int,
    unchanged: int,
    terminated: int,
    rejected: int,
) -> None:
    """Record a run as ``done``, with its counts."""
    conn.execute(
        update(import_runs)
        .where(import_runs.c.id == run_id)
        .values(
            finished_at=finished_at,
            lines=lines,
            inserted=inserted,
            updated=updated,
            unchanged=unchanged,
            terminated=terminated,
            rejected=rejected,
            status="done",
        )
    )


def record_failed_run(
    conn: Connection,
    insurer_id: int,
    kind: str,
    mode: str,
    file_digest: str,
    started: datetime,
    finished: datetime,
) -> int:
    """Record a run that failed (its own transaction was rolled back); its id."""
    return int(
        conn.execute(
            import_runs.insert()
            .values(
                insurer_id=insurer_id,
                kind=kind,
                mode=mode,
                file_digest=file_digest,
                started_at=started,
                finished_at=finished,
                status="failed",
            )
            .returning(import_runs.c.id)
        ).scalar_one()
    )
