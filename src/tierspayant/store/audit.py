"""The audit log in the database: append under a lock, read in order, verify.

One writer at a time extends the chain: on SQLite the append takes the process's write
gate, then the database's lock, before it reads the head (``store/db.py``; a transaction
that wrote before holds both already); PostgreSQL takes a transaction-scoped advisory lock
so several API workers interleave safely.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

from sqlalchemy import Connection, Dialect, RowMapping, func, select, text

from tierspayant.security.audit import AuditEvent, ChainHead, check_event_fields, next_event
from tierspayant.store.db import enter_write
from tierspayant.store.tables import audit_events

_AUDIT_LOCK_KEY = 727275
DetailValue = str | int | bool | None


def _row_to_event(row: RowMapping) -> AuditEvent:
    at = row["at"]
    assert isinstance(at, datetime)
    if at.tzinfo is None:  # SQLite returns naive datetimes; we store UTC only
        at = at.replace(tzinfo=UTC)
    detail = json.loads(str(row["detail"]))
    return AuditEvent(
        seq=int(row["seq"]),
        at=at,
        actor=str(row["actor"]),
        structure=row["structure"],
        action=str(row["action"]),
        purpose=row["purpose"],
        subject=row["subject"],
        insurer=row["insurer"],
        decision=str(row["decision"]),
        detail=detail,
        prev_hash=bytes(row["prev_hash"]),
        hash=bytes(row["hash"]),
    )


# Built once: appends run for every audited request, and constructing statements per
# call costs more than running them.
_LAST = select(audit_events).order_by(audit_events.c.seq.desc()).limit(1)
_INSERT = audit_events.insert()
_HEAD = select(audit_events.c.seq, audit_events.c.hash).order_by(audit_events.c.seq.desc()).limit(1)


def chain_head(conn: Connection) -> ChainHead | None:
    """Position and hash of the newest event (all an append needs), or None."""
    row = conn.execute(_HEAD).first()
    return None if row is None else ChainHead(int(row.seq), bytes(row.hash))


def last_event(conn: Connection) -> AuditEvent | None:
    """The newest event of the chain, or None for an empty log."""
    row = conn.execute(_LAST).mappings().first()
    return None if row is None else _row_to_event(row)


@dataclass(frozen=True, slots=True)
class Entry:
    """An event to append: everything but its position and hashes."""

    at: datetime
    actor: str
    action: str
    decision: str
    structure: str | None = None
    purpose: str | None = None
    subject: str | None = None
    insurer: str | None = None
    detail: Mapping[str, DetailValue] = field(default_factory=dict)

    def check(self) -> None:
        """Raise ValueError if the chain would refuse this entry."""
        check_event_fields(
            at=self.at,
            actor=self.actor,
            action=self.action,
            decision=self.decision,
            detail=self.detail,
        )


def append(
    conn: Connection,
    *,
    at: datetime,
    actor: str,
    action: str,
    decision: str,
    structure: str | None = None,
    purpose: str | None = None,
    subject: str | None = None,
    insurer: str | None = None,
    detail: Mapping[str, DetailValue] | None = None,
) -> AuditEvent:
    """Append one event inside the caller's transaction and return it."""
    entry = Entry(at, actor, action, decision, structure, purpose, subject, insurer, detail or {})
    return append_entries(conn, [entry])[0]


