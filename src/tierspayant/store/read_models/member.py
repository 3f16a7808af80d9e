"""Read models of the member portal: the accesses to one subject, one family's cards
and paid lines, and the index naming the member's own beneficiary row. The caller
(``services.member_portal``) decides whose subject, family and row these are; nothing
here takes them from a request.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import Connection, or_, select

from tierspayant.store.cards_tables import cards
from tierspayant.store.claims_tables import claim_lines, claims
from tierspayant.store.ledger_tables import money_runs, payment_lines
from tierspayant.store.read_models import SCREEN_ROWS, aware
from tierspayant.store.statements import paid_lines_source
from tierspayant.store.tables import audit_events, beneficiaries, providers

HISTORY_ROWS = 200


@dataclass(frozen=True, slots=True)
class Consultation:
    at: datetime
    who: str  # structure's name, or "vous-même"
    structure: str | None
    action: str
    purpose: str | None
    decision: str


def consultations(conn: Connection, subject: str) -> list[Consultation]:
    """Every audited access to one subject, newest first (the subject's own view)."""
    rows = conn.execute(
        select(
            audit_events.c.at,
            audit_events.c.actor,
            audit_events.c.structure,
            audit_events.c.action,
            audit_events.c.purpose,
            audit_events.c.decision,
        )
        .where(audit_events.c.subject == subject)
        .order_by(audit_events.c.seq.desc())
        .limit(HISTORY_ROWS)
    ).all()
    names = _structure_names(conn, {r.structure for r in rows if r.structure})
    return [
        Consultation(
            aware(r.at),
            "vous-même" if r.action.startswith("member.") else names.get(r.structure or "", "—"),
            r.structure,
            r.action,
            r.purpose,
            r.decision,
        )
        for r in rows
    ]


def _structure_names(conn: Connection, structures: set[str]) -> dict[str, str]:
    if not structures:
        return {}
    rows = conn.execute(
        select(
            providers.c.name, providers.c.finess, providers.c.siret, providers.c.am_number
        ).where(
            or_(
                providers.c.finess.in_(structures),
                providers.c.siret.in_(structures),
                providers.c.am_number.in_(structures),
            )
        )
    ).all()
    names: dict[str, str] = {}
    for row in rows:
        for number in (row.am_number, row.siret, row.finess):
            if number in structures:
                names[number] = row.name
    return names


def nir_index(conn: Connection, insurer_id: int, beneficiary_id: int) -> bytes:
    """The NIR blind index of one beneficiary row (raises if there is no such row)."""
    idx = conn.execute(
        select(beneficiaries.c.idx_nir).where(
            beneficiaries.c.insurer_id == insurer_id, beneficiaries.c.id == beneficiary_id
        )
    ).scalar_one()
    return bytes(idx)


@dataclass(frozen=True, slots=True)
class FamilyCard:
    serial: str
    status: str
    valid_from: date
    valid_until: date
    issued_at: datetime


def family_cards(conn: Connection, insurer_id: int, binding: bytes, year: int) -> list[FamilyCard]:
    """The cards of one family (named by its keyed binding) for one year, newest first."""
    rows = conn.execute(
        select(
            cards.c.serial,
            cards.c.status,
            cards.c.valid_from,
            cards.c.valid_until,
            cards.c.issued_at,
        )
        .where(
            cards.c.insurer_id == insurer_id,
            cards.c.family_binding == binding,
            cards.c.year == year,
        )
        .order_by(cards.c.issued_at.desc())
        .limit(SCREEN_ROWS)
    ).all()
    return [
        FamilyCard(r.serial, r.status, r.valid_from, r.valid_until, aware(r.issued_at))
        for r in rows
    ]


@dataclass(frozen=True, slots=True)
class FamilyPaidLine:
    """One care line a payment run paid for a beneficiary of the family, with the name of
    the professional's structure as the directory holds it (never the person's identity:
    the caller names the beneficiary from ``beneficiary_id``)."""

    beneficiary_id: int
    care_date: date
    run_date: date
    domain: str
    act_code: str
    family: str | None  # the act family, when the invoice gave it
    provider_name: str
    provider_category: str
    billed_cents: int
    amo_paid_cents: int
    paid_cents: int
    status: str  # the line's, as stored


def family_paid_lines(
    conn: Connection, insurer_id: int, beneficiary_ids: Sequence[int], limit: int
) -> list[FamilyPaidLine]:
    """Up to ``limit`` lines paid for ``beneficiary_ids`` (one family, chosen by the
    caller) with ``insurer_id``, newest care first."""
    if not beneficiary_ids:
        return []
    query = (
        select(
            claims.c.beneficiary_id,
            claim_lines.c.care_date,
            money_runs.c.run_date,
            claim_lines.c.domain,
            claim_lines.c.act_code,
            claim_lines.c.family,
            providers.c.name,
            providers.c.category,
            claim_lines.c.billed_cents,
            claim_lines.c.amo_paid_cents,
            payment_lines.c.paid_cents,
            claim_lines.c.status,
        )
        .select_from(paid_lines_source())
        .where(
            claims.c.insurer_id == insurer_id,
            claims.c.beneficiary_id.in_(sorted(set(beneficiary_ids))),
            payment_lines.c.paid_cents > 0,
        )
        .order_by(claim_lines.c.care_date.desc(), payment_lines.c.claim_id, payment_lines.c.line_no)
        .limit(limit)
    )
    return [
        FamilyPaidLine(
            beneficiary_id=int(r.beneficiary_id),
            care_date=r.care_date,
            run_date=r.run_date,
            domain=r.domain,
            act_code=r.act_code,
            family=r.family,
            provider_name=r.name,
            provider_category=r.category,
            billed_cents=int(r.billed_cents),
            amo_paid_cents=int(r.amo_paid_cents),
            paid_cents=int(r.paid_cents),
            status=str(r.status),
        )
        for r in conn.execute(query)
    ]
