"""Claim disputes: opened by the provider on a decided line, answered by the insurer.

Every read is scoped by the caller's own provider or insurer id, given by the service from
the principal; a dispute of another structure is never found.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Select, select, update
from sqlalchemy.exc import IntegrityError

from tierspayant.store.claims_tables import claim_lines
from tierspayant.store.disputes_tables import claim_disputes
from tierspayant.store.tables import providers


@dataclass(frozen=True, slots=True)
class DisputeRow:
    id: int
    insurer_id: int
    claim_id: int
    line_no: int
    provider_id: int
    invoice_number: str
    reason_text: str
    state: str
    answer: str | None
    opened_at: datetime
    answered_at: datetime | None
    # The line as decided, so that both sides read what is contested.
    act_code: str
    line_status: str
    line_reason: str | None
    amc_requested_cents: int
    amc_accepted_cents: int
    provider_name: str


_COLUMNS = (
    claim_disputes.c.id,
    claim_disputes.c.insurer_id,
    claim_disputes.c.claim_id,
    claim_disputes.c.line_no,
    claim_disputes.c.provider_id,
    claim_disputes.c.invoice_number,
    claim_disputes.c.reason_text,
    claim_disputes.c.state,
    claim_disputes.c.answer,
    claim_disputes.c.opened_at,
    claim_disputes.c.answered_at,
    claim_lines.c.act_code,
    claim_lines.c.status,
    claim_lines.c.reason_code,
    claim_lines.c.amc_requested_cents,
    claim_lines.c.amc_accepted_cents,
    providers.c.name,
)


def _query() -> Select[Any]:
    return (
        select(*_COLUMNS)
        .join(
            claim_lines,
            (claim_lines.c.insurer_id == claim_disputes.c.insurer_id)
            & (claim_lines.c.claim_id == claim_disputes.c.claim_id)
            & (claim_lines.c.line_no == claim_disputes.c.line_no),
        )
        .join(providers, providers.c.id == claim_disputes.c.provider_id)
    )


def _rows(conn: Connection, query: Select[Any]) -> list[DisputeRow]:
    return [DisputeRow(*row) for row in conn.execute(query)]


def latest_dispute_of(
    conn: Connection, insurer_id: int, claim_id: int, line_no: int
) -> DisputeRow | None:
    """The latest dispute of one line (the open one if any), or None."""
    query = (
        _query()
        .where(
            claim_disputes.c.insurer_id == insurer_id,
            claim_disputes.c.claim_id == claim_id,
            claim_disputes.c.line_no == line_no,
        )
        .order_by(claim_disputes.c.id.desc())
        .limit(1)
    )
    rows = _rows(conn, query)
    return rows[0] if rows else None


def insert_dispute(
    conn: Connection,
    *,
    insurer_id: int,
    claim_id: int,
    line_no: int,
    provider_id: int,
    invoice_number: str,
    reason_text: str,
    actor: str,
    at: datetime,
) -> int | None:
    """Open a dispute; None when the line already has an open one (a concurrent request
    won: the partial unique index refused the second)."""
    values = {
        "insurer_id": insurer_id,
        "claim_id": claim_id,
        "line_no": line_no,
        "provider_id": provider_id,
        "invoice_number": invoice_number,
        "reason_text": reason_text,
        "state": "open",
        "opened_by": actor,
        "opened_at": at,
    }
    try:
        with conn.begin_nested():
            result = conn.execute(claim_disputes.insert().values(**values))
    except IntegrityError:
        return None
    key = result.inserted_primary_key
    return None if key is None else int(key._mapping["id"])


def provider_disputes(conn: Connection, provider_id: int, limit: int = 200) -> list[DisputeRow]:
    """The provider's disputes, newest first."""
    query = (
        _query()
        .where(claim_disputes.c.provider_id == provider_id)
        .order_by(claim_disputes.c.opened_at.desc(), claim_disputes.c.id.desc())
        .limit(limit)
    )
    return _rows(conn, query)


def insurer_disputes(
    conn: Connection, insurer_id: int, states: Sequence[str], limit: int = 200
) -> list[DisputeRow]:
    """The insurer's disputes in ``states``, oldest first (the queue to answer)."""
    query = (
        _query()
        .where(claim_disputes.c.insurer_id == insurer_id, claim_disputes.c.state.in_(states))
        .order_by(claim_disputes.c.opened_at, claim_disputes.c.id)
        .limit(limit)
    )
    return _rows(conn, query)


def dispute_of_insurer(conn: Connection, insurer_id: int, dispute_id: int) -> DisputeRow | None:
    rows = _rows(
        conn,
        _query().where(
            claim_disputes.c.insurer_id == insurer_id, claim_disputes.c.id == dispute_id
        ),
    )
    return rows[0] if rows else None


def answer_dispute(
    conn: Connection,
    insurer_id: int,
    dispute_id: int,
    *,
    state: str,
    answer: str,
    actor: str,
    at: datetime,
) -> bool:
    """Record the answer of an open dispute; False if it was no longer open."""
    result = conn.execute(
        update(claim_disputes)
        .where(
            claim_disputes.c.insurer_id == insurer_id,
            claim_disputes.c.id == dispute_id,
            claim_disputes.c.state == "open",
        )
        .values(state=state, answer=answer, answered_by=actor, answered_at=at)
    )
    return result.rowcount == 1
