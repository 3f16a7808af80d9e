"""Claims, their lines, prior authorisations and benefit counters in the database.

Reads for adjudication are made per batch (one query per kind of fact, ``IN`` lists or
array literals), and decisions are written with ``executemany`` (SQLite) or ``COPY`` into
staging tables and one set-based statement (PostgreSQL): the cost per line stays a few
microseconds of SQL whatever the batch size. On PostgreSQL a batch is claimed with
``SELECT … FOR UPDATE SKIP LOCKED`` so that several workers never take the same claim, and
each worker then takes a transaction-scoped advisory lock per beneficiary of its batch (in
a fixed order, so two workers cannot deadlock), because ceilings and duplicates span the
claims of one person.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Final, NamedTuple

from sqlalchemy import Connection, Select, Table, delete, func, select, text, update

from tierspayant.domain.adjudication import Agreement, CounterUse
from tierspayant.domain.claims import (
    PAYABLE_LINE_STATES,
    ClaimLine,
    ClaimStatus,
    LineStatus,
    line_from_detail,
)
from tierspayant.domain.ledger import LedgerError, Posting
from tierspayant.store import ledger
from tierspayant.store.claims_tables import (
    QUEUE_CONDITION,
    benefit_counters,
    claim_lines,
    claims,
    prior_authorisations,
)
from tierspayant.store.db import begin_write
from tierspayant.store.ledger_tables import ledger_postings
from tierspayant.store.tables import conventions, insurers, providers

_ID_LOCK: Final = 7_272_004  # advisory lock class: claim and agreement id allocation
_BENEFICIARY_LOCK: Final = 7_272_005  # advisory lock class: one beneficiary's counters
_PAYABLE = tuple(s.value for s in PAYABLE_LINE_STATES)


def is_postgres(conn: Connection) -> bool:
    return conn.dialect.name == "postgresql"


def lock_allocation(conn: Connection) -> None:
    """Serialise id allocation until the end of the transaction, before the ids are read.

    PostgreSQL: a transaction-scoped advisory lock (its READ COMMITTED statements then see
    the previous holder's rows). SQLite: the write gate, then the database's write lock
    (``db.begin_write``): read before it, max(id) + 1 gave two concurrent invoices the
    same id, and the second failed on the primary key.
    """
    if is_postgres(conn):
        conn.execute(text("SELECT pg_advisory_xact_lock(:k, 0)"), {"k": _ID_LOCK})
    else:
        begin_write(conn)


def _next_id(table: Table) -> Select[int]:
    # max(id) over an (insurer_id, id) key reads the whole key (108 ms at a million claims
    # on SQLite, under the write lock); the greatest id of each insurer is one probe of it.
    per_insurer = (
        select(func.max(table.c.id))
        .where(table.c.insurer_id == insurers.c.id)
        .correlate(insurers)
        .scalar_subquery()
    )
    return select(func.coalesce(func.max(per_insurer), 0) + 1).select_from(insurers)


_NEXT_CLAIM_ID = _next_id(claims)
_NEXT_AGREEMENT_ID = _next_id(prior_authorisations)


def next_claim_id(conn: Connection) -> int:
    """The next claim id: unique across insurers, so the API can name a claim by it alone.

    Only under :func:`lock_allocation`, taken earlier in the same transaction."""
    return int(conn.execute(_NEXT_CLAIM_ID).scalar_one())


def next_agreement_id(conn: Connection) -> int:
    """The next prior authorisation id, under :func:`lock_allocation` as well."""
    return int(conn.execute(_NEXT_AGREEMENT_ID).scalar_one())


@dataclass(frozen=True, slots=True)
class ClaimRow:
    insurer_id: int
    id: int
    provider_id: int
    invoice_number: str
    version: int
    beneficiary_id: int
    care_date: date
    agreement_number: str | None
    request_digest: bytes
    status: str
    source: str
    received_at: datetime
    adjudicated_at: datetime | None
    billed_cents: int
    amc_requested_cents: int
    amc_accepted_cents: int
    beneficiary_age: int | None
    maternity: bool
    reason_code: str | None


def _claim(row: Sequence[Any]) -> ClaimRow:
    # By position (the order of _CLAIM_COLUMNS, which is ClaimRow's): this runs once per
    # claim judged. Both drivers give ints for the integer columns and bytes for the digest.
    (
        insurer_id, claim_id, provider_id, invoice_number, version, beneficiary_id, care_date,
        agreement_number, digest, status, source, received_at, adjudicated_at, billed,
        requested, accepted, age, maternity, reason_code,
    ) = row  # fmt: skip
    return ClaimRow(
        insurer_id, claim_id, provider_id, invoice_number, version, beneficiary_id, care_date,
        agreement_number, digest, status, source, received_at, adjudicated_at, billed,
        requested, accepted, age, bool(maternity), reason_code,
    )  # fmt: skip


_CLAIM_COLUMNS = [
    claims.c.insurer_id,
    claims.c.id,
    claims.c.provider_id,
    claims.c.invoice_number,
    claims.c.version,
    claims.c.beneficiary_id,
    claims.c.care_date,
    claims.c.agreement_number,
    claims.c.request_digest,
    claims.c.status,
    claims.c.source,
    claims.c.received_at,
    claims.c.adjudicated_at,
    claims.c.billed_cents,
    claims.c.amc_requested_cents,
    claims.c.amc_accepted_cents,
    claims.c.beneficiary_age,
    claims.c.maternity,
    claims.c.reason_code,
]


_CLAIM_SELECT = ", ".join(c.name for c in _CLAIM_COLUMNS)


def latest_version(conn: Connection, provider_id: int, invoice_number: str) -> ClaimRow | None:
    """The newest version of a provider's invoice, whatever its state."""
    row = conn.execute(
        select(*_CLAIM_COLUMNS)
        .where(claims.c.provider_id == provider_id, claims.c.invoice_number == invoice_number)
        .order_by(claims.c.version.desc())
        .limit(1)
    ).first()
    return None if row is None else _claim(row)


def claim_by_id(conn: Connection, claim_id: int) -> ClaimRow | None:
    row = conn.execute(select(*_CLAIM_COLUMNS).where(claims.c.id == claim_id)).first()
    return None if row is None else _claim(row)


@dataclass(frozen=True, slots=True)
class NewClaim:
    insurer_id: int
    id: int
    provider_id: int
    invoice_number: str
    version: int
    beneficiary_id: int
    beneficiary_age: int | None
    care_date: date
    agreement_number: str | None
    maternity: bool
    request_digest: bytes
    source: str
    submitted_by: str
    received_at: datetime
    lines: tuple[ClaimLine, ...]
    duplicate_keys: tuple[bytes | None, ...]
    near_keys: tuple[bytes | None, ...]


def insert_claims(conn: Connection, new: Sequence[NewClaim]) -> None:
    """Store claims as received, with their lines, in two ``executemany`` statements."""
    if not new:
        return
    conn.execute(
        claims.insert(),
        [
            {
                "insurer_id": c.insurer_id,
                "id": c.id,
                "provider_id": c.provider_id,
                "invoice_number": c.invoice_number,
                "version": c.version,
                "beneficiary_id": c.beneficiary_id,
                "beneficiary_age": c.beneficiary_age,
                "care_date": c.care_date,
                "agreement_number": c.agreement_number,
                "maternity": c.maternity,
                "request_digest": c.request_digest,
                "status": ClaimStatus.RECEIVED.value,
                "source": c.source,
                "submitted_by": c.submitted_by,
                "received_at": c.received_at,
                "adjudicated_at": None,
                "billed_cents": sum(line.billed_cents for line in c.lines),
                "amc_requested_cents": sum(line.amc_requested_cents for line in c.lines),
                "amc_accepted_cents": 0,
                "reason_code": None,
            }
            for c in new
        ],
    )
    conn.execute(
        claim_lines.insert(),
        [
            {
                "insurer_id": c.insurer_id,
                "claim_id": c.id,
                "line_no": n,
                "act_code": line.act_code,
                "domain": line.domain.value,
                "family": line.family,
                "quantity": line.quantity,
                "care_date": line.care_date,
                "billed_cents": line.billed_cents,
                "br_cents": line.br_cents,
                "amo_rate_bp": line.amo_rate_bp,
                "amo_paid_cents": line.amo_paid_cents,
                "amc_requested_cents": line.amc_requested_cents,
                "detail": json.dumps(line.detail(), sort_keys=True),
                "status": LineStatus.RECEIVED.value,
                "amc_accepted_cents": 0,
                "reason_code": None,
                "rules": None,
                "decided_at": None,
                "duplicate_key": dup,
                "near_key": near,
                "is_counted": False,
                "amc_computed_cents": None,
            }
            for c in new
            for n, (line, dup, near) in enumerate(
                zip(c.lines, c.duplicate_keys, c.near_keys, strict=True), start=1
            )
        ],
    )


@dataclass(frozen=True, slots=True)
class StoredLine:
    line_no: int
    line: ClaimLine
    status: str
    amc_accepted_cents: int
    amc_computed_cents: int | None
    reason_code: str | None
    rules: tuple[str, ...]
    duplicate_key: bytes | None = None
    near_key: bytes | None = None


_LINE_COLUMNS = [
    claim_lines.c[name]
    for name in (
        "claim_id",
        "line_no",
        "act_code",
        "domain",
        "family",
        "quantity",
        "care_date",
        "br_cents",
        "billed_cents",
        "amo_rate_bp",
        "amo_paid_cents",
        "amc_requested_cents",
        "detail",
        "status",
        "amc_accepted_cents",
        "amc_computed_cents",
        "reason_code",
        "rules",
        "duplicate_key",
        "near_key",
    )
]


_LINE_SELECT = ", ".join(c.name for c in _LINE_COLUMNS)


def _stored_line(row: Sequence[Any]) -> StoredLine:
    # Unpacked by position (the order of _LINE_COLUMNS), and the objects made with
    # positional arguments: this runs once per line judged.
    (
        _claim_id, line_no, act_code, domain, family, quantity, care_date, br, billed, rate,
        amo_paid, requested, detail, status, accepted, computed, reason_code, rules, dup, near,
    ) = row  # fmt: skip
    return StoredLine(
        line_no,
        line_from_detail(
            act_code=act_code,
            domain=domain,
            family=family or "",
            quantity=quantity,
            care_date=care_date if type(care_date) is date else date.fromisoformat(care_date),
            br_cents=br,
            billed_cents=billed,
            amo_rate_bp=rate,
            amo_paid_cents=amo_paid,
            amc_requested_cents=requested,
            detail=detail,
        ),
        status,
        accepted,
        computed,
        reason_code,
        tuple(json.loads(rules)) if rules else (),
        dup if dup is None or type(dup) is bytes else bytes(dup),
        near if near is None or type(near) is bytes else bytes(near),
    )


# Batch reads of adjudication go through the driver's cursor: per batch they fetch
# thousands of rows by an ``IN`` list of up to a thousand ids, and SQLAlchemy's expansion
# of such a list and its row objects cost more than the database's work (measured: about
# a fifth of a run's CPU). Dates come back as ISO text from SQLite, as dates from psycopg.


def _ids_in(conn: Connection, column: str, ids: Sequence[int]) -> tuple[str, tuple[Any, ...]]:
    """``column`` among ``ids``: one array parameter on PostgreSQL (one statement text
    for every batch), an ``IN`` list on SQLite."""
    if is_postgres(conn):
        return f"{column} = ANY(%s::bigint[])", (_int_array(ids),)
    return f"{column} IN ({', '.join('?' * len(ids))})", tuple(ids)


# Array parameters written as PostgreSQL array literals (text the server parses): the
# driver's list dumper encodes element by element in Python, about ten times slower.
def _int_array(values: Iterable[int]) -> str:
    return "{" + ",".join(map(str, map(int, values))) + "}"


def _bytea_array(values: Iterable[bytes]) -> str:
    # Each element is bytea's hex input, its backslash escaped for the array syntax.
    return "{" + ",".join("\\\\x" + value.hex() for value in values) + "}"


def _fetch(conn: Connection, sql: str, parameters: Sequence[Any]) -> list[tuple[Any, ...]]:
    """Rows of ``sql`` (written with ``%s`` marks, turned into ``?`` for SQLite) on this
    transaction's connection, as the driver returns them."""
    raw = conn.connection.driver_connection
    assert raw is not None
    cursor = raw.cursor()
    try:
        cursor.execute(sql if is_postgres(conn) else sql.replace("%s", "?"), parameters)
        return list(cursor.fetchall())
    finally:
        cursor.close()


def _day(value: Any) -> date:
    return value if isinstance(value, date) else date.fromisoformat(value)


_IDS_PER_QUERY = 900  # values per IN list: SQLite binds at most 32,766 parameters


def lines_of(
    conn: Connection, insurer_id: int, claim_ids: Sequence[int]
) -> dict[int, list[StoredLine]]:
    """Lines of some claims of one insurer, in line order, by claim id."""
    found: dict[int, list[StoredLine]] = {claim_id: [] for claim_id in claim_ids}
    for start in range(0, len(claim_ids), _IDS_PER_QUERY):
        among, values = _ids_in(conn, "claim_id", claim_ids[start : start + _IDS_PER_QUERY])
        rows = _fetch(
            conn,
            f"SELECT {_LINE_SELECT} FROM claim_lines WHERE insurer_id = %s AND {among}"  # noqa: S608
            " ORDER BY claim_id, line_no",
            (insurer_id, *values),
        )
        for row in rows:
            found[row[0]].append(_stored_line(row))
    return found


def withdraw(
    conn: Connection, claim: ClaimRow, status: ClaimStatus, reason_code: str, at: datetime
) -> None:
    """Mark a claim superseded or cancelled: its lines cancelled, its counters given back."""
    conn.execute(
        update(claims)
        .where(claims.c.insurer_id == claim.insurer_id, claims.c.id == claim.id)
        .values(status=status.value, reason_code=reason_code)
    )
    conn.execute(
        update(claim_lines)
        .where(claim_lines.c.insurer_id == claim.insurer_id, claim_lines.c.claim_id == claim.id)
        .values(status=LineStatus.CANCELLED.value, is_counted=False, decided_at=at)
    )
    conn.execute(
        delete(benefit_counters).where(
            benefit_counters.c.insurer_id == claim.insurer_id,
            benefit_counters.c.claim_id == claim.id,
        )
    )


# --- adjudication: claiming work and reading facts in bulk -----------------------------


def claim_batch(
    conn: Connection,
    limit: int,
    *,
    insurer_id: int | None = None,
    after: tuple[int, int] | None = None,
) -> list[ClaimRow]:
    """Up to ``limit`` received claims in (insurer, id) order, locked for this transaction;
    with ``after`` (an (insurer, id) key), only claims past it.

    On PostgreSQL the rows are locked ``FOR UPDATE SKIP LOCKED``: a concurrent worker gets
    the next claims instead of waiting, and never the same ones.
    """
    rows = _fetch(conn, *queue_query(conn, limit, insurer_id, after))
    # What SQLAlchemy would make of each column (SQLite: text dates and times, 0/1 flags).
    processors = [
        (n, p)
        for n, p in enumerate(
            c.type.dialect_impl(conn.dialect).result_processor(conn.dialect, None)
            for c in _CLAIM_COLUMNS
        )
        if p is not None
    ]
    if processors:
        processed = []
        for row in rows:
            values = list(row)
            for n, process in processors:
                values[n] = process(values[n])
            processed.append(values)
        return [_claim(values) for values in processed]
    return [_claim(row) for row in rows]


def queue_query(
    conn: Connection,
    limit: int,
    insurer_id: int | None = None,
    after: tuple[int, int] | None = None,
) -> tuple[str, tuple[Any, ...]]:
    """The statement (``%s`` marks) and parameters that take the next received claims.

    Served by the partial index ``ix_claims_queue`` in order, without a sort (checked
    on both engines by ``tests/integration/test_adjudication.py``). ``after`` starts the
    index scan past the claims a run has taken already: on PostgreSQL a judged claim
    leaves a dead entry in the index until the table is vacuumed, and a scan from the
    start steps over all of them (measured with a full index: 19 ms per batch at the start
    of a 400,000-line run, 49 ms 150 batches later).
    """
    conditions = [QUEUE_CONDITION]  # the partial index's own condition, as written there
    parameters: list[Any] = []
    if insurer_id is not None:
        conditions.append("insurer_id = %s")
        parameters.append(insurer_id)
        if after is not None:
            if after[0] != insurer_id:
                raise ValueError("a run over one insurer's claims goes on after one of them")
            # Not the row comparison: with the insurer fixed SQLite would sort by id.
            conditions.append("id > %s")
            parameters.append(after[1])
    elif after is not None:
        conditions.append("(insurer_id, id) > (%s, %s)")
        parameters.extend(after)
    sql = (
        f"SELECT {_CLAIM_SELECT} FROM claims WHERE {' AND '.join(conditions)}"  # noqa: S608
        " ORDER BY insurer_id, id LIMIT %s"
    )
    if is_postgres(conn):
        sql += " FOR UPDATE SKIP LOCKED"
    parameters.append(limit)
    return sql, tuple(parameters)


def lock_beneficiaries(conn: Connection, insurer_id: int, beneficiary_ids: Iterable[int]) -> None:
    """Hold each beneficiary's advisory lock until commit (PostgreSQL), taken in key order
    in one statement, so that two workers cannot wait on each other in a cycle."""
    if not is_postgres(conn):
        return
    keys = sorted({zlib.crc32(f"{insurer_id}:{b}".encode()) & 0x7FFFFFFF for b in beneficiary_ids})
    conn.exec_driver_sql(
        "SELECT count(pg_advisory_xact_lock(%s, k))"
        " FROM (SELECT unnest(%s::int[]) AS k ORDER BY 1) AS ordered",
        (_BENEFICIARY_LOCK, keys),
    )


@dataclass(frozen=True, slots=True)
class BeneficiaryFacts:
    contract_code: str
    coverage_start: date
    coverage_end: date | None
    css: bool
    birth_year: int


def beneficiary_facts(
    conn: Connection, insurer_id: int, ids: Iterable[int]
) -> dict[int, BeneficiaryFacts]:
    wanted = sorted(set(ids))
    found: dict[int, BeneficiaryFacts] = {}
    for start in range(0, len(wanted), _IDS_PER_QUERY):
        among, values = _ids_in(conn, "id", wanted[start : start + _IDS_PER_QUERY])
        rows = _fetch(
            conn,
            "SELECT id, contract_code, coverage_start, coverage_end, css, birth_year"  # noqa: S608
            f" FROM beneficiaries WHERE insurer_id = %s AND {among}",
            (insurer_id, *values),
        )
        for beneficiary_id, contract, first, last, css, birth_year in rows:
            found[int(beneficiary_id)] = BeneficiaryFacts(
                contract,
                _day(first),
                None if last is None else _day(last),
                bool(css),
                int(birth_year),
            )
    return found


def provider_optam(conn: Connection, ids: Iterable[int]) -> dict[int, bool]:
    wanted = sorted(set(ids))
    rows = conn.execute(select(providers.c.id, providers.c.optam).where(providers.c.id.in_(wanted)))
    return {int(r.id): bool(r.optam) for r in rows}


def convention_periods(
    conn: Connection, insurer_id: int, provider_ids: Iterable[int]
) -> dict[int, dict[str, tuple[date, date | None]]]:
    """Per provider, per domain: the convention's first and last day with this insurer."""
    wanted = sorted(set(provider_ids))
    found: dict[int, dict[str, tuple[date, date | None]]] = {p: {} for p in wanted}
    rows = conn.execute(
        select(
            conventions.c.provider_id,
            conventions.c.domain,
            conventions.c.valid_from,
            conventions.c.valid_to,
        ).where(conventions.c.insurer_id == insurer_id, conventions.c.provider_id.in_(wanted))
    )
    for r in rows:
        found[int(r.provider_id)][r.domain] = (r.valid_from, r.valid_to)
    return found


def counter_history(
    conn: Connection, insurer_id: int, beneficiary_ids: Iterable[int]
) -> dict[int, list[CounterUse]]:
    wanted = sorted(set(beneficiary_ids))
    found: dict[int, list[CounterUse]] = {b: [] for b in wanted}
    for start in range(0, len(wanted), _IDS_PER_QUERY):
        among, values = _ids_in(conn, "beneficiary_id", wanted[start : start + _IDS_PER_QUERY])
        rows = _fetch(
            conn,
            "SELECT beneficiary_id, counter_key, care_date, used_cents, used_units"  # noqa: S608
            f" FROM benefit_counters WHERE insurer_id = %s AND {among}"
            " ORDER BY beneficiary_id, care_date, counter_key, claim_id",
            (insurer_id, *values),
        )
        for beneficiary_id, key, care_date, cents, units in rows:
            found[beneficiary_id].append(CounterUse(key, _day(care_date), int(cents), int(units)))
    return found


def refresh_statistics(conn: Connection) -> bool:
    """After a bulk arrival of claims, refresh PostgreSQL's planner statistics.

    A table loaded in bulk and never analysed looks empty to the planner, which then
    scans it whole for lookups an index would answer (measured: paid-key lookups of a
    40,000-line backlog went from 15 ms to under 1 ms per batch). SQLite's planner uses
    the indexes without statistics: nothing to do there. Returns whether it ran.
    """
    if conn.dialect.name != "postgresql":
        return False
    conn.exec_driver_sql("ANALYZE claims, claim_lines, benefit_counters")
    return True


def _lines_by_near_key(
    conn: Connection, insurer_id: int, wanted: Sequence[bytes]
) -> Iterator[tuple[Any, ...]]:
    """(claim id, near key, duplicate key, status) of the insurer's lines with these near
    keys. Only the near-key index can serve it (the status is for the caller to check): a
    plan through the (insurer, status) index would read every paid line."""
    if not wanted:
        return
    if is_postgres(conn):
        # One array parameter: the same statement text for every batch (parsed and
        # planned once per connection), where an IN list of N keys is a new one.
        yield from _fetch(conn, _PAID_BY_NEAR_PG, (insurer_id, _bytea_array(wanted)))
        return
    for start in range(0, len(wanted), _IDS_PER_QUERY):
        chunk = wanted[start : start + _IDS_PER_QUERY]
        yield from _fetch(
            conn,
            "SELECT claim_id, near_key, duplicate_key, status FROM claim_lines"  # noqa: S608
            f" WHERE insurer_id = %s AND near_key IN ({', '.join('?' * len(chunk))})",
            (insurer_id, *chunk),
        )


def paid_keys(
    conn: Connection, insurer_id: int, near_keys: Iterable[bytes]
) -> tuple[set[bytes], set[bytes]]:
    """Duplicate and near keys of paid lines that share a near key with ``near_keys``.

    A duplicate (same person, act, day and provider) always shares its near key (same
    person, act and day), so one indexed lookup by near key finds both kinds, and the
    cost follows the batch, not how many lines were paid before it. The lines are read
    first and their claims checked second, so no planner (PostgreSQL with statistics
    older than a bulk load, say) can start from every adjudicated claim instead.
    """
    found = [
        (int(claim_id), bytes(near_value), None if dup is None else bytes(dup))
        for claim_id, near_value, dup, status in _lines_by_near_key(
            conn, insurer_id, sorted(set(near_keys))
        )
        if status in _PAYABLE
    ]
    exact: set[bytes] = set()
    near: set[bytes] = set()
    if not found:
        return exact, near
    candidates = sorted({claim_id for claim_id, _, _ in found})
    adjudicated: set[int] = set()
    for start in range(0, len(candidates), _IDS_PER_QUERY):
        among, values = _ids_in(conn, "id", candidates[start : start + _IDS_PER_QUERY])
        adjudicated.update(
            int(row[0])
            for row in _fetch(
                conn,
                f"SELECT id FROM claims WHERE insurer_id = %s AND {among}"  # noqa: S608
                " AND status = %s",
                (insurer_id, *values, ClaimStatus.ADJUDICATED.value),
            )
        )
    for claim_id, near_value, duplicate in found:
        if claim_id in adjudicated:
            near.add(near_value)
            if duplicate is not None:
                exact.add(duplicate)
    return exact, near


_PAID_BY_NEAR_PG = (
    "SELECT claim_id, near_key, duplicate_key, status FROM claim_lines"
    " WHERE insurer_id = %s AND near_key = ANY(%s::bytea[])"
)


def agreements(conn: Connection, numbers: Iterable[str]) -> dict[str, Agreement]:
    """Prior authorisations by number, with whether an adjudicated claim already used them."""
    wanted = sorted(set(numbers))
    if not wanted:
        return {}
    used = {
        str(n)
        for n in conn.execute(
            select(claims.c.agreement_number).where(
                claims.c.agreement_number.in_(wanted),
                claims.c.status == ClaimStatus.ADJUDICATED.value,
                claims.c.amc_accepted_cents > 0,
            )
        ).scalars()
    }
    rows = conn.execute(
        select(prior_authorisations).where(prior_authorisations.c.agreement_number.in_(wanted))
    )
    found: dict[str, Agreement] = {}
    for r in rows:
        guaranteed: dict[str, int] = {}
        for line in json.loads(r.lines):
            family = str(line["family"])
            guaranteed[family] = guaranteed.get(family, 0) + int(line["guaranteed_cents"])
        found[r.agreement_number] = Agreement(
            number=r.agreement_number,
            status=r.status,
            provider_id=int(r.provider_id),
            beneficiary_id=int(r.beneficiary_id),
            valid_until=r.valid_until,
            guaranteed_by_family=guaranteed,
            used_by_other_claim=r.agreement_number in used,
        )
    return found


# --- adjudication: writing decisions ---------------------------------------------------


class LineOutcome(NamedTuple):
    """A line's decision, in the column order of the PostgreSQL staging table (a tuple:
    one is made per line judged, and it is copied as it is)."""

    insurer_id: int
    claim_id: int
    line_no: int
    status: str
    accepted_cents: int
    computed_cents: int | None
    reason_code: str | None
    rules_json: str  # the rules applied, as :func:`rules_json` writes them
    counted: bool


rules_json = json.JSONEncoder(ensure_ascii=False).encode  # one encoder, not one per line


# Decisions are written through the driver's own executemany (SQLite) or COPY
# (PostgreSQL): SQLAlchemy's per-row parameter processing would cost more than the
# database's work here.
_LINE_UPDATE = (
    "UPDATE claim_lines SET status = ?, amc_accepted_cents = ?, amc_computed_cents = ?,"
    " reason_code = ?, rules = ?, decided_at = ?, is_counted = ?"
    " WHERE insurer_id = ? AND claim_id = ? AND line_no = ?"
)
_ENTRY_INSERT = (
    "INSERT INTO ledger_entries (posting_id, line_no, account, debit_cents, credit_cents)"
    " VALUES (?, ?, ?, ?, ?)"
)
_CLAIM_UPDATE = (
    "UPDATE claims SET status = ?, adjudicated_at = ?, amc_accepted_cents = ?"
    " WHERE insurer_id = ? AND id = ?"
)


# On PostgreSQL the rows are copied (binary COPY, encoded by the driver's C code) into
# transaction-scoped staging tables, and each write is then one statement from them: the
# array parameters this replaced were encoded element by element in Python.
_STAGES_PG: Final = {
    "adjudication_lines_stage": "insurer_id int, claim_id bigint, line_no smallint,"
    " status text, accepted bigint, computed bigint, reason text, rules text, counted bool",
    "adjudication_claims_stage": "insurer_id int, id bigint, total bigint",
    "ledger_postings_stage": "n int, journal text, reference text, value_date date,"
    " memo text, total bigint",
}
_LINES_STAGE_COPY = (
    "COPY adjudication_lines_stage (insurer_id, claim_id, line_no, status, accepted, computed,"
    " reason, rules, counted) FROM STDIN (FORMAT BINARY)"
)
_LINES_STAGE_TYPES: Final = [
    "int4", "int8", "int2", "text", "int8", "int8", "text", "text", "bool",
]  # fmt: skip
_LINE_UPDATE_PG = (
    "UPDATE claim_lines AS l SET status = v.status, amc_accepted_cents = v.accepted,"
    " amc_computed_cents = v.computed, reason_code = v.reason, rules = v.rules,"
    " decided_at = %s, is_counted = v.counted FROM adjudication_lines_stage AS v"
    " WHERE l.insurer_id = v.insurer_id AND l.claim_id = v.claim_id AND l.line_no = v.line_no"
    " AND l.claim_id BETWEEN %s AND %s"
)
_CLAIMS_STAGE_COPY = (
    "COPY adjudication_claims_stage (insurer_id, id, total) FROM STDIN (FORMAT BINARY)"
)
_CLAIM_UPDATE_PG = (
    "UPDATE claims AS c SET status = %s, adjudicated_at = %s, amc_accepted_cents = v.total"
    " FROM adjudication_claims_stage AS v WHERE c.insurer_id = v.insurer_id AND c.id = v.id"
    " AND c.id BETWEEN %s AND %s"
)
# The staging table has no statistics: without the bounds of the batch's claim ids, the
# planner hashes the whole target table for each batch (measured: a sequential scan of
# claim_lines per batch, growing with the table); with them it reads the batch's range
# of the primary key.
_COUNTERS_COPY = (
    "COPY benefit_counters (insurer_id, beneficiary_id, counter_key, care_date, claim_id,"
    " used_cents, used_units) FROM STDIN (FORMAT BINARY)"
)
_COUNTERS_TYPES: Final = ["int4", "int8", "text", "date", "int8", "int8", "int4"]
_COUNTERS_INSERT = (
    "INSERT INTO benefit_counters (insurer_id, beneficiary_id, counter_key, care_date,"
    " claim_id, used_cents, used_units) VALUES (?, ?, ?, ?, ?, ?, ?)"
)
_ENTRIES_COPY = (
    "COPY ledger_entries (posting_id, line_no, account, debit_cents, credit_cents)"
    " FROM STDIN (FORMAT BINARY)"
)
_ENTRIES_TYPES: Final = ["int8", "int2", "text", "int8", "int8"]


def _bound(conn: Connection, column: Any, value: Any) -> Any:
    """``value`` as the column's type hands it to the driver (dates on SQLite are text)."""
    process = column.type.bind_processor(conn.dialect)
    if process is not None:
        return process(value)
    if isinstance(value, datetime) and not is_postgres(conn):
        # What sqlite3's default adapter would store, made once instead of once per row.
        return value.isoformat(" ")
    return value


def _stage(conn: Connection, name: str) -> None:
    """Make this session's staging table ``name`` exist and be empty (PostgreSQL).

    It lives as long as the database session and is emptied at each commit; emptied here
    too, as one transaction may stage several times (one batch, several insurers).
    """
    columns = _STAGES_PG[name]  # fixed names and columns, not input
    create = f"CREATE TEMP TABLE IF NOT EXISTS {name} ({columns}) ON COMMIT DELETE ROWS"
    conn.exec_driver_sql(f"{create}; DELETE FROM {name}")  # noqa: S608


def _copy_in(
    conn: Connection, statement: str, types: Sequence[str], rows: Iterable[tuple[Any, ...]]
) -> None:
    """``COPY … FROM STDIN (FORMAT BINARY)`` of ``rows`` on this transaction (PostgreSQL)."""
    raw = conn.connection.driver_connection
    assert raw is not None
    with raw.cursor() as cursor, cursor.copy(statement) as copy:
        copy.set_types(types)
        for row in rows:
            copy.write_row(row)


def record_decisions(
    conn: Connection,
    lines: Sequence[LineOutcome],
    totals: Mapping[tuple[int, int], int],
    uses: Sequence[tuple[int, int, int, CounterUse]],
    at: datetime,
) -> None:
    """Write line decisions, claim totals and counter uses ``(insurer, beneficiary, claim,
    use)``: one ``executemany`` each on SQLite, one COPY and one statement on PostgreSQL."""
    adjudicated = ClaimStatus.ADJUDICATED.value
    merged = _merge_uses(uses)
    if is_postgres(conn):
        if lines:
            _stage(conn, "adjudication_lines_stage")
            _copy_in(conn, _LINES_STAGE_COPY, _LINES_STAGE_TYPES, lines)
            ids = [o.claim_id for o in lines]
            conn.exec_driver_sql(_LINE_UPDATE_PG, (at, min(ids), max(ids)))
        if totals:
            _stage(conn, "adjudication_claims_stage")
            _copy_in(
                conn,
                _CLAIMS_STAGE_COPY,
                ["int4", "int8", "int8"],
                ((i, c, total) for (i, c), total in totals.items()),
            )
            ids = [c for _, c in totals]
            conn.exec_driver_sql(_CLAIM_UPDATE_PG, (adjudicated, at, min(ids), max(ids)))
        if merged:
            _copy_in(
                conn,
                _COUNTERS_COPY,
                _COUNTERS_TYPES,
                (
                    (i, b, use.key, use.care_date, c, use.cents, use.units)
                    for i, b, c, use in merged
                ),
            )
        return
    decided_at = _bound(conn, claim_lines.c.decided_at, at)
    if lines:
        conn.exec_driver_sql(
            _LINE_UPDATE,
            [(o[3], o[4], o[5], o[6], o[7], decided_at, o[8], o[0], o[1], o[2]) for o in lines],
        )
    if totals:
        conn.exec_driver_sql(
            _CLAIM_UPDATE,
            [(adjudicated, decided_at, total, i, c) for (i, c), total in totals.items()],
        )
    if merged:
        day = benefit_counters.c.care_date.type.bind_processor(conn.dialect)
        conn.exec_driver_sql(
            _COUNTERS_INSERT,
            [
                (
                    i,
                    b,
                    use.key,
                    use.care_date if day is None else day(use.care_date),
                    c,
                    use.cents,
                    use.units,
                )
                for i, b, c, use in merged
            ],
        )


def _merge_uses(
    uses: Sequence[tuple[int, int, int, CounterUse]],
) -> list[tuple[int, int, int, CounterUse]]:
    """One row per (claim, counter, care date): the primary key of ``benefit_counters``."""
    merged: dict[tuple[int, int, int, str, date], CounterUse] = {}
    for insurer_id, beneficiary_id, claim_id, use in uses:
        key = (insurer_id, beneficiary_id, claim_id, use.key, use.care_date)
        before = merged.get(key)
        merged[key] = (
            use
            if before is None
            else CounterUse(
                use.key, use.care_date, before.cents + use.cents, before.units + use.units
            )
        )
    return [(k[0], k[1], k[2], use) for k, use in merged.items()]


def count_received(conn: Connection, insurer_id: int | None = None) -> int:
    """Claims waiting for adjudication, counted from the queue index alone."""
    query = select(func.count()).select_from(claims).where(text(QUEUE_CONDITION))
    if insurer_id is not None:
        query = query.where(claims.c.insurer_id == insurer_id)
    return int(conn.execute(query).scalar_one())


_POSTINGS_STAGE_COPY = (
    "COPY ledger_postings_stage (n, journal, reference, value_date, memo, total)"
    " FROM STDIN (FORMAT BINARY)"
)
_POSTINGS_STAGE_TYPES: Final = ["int4", "text", "text", "date", "text", "int8"]
# Rows that conflict with a posting already made are skipped, not returned: the caller
# compares them with what exists. ``n`` maps the ids back to the postings.
_POSTING_INSERT_PG = (
    "INSERT INTO ledger_postings"
    " (insurer_id, journal, reference, value_date, posted_at, memo, total_cents)"
    " SELECT %s, journal, reference, value_date, %s, memo, total"
    " FROM ledger_postings_stage ORDER BY n"
    " ON CONFLICT (journal, reference) DO NOTHING RETURNING id, journal, reference"
)
_POSTING_COLUMNS = "insurer_id, journal, reference, value_date, posted_at, memo, total_cents"
_POSTINGS_PER_STATEMENT = 1000  # 7 parameters each: far below SQLite's 32,766


def _insert_postings(
    conn: Connection, postings: Sequence[Posting], at: datetime, insurer_id: int
) -> dict[tuple[str, str], int]:
    """Insert the posting headers not made yet, in one statement (PostgreSQL) or one per
    thousand (SQLite); the ids of those inserted, by (journal, reference)."""
    if is_postgres(conn):
        _stage(conn, "ledger_postings_stage")
        _copy_in(
            conn,
            _POSTINGS_STAGE_COPY,
            _POSTINGS_STAGE_TYPES,
            (
                (n, p.journal, p.reference, p.value_date, p.memo, p.total_debit)
                for n, p in enumerate(postings)
            ),
        )
        made = conn.exec_driver_sql(_POSTING_INSERT_PG, (insurer_id, at)).all()
        return {(str(r[1]), str(r[2])): int(r[0]) for r in made}
    day = ledger_postings.c.value_date.type.bind_processor(conn.dialect)
    posted_at = _bound(conn, ledger_postings.c.posted_at, at)
    inserted: dict[tuple[str, str], int] = {}
    for start in range(0, len(postings), _POSTINGS_PER_STATEMENT):
        chunk = postings[start : start + _POSTINGS_PER_STATEMENT]
        values = ", ".join("(?, ?, ?, ?, ?, ?, ?)" for _ in chunk)
        statement = (
            f"INSERT INTO ledger_postings ({_POSTING_COLUMNS}) VALUES {values}"  # noqa: S608
            " ON CONFLICT (journal, reference) DO NOTHING RETURNING id, journal, reference"
        )
        parameters = tuple(
            value
            for p in chunk
            for value in (
                insurer_id,
                p.journal,
                p.reference,
                p.value_date if day is None else day(p.value_date),
                posted_at,
                p.memo,
                p.total_debit,
            )
        )
        for r in conn.exec_driver_sql(statement, parameters).all():
            inserted[(str(r[1]), str(r[2]))] = int(r[0])
    return inserted


def post_bulk(
    conn: Connection, postings: Sequence[Posting], *, at: datetime, insurer_id: int
) -> int:
    """:func:`tierspayant.store.ledger.post` for many postings at once; returns how many
    were new.

    Same rules: idempotent by ``(journal, reference)``, and a reference already posted
    with other entries is ``ledger.reference_reused``. The headers are inserted skipping
    those that exist (``ON CONFLICT DO NOTHING``), so no query looks for them first; only
    the skipped ones, if any, are compared with what is stored.
    """
    if not postings:
        return 0
    seen: set[tuple[str, str]] = set()
    for p in postings:
        key = (p.journal, p.reference)
        if key in seen:
            raise LedgerError(
                "ledger.reference_reused", f"posting {p.journal}/{p.reference} given twice"
            )
        seen.add(key)
    inserted = _insert_postings(conn, postings, at, insurer_id)
    for p in postings:
        if (p.journal, p.reference) not in inserted:
            posted = conn.execute(
                select(ledger_postings.c.id).where(
                    ledger_postings.c.journal == p.journal,
                    ledger_postings.c.reference == p.reference,
                )
            ).scalar_one()
            if ledger.entries_of(conn, int(posted)) != p.entries:
                raise LedgerError(
                    "ledger.reference_reused",
                    f"posting {p.journal}/{p.reference} exists with other entries",
                )
    entries = [
        (inserted[(p.journal, p.reference)], n, e.account, e.debit, e.credit)
        for p in postings
        if (p.journal, p.reference) in inserted
        for n, e in enumerate(p.entries, start=1)
    ]
    if entries:
        if is_postgres(conn):
            _copy_in(conn, _ENTRIES_COPY, _ENTRIES_TYPES, entries)
        else:
            conn.exec_driver_sql(_ENTRY_INSERT, entries)
    return len(inserted)
