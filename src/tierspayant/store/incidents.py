"""Incident response runs, the agreement reason codes that settle old audit events, and
the subject index that maps audit pseudonyms back to beneficiaries."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, func, or_, select, text, update

from tierspayant.store.claims_tables import prior_authorisations
from tierspayant.store.db import enter_write
from tierspayant.store.incident_tables import subject_index, subject_index_marks
from tierspayant.store.lookup_history import first_seq_since
from tierspayant.store.operations_tables import incident_runs
from tierspayant.store.tables import audit_events, beneficiaries, providers

_NUMBERS_PER_QUERY = 1000
_SUBJECT_LOCK_KEY = 727276  # with the insurer id: one indexer per insurer at a time


def insert_run(
    conn: Connection,
    *,
    kind: str,
    actor: str,
    criteria: str,
    started_at: datetime,
    finished_at: datetime,
    events_scanned: int,
    subjects: int,
    revealed: int,
) -> None:
    """Record one incident command run (``criteria``: JSON of whom and when it scoped)."""
    conn.execute(
        incident_runs.insert().values(
            kind=kind,
            actor=actor,
            criteria=criteria,
            started_at=started_at,
            finished_at=finished_at,
            events_scanned=events_scanned,
            subjects=subjects,
            revealed=revealed,
        )
    )


def agreement_reasons(conn: Connection, agreements: Iterable[str]) -> dict[str, str | None]:
    """Reason codes of prior-authorisation agreements, by number (those still held)."""
    reasons: dict[str, str | None] = {}
    numbers = sorted(agreements)
    for start in range(0, len(numbers), _NUMBERS_PER_QUERY):
        chunk = numbers[start : start + _NUMBERS_PER_QUERY]
        query = select(
            prior_authorisations.c.agreement_number, prior_authorisations.c.reason_code
        ).where(prior_authorisations.c.agreement_number.in_(chunk))
        reasons.update({str(number): code for number, code in conn.execute(query)})
    return reasons


def status_events_since(
    conn: Connection, actions: Iterable[str], since: datetime, limit: int = 5000
) -> list[tuple[datetime, str, str, str]]:
    """(at, actor, action, detail) of the events of ``actions`` since ``since``, oldest
    first: suspensions, revocations and reinstatements, whose detail names the principal.
    Read from the chain position where ``since`` begins (found by bisection over the
    primary key), never from the start of the log."""
    query = (
        select(
            audit_events.c.at, audit_events.c.actor, audit_events.c.action, audit_events.c.detail
        )
        .where(
            audit_events.c.seq >= first_seq_since(conn, since),
            audit_events.c.action.in_(sorted(actions)),
            audit_events.c.at >= since,
        )
        .order_by(audit_events.c.seq)
        .limit(limit)
    )
    return [(r.at, str(r.actor), str(r.action), str(r.detail)) for r in conn.execute(query)]


def structure_providers(conn: Connection, number: str) -> list[tuple[str, str, str]]:
    """(AM number, structure number, category) of the professionals acting for structure
    ``number`` (a FINESS, a SIRET, or an AM number): their principals are ``provider:AM/…``,
    their structure is what the guard, the audit log and containment key on."""
    query = (
        select(providers.c.am_number, providers.c.finess, providers.c.siret, providers.c.category)
        .where(
            or_(
                providers.c.finess == number,
                providers.c.siret == number,
                providers.c.am_number == number,
            )
        )
        .order_by(providers.c.id)
    )
    return [
        (str(r.am_number), str(r.finess or r.siret or r.am_number), str(r.category))
        for r in conn.execute(query)
    ]


# --- The subject index ----------------------------------------------------------------


def lock_subject_index(conn: Connection, insurer_id: int) -> None:
    """Hold the insurer's subject index until the transaction ends (one indexer)."""
    if conn.dialect.name == "postgresql":
        conn.execute(
            text("SELECT pg_advisory_xact_lock(:k, :i)"), {"k": _SUBJECT_LOCK_KEY, "i": insurer_id}
        )
    else:
        # SQLite: the process's write gate, then the database's lock (a write that
        # matches no row takes it), as the audit append does.
        enter_write(conn)
        conn.exec_driver_sql("UPDATE subject_index_marks SET up_to_id = up_to_id WHERE 0")


def subject_mark(conn: Connection, insurer_id: int) -> int:
    """The id up to which the insurer's subjects are indexed (0: none yet)."""
    value = conn.execute(
        select(subject_index_marks.c.up_to_id).where(subject_index_marks.c.insurer_id == insurer_id)
    ).scalar()
    return 0 if value is None else int(value)


