"""Enrolment runs: one ``import_runs`` row per import of an insurer's beneficiary file.

A run is recorded ``running`` by a transaction of its own before any work (:class:`RunLock`),
so that a killed import still leaves its record; the import's own transaction finishes it
with its counts (``done``), a failure marks it ``failed``, and a run whose process died is
found later and marked ``interrupted`` (:func:`reap_interrupted`).

Whether the process of a ``running`` run still lives is told by a lock it holds from the
moment its record is written until it ends, released by the system when it dies: on
PostgreSQL a session advisory lock (seen from any host), on SQLite (one host) an ``flock``
on a file of the data directory. The beneficiary rows themselves are written by
``store/beneficiary_import.py``.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlalchemy import Connection, Engine, select, text, update

from tierspayant.store.tables import import_runs

_LOCK_SPACE = 0x1B0E  # first key of the two-key advisory locks of import runs


def _lock_file(lock_dir: Path, run_id: int) -> Path:
    return lock_dir / f"import-run-{run_id}.lock"


def _try_flock(path: Path) -> int | None:
    """A descriptor holding an exclusive ``flock`` on ``path``, or None if another has it."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


class RunLock:
    """The lock a process holds on its import run from its record's first commit to its end.

    :meth:`open_run` writes the ``running`` record (and what ``also`` adds in the same
    transaction, the audit event) with the lock already taken; :meth:`close` lets it go.
    """

    def __init__(self, engine: Engine, lock_dir: Path) -> None:
        self._engine = engine
        self._lock_dir = lock_dir
        self._session: Connection | None = None
        self._fd: int | None = None
        self._path: Path | None = None

    def open_run(
        self,
        *,
        insurer_id: int,
        kind: str,
        mode: str,
        file_digest: str,
        started: datetime,
        also: Callable[[Connection, int], None],
    ) -> int:
        values = {
            "insurer_id": insurer_id,
            "kind": kind,
            "mode": mode,
            "file_digest": file_digest,
            "started_at": started,
            "status": "running",
        }
        insert = import_runs.insert().values(**values).returning(import_runs.c.id)
        if self._engine.dialect.name == "postgresql":
            # A connection of its own, kept open for the run: the session lock lives with it.
            session = self._engine.connect()
            try:
                with session.begin():
                    run_id = int(session.execute(insert).scalar_one())
                    session.execute(
                        text("SELECT pg_advisory_lock(:space, :run)"),
                        {"space": _LOCK_SPACE, "run": run_id},
                    )
                    also(session, run_id)
            except BaseException:
                session.close()
                raise
            self._session = session
            return run_id
        self._lock_dir.mkdir(parents=True, exist_ok=True)
        with self._engine.begin() as conn:
            run_id = int(conn.execute(insert).scalar_one())
            path = _lock_file(self._lock_dir, run_id)
            fd = _try_flock(path)
            assert fd is not None, "a new run's lock file is free"
            self._fd, self._path = fd, path
            also(conn, run_id)
        return run_id

    def close(self) -> None:
        """Let the lock go (the run's record says by then how it ended)."""
        if self._session is not None:
            session, self._session = self._session, None
            try:
                session.execute(text("SELECT pg_advisory_unlock_all()"))
                session.commit()
            except Exception:
                session.invalidate()  # never back to the pool with the lock still held
                raise
            finally:
                session.close()
        if self._fd is not None:
            fd, self._fd = self._fd, None
            if self._path is not None:
                self._path.unlink(missing_ok=True)
            os.close(fd)


@dataclass(frozen=True, slots=True)
class InterruptedRun:
    id: int
    insurer_id: int
    mode: str
    started_at: datetime


def _holder_gone(conn: Connection, lock_dir: Path, run_id: int) -> bool:
    if conn.dialect.name == "postgresql":
        free = conn.execute(
            text("SELECT pg_try_advisory_lock(:space, :run)"),
            {"space": _LOCK_SPACE, "run": run_id},
        ).scalar_one()
        if free:
            conn.execute(
                text("SELECT pg_advisory_unlock(:space, :run)"),
                {"space": _LOCK_SPACE, "run": run_id},
            )
        return bool(free)
    path = _lock_file(lock_dir, run_id)
    if not path.exists():
        return True  # written before the record was visible, removed only after its end
    fd = _try_flock(path)
    if fd is None:
        return False
    path.unlink(missing_ok=True)
    os.close(fd)
    return True


def reap_interrupted(
    conn: Connection, insurer_id: int | None, lock_dir: Path, at: datetime
) -> list[InterruptedRun]:
    """Mark ``interrupted`` the ``running`` runs (of one insurer, or all) whose process is
    gone, and return them, oldest first. A run still held by a live process is left alone."""
    query = select(
        import_runs.c.id, import_runs.c.insurer_id, import_runs.c.mode, import_runs.c.started_at
    ).where(import_runs.c.status == "running")
    if insurer_id is not None:
        query = query.where(import_runs.c.insurer_id == insurer_id)
    found = [
        InterruptedRun(int(row.id), int(row.insurer_id), str(row.mode), row.started_at)
        for row in conn.execute(query.order_by(import_runs.c.id))
        if _holder_gone(conn, lock_dir, int(row.id))
    ]
    if not found:
        return []
    # Only the runs still running when marked: one that ended meanwhile keeps its status.
    marked = set(
        conn.execute(
            update(import_runs)
            .where(
                import_runs.c.id.in_([run.id for run in found]),
                import_runs.c.status == "running",
            )
            .values(status="interrupted", finished_at=at)
            .returning(import_runs.c.id)
        ).scalars()
    )
    return [run for run in found if run.id in marked]


def mark_merging(conn: Connection, run_id: int, file_digest: str) -> None:
    """Inside the import's transaction, before the merge reads anything: the file's digest
    as read. On SQLite this is the transaction's first write to the main database: it takes
    the write lock, so no concurrent commit can invalidate what the merge reads."""
    conn.execute(
        update(import_runs).where(import_runs.c.id == run_id).values(file_digest=file_digest)
    )


def mark_failed(conn: Connection, run_id: int, finished: datetime) -> None:
    """A run whose own transaction was rolled back: ``failed``."""
    conn.execute(
        update(import_runs)
        .where(import_runs.c.id == run_id)
        .values(status="failed", finished_at=finished)
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
