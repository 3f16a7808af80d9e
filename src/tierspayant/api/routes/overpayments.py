"""Undue amounts ("indus"): insurer staff flag a paid claim line as undue.

Every route declares its policy: ``**policy(Policy.…)`` and the matching dependency
from :mod:`tierspayant.api.deps`.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Response
from pydantic import Field

from tierspayant.api.deps import InsurerStaff, PlatformDep, Policy, policy
from tierspayant.api.json_body import StrictJsonRoute
from tierspayant.api.schemas import Strict
from tierspayant.formats.sepa import amount
from tierspayant.services import overpayments

router = APIRouter(route_class=StrictJsonRoute)

ClaimId = Annotated[int, Path(ge=1, le=2**62)]
LineNo = Annotated[int, Path(ge=1, le=999)]


class UndueIn(Strict):
    reason_code: Annotated[str, Field(min_length=3, max_length=60, pattern=r"^[a-z][a-z0-9_.]+$")]


class UndueOut(Strict):
    claim_id: int
    line_no: int
    to_recover: str


@router.post(
    "/v1/claims/{claim_id}/lines/{line_no}/undue",
    tags=["payments"],
    response_model=UndueOut,
    status_code=201,
    summary="Insurer staff flag a paid line as undue: reversed, recovered on next payments",
    **policy(Policy.INSURER_STAFF),
)
def flag_undue(
    claim_id: ClaimId,
    line_no: LineNo,
    body: UndueIn,
    principal: InsurerStaff,
    platform: PlatformDep,
    response: Response,
) -> UndueOut:
    flagged = overpayments.flag_undue(platform, principal, claim_id, line_no, body.reason_code)
    if not flagged.created:
        response.status_code = 200
    return UndueOut(
        claim_id=flagged.claim_id, line_no=flagged.line_no, to_recover=amount(flagged.cents)
    )
