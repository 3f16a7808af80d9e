"""PostgreSQL partitions: insurer-owned tables by hash of ``insurer_id``, the audit log by
month of ``at`` (migration 0018, docs/decisions/0010-partitioning.md).

SQLite keeps plain tables: every function here is a no-op or answers "not partitioned"
there. The audit log's month partitions are created ahead (``MONTHS_AHEAD``) by the
migration and by :func:`ensure_audit_months` (run by ``tierspayant migrate`` and the
archive command); an event whose month has no partition yet lands in the DEFAULT
partition, so that an append never fails for want of a partition —
:func:`default_partition_rows` says whether that happened (an operator alert), and the
next :func:`ensure_audit_months` moves those rows to their month.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime

from sqlalchemy import Connection, text

HASH_PARTITIONS = 16
# Insurer-owned tables that grow with people, hash-partitioned by insurer_id on
# PostgreSQL (the same list distributes them on Citus: docs/operations.md).
INSURER_PARTITIONED = (
    "beneficiaries",
    "cards",
    "claims",
    "claim_lines",
    "engaged_lines",
    "amount_reservations",
    "benefit_counters",
    "prior_authorisations",
    "payment_lines",
    "overpayments",
    "overpayment_recoveries",
    "claim_disputes",
    "import_runs",
)
# Created or converted by later migrations, not by 0018: the incident subject index (one
# row per beneficiary id, 0019) and the ledger, once every posting had an insurer (0020).
INSURER_PARTITIONED_LATER = ("subject_index", "ledger_postings", "ledger_entries")
AUDIT_TABLE = "audit_events"
AUDIT_DEFAULT = "audit_events_default"
MONTHS_AHEAD = 3
# Same key as the audit append path (store/audit.py): partition maintenance and appends
# never interleave.
AUDIT_LOCK_KEY = 727275

_MONTH_NAME = re.compile(r"^audit_events_y(\d{4})m(\d{2})$")


def hash_partition_name(table: str, remainder: int) -> str:
    return f"{table}_p{remainder:02d}"


def month_partition_name(month: date) -> str:
    return f"{AUDIT_TABLE}_y{month.year:04d}m{month.month:02d}"


def first_of_month(day: date) -> date:
    return date(day.year, day.month, 1)


def next_month(month: date) -> date:
    return date(month.year + (month.month == 12), month.month % 12 + 1, 1)


def month_start(month: date) -> datetime:
    """The first instant of ``month`` (UTC): the partition's lower bound, included."""
    return datetime(month.year, month.month, 1, tzinfo=UTC)


def _bound(month: date) -> str:
    return f"'{month.isoformat()} 00:00:00+00'"


def month_partition_ddl(month: date) -> str:
    return (
        f"CREATE TABLE {month_partition_name(month)} PARTITION OF {AUDIT_TABLE} "
        f"FOR VALUES FROM ({_bound(month)}) TO ({_bound(next_month(month))})"
    )


def is_partitioned(conn: Connection, table: str) -> bool:
    """Whether ``table`` is a partitioned table (always False on SQLite)."""
    if conn.dialect.name != "postgresql":
        return False
    kind = conn.execute(
        text("SELECT relkind FROM pg_class WHERE oid = to_regclass(:t)"), {"t": table}
    ).scalar_one_or_none()
    return kind == "p"


_PARTITION_INDEXES = """
SELECT c.relname, p.relname, t.relname
FROM pg_inherits i
JOIN pg_class c ON c.oid = i.inhrelid
JOIN pg_class p ON p.oid = i.inhparent AND p.relkind = 'I'
JOIN pg_index x ON x.indexrelid = c.oid
JOIN pg_class t ON t.oid = x.indrelid
WHERE x.indrelid IN (SELECT inhrelid FROM pg_inherits WHERE inhparent = to_regclass(:t))
"""


