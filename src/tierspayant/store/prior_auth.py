"""Prior authorisations (agreements): id allocation, recording a request, reading it back
by the provider's request key or by agreement number, and an insurer's decision.

Ids are allocated under the lock of claim ids (``claims.lock_allocation``). Adjudication
reads agreements in batches in ``store/adjudication.py``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import Connection, select, update

from tierspayant.domain.prior_auth import PriorAuthStatus
from tierspayant.store.claims import next_id_query
from tierspayant.store.claims_tables import prior_authorisations

_NEXT_AGREEMENT_ID = next_id_query(prior_authorisations)


def next_agreement_id(conn: Connection) -> int:
    """The next prior authorisation id, under ``claims.lock_allocation`` as well."""
    return int(conn.execute(_NEXT_AGREEMENT_ID).scalar_one())


@dataclass(frozen=True, slots=True)
class AgreementRow:
    """One ``prior_authorisations`` row, its values as the driver gives them."""

    insurer_id: int
    id: int
    agreement_number: str
    provider_id: int
    beneficiary_id: int
    request_key: str
    domain: str
    care_date: date
    status: str
    reason_code: str | None
    reason: str | None
    valid_until: date | None
    guaranteed_cents: int
    lines: str  # JSON: quote lines with guaranteed amounts
    requested_at: datetime
    decided_at: datetime | None
    decided_by: str | None
    request_digest: bytes | None


def _agreement(row: Any) -> AgreementRow | None:
    return None if row is None else AgreementRow(**row._mapping)


def insert_agreement(conn: Connection, row: AgreementRow) -> None:
    """Record one answered (or pending) request."""
    conn.execute(prior_authorisations.insert().values(**asdict(row)))


def agreement_by_request_key(
    conn: Connection, provider_id: int, request_key: str
) -> AgreementRow | None:
    """The agreement a provider asked for under ``request_key``, or None."""
    return _agreement(
        conn.execute(
            select(prior_authorisations).where(
                prior_authorisations.c.provider_id == provider_id,
                prior_authorisations.c.request_key == request_key,
            )
        ).first()
    )


def agreement_by_number(conn: Connection, number: str) -> AgreementRow | None:
    """The agreement numbered ``number``, or None."""
    return _agreement(
        conn.execute(
            select(prior_authorisations).where(prior_authorisations.c.agreement_number == number)
        ).first()
    )


def record_decision(
    conn: Connection,
    insurer_id: int,
    agreement_id: int,
    *,
    status: str,
    decided_at: datetime,
    decided_by: str,
    reason: str | None,
    reason_code: str | None,
    valid_until: date | None,
    guaranteed_cents: int | None = None,
) -> bool:
    """Write a person's decision on a request still pending (``guaranteed_cents`` None:
    unchanged). False if it is no longer pending: another decision came first (the
    condition is checked by the update itself, so two staff deciding at once cannot both
    write)."""
    values: dict[str, Any] = {
        "status": status,
        "decided_at": decided_at,
        "decided_by": decided_by,
        "reason": reason,
        "reason_code": reason_code,
        "valid_until": valid_until,
    }
    if guaranteed_cents is not None:
        values["guaranteed_cents"] = guaranteed_cents
    done = conn.execute(
        update(prior_authorisations)
        .where(
            prior_authorisations.c.insurer_id == insurer_id,
            prior_authorisations.c.id == agreement_id,
            prior_authorisations.c.status == PriorAuthStatus.PENDING.value,
        )
        .values(**values)
    )
    return done.rowcount == 1
