"""Read model of member statements: the care lines paid on a beneficiary's behalf."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from sqlalchemy import Connection, Join, and_, select

from tierspayant.store.claims_tables import claim_lines, claims
from tierspayant.store.ledger_tables import money_runs, payment_lines
from tierspayant.store.tables import providers


@dataclass(frozen=True, slots=True)
class PaidLine:
    """One claim line as a payment run paid it (``status``: the line's, as stored)."""

    care_date: date
    run_date: date
    domain: str
    act_code: str
    provider_category: str
    billed_cents: int
    amo_paid_cents: int
    paid_cents: int
    status: str


def paid_lines_source() -> Join:
    """Paid lines with their claim line, claim, provider and run: what a statement reads
    (the member's own here, their family's in ``read_models/member.py``)."""
    return (
        payment_lines.join(
            claim_lines,
            and_(
                claim_lines.c.insurer_id == payment_lines.c.insurer_id,
                claim_lines.c.claim_id == payment_lines.c.claim_id,
                claim_lines.c.line_no == payment_lines.c.line_no,
            ),
        )
        .join(
            claims,
            and_(
                claims.c.insurer_id == payment_lines.c.insurer_id,
                claims.c.id == payment_lines.c.claim_id,
            ),
        )
        .join(providers, providers.c.id == payment_lines.c.provider_id)
        .join(money_runs, money_runs.c.run_key == payment_lines.c.run_key)
    )


def paid_lines(
    conn: Connection, insurer_id: int, beneficiary_id: int, limit: int
) -> list[PaidLine]:
    """Up to ``limit`` lines paid for the beneficiary, newest care first."""
    query = (
        select(
            claim_lines.c.care_date,
            money_runs.c.run_date,
            claim_lines.c.domain,
            claim_lines.c.act_code,
            providers.c.category,
            claim_lines.c.billed_cents,
            claim_lines.c.amo_paid_cents,
            payment_lines.c.paid_cents,
            claim_lines.c.status,
        )
        .select_from(paid_lines_source())
        .where(
            claims.c.insurer_id == insurer_id,
            claims.c.beneficiary_id == beneficiary_id,
            payment_lines.c.paid_cents > 0,
        )
        .order_by(claim_lines.c.care_date.desc(), payment_lines.c.claim_id, payment_lines.c.line_no)
        .limit(limit)
    )
    return [
        PaidLine(
            care_date=r.care_date,
            run_date=r.run_date,
            domain=r.domain,
            act_code=r.act_code,
            provider_category=r.category,
            billed_cents=int(r.billed_cents),
            amo_paid_cents=int(r.amo_paid_cents),
            paid_cents=int(r.paid_cents),
            status=str(r.status),
        )
        for r in conn.execute(query)
    ]
