"""Calculation: AMO, AMC and patient shares of a prospective invoice (CLC), priced by the
domain's pricing engine.

Every route declares its policy: ``**policy(Policy.…)`` and the matching dependency
from :mod:`tierspayant.api.deps`.

A calculation writes an engagement on amounts. Sent with an ``Idempotency-Key`` header
(:mod:`tierspayant.api.idempotency`), its covered answer is kept with the engagement and
a retry under the same key gets it again, byte for byte; without one it is answered as
it always was (the same calculation while its engagement is open answers that
engagement, priced again).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Response
from fastapi.responses import JSONResponse

from tierspayant.api.deps import LaneDep, PlatformDep, Policy, ProviderPrincipal, policy
from tierspayant.api.idempotency import IdempotencyKeyDep, kept, replayed
from tierspayant.api.json_body import StrictJsonRoute
from tierspayant.api.schemas import (
    CalculationIn,
    CalculationOut,
    ErrorOut,
    card_data,
    card_proof,
    pricing_line,
)
from tierspayant.domain.pricing import PricingResult
from tierspayant.security.engagement import MAX_TEXT
from tierspayant.services.engagements import cancel_amount
from tierspayant.services.idempotency import StoredAnswer, request_key
from tierspayant.services.pricing import (
    Calculation,
    start_calculation,
    start_keyed_calculation,
)

router = APIRouter(route_class=StrictJsonRoute)
CALCULATIONS = "POST /v1/calculations"  # the route's name in the scope of its idempotency keys


@router.post(
    "/v1/calculations",
    tags=["calculation"],
    response_model=CalculationOut,
    summary="Calculation of AMO, AMC and patient shares (CLC)",
    **policy(Policy.PROVIDER),
)
async def calculation(
    body: CalculationIn,
    principal: ProviderPrincipal,
    platform: PlatformDep,
    lane: LaneDep,
    key: IdempotencyKeyDep,
) -> CalculationOut | Response:
    lines = tuple(pricing_line(line) for line in body.lines)
    request = Calculation(card_data(body.card), body.care_date, lines, body.maternity)
    proof = card_proof(body.card_proof)
    if key is None:
        result = await lane.run(lambda: start_calculation(platform, principal, request, proof))
        return CalculationOut.model_validate(result.as_dict())
    keyed = request_key(principal, CALCULATIONS, key, body.model_dump(mode="json"))
    answer = await lane.run(
        lambda: start_keyed_calculation(platform, principal, request, proof, keyed, _render)
    )
    return replayed(answer)


def _render(result: PricingResult) -> StoredAnswer:
    """The answer as the route without a key writes it (the model, as JSON)."""
    out = CalculationOut.model_validate(result.as_dict())
    return kept(JSONResponse(out.model_dump(mode="json")))


@router.delete(
    "/v1/engagements/{number}",
    tags=["calculation"],
    status_code=204,
    summary="Cancel an engagement on amounts (annulation): frees what it reserved",
    responses={404: {"model": ErrorOut}},
    **policy(Policy.PROVIDER),
)
def cancel_engagement(
    number: Annotated[str, Path(max_length=MAX_TEXT)],
    principal: ProviderPrincipal,
    platform: PlatformDep,
) -> Response:
    """Idempotent: cancelling again answers the same. Unknown, malformed, rights numbers
    and another professional's numbers get one 404 code (``engagement.not_found``)."""
    cancel_amount(platform, principal, number)
    return Response(status_code=204)
