"""Prior authorisations and invoices (claims): receive, look up, cancel, decide.

Every route declares its policy: ``**policy(Policy.…)`` and the matching dependency
from :mod:`tierspayant.api.deps`. A provider sees only its own agreements and claims:
anyone else's answer the same 404 as an unknown number.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated

from fastapi import APIRouter, Path, Response
from pydantic import BaseModel, Field

from tierspayant.api.deps import InsurerStaff, PlatformDep, Policy, ProviderPrincipal, policy
from tierspayant.api.schemas import CardIn, Cents, LineIn, Strict
from tierspayant.domain.care import CareDomain, Exemption
from tierspayant.domain.claims import ClaimContent, ClaimLine
from tierspayant.domain.pricing import PricingLine, RssClass
from tierspayant.services.claims import (
    ClaimSubmission,
    ClaimView,
    cancel_claim,
    get_claim,
    submit_claim,
)
from tierspayant.services.identification import CardData
from tierspayant.services.prior_auth import (
    PriorAuthAnswer,
    PriorAuthRequest,
    decide_prior_auth,
    get_prior_auth,
    request_prior_auth,
)

router = APIRouter()

AgreementNumber = Annotated[str, Path(min_length=1, max_length=24, pattern=r"^[A-Z0-9]+$")]
ClaimId = Annotated[int, Path(ge=1, le=2**62)]


def _card(card: CardIn) -> CardData:
    return CardData(
        amc_number=card.amc_number,
        birth_date=card.birth_date,
        nir=card.nir,
        birth_rank=card.birth_rank,
        member_number=card.member_number,
    )


# --- prior authorisation --------------------------------------------------------------


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


def _pricing_line(line: LineIn) -> PricingLine:
    return PricingLine(
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
            card=_card(body.card),
            care_date=body.care_date,
            request_key=body.request_key,
            lines=tuple(_pricing_line(line) for line in body.lines),
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


# --- claims ------------------------------------------------------------------------------


class ClaimLineIn(Strict):
    """One invoiced line. Amounts are integer cents; the AMO rate in basis points."""

    act_code: Annotated[str, Field(min_length=1, max_length=13, pattern=r"^[A-Z0-9][A-Z0-9.+-]*$")]
    domain: CareDomain
    family: Annotated[str, Field(min_length=1, max_length=40, pattern=r"^[a-z0-9_]+$")]
    quantity: Annotated[int, Field(ge=1, le=999)] = 1
    care_date: date
    br_cents: Cents
    billed_cents: Cents
    amo_rate_bp: Annotated[int, Field(ge=0, le=10_000)]
    amo_paid_cents: Cents
    amc_requested_cents: Cents
    exemption: Exemption = Exemption.NONE
    in_care_pathway: bool = True
    rss_class: RssClass | None = None
    plv_cents: Cents | None = None
    psychiatry: bool = False


class ClaimIn(Strict):
    invoice_number: Annotated[
        str, Field(min_length=1, max_length=40, pattern=r"^[A-Za-z0-9][A-Za-z0-9._/-]*$")
    ]
    card: CardIn
    care_date: date
    agreement_number: Annotated[str, Field(min_length=1, max_length=24)] | None = None
    maternity: bool = False
    correction: bool = False
    lines: Annotated[list[ClaimLineIn], Field(min_length=1, max_length=99)]


class ClaimReceiptOut(BaseModel):
    claim_id: int
    invoice_number: str
    version: int
    status: str


class ClaimLineOut(BaseModel):
    line_no: int
    act_code: str
    domain: str
    family: str
    quantity: int
    care_date: date
    billed_cents: int
    amc_requested_cents: int
    status: str
    amc_accepted_cents: int
    reason_code: str | None
    rules: list[str]


class ClaimOut(BaseModel):
    claim_id: int
    invoice_number: str
    version: int
    status: str
    care_date: date
    agreement_number: str | None
    received_at: datetime
    adjudicated_at: datetime | None
    billed_cents: int
    amc_requested_cents: int
    amc_accepted_cents: int
    reason_code: str | None
    lines: list[ClaimLineOut]


class CancellationIn(Strict):
    reason: Annotated[str, Field(max_length=40, pattern=r"^[a-z0-9_]*$")] = "provider"


def claim_submission(body: ClaimIn) -> ClaimSubmission:
    """The service's view of a request body."""
    return ClaimSubmission(
        card=_card(body.card),
        content=ClaimContent(
            invoice_number=body.invoice_number,
            care_date=body.care_date,
            agreement_number=body.agreement_number,
            maternity=body.maternity,
            lines=tuple(
                ClaimLine(
                    act_code=line.act_code,
                    domain=line.domain,
                    family=line.family,
                    quantity=line.quantity,
                    care_date=line.care_date,
                    br_cents=line.br_cents,
                    billed_cents=line.billed_cents,
                    amo_rate_bp=line.amo_rate_bp,
                    amo_paid_cents=line.amo_paid_cents,
                    amc_requested_cents=line.amc_requested_cents,
                    exemption=line.exemption,
                    in_care_pathway=line.in_care_pathway,
                    rss_class=line.rss_class,
                    plv_cents=line.plv_cents,
                    psychiatry=line.psychiatry,
                )
                for line in body.lines
            ),
        ),
        correction=body.correction,
    )


