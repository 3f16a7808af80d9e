"""Engagements on amounts (``amount_reservations``): written by the calculation, read by
every pricing of the same person (calculation, prior authorisation, adjudication),
cancelled by their professional, consumed by the invoice that carries their number.

A reservation is *open* while it is neither cancelled nor consumed and today is not past
its ``valid_until``: expiry is a comparison made when reading, not a job.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import date, datetime

from sqlalchemy import Connection, Row, and_, func, insert, select, update

from tierspayant.domain.care import CareDomain
from tierspayant.domain.engagements import EngagedAmount, Reservation
from tierspayant.domain.facts import CounterUse
from tierspayant.store.bulk import IDS_PER_QUERY
from tierspayant.store.claims_tables import amount_reservations as t


def _reservation(row: Row[tuple[object, ...]]) -> Reservation:
    m = row._mapping
    return Reservation(
        insurer_id=int(m["insurer_id"]),
        id=int(m["id"]),
        provider_id=int(m["provider_id"]),
        structure=str(m["structure"]),
        beneficiary_id=int(m["beneficiary_id"]),
        domains=frozenset(CareDomain(d) for d in str(m["domains"]).split(",")),
        care_date=m["care_date"],
        valid_until=m["valid_until"],
        contract_code=str(m["contract_code"]),
        coverage_start=m["coverage_start"],
        amc_cents=int(m["amc_cents"]),
        uses=tuple(
            CounterUse(str(key), m["care_date"], int(cents), int(units))
            for key, cents, units in json.loads(m["uses"])
        ),
        lines=tuple(
            EngagedAmount(str(act), CareDomain(domain), int(cents))
            for act, domain, cents in json.loads(m["lines"])
        ),
        cancelled=m["cancelled_at"] is not None,
        consumed_by=None if m["consumed_claim_id"] is None else int(m["consumed_claim_id"]),
        digest=bytes(m["digest"]),
    )


def _open(today: date) -> object:
    return and_(
        t.c.cancelled_at.is_(None), t.c.consumed_claim_id.is_(None), t.c.valid_until >= today
    )


def open_reservations(
    conn: Connection, insurer_id: int, beneficiary_ids: Iterable[int], today: date
) -> dict[int, list[Reservation]]:
    """Each beneficiary's open reservations (with the insurer), oldest first."""
    wanted = sorted(set(beneficiary_ids))
    found: dict[int, list[Reservation]] = {b: [] for b in wanted}
    for start in range(0, len(wanted), IDS_PER_QUERY):
        rows = conn.execute(
            select(t)
            .where(
                t.c.insurer_id == insurer_id,
                t.c.beneficiary_id.in_(wanted[start : start + IDS_PER_QUERY]),
                _open(today),  # type: ignore[arg-type]
            )
            .order_by(t.c.beneficiary_id, t.c.created_at, t.c.id)
        )
        for row in rows:
            reservation = _reservation(row)
            found[reservation.beneficiary_id].append(reservation)
    return found


def get(conn: Connection, insurer_id: int, reservation_id: int) -> Reservation | None:
    row = conn.execute(
        select(t).where(t.c.insurer_id == insurer_id, t.c.id == reservation_id)
    ).first()
    return None if row is None else _reservation(row)


def _values(r: Reservation) -> dict[str, object]:
    return {
        "amc_cents": r.amc_cents,
        "uses": json.dumps([[u.key, u.cents, u.units] for u in r.uses]),
        "lines": json.dumps([[x.act_code, x.domain.value, x.cents] for x in r.lines]),
        "valid_until": r.valid_until,
        "contract_code": r.contract_code,
        "coverage_start": r.coverage_start,
    }


def insert_reservation(conn: Connection, r: Reservation, at: datetime) -> None:
    conn.execute(
        insert(t).values(
            insurer_id=r.insurer_id,
            id=r.id,
            provider_id=r.provider_id,
            structure=r.structure,
            beneficiary_id=r.beneficiary_id,
            domains=",".join(sorted(r.domains)),
            care_date=r.care_date,
            digest=r.digest,
            created_at=at,
            **_values(r),
        )
    )


def replace_amounts(conn: Connection, r: Reservation) -> None:
    """A retried calculation priced again: the same engagement, its amounts refreshed."""
    conn.execute(
        update(t).where(t.c.insurer_id == r.insurer_id, t.c.id == r.id).values(**_values(r))
    )


def cancel(conn: Connection, insurer_id: int, reservation_id: int, at: datetime) -> None:
    """Cancel an unconsumed reservation (again: nothing changes)."""
    conn.execute(
        update(t)
        .where(
            t.c.insurer_id == insurer_id,
            t.c.id == reservation_id,
            t.c.cancelled_at.is_(None),
            t.c.consumed_claim_id.is_(None),
        )
        .values(cancelled_at=at)
    )


def consume(conn: Connection, insurer_id: int, pairs: Sequence[tuple[int, int]]) -> None:
    """Mark reservations ``(id, claim id)`` consumed by those claims (first claim wins)."""
    if not pairs:
        return
    for reservation_id, claim_id in pairs:
        conn.execute(
            update(t)
            .where(
                t.c.insurer_id == insurer_id,
                t.c.id == reservation_id,
                t.c.consumed_claim_id.is_(None),
            )
            .values(consumed_claim_id=claim_id)
        )


def of_provider(conn: Connection, provider_id: int, today: date) -> list[Reservation]:
    """A professional's open reservations, newest first (the portal's list)."""
    rows = conn.execute(
        select(t)
        .where(t.c.provider_id == provider_id, _open(today))  # type: ignore[arg-type]
        .order_by(t.c.created_at.desc(), t.c.id)
        .limit(200)
    )
    return [_reservation(row) for row in rows]


def created_by_structure(conn: Connection, structure: str, since: datetime) -> int:
    """Reservations a structure created since ``since`` (cancelled ones included), with
    every insurer: the guard's row is per structure, so this count must never run inside
    ``tenancy.insurer_scope`` (row-level security would narrow it to one insurer)."""
    return int(
        conn.execute(
            select(func.count())
            .select_from(t)
            .where(t.c.structure == structure, t.c.created_at >= since)
        ).scalar_one()
    )