def name_partition_indexes(conn: Connection, table: str) -> None:
    """Give each partition's index its parent index's name with the partition's suffix
    (``ix_claims_queue_p03`` on ``claims_p03``, ``pk_audit_events_y2026m01``) instead of
    PostgreSQL's generated one, so that plans name the index they use."""
    for child, parent, partition in conn.execute(text(_PARTITION_INDEXES), {"t": table}).all():
        wanted = f"{parent}{str(partition)[len(table) :]}"[:63]
        if child != wanted:
            conn.exec_driver_sql(f'ALTER INDEX "{child}" RENAME TO "{wanted}"')


@dataclass(frozen=True, slots=True)
class MonthPartition:
    name: str
    month: date


def audit_months(conn: Connection) -> list[MonthPartition]:
    """The audit log's month partitions attached now, oldest first."""
    if not is_partitioned(conn, AUDIT_TABLE):
        return []
    names = conn.execute(
        text(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
            " WHERE i.inhparent = to_regclass(:t)"
        ),
        {"t": AUDIT_TABLE},
    ).scalars()
    months = []
    for name in names:
        found = _MONTH_NAME.match(str(name))
        if found:
            months.append(MonthPartition(str(name), date(int(found[1]), int(found[2]), 1)))
    return sorted(months, key=lambda m: m.month)


def default_partition_rows(conn: Connection) -> int:
    """Events in the DEFAULT partition: months that had no partition when written (should
    be 0; an alert otherwise). 0 when the log is not partitioned."""
    if not is_partitioned(conn, AUDIT_TABLE):
        return 0
    return int(conn.execute(text(f"SELECT count(*) FROM {AUDIT_DEFAULT}")).scalar_one())  # noqa: S608


def ensure_audit_months(
    conn: Connection, today: date, *, ahead: int = MONTHS_AHEAD, archived: set[date] | None = None
) -> list[str]:
    """Create the month partitions missing from the oldest month in the DEFAULT partition
    (or ``today``'s month) to ``ahead`` months after ``today``, and move the rows the
    DEFAULT partition holds into their month; the partitions created, by name.

    Rows are moved without UPDATE or DELETE (the log refuses both): the DEFAULT partition
    is detached, an empty one takes its place, its rows are inserted again through the
    parent (each lands in its month) and counted, and only then is the detached table
    dropped. Months in ``archived`` are never created again. A no-op on SQLite.
    """
    if not is_partitioned(conn, AUDIT_TABLE):
        return []
    conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": AUDIT_LOCK_KEY})
    existing = {m.month for m in audit_months(conn)}
    skipped = archived or set()
    oldest_default = conn.execute(text(f"SELECT min(at) FROM {AUDIT_DEFAULT}")).scalar_one()  # noqa: S608
    start = first_of_month(today)
    if oldest_default is not None:
        start = min(start, first_of_month(oldest_default.astimezone(UTC).date()))
    last = first_of_month(today)
    for _ in range(ahead):
        last = next_month(last)
    wanted = []
    month = start
    while month <= last:
        if month not in existing and month not in skipped:
            wanted.append(month)
        month = next_month(month)
    if not wanted:
        return []
    moving = oldest_default is not None
    if moving:
        held = AUDIT_DEFAULT + "_moving"
        conn.exec_driver_sql(f"ALTER TABLE {AUDIT_TABLE} DETACH PARTITION {AUDIT_DEFAULT}")
        conn.exec_driver_sql(f"ALTER TABLE {AUDIT_DEFAULT} RENAME TO {held}")
        conn.exec_driver_sql(f"CREATE TABLE {AUDIT_DEFAULT} PARTITION OF {AUDIT_TABLE} DEFAULT")
    for month in wanted:
        conn.exec_driver_sql(month_partition_ddl(month))
    if moving:
        before = int(conn.execute(text(f"SELECT count(*) FROM {held}")).scalar_one())  # noqa: S608
        moved = conn.exec_driver_sql(
            f"INSERT INTO {AUDIT_TABLE} SELECT * FROM {held}"  # noqa: S608
        ).rowcount
        if moved != before:
            raise RuntimeError(f"audit partition move copied {moved} of {before} events")
        conn.exec_driver_sql(f"DROP TABLE {held}")
    name_partition_indexes(conn, AUDIT_TABLE)
    return [month_partition_name(m) for m in wanted]
