"""Claims (invoices, "factures" on screen): receive, look up, cancel.

Every route declares its policy: ``**policy(Policy.…)`` and the matching dependency
from :mod:`tierspayant.api.deps`. A provider sees only its own claims: anyone else's
answer the same 404 as an unknown number.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated

from fastapi import APIRouter, Path, Response
from pydantic import BaseModel, Field

from tierspayant.api.deps import PlatformDep, Policy, ProviderPrincipal, policy
from tierspayant.api.json_body import StrictJsonRoute
from tierspayant.api.schemas import CardIn, Cents, Strict, card_data
from tierspayant.domain.care import CareDomain, Exemption
from tierspayant.domain.claims import ClaimContent, ClaimLine
from tierspayant.domain.pricing import RssClass
from tierspayant.services.claims import (
    ClaimSubmission,
    ClaimView,
    cancel_claim,
    get_claim,
    submit_claim,
)

router = APIRouter(route_class=StrictJsonRoute)

ClaimId = Annotated[int, Path(ge=1, le=2**62)]


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
    engagement_number: Annotated[str, Field(min_length=1, max_length=160)] | None = Field(
        default=None, description="the engagement number of the rights check (ENG1-R-…)"
    )
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
        card=card_data(body.card),
        content=ClaimContent(
            invoice_number=body.invoice_number,
            care_date=body.care_date,
            agreement_number=body.agreement_number,
            engagement_number=body.engagement_number,
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
