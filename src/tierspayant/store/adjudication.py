"""Adjudication in the database: the queue of received claims, the facts a batch needs
(beneficiaries, conventions, counters, paid keys, prior authorisations), and the
decisions written back.

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

from sqlalchemy import Connection, func, select, text

from tierspayant.domain.adjudication import Agreement
from tierspayant.domain.care import CareDomain
from tierspayant.domain.claims import PAYABLE_LINE_STATES, ClaimStatus
from tierspayant.domain.eligibility import Coverage
from tierspayant.domain.facts import ConventionPeriod, CounterUse, PricingFacts
from tierspayant.domain.guarantees import Contract
from tierspayant.store.bulk import (
    IDS_PER_QUERY,
    as_date,
    bound,
    bytea_array,
    copy_in,
    fetch,
    ids_in,
    is_postgres,
    stage,
)
from tierspayant.store.claims import CLAIM_COLUMNS, CLAIM_SELECT, ClaimRow, claim_row
from tierspayant.store.claims_tables import (
    QUEUE_CONDITION,
    benefit_counters,
    claim_lines,
    claims,
    prior_authorisations,
)
from tierspayant.store.tables import conventions, providers

_BENEFICIARY_LOCK: Final = 7_272_005  # advisory lock class: one beneficiary's counters
_PAYABLE = tuple(s.value for s in PAYABLE_LINE_STATES)


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
    rows = fetch(conn, *queue_query(conn, limit, insurer_id, after))
    # What SQLAlchemy would make of each column (SQLite: text dates and times, 0/1 flags).
    processors = [
        (n, p)
        for n, p in enumerate(
            c.type.dialect_impl(conn.dialect).result_processor(conn.dialect, None)
            for c in CLAIM_COLUMNS
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
        return [claim_row(values) for values in processed]
    return [claim_row(row) for row in rows]


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
        f"SELECT {CLAIM_SELECT} FROM claims WHERE {' AND '.join(conditions)}"  # noqa: S608
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
    keys = sorted({_lock_key(insurer_id, b) for b in beneficiary_ids})
    conn.exec_driver_sql(
        "SELECT count(pg_advisory_xact_lock(%s, k))"
        " FROM (SELECT unnest(%s::int[]) AS k ORDER BY 1) AS ordered",
        (_BENEFICIARY_LOCK, keys),
    )


def _lock_key(insurer_id: int, beneficiary_id: int) -> int:
    return zlib.crc32(f"{insurer_id}:{beneficiary_id}".encode()) & 0x7FFFFFFF


# The people of a batch with a received claim that is not in the batch and comes before
# their last one in it: before their first (held by another worker, taken and not yet
# committed, or left behind by an earlier batch), or between two of theirs in the batch
# (another worker took it while this batch, taking the rows no one holds, stepped over
# it). Such a person's claims wait: judging theirs now would judge a later claim first.
# The batch's own claims are still received, so "more received claims up to their last
# one than the batch holds" says it. Served by ``ix_claims_beneficiary``.
_BEHIND_PG: Final = (
    "SELECT p.b FROM unnest(%s::bigint[], %s::bigint[], %s::int[]) AS p(b, last, n)"  # noqa: S608
    " WHERE (SELECT count(*) FROM claims AS c WHERE c.insurer_id = %s"
    f" AND c.beneficiary_id = p.b AND c.id <= p.last AND c.{QUEUE_CONDITION}) > p.n"
)
# Each person's advisory lock tried without waiting: the people whose lock is held here.
_TRY_LOCKS_PG: Final = (
    "SELECT p.b FROM unnest(%s::bigint[], %s::int[]) AS p(b, k)"
    " WHERE pg_try_advisory_xact_lock(%s, p.k)"
)


def hold_beneficiaries(
    conn: Connection, insurer_id: int, batch_claims: Mapping[int, Sequence[int]]
) -> set[int]:
    """Of the people of a batch (beneficiary id → ids of their claims in it, in order),
    those whose claims the batch may judge now; the others' claims wait for a later batch.

    On PostgreSQL a person is left for later when one of their received claims outside
    the batch comes before their last one in it (another worker holds it, or an earlier
    batch left it), so that a person's claims are always judged in id order (ceilings
    and duplicates depend on it), or when another transaction holds their advisory lock
    (a counter reserving their ceilings, say): the lock is tried, not waited for, so two
    workers never queue behind each other for the people they share. The locks obtained
    are held until commit. SQLite has one writer: everyone is held.
    """
    if not is_postgres(conn):
        return set(batch_claims)
    people = sorted(batch_claims)
    if not people:
        return set()
    behind = {
        int(row[0])
        for row in fetch(
            conn,
            _BEHIND_PG,
            (
                people,
                [max(batch_claims[b]) for b in people],
                [len(batch_claims[b]) for b in people],
                insurer_id,
            ),
        )
    }
    free = [b for b in people if b not in behind]
    if not free:
        return set()
    return {
        int(row[0])
        for row in fetch(
            conn,
            _TRY_LOCKS_PG,
            (free, [_lock_key(insurer_id, b) for b in free], _BENEFICIARY_LOCK),
        )
    }


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
    for start in range(0, len(wanted), IDS_PER_QUERY):
        among, values = ids_in(conn, "id", wanted[start : start + IDS_PER_QUERY])
        rows = fetch(
            conn,
            "SELECT id, contract_code, coverage_start, coverage_end, css, birth_year"  # noqa: S608
            f" FROM beneficiaries WHERE insurer_id = %s AND {among}",
            (insurer_id, *values),
        )
        for beneficiary_id, contract, first, last, css, birth_year in rows:
            found[int(beneficiary_id)] = BeneficiaryFacts(
                contract,
                as_date(first),
                None if last is None else as_date(last),
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
    for start in range(0, len(wanted), IDS_PER_QUERY):
        among, values = ids_in(conn, "beneficiary_id", wanted[start : start + IDS_PER_QUERY])
        rows = fetch(
            conn,
            "SELECT beneficiary_id, counter_key, care_date, used_cents, used_units"  # noqa: S608
            f" FROM benefit_counters WHERE insurer_id = %s AND {among}"
            " ORDER BY beneficiary_id, care_date, counter_key, claim_id",
            (insurer_id, *values),
        )
        for beneficiary_id, key, care_date, cents, units in rows:
            found[beneficiary_id].append(
                CounterUse(key, as_date(care_date), int(cents), int(units))
            )
    return found


def with_reservations(
    conn: Connection, insurer_id: int, beneficiary_ids: Iterable[int]
) -> set[int]:
    """Those of the beneficiaries who have any engagement on amounts with the insurer, open
    or not: a batch reads the open ones of these people only, and most batches have none
    (one indexed probe through the driver, where the full read builds an ``IN`` list of a
    thousand parameters through SQLAlchemy for every batch: measured 6 % of a run)."""
    wanted = sorted(set(beneficiary_ids))
    found: set[int] = set()
    for start in range(0, len(wanted), IDS_PER_QUERY):
        among, values = ids_in(conn, "beneficiary_id", wanted[start : start + IDS_PER_QUERY])
        found.update(
            int(row[0])
            for row in fetch(
                conn,
                "SELECT DISTINCT beneficiary_id FROM amount_reservations"  # noqa: S608
                f" WHERE insurer_id = %s AND {among}",
                (insurer_id, *values),
            )
        )
    return found


@dataclass(frozen=True, slots=True)
class ProviderTerms:
    """A provider's OPTAM option and its conventions with one insurer."""

    optam: bool
    conventions: Mapping[CareDomain, ConventionPeriod]


