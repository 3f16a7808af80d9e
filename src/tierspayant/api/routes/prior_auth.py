"""Prior authorisation (PEC, "accord préalable"): request, look up, decide.

Every route declares its policy: ``**policy(Policy.…)`` and the matching dependency
from :mod:`tierspayant.api.deps`. A provider sees only its own agreements: anyone else's
answer the same 404 as an unknown number.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated

from fastapi import APIRouter, Path, Response
from pydantic import BaseModel, Field

from tierspayant.api.deps import InsurerStaff, PlatformDep, Policy, ProviderPrincipal, policy
from tierspayant.api.json_body import StrictJsonRoute
from tierspayant.api.schemas import CardIn, LineIn, Strict, card_data, pricing_line
from tierspayant.services.prior_auth import (
    PriorAuthAnswer,
    PriorAuthRequest,
    decide_prior_auth,
    get_prior_auth,
    request_prior_auth,
)

router = APIRouter(route_class=StrictJsonRoute)

AgreementNumber = Annotated[str, Path(min_length=1, max_length=24, pattern=r"^[A-Z0-9]+$")]


class PriorAuthIn(Strict):
    card: CardIn
    care_date: date
    request_key: Annotated[str, Field(min_length=1, max_length=80, pattern=r"^[A-Za-z0-9._:/-]+$")]
    lines: Annotated[list[LineIn], Field(min_length=1, max_length=20)]


class GuaranteedLineOut(BaseModel):
    act_code: str
    family: str
    quantity: int
    billed_cents: int
    guaranteed_cents: int


class PriorAuthOut(BaseModel):
    agreement_number: str
    status: str
    domain: str
    care_date: date
    reason_code: str | None
    reason: str | None
    valid_until: date | None
    guaranteed_cents: int
    lines: list[GuaranteedLineOut]


class DecisionIn(Strict):
    accept: bool
    reason: Annotated[str, Field(max_length=500)] = ""


def _prior_auth_out(answer: PriorAuthAnswer) -> PriorAuthOut:
    return PriorAuthOut(
        agreement_number=answer.agreement_number,
        status=answer.status,
        domain=answer.domain,
        care_date=answer.care_date,
        reason_code=answer.reason_code,
        reason=answer.reason,
        valid_until=answer.valid_until,
        guaranteed_cents=answer.guaranteed_cents,
        lines=[
            GuaranteedLineOut(
                act_code=line.act_code,
                family=line.family,
                quantity=line.quantity,
                billed_cents=line.billed_cents,
                guaranteed_cents=line.guaranteed_cents,
            )
            for line in answer.lines
        ],
    )


@router.post(
    "/v1/prior-authorisations",
    tags=["prior_auth"],
    response_model=PriorAuthOut,
    status_code=201,
    summary="Prior authorisation request (PEC): agreement, refusal or pending",
    **policy(Policy.PROVIDER),
)
def post_prior_authorisation(
    body: PriorAuthIn, principal: ProviderPrincipal, platform: PlatformDep, response: Response
) -> PriorAuthOut:
    answer, created = request_prior_auth(
        platform,
        principal,
        PriorAuthRequest(
            card=card_data(body.card),
            care_date=body.care_date,
            request_key=body.request_key,
            lines=tuple(pricing_line(line) for line in body.lines),
        ),
    )
    if not created:
        response.status_code = 200
    return _prior_auth_out(answer)


@router.get(
    "/v1/prior-authorisations/{agreement}",
    tags=["prior_auth"],
    response_model=PriorAuthOut,
    summary="An agreement, for the provider that asked for it",
    **policy(Policy.PROVIDER),
)
def read_prior_authorisation(
    agreement: AgreementNumber, principal: ProviderPrincipal, platform: PlatformDep
) -> PriorAuthOut:
    return _prior_auth_out(get_prior_auth(platform, principal, agreement))


@router.post(
    "/v1/prior-authorisations/{agreement}/decision",
    tags=["prior_auth"],
    response_model=PriorAuthOut,
    summary="Insurer staff accept or refuse a pending request",
    **policy(Policy.INSURER_STAFF),
)
def decide_prior_authorisation(
    agreement: AgreementNumber, body: DecisionIn, principal: InsurerStaff, platform: PlatformDep
) -> PriorAuthOut:
    answer = decide_prior_auth(
        platform,
        agreement,
        accept=body.accept,
        reason=body.reason,
        actor=principal.id,
        insurer_id=principal.insurer_id,
    )
    return _prior_auth_out(answer)
