"""Eligibility: the rights check from card data (IDB, "droits" on screen).

Every route declares its policy: ``**policy(Policy.…)`` and the matching dependency
from :mod:`tierspayant.api.deps`.
"""

from __future__ import annotations

from fastapi import APIRouter, Response

from tierspayant.api.deps import LaneDep, PlatformDep, Policy, ProviderPrincipal, policy
from tierspayant.api.json_body import StrictJsonRoute, rights_json
from tierspayant.api.lanes import LookupLane
from tierspayant.api.schemas import (
    DomainRightOut,
    EligibilityIn,
    EligibilityOut,
    card_data,
    card_proof,
)
from tierspayant.app.platform import Platform
from tierspayant.security.principal import Principal
from tierspayant.services.eligibility import RightsCheck, start_rights_check

router = APIRouter(route_class=StrictJsonRoute)


@router.post(
    "/v1/eligibility",
    tags=["eligibility"],
    response_model=EligibilityOut,
    summary="Rights check from card data (IDB)",
    **policy(Policy.PROVIDER),
)
async def eligibility(
    body: EligibilityIn, principal: ProviderPrincipal, platform: PlatformDep, lane: LaneDep
) -> Response:
    return Response(await rights_answer(body, principal, platform, lane), media_type=MEDIA_TYPE)


MEDIA_TYPE = "application/json"


async def rights_answer(
    body: EligibilityIn, principal: Principal, platform: Platform, lane: LookupLane
) -> bytes:
    """The rights check of ``body`` for ``principal``, as the JSON document answered.

    Shared by the route above (kept for the OpenAPI document and for every request the
    lean handler of :mod:`tierspayant.api.hot` hands back) and by that handler.
    """
    check = RightsCheck(card_data(body.card), body.care_date, tuple(body.domains))
    proof = card_proof(body.card_proof)
    answer = await lane.run(lambda: start_rights_check(platform, principal, check, proof))
    written = rights_json(answer.care_date, answer.rights, answer.engagement_number)
    if written is not None:
        return written
    out = EligibilityOut(
        care_date=answer.care_date,
        rights=[
            DomainRightOut(
                domain=r.domain,
                covered=r.covered,
                tiers_payant=r.tiers_payant,
                coverage_code=r.coverage_code,
                valid_until=r.valid_until,
            )
            for r in answer.rights
        ],
        engagement_number=answer.engagement_number,
    )
    # Serialised here, already valid: the framework would validate the model again
    # against ``response_model`` (kept for the OpenAPI document) on the hot path. Without
    # an engagement the field is left out, so "no rights" stays the one answer it was.
    excluded = None if answer.engagement_number else {"engagement_number"}
    return out.model_dump_json(exclude=excluded).encode()
