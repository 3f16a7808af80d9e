"""Rows of ``audit_archives``: the months of the audit log archived and detached, and the
point where verification of what remains starts."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, RowMapping, select, text

from tierspayant.security.audit import ChainStart
from tierspayant.store.operations_tables import audit_archives
from tierspayant.store.partitions import AUDIT_DEFAULT, AUDIT_LOCK_KEY, AUDIT_TABLE


@dataclass(frozen=True, slots=True)
class ArchivedMonth:
    month: str
    first_seq: int
    last_seq: int
    events: int
    first_prev_hash: bytes
    last_hash: bytes
    frontier: tuple[tuple[int, bytes], ...]
    file_name: str
    file_digest: str
    checkpoint_seq: int
    checkpoint_file: str
    archived_at: datetime

    def start(self) -> ChainStart:
        """Where verification of the events still in the database starts."""
        return ChainStart(self.last_seq, self.last_hash, self.frontier)


def frontier_json(frontier: tuple[tuple[int, bytes], ...]) -> str:
    return json.dumps([[size, digest.hex()] for size, digest in frontier])


def _frontier(raw: str) -> tuple[tuple[int, bytes], ...]:
    return tuple((int(size), bytes.fromhex(str(digest))) for size, digest in json.loads(raw))


def archived_months(conn: Connection) -> list[ArchivedMonth]:
    """Every archived month, oldest first (an empty list on a log never archived)."""
    rows = conn.execute(select(audit_archives).order_by(audit_archives.c.last_seq)).mappings()
    return [
        ArchivedMonth(
            month=str(r["month"]),
            first_seq=int(r["first_seq"]),
            last_seq=int(r["last_seq"]),
            events=int(r["events"]),
            first_prev_hash=bytes(r["first_prev_hash"]),
            last_hash=bytes(r["last_hash"]),
            frontier=_frontier(str(r["frontier"])),
            file_name=str(r["file_name"]),
            file_digest=str(r["file_digest"]),
            checkpoint_seq=int(r["checkpoint_seq"]),
            checkpoint_file=str(r["checkpoint_file"]),
            archived_at=r["archived_at"],
        )
        for r in rows
    ]


def latest(conn: Connection) -> ArchivedMonth | None:
    months = archived_months(conn)
    return months[-1] if months else None


def record(conn: Connection, month: ArchivedMonth) -> None:
    conn.execute(
        audit_archives.insert().values(
            month=month.month,
            first_seq=month.first_seq,
            last_seq=month.last_seq,
            events=month.events,
            first_prev_hash=month.first_prev_hash,
            last_hash=month.last_hash,
            frontier=frontier_json(month.frontier),
            file_name=month.file_name,
            file_digest=month.file_digest,
            checkpoint_seq=month.checkpoint_seq,
            checkpoint_file=month.checkpoint_file,
            archived_at=month.archived_at,
        )
    )


# --- the month partition being archived (PostgreSQL) -------------------------------------
# ``partition`` is always a name built by ``store.partitions.month_partition_name`` (never
# user input): it cannot be bound as a parameter, so it is formatted into the statement.


def month_rows(conn: Connection, partition: str, after: int, limit: int) -> list[RowMapping]:
    """Up to ``limit`` events of the month partition after ``seq`` ``after``, in order."""
    statement = f"SELECT * FROM {partition} WHERE seq > :after ORDER BY seq LIMIT :n"  # noqa: S608
    return list(conn.execute(text(statement), {"after": after, "n": limit}).mappings())


def default_events_before(conn: Connection, end: datetime) -> int:
    """Events of the DEFAULT partition dated before ``end``."""
    statement = f"SELECT count(*) FROM {AUDIT_DEFAULT} WHERE at < :end"  # noqa: S608
    return int(conn.execute(text(statement), {"end": end}).scalar_one())


def detach_month(conn: Connection, partition: str) -> tuple[int, bytes | None]:
    """Take the audit chain's lock, detach the month; its event count and last hash."""
    conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": AUDIT_LOCK_KEY})
    conn.exec_driver_sql(f"ALTER TABLE {AUDIT_TABLE} DETACH PARTITION {partition}")
    count, last = conn.execute(
        text(
            f"SELECT count(*), (SELECT hash FROM {partition} ORDER BY seq DESC LIMIT 1)"  # noqa: S608
            f" FROM {partition}"
        )
    ).one()
    return int(count), None if last is None else bytes(last)


def drop_detached(conn: Connection, partition: str) -> None:
    """Drop a detached month (once archived and recorded)."""
    conn.exec_driver_sql(f"DROP TABLE {partition}")
