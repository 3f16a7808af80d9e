"""Adjudicated claims for the money tests, written as adjudication leaves them.

A claim is inserted with its lines already decided, and the ledger gets the posting the
adjudication job makes (journal ``adjudication``, reference
``claim:<insurer>:<claim>:v<version>``: the insurer owes the accepted total, we owe the
provider). The payment, billing and undue tests then start from real rows.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import Connection, func, select

from tests.support.world import add_provider
from tierspayant.app.platform import Platform
from tierspayant.domain.banking_calendar import following_business_day, paris_day
from tierspayant.domain.ledger import AccountKind, account, credit, debit, posting
from tierspayant.services.providers import Provider
from tierspayant.store import ledger
from tierspayant.store.claims_tables import claim_lines, claims

ACTOR = "test:money"


def next_pay_day(platform: Platform) -> date:
    """Today in Paris if it is a TARGET2 business day, else the next one: the earliest date
    a payment run accepts without a backdating reason (for tests on the wall clock)."""
    return following_business_day(paris_day(platform.now()))


ADJUDICATED_AT = datetime(2026, 11, 3, 8, 0, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class Line:
    """One decided line: ``accepted`` cents (0 when rejected)."""

    act_code: str = "PH7"
    domain: str = "PHAR"
    billed: int = 1000
    amo: int = 650
    accepted: int = 350
    status: str = "accepted"
    reason: str | None = None
    family: str | None = None  # the act family, when a test reads it back


ACCEPTED = Line()
REDUCED = Line("C", "MED", billed=3000, amo=1900, accepted=700, status="reduced", reason="ceiling")
REJECTED = Line(
    "AMI", "AUXM", billed=1500, amo=900, accepted=0, status="rejected", reason="rights.none"
)


def make_provider(
    platform: Platform, rng: random.Random, *, category: str = "pharmacy", iban: bool = True
) -> Provider:
    """A provider with an IBAN (encrypted by the provider service) unless told not to."""
    name = f"Pharmacie Éloïse {rng.randrange(10**6)}"
    return add_provider(platform, rng, category, name=name, iban=iban, actor=ACTOR)


def _next_claim_id(conn: Connection) -> int:
    return int(conn.execute(select(func.coalesce(func.max(claims.c.id), 0))).scalar_one()) + 1


def adjudicated_claim(
    platform: Platform,
    *,
    insurer_id: int,
    amc_number: str,
    provider_id: int,
    lines: Sequence[Line] = (ACCEPTED,),
    beneficiary_id: int = 1,
    care_date: date = date(2026, 11, 2),
    adjudicated_at: datetime | None = None,
) -> int:
    """Insert one adjudicated claim and its adjudication posting; returns the claim id.

    Adjudicated an hour before the platform's clock unless told otherwise.
    """
    decided = adjudicated_at or platform.now() - timedelta(hours=1)
    with platform.engine.begin() as conn:
        return insert_adjudicated(
            conn,
            insurer_id=insurer_id,
            amc_number=amc_number,
            provider_id=provider_id,
            lines=lines,
            beneficiary_id=beneficiary_id,
            care_date=care_date,
            adjudicated_at=decided,
        )


def insert_adjudicated(
    conn: Connection,
    *,
    insurer_id: int,
    amc_number: str,
    provider_id: int,
    lines: Sequence[Line],
    beneficiary_id: int,
    care_date: date,
    adjudicated_at: datetime,
) -> int:
    claim_id = _next_claim_id(conn)
    accepted = sum(line.accepted for line in lines)
    conn.execute(
        claims.insert().values(
            insurer_id=insurer_id,
            id=claim_id,
            provider_id=provider_id,
            invoice_number=f"F{claim_id:08d}",
            version=1,
            beneficiary_id=beneficiary_id,
            care_date=care_date,
            request_digest=hashlib.sha256(str(claim_id).encode()).digest(),
            status="adjudicated",
            source="file",
            received_at=adjudicated_at,
            adjudicated_at=adjudicated_at,
            billed_cents=sum(line.billed for line in lines),
            amc_requested_cents=sum(line.billed - line.amo for line in lines),
            amc_accepted_cents=accepted,
        )
    )
    conn.execute(
        claim_lines.insert(),
        [
            {
                "insurer_id": insurer_id,
                "claim_id": claim_id,
                "line_no": n,
                "act_code": line.act_code,
                "domain": line.domain,
                "family": line.family,
                "quantity": 1,
                "care_date": care_date,
                "billed_cents": line.billed,
                "br_cents": line.billed,
                "amo_rate_bp": 6500,
                "amo_paid_cents": line.amo,
                "amc_requested_cents": line.billed - line.amo,
                "status": line.status,
                "amc_accepted_cents": line.accepted,
                "reason_code": line.reason,
                "decided_at": adjudicated_at,
            }
            for n, line in enumerate(lines, start=1)
        ],
    )
    if accepted:
        ledger.post(
            conn,
            posting(
                "adjudication",
                f"claim:{insurer_id}:{claim_id}:v1",
                adjudicated_at.date(),
                debit(account(AccountKind.INSURER_RECEIVABLE, amc_number), accepted),
                credit(account(AccountKind.PROVIDER_PAYABLE, provider_id), accepted),
            ),
            at=adjudicated_at,
            insurer_id=insurer_id,
        )
    return claim_id