def _claim_out(view: ClaimView) -> ClaimOut:
    return ClaimOut(
        claim_id=view.claim_id,
        invoice_number=view.invoice_number,
        version=view.version,
        status=view.status,
        care_date=view.care_date,
        agreement_number=view.agreement_number,
        received_at=view.received_at,
        adjudicated_at=view.adjudicated_at,
        billed_cents=view.billed_cents,
        amc_requested_cents=view.amc_requested_cents,
        amc_accepted_cents=view.amc_accepted_cents,
        reason_code=view.reason_code,
        lines=[
            ClaimLineOut(
                line_no=line.line_no,
                act_code=line.act_code,
                domain=line.domain,
                family=line.family,
                quantity=line.quantity,
                care_date=line.care_date,
                billed_cents=line.billed_cents,
                amc_requested_cents=line.amc_requested_cents,
                status=line.status,
                amc_accepted_cents=line.amc_accepted_cents,
                reason_code=line.reason_code,
                rules=list(line.rules),
            )
            for line in view.lines
        ],
    )


@router.post(
    "/v1/claims",
    tags=["claims"],
    response_model=ClaimReceiptOut,
    status_code=201,
    summary="Send one invoice (idempotent on the invoice number)",
    **policy(Policy.PROVIDER),
)
def post_claim(
    body: ClaimIn, principal: ProviderPrincipal, platform: PlatformDep, response: Response
) -> ClaimReceiptOut:
    receipt = submit_claim(platform, principal, claim_submission(body))
    if not receipt.created:
        response.status_code = 200
    return ClaimReceiptOut(
        claim_id=receipt.claim_id,
        invoice_number=receipt.invoice_number,
        version=receipt.version,
        status=receipt.status,
    )


@router.get(
    "/v1/claims/{claim_id}",
    tags=["claims"],
    response_model=ClaimOut,
    summary="A claim's state and the decision on each line",
    **policy(Policy.PROVIDER),
)
def read_claim(claim_id: ClaimId, principal: ProviderPrincipal, platform: PlatformDep) -> ClaimOut:
    return _claim_out(get_claim(platform, principal, claim_id))


@router.post(
    "/v1/claims/{claim_id}/cancellation",
    tags=["claims"],
    response_model=ClaimOut,
    summary="Cancel a claim before it is paid",
    **policy(Policy.PROVIDER),
)
def cancel(
    claim_id: ClaimId, body: CancellationIn, principal: ProviderPrincipal, platform: PlatformDep
) -> ClaimOut:
    return _claim_out(cancel_claim(platform, principal, claim_id, body.reason or "provider"))
