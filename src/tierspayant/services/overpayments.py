"""Undue amounts (indus): a line paid, then found not owed, is reversed and recovered.

The reversal moves the debt: the insurer no longer owes the amount (credit
``insurer_receivable``), the provider now does (debit ``provider_overpaid``). The next
payment runs deduct it from what that provider is paid, oldest first, and list it on the
remittance advice; the insurer's next statement credits it back.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlalchemy import Connection

from tierspayant.app.platform import Platform
from tierspayant.domain import accounting
from tierspayant.domain.codes import AuthCode, ClaimCode, PaymentCode
from tierspayant.domain.payments import period_of
from tierspayant.security.principal import Principal, PrincipalKind
from tierspayant.services.errors import Conflict, Forbidden, NotFound, ServiceError
from tierspayant.services.insurers import get_insurer
from tierspayant.store import audit, ledger
from tierspayant.store import overpayments as store
from tierspayant.store.payments import PaidLine, paid_lines

_REASON = re.compile(r"[a-z][a-z0-9_.]{2,59}")


def reverse_paid_claim(
    platform: Platform,
    conn: Connection,
    *,
    insurer_id: int,
    claim_id: int,
    reason_code: str,
    actor: str,
) -> int:
    """Reverse every paid line of a claim, in the caller's transaction; idempotent.

    Returns the cents to recover from the provider for this claim (the same on a repeat).
    """
    amc = ledger.amc_number(conn, insurer_id)
    total = 0
    for line in paid_lines(conn, insurer_id, claim_id):
        total += _reverse_line(platform, conn, insurer_id, amc, claim_id, line, reason_code, actor)
    return total


def _reverse_line(
    platform: Platform,
    conn: Connection,
    insurer_id: int,
    amc: str,
    claim_id: int,
    line: PaidLine,
    reason_code: str,
    actor: str,
) -> int:
    existing = store.overpayment_cents(conn, insurer_id, claim_id, line.line_no)
    if existing is not None:
        return int(existing)
    now = platform.now()
    today = platform.today()
    store.insert_overpayment(
        conn,
        insurer_id=insurer_id,
        claim_id=claim_id,
        line=line,
        reason_code=reason_code,
        at=now,
        actor=actor,
        bill_period=period_of(today),
    )
    ledger.post(
        conn,
        accounting.undue(
            insurer_id,
            claim_id,
            line.line_no,
            amc,
            line.provider_id,
            line.paid_cents,
            today,
            reason_code,
        ),
        at=now,
        insurer_id=insurer_id,
    )
    audit.append(
        conn,
        at=now,
        actor=actor,
        action="overpayment.flag",
        decision="allow",
        insurer=amc,
        detail={
            "claim": claim_id,
            "line": line.line_no,
            "cents": line.paid_cents,
            "reason": reason_code,
        },
    )
    return line.paid_cents


@dataclass(frozen=True, slots=True)
class UndueLine:
    claim_id: int
    line_no: int
    cents: int  # to recover from the provider
    created: bool  # False when the line was already flagged


def _check_reason(reason_code: str) -> str:
    if not _REASON.fullmatch(reason_code):
        raise ServiceError(
            PaymentCode.OVERPAYMENT_REASON,
            "the reason code is 3 to 60 lowercase letters, digits, dots or underscores",
            field="reason_code",
        )
    return reason_code


def flag_undue(
    platform: Platform, principal: Principal, claim_id: int, line_no: int, reason_code: str
) -> UndueLine:
    """Insurer staff declare a paid line undue: reversed now, recovered on next payments."""
    if principal.kind is not PrincipalKind.INSURER_STAFF or principal.insurer_id is None:
        raise Forbidden(AuthCode.WRONG_PRINCIPAL, "only the insurer's staff flag undue amounts")
    with platform.engine.begin() as conn:
        return _flag(
            platform, conn, principal.insurer_id, claim_id, line_no, reason_code, principal.id
        )


def flag_undue_as_operator(
    platform: Platform, amc_number: str, claim_id: int, line_no: int, reason_code: str, actor: str
) -> UndueLine:
    """The same, from the operator's command line, for the insurer named by its AMC number."""
    with platform.engine.begin() as conn:
        insurer = get_insurer(conn, amc_number)
        return _flag(platform, conn, insurer.id, claim_id, line_no, reason_code, actor)


def _flag(
    platform: Platform,
    conn: Connection,
    insurer_id: int,
    claim_id: int,
    line_no: int,
    reason_code: str,
    actor: str,
) -> UndueLine:
    _check_reason(reason_code)
    if not store.claim_line_exists(conn, insurer_id, claim_id, line_no):
        # Another insurer's claim gets the same answer as a claim that does not exist.
        raise NotFound(ClaimCode.UNKNOWN, "no such claim line", field="line_no")
    existing = store.overpayment_cents(conn, insurer_id, claim_id, line_no)
    if existing is not None:
        return UndueLine(claim_id, line_no, int(existing), created=False)
    paid = paid_lines(conn, insurer_id, claim_id, line_no)
    if not paid:
        raise Conflict(
            PaymentCode.OVERPAYMENT_NOT_PAID,
            "this line has not been paid: correct or cancel the invoice instead",
            field="line_no",
        )
    amc = ledger.amc_number(conn, insurer_id)
    cents = _reverse_line(platform, conn, insurer_id, amc, claim_id, paid[0], reason_code, actor)
    return UndueLine(claim_id, line_no, cents, created=True)
