"""Calculation: AMO, AMC and patient shares of a prospective invoice (CLC), priced by the
domain's pricing engine.

Every route declares its policy: ``**policy(Policy.…)`` and the matching dependency
from :mod:`tierspayant.api.deps`.
"""

from __future__ import annotations

from fastapi import APIRouter

from tierspayant.api.deps import LaneDep, PlatformDep, Policy, ProviderPrincipal, policy
from tierspayant.api.schemas import (
    CalculationIn,
    CalculationOut,
    card_data,
    card_proof,
    pricing_line,
)
from tierspayant.services.pricing import Calculation, start_calculation

router = APIRouter()


@router.post(
    "/v1/calculations",
    tags=["calculation"],
    response_model=CalculationOut,
    summary="Calculation of AMO, AMC and patient shares (CLC)",
    **policy(Policy.PROVIDER),
)
async def calculation(
    body: CalculationIn, principal: ProviderPrincipal, platform: PlatformDep, lane: LaneDep
) -> CalculationOut:
    lines = tuple(pricing_line(line) for line in body.lines)
    request = Calculation(card_data(body.card), body.care_date, lines, body.maternity)
    proof = card_proof(body.card_proof)
    result = await lane.run(lambda: start_calculation(platform, principal, request, proof))
    return CalculationOut.model_validate(result.as_dict())
