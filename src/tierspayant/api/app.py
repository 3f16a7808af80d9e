"""The FastAPI application: routes are thin, every rule lives in a service."""

from __future__ import annotations

import base64
import binascii
from typing import Annotated, Any

from fastapi import FastAPI, Form, Request, Response

from tierspayant import __version__
from tierspayant.api import claims_routes, member_routes, money_routes, security_routes
from tierspayant.api.deps import Policy, ProviderPrincipal, policy
from tierspayant.api.errors import install_error_handlers
from tierspayant.api.lanes import LookupLane
from tierspayant.api.middleware import BodyLimitMiddleware
from tierspayant.api.schemas import (
    CalculationIn,
    CalculationOut,
    DomainRightOut,
    EligibilityIn,
    EligibilityOut,
    ErrorOut,
    TokenOut,
)
from tierspayant.domain.pricing import PricingLine
from tierspayant.services import providers
from tierspayant.services.eligibility import RightsCheck, start_rights_check
from tierspayant.services.errors import ServiceError, Unauthenticated
from tierspayant.services.identification import CardData
from tierspayant.services.lookup import NO_PROOF, CardProof
from tierspayant.services.platform import Platform
from tierspayant.services.pricing import Calculation, start_calculation
from tierspayant.services.prior_auth import prior_auth_policy
from tierspayant.web.portals import mount_portals

ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorOut},
    401: {"model": ErrorOut},
    403: {"model": ErrorOut},
    422: {"model": ErrorOut},
    429: {"model": ErrorOut},
}


def create_app(platform: Platform) -> FastAPI:
    """Build the API around one platform."""
    app = FastAPI(
        title="tierspayant",
        version=__version__,
        description=(
            "Tiers payant operator API: rights checks (IDB) and calculations (CLC) for "
            "health providers. Lookups need the data printed on the patient's card; answers "
            "carry decisions and amounts, never identity data."
        ),
    )
    app.state.platform = platform
    # A bad prior-authorisation setting stops the start here, not a request later.
    prior_auth_policy(platform.settings)
    lane = LookupLane(platform)
    install_error_handlers(app)
    app.add_middleware(BodyLimitMiddleware, max_bytes=platform.settings.max_body_bytes)

    @app.get("/healthz", tags=["operations"], summary="Liveness", **policy(Policy.PUBLIC))
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.post(
        "/v1/oauth/token",
        tags=["authentication"],
        response_model=TokenOut,
        responses=ERRORS,
        summary="OAuth2 client credentials grant for provider software",
        **policy(Policy.PUBLIC),
    )
    def token(
        request: Request,
        grant_type: Annotated[str, Form()],
        client_id: Annotated[str | None, Form(max_length=64)] = None,
        client_secret: Annotated[str | None, Form(max_length=200)] = None,
    ) -> TokenOut:
        if grant_type != "client_credentials":
            # RFC 6749 §5.2: an unsupported grant type is a 400, not an authentication failure.
            raise ServiceError("auth.unsupported_grant", "only client_credentials is supported")
        basic = _basic_credentials(request.headers.get("authorization"))
        if basic is not None:
            client_id, client_secret = basic
        if not client_id or not client_secret:
            raise Unauthenticated("auth.invalid_client", "client_id and client_secret required")
        granted = providers.grant_client_token(platform, client_id, client_secret)
        return TokenOut(
            access_token=granted.access_token,
            token_type=granted.token_type,
            expires_in=granted.expires_in,
        )

    @app.post(
        "/v1/eligibility",
        tags=["eligibility"],
        response_model=EligibilityOut,
        responses=ERRORS,
        summary="Rights check from card data (IDB)",
        **policy(Policy.PROVIDER),
    )
    async def eligibility(body: EligibilityIn, principal: ProviderPrincipal) -> Response:
        card = CardData(
            amc_number=body.card.amc_number,
            birth_date=body.card.birth_date,
            nir=body.card.nir,
            birth_rank=body.card.birth_rank,
            member_number=body.card.member_number,
        )
        check = RightsCheck(card, body.care_date, tuple(body.domains))
        proof = _proof(body.card_proof)
        answer = await lane.run(lambda: start_rights_check(platform, principal, check, proof))
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
        )
        # Serialised here, already valid: the framework would validate the model again
        # against ``response_model`` (kept for the OpenAPI document) on the hot path.
        return Response(out.model_dump_json(), media_type="application/json")

    @app.post(
        "/v1/calculations",
        tags=["calculation"],
        response_model=CalculationOut,
        responses=ERRORS,
        summary="Calculation of AMO, AMC and patient shares (CLC)",
        **policy(Policy.PROVIDER),
    )
    async def calculation(body: CalculationIn, principal: ProviderPrincipal) -> CalculationOut:
        card = CardData(
            amc_number=body.card.amc_number,
            birth_date=body.card.birth_date,
            nir=body.card.nir,
            birth_rank=body.card.birth_rank,
            member_number=body.card.member_number,
        )
        lines = tuple(
            PricingLine(
                act_code=line.act_code,
                domain=line.domain,
                family=line.family,
                quantity=line.quantity,
                billed_cents=line.billed_cents,
                br_cents=line.br_cents,
                amo_rate_bp=line.amo_rate_bp,
                exemption=line.exemption,
                in_care_pathway=line.in_care_pathway,
                rss_class=line.rss_class,
                plv_cents=line.plv_cents,
                psychiatry=line.psychiatry,
            )
            for line in body.lines
        )
        request = Calculation(card, body.care_date, lines, body.maternity)
        proof = _proof(body.card_proof)
        result = await lane.run(lambda: start_calculation(platform, principal, request, proof))
        return CalculationOut.model_validate(result.as_dict())

    for module in (claims_routes, money_routes, security_routes, member_routes):
        app.include_router(module.router, responses=ERRORS)
    mount_portals(app, platform)
    return app


def _proof(text: str | None) -> CardProof:
    return NO_PROOF if text is None else CardProof(text)


def _basic_credentials(header: str | None) -> tuple[str, str] | None:
    if not header or not header.lower().startswith("basic "):
        return None
    try:
        decoded = base64.b64decode(header[6:], validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        raise Unauthenticated("auth.invalid_client", "malformed basic credentials") from None
    client_id, sep, secret = decoded.partition(":")
    if not sep:
        raise Unauthenticated("auth.invalid_client", "malformed basic credentials")
    return client_id, secret