def append_entries(conn: Connection, entries: Sequence[Entry]) -> list[AuditEvent]:
    """Append events in order inside the caller's transaction (one lock, one head read,
    one multi-row insert) and return them."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _AUDIT_LOCK_KEY})
    else:
        # SQLite's driver runs a SELECT outside any transaction until the first write:
        # the read of the last event below and the insert would not be atomic, and two
        # writers could take the same ``seq``. A write statement that matches no row takes
        # the database's write lock first (no trigger fires: there is no row).
        enter_write(conn)
        conn.exec_driver_sql("UPDATE audit_events SET seq = seq WHERE 0")
    events = _chained(chain_head(conn), entries)
    conn.execute(_INSERT, [_event_values(e) for e in events])
    return events


def _chained(head: AuditEvent | ChainHead | None, entries: Sequence[Entry]) -> list[AuditEvent]:
    """The events of ``entries``, chained after ``head``."""
    events = []
    for entry in entries:
        event = next_event(
            head,
            at=entry.at,
            actor=entry.actor,
            structure=entry.structure,
            action=entry.action,
            purpose=entry.purpose,
            subject=entry.subject,
            insurer=entry.insurer,
            decision=entry.decision,
            detail=dict(entry.detail),
        )
        events.append(event)
        head = event
    return events


class DriverAppend:
    """:func:`append_entries` on the driver's own connection (sqlite3 or psycopg), for the
    group-commit writer (``store/audit_writer.py``): the same lock, head read, chain and
    rows (each value through its column's own type, as SQLAlchemy would bind it), in one
    transaction the caller commits. The statements are built once per dialect.
    """

    def __init__(self, dialect: Dialect) -> None:
        self.postgres = dialect.name == "postgresql"
        columns = list(audit_events.c)
        self._names = tuple(c.name for c in columns)
        self._binds = tuple(c.type.dialect_impl(dialect).bind_processor(dialect) for c in columns)
        compiled = _INSERT.compile(dialect=dialect)
        self._insert = str(compiled)  # SQLAlchemy's own statement, in the driver's style
        order = compiled.positiontup
        assert order is None or tuple(order) == self._names, order
        self._head = "SELECT seq, hash FROM audit_events ORDER BY seq DESC LIMIT 1"

    def __call__(self, dbapi: Any, entries: Sequence[Entry]) -> list[AuditEvent]:
        """Append ``entries`` inside a transaction opened here; the caller commits (or
        rolls back). On SQLite the caller holds the process's write gate."""
        cursor = dbapi.cursor()
        try:
            if self.postgres:
                cursor.execute("SELECT pg_advisory_xact_lock(%s)", (_AUDIT_LOCK_KEY,))
            else:
                # The database's write lock before the head is read (see append_entries).
                cursor.execute("BEGIN IMMEDIATE")
            cursor.execute(self._head)
            row = cursor.fetchone()
            head = None if row is None else ChainHead(int(row[0]), bytes(row[1]))
            events = _chained(head, entries)
            rows = [self._row(_event_values(e)) for e in events]
            cursor.executemany(self._insert, rows)
        finally:
            cursor.close()
        return events

    def _row(self, values: dict[str, object]) -> Any:
        bound = [
            value if bind is None or value is None else bind(value)
            for bind, value in zip(self._binds, (values[n] for n in self._names), strict=True)
        ]
        return dict(zip(self._names, bound, strict=True)) if self.postgres else bound


_DETAIL = json.JSONEncoder(sort_keys=True, separators=(",", ":"))  # built once, not per event


def _event_values(event: AuditEvent) -> dict[str, object]:
    return {
        "seq": event.seq,
        "at": event.at,
        "actor": event.actor,
        "structure": event.structure,
        "action": event.action,
        "purpose": event.purpose,
        "subject": event.subject,
        "insurer": event.insurer,
        "decision": event.decision,
        "detail": _DETAIL.encode(dict(event.detail)),
        "prev_hash": event.prev_hash,
        "hash": event.hash,
    }


def iter_events(conn: Connection, *, after: int = 0, batch: int = 5000) -> Iterator[AuditEvent]:
    """Every event past position ``after`` in chain order, read in batches (memory does
    not grow with the log).

    On PostgreSQL the pages are read with the raw driver (keyset on ``seq``, through the
    caller's connection) and each row becomes an event directly: no SQLAlchemy row
    objects, and the detail texts repeated from event to event are parsed once per page
    (the events share that read-only mapping). The events are the ones the SQLAlchemy
    path builds, value for value."""
    if conn.dialect.name == "postgresql":
        return _iter_events_raw(conn, after, batch)
    return _iter_events_core(conn, after, batch)


def _iter_events_core(conn: Connection, after: int, batch: int) -> Iterator[AuditEvent]:
    """The portable reading: SQLAlchemy pages, one row mapping per event."""
    while True:
        rows = (
            conn.execute(
                select(audit_events)
                .where(audit_events.c.seq > after)
                .order_by(audit_events.c.seq)
                .limit(batch)
            )
            .mappings()
            .all()
        )
        if not rows:
            return
        for row in rows:
            yield _row_to_event(row)
        after = int(rows[-1]["seq"])


_PAGE = (
    "SELECT seq, at, actor, structure, action, purpose, subject, insurer, decision, detail,"
    " prev_hash, hash FROM audit_events WHERE seq > %s ORDER BY seq LIMIT %s"
)


def _iter_events_raw(conn: Connection, after: int, batch: int) -> Iterator[AuditEvent]:
    raw = conn.connection.driver_connection
    assert raw is not None
    event = AuditEvent
    while True:
        with raw.cursor() as cursor:
            cursor.execute(_PAGE, (after, batch))
            rows = cursor.fetchall()
        if not rows:
            return
        details: dict[str, object] = {}
        for (
            seq,
            at,
            actor,
            structure,
            action,
            purpose,
            subject,
            insurer,
            decision,
            text_,
            *h,
        ) in rows:
            detail = details.get(text_)
            if detail is None:
                detail = details[text_] = _shared_detail(text_)
            yield event(
                seq,
                at if at.tzinfo is not None else at.replace(tzinfo=UTC),
                actor,
                structure,
                action,
                purpose,
                subject,
                insurer,
                decision,
                detail,  # type: ignore[arg-type]  # whatever the text holds, as before
                bytes(h[0]),
                bytes(h[1]),
            )
        after = int(rows[-1][0])


def _shared_detail(text_: str) -> object:
    """A stored detail parsed, read-only when it is an object (events share it)."""
    value = json.loads(text_)
    return MappingProxyType(value) if isinstance(value, dict) else value


def count_events(conn: Connection, up_to_seq: int | None = None) -> int:
    """How many events the log holds (those numbered up to ``up_to_seq`` if given: a
    count that events appended meanwhile cannot change)."""
    query = select(func.count()).select_from(audit_events)
    if up_to_seq is not None:
        query = query.where(audit_events.c.seq <= up_to_seq)
    return int(conn.execute(query).scalar_one())


# (insurer, subject, at, action, decision, detail) of one event.
EventOutline = tuple[str | None, str | None, datetime, str, str, str]


def events_in_window(
    conn: Connection,
    start: datetime,
    end: datetime,
    *,
    actor: str | None = None,
    structure: str | None = None,
) -> Iterator[EventOutline]:
    """Outlines of the events of ``actor`` (else of ``structure``) within [start, end),
    streamed from the server (the window may hold millions of events)."""
    who = (
        audit_events.c.actor == actor
        if actor is not None
        else audit_events.c.structure == structure
    )
    query = select(
        audit_events.c.insurer,
        audit_events.c.subject,
        audit_events.c.at,
        audit_events.c.action,
        audit_events.c.decision,
        audit_events.c.detail,
    ).where(
        who,
        audit_events.c.at >= start,
        audit_events.c.at < end,
    )
    yield from conn.execute(query.execution_options(yield_per=10_000))
