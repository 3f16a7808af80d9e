"""Backups at the storage level: probes of a PostgreSQL cluster restored by the restore
drill (whether recovery is over, the last transaction it replayed, the data size) and
the online copy of the embedded SQLite database.
"""

from __future__ import annotations

import os
import sqlite3
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlalchemy import Engine, text


@dataclass(frozen=True, slots=True)
class RecoveryState:
    in_recovery: bool
    # The commit time of the last transaction replayed from the archived WAL (None when
    # recovery replayed none); PostgreSQL keeps it after recovery ends.
    last_replayed_at: datetime | None
    database_bytes: int


def recovery_state(engine: Engine) -> RecoveryState:
    """The restored cluster's recovery state and the size of the connected database."""
    with engine.connect() as conn:
        row = conn.execute(
            text(
                "SELECT pg_is_in_recovery(), pg_last_xact_replay_timestamp(), "
                "pg_database_size(current_database())"
            )
        ).one()
    return RecoveryState(bool(row[0]), row[1], int(row[2]))


def database_bytes(engine: Engine) -> int:
    """The size on disk of the connected database (PostgreSQL)."""
    with engine.connect() as conn:
        return int(conn.execute(text("SELECT pg_database_size(current_database())")).scalar_one())


class SqliteCopyFailed(Exception):
    """The copy of a SQLite database does not pass its integrity check."""


def copy_sqlite(source: Path, out: Path) -> int:
    """Copy a live SQLite database with its online backup API (readers and writers go on;
    a page changed during the copy restarts it), check the copy, return its size.

    ``out`` is created (mode 0600); FileExistsError if it exists."""
    os.close(os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    src = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
    dst = sqlite3.connect(out)
    try:
        src.backup(dst, pages=1024)
        verdict = dst.execute("PRAGMA integrity_check").fetchone()
    finally:
        src.close()
        dst.close()
    if verdict is None or verdict[0] != "ok":
        raise SqliteCopyFailed(f"the copy {out} fails its integrity check")
    return out.stat().st_size