def provider_terms(conn: Connection, insurer_id: int, provider_id: int) -> ProviderTerms:
    """:func:`provider_optam` and :func:`convention_periods` for one provider (the
    counter's read; adjudication reads the same for a whole batch)."""
    optam = provider_optam(conn, [provider_id]).get(provider_id, False)
    periods = convention_periods(conn, insurer_id, [provider_id]).get(provider_id, {})
    return ProviderTerms(optam, {CareDomain(d): period for d, period in periods.items()})


def pricing_facts(
    conn: Connection,
    insurer_id: int,
    beneficiary_id: int,
    *,
    contract: Contract,
    coverage: Coverage,
    age: int,
    css: bool,
    provider: ProviderTerms,
    reserved: tuple[CounterUse, ...] = (),
) -> PricingFacts:
    """The facts one person's pricing reads at the counter: the same type, and the same
    counter history (:func:`counter_history`), as adjudication's batch reads give it."""
    history = counter_history(conn, insurer_id, [beneficiary_id]).get(beneficiary_id, [])
    return PricingFacts(
        contract=contract,
        coverage=coverage,
        age=age,
        css=css,
        optam=provider.optam,
        conventions=provider.conventions,
        history=tuple(history),
        reserved=reserved,
    )


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
        yield from fetch(conn, _PAID_BY_NEAR_PG, (insurer_id, bytea_array(wanted)))
        return
    for start in range(0, len(wanted), IDS_PER_QUERY):
        chunk = wanted[start : start + IDS_PER_QUERY]
        yield from fetch(
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
    for start in range(0, len(candidates), IDS_PER_QUERY):
        among, values = ids_in(conn, "id", candidates[start : start + IDS_PER_QUERY])
        adjudicated.update(
            int(row[0])
            for row in fetch(
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
_CLAIM_UPDATE = (
    "UPDATE claims SET status = ?, adjudicated_at = ?, amc_accepted_cents = ?"
    " WHERE insurer_id = ? AND id = ?"
)


# On PostgreSQL the rows are copied (binary COPY, encoded by the driver's C code) into
# transaction-scoped staging tables, and each write is then one statement from them: the
# array parameters this replaced were encoded element by element in Python.
_LINES_STAGE: Final = (
    "adjudication_lines_stage",
    "insurer_id int, claim_id bigint, line_no smallint,"
    " status text, accepted bigint, computed bigint, reason text, rules text, counted bool",
)
_CLAIMS_STAGE: Final = ("adjudication_claims_stage", "insurer_id int, id bigint, total bigint")
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
    " AND l.insurer_id = %s AND l.claim_id BETWEEN %s AND %s"
)
_CLAIMS_STAGE_COPY = (
    "COPY adjudication_claims_stage (insurer_id, id, total) FROM STDIN (FORMAT BINARY)"
)
_CLAIM_UPDATE_PG = (
    "UPDATE claims AS c SET status = %s, adjudicated_at = %s, amc_accepted_cents = v.total"
    " FROM adjudication_claims_stage AS v WHERE c.insurer_id = v.insurer_id AND c.id = v.id"
    " AND c.insurer_id = %s AND c.id BETWEEN %s AND %s"
)
# The staging table has no statistics: without the bounds of the batch's claim ids, the
# planner hashes the whole target table for each batch (measured: a sequential scan of
# claim_lines per batch, growing with the table); with them it reads the batch's range
# of the primary key. The insurer, as a constant, prunes the tables' partitions (by
# insurer) to one: the join key alone left the planner to visit every partition.
_COUNTERS_COPY = (
    "COPY benefit_counters (insurer_id, beneficiary_id, counter_key, care_date, claim_id,"
    " used_cents, used_units) FROM STDIN (FORMAT BINARY)"
)
_COUNTERS_TYPES: Final = ["int4", "int8", "text", "date", "int8", "int8", "int4"]
_COUNTERS_INSERT = (
    "INSERT INTO benefit_counters (insurer_id, beneficiary_id, counter_key, care_date,"
    " claim_id, used_cents, used_units) VALUES (?, ?, ?, ?, ?, ?, ?)"
)


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
            stage(conn, *_LINES_STAGE)
            copy_in(conn, _LINES_STAGE_COPY, _LINES_STAGE_TYPES, lines)
            ids = [o.claim_id for o in lines]
            conn.exec_driver_sql(_LINE_UPDATE_PG, (at, _one_insurer(lines), min(ids), max(ids)))
        if totals:
            stage(conn, *_CLAIMS_STAGE)
            copy_in(
                conn,
                _CLAIMS_STAGE_COPY,
                ["int4", "int8", "int8"],
                ((i, c, total) for (i, c), total in totals.items()),
            )
            ids = [c for _, c in totals]
            conn.exec_driver_sql(
                _CLAIM_UPDATE_PG,
                (adjudicated, at, _one_insurer(totals), min(ids), max(ids)),
            )
        if merged:
            copy_in(
                conn,
                _COUNTERS_COPY,
                _COUNTERS_TYPES,
                (
                    (i, b, use.key, use.care_date, c, use.cents, use.units)
                    for i, b, c, use in merged
                ),
            )
        return
    decided_at = bound(conn, claim_lines.c.decided_at, at)
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


def _one_insurer(rows: Iterable[tuple[Any, ...]]) -> int:
    """The insurer of a batch's rows (a batch judges one insurer's claims at a time)."""
    insurers = {row[0] for row in rows}
    if len(insurers) != 1:
        raise ValueError("the decisions written together are one insurer's")
    return int(insurers.pop())


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
