"""Member statements ("décomptes"): what was paid on the member's behalf.

Every route declares its policy: ``**policy(Policy.…)`` and the matching dependency
from :mod:`tierspayant.api.deps`.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated

from fastapi import APIRouter, Query

from tierspayant.api.deps import MemberPrincipal, PlatformDep, Policy, policy
from tierspayant.api.json_body import StrictJsonRoute
from tierspayant.api.schemas import Strict
from tierspayant.formats.sepa import amount
from tierspayant.services import statements

router = APIRouter(route_class=StrictJsonRoute)


class StatementLineOut(Strict):
    care_date: date
    payment_date: date
    domain: str
    act_code: str
    provider_category: str
    billed: str
    amo: str
    amc: str
    remainder: str
    status: str


class MemberStatementOut(Strict):
    lines: list[StatementLineOut]


def _signed(cents: int) -> str:
    return ("-" if cents < 0 else "") + amount(abs(cents))


@router.get(
    "/v1/members/me/statements",
    tags=["members"],
    response_model=MemberStatementOut,
    summary="What was paid on the member's behalf: AMO, AMC and remainder, by care date",
    **policy(Policy.MEMBER),
)
def member_statements(
    principal: MemberPrincipal,
    platform: PlatformDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 200,
) -> MemberStatementOut:
    lines = statements.member_statement(platform, principal, limit=limit)
    return MemberStatementOut(
        lines=[
            StatementLineOut(
                care_date=line.care_date,
                payment_date=line.payment_date,
                domain=line.domain,
                act_code=line.act_code,
                provider_category=line.provider_category,
                billed=amount(line.billed_cents),
                amo=amount(line.amo_cents),
                amc=amount(line.amc_cents),
                remainder=_signed(line.remainder_cents),
                status=line.status,
            )
            for line in lines
        ]
    )
