"""Member statements (décomptes): what was paid on a beneficiary's behalf, and when.

A member sees, per care line paid by a payment run, the AMO share, the AMC share the
operator paid the provider for their insurer, and what was left for them. A line found
undue afterwards shows as such. Reading it is a read of beneficiary data: audited.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from sqlalchemy import Connection

from tierspayant.app.platform import Platform
from tierspayant.domain.codes import AuthCode
from tierspayant.security.principal import Principal, PrincipalKind
from tierspayant.services.errors import Forbidden
from tierspayant.store import audit
from tierspayant.store.statements import paid_lines

MAX_LINES = 500


@dataclass(frozen=True, slots=True)
class StatementLine:
    care_date: date
    payment_date: date
    domain: str
    act_code: str
    provider_category: str
    billed_cents: int
    amo_cents: int
    amc_cents: int
    remainder_cents: int
    status: str  # paid | undue | cancelled


def member_statement(
    platform: Platform, principal: Principal, *, limit: int = MAX_LINES
) -> list[StatementLine]:
    """The member's own paid lines, newest care first (their insurer, their beneficiary)."""
    if (
        principal.kind is not PrincipalKind.MEMBER
        or principal.insurer_id is None
        or principal.beneficiary_id is None
    ):
        raise Forbidden(AuthCode.WRONG_PRINCIPAL, "statements are open to members only")
    with platform.engine.begin() as conn:
        lines = beneficiary_lines(
            conn, principal.insurer_id, principal.beneficiary_id, min(max(limit, 1), MAX_LINES)
        )
        audit.append(
            conn,
            at=platform.now(),
            actor=principal.id,
            action="member.statement",
            decision="allow",
            subject=f"beneficiary:{principal.insurer_id}:{principal.beneficiary_id}",
            detail={"lines": len(lines)},
        )
    return lines


def beneficiary_lines(
    conn: Connection, insurer_id: int, beneficiary_id: int, limit: int
) -> list[StatementLine]:
    """Up to ``limit`` paid lines of one beneficiary, newest care first, as statement lines."""
    result: list[StatementLine] = []
    for r in paid_lines(conn, insurer_id, beneficiary_id, limit):
        status = "paid" if r.status in ("accepted", "reduced") else r.status
        billed, amo, amc = r.billed_cents, r.amo_paid_cents, r.paid_cents
        result.append(
            StatementLine(
                care_date=r.care_date,
                payment_date=r.run_date,
                domain=r.domain,
                act_code=r.act_code,
                provider_category=r.provider_category,
                billed_cents=billed,
                amo_cents=amo,
                amc_cents=amc,
                remainder_cents=billed - amo - amc,
                status=status,
            )
        )
    return result