def set_subject_mark(conn: Connection, insurer_id: int, up_to_id: int, at: datetime) -> None:
    """Record that every id up to ``up_to_id`` is indexed (under the lock)."""
    done = conn.execute(
        update(subject_index_marks)
        .where(subject_index_marks.c.insurer_id == insurer_id)
        .values(up_to_id=up_to_id, updated_at=at)
    )
    if done.rowcount == 0:
        conn.execute(
            subject_index_marks.insert().values(
                insurer_id=insurer_id, up_to_id=up_to_id, updated_at=at
            )
        )


def max_beneficiary_id(conn: Connection, insurer_id: int) -> int:
    """The highest id the insurer has issued and still holds (0 when none): the end of
    its primary key, one index probe."""
    value = conn.execute(
        select(func.max(beneficiaries.c.id)).where(beneficiaries.c.insurer_id == insurer_id)
    ).scalar()
    return 0 if value is None else int(value)


def insert_subjects(conn: Connection, insurer_id: int, rows: Sequence[tuple[bytes, int]]) -> None:
    """Add (lookup, beneficiary id) pairs to the insurer's subject index: COPY on
    PostgreSQL, the driver's bulk insert on SQLite, inside the caller's transaction."""
    if not rows:
        return
    if conn.dialect.name == "postgresql":
        raw = conn.connection.driver_connection
        assert raw is not None
        with (
            raw.cursor() as cursor,
            cursor.copy(
                "COPY subject_index (insurer_id, lookup, beneficiary_id) FROM STDIN"
            ) as copy,
        ):
            for lookup, beneficiary_id in rows:
                copy.write_row((insurer_id, lookup, beneficiary_id))
        return
    conn.exec_driver_sql(
        "INSERT INTO subject_index (insurer_id, lookup, beneficiary_id) VALUES (?, ?, ?)",
        [(insurer_id, lookup, beneficiary_id) for lookup, beneficiary_id in rows],
    )


def indexed_subjects(
    conn: Connection, insurer_id: int, lookups: Sequence[bytes]
) -> dict[bytes, int]:
    """Beneficiary ids of the lookups found in the insurer's subject index."""
    if conn.dialect.name == "postgresql":
        return {
            bytes(lookup): int(i)
            for lookup, i in _any(conn, _INDEXED_ANY, insurer_id, list(lookups), "bytea")
        }
    found: dict[bytes, int] = {}
    for start in range(0, len(lookups), _NUMBERS_PER_QUERY):
        chunk = lookups[start : start + _NUMBERS_PER_QUERY]
        query = select(subject_index.c.lookup, subject_index.c.beneficiary_id).where(
            subject_index.c.insurer_id == insurer_id, subject_index.c.lookup.in_(chunk)
        )
        found.update({bytes(lookup): int(i) for lookup, i in conn.execute(query)})
    return found


def held_ids(conn: Connection, insurer_id: int, ids: Iterable[int]) -> set[int]:
    """Those of ``ids`` the insurer still holds (by primary key)."""
    wanted = sorted(set(ids))
    if conn.dialect.name == "postgresql":
        return {int(row[0]) for row in _any(conn, _HELD_ANY, insurer_id, wanted, "bigint")}
    held: set[int] = set()
    for start in range(0, len(wanted), _NUMBERS_PER_QUERY):
        chunk = wanted[start : start + _NUMBERS_PER_QUERY]
        query = select(beneficiaries.c.id).where(
            beneficiaries.c.insurer_id == insurer_id, beneficiaries.c.id.in_(chunk)
        )
        held.update(int(i) for i in conn.execute(query).scalars())
    return held


# PostgreSQL: one array parameter per page instead of a thousand bound values (whose
# parsing and planning cost more than the index probes themselves). Pages of 1 000: with
# 10 000 the planner reads the whole subject index in parallel instead (2 M rows).
_ARRAY_PAGE = 1_000
_INDEXED_ANY = (
    "SELECT lookup, beneficiary_id FROM subject_index"
    " WHERE insurer_id = %s AND lookup = ANY(%s::{kind}[])"
)
_HELD_ANY = "SELECT id FROM beneficiaries WHERE insurer_id = %s AND id = ANY(%s::{kind}[])"


def _any(
    conn: Connection, statement: str, insurer_id: int, values: Sequence[object], kind: str
) -> Iterator[Any]:
    sql = statement.format(kind=kind)
    for start in range(0, len(values), _ARRAY_PAGE):
        page = list(values[start : start + _ARRAY_PAGE])
        yield from conn.exec_driver_sql(sql, (insurer_id, page))
