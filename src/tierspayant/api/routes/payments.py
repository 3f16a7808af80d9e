"""Payments: remittance advice for providers (JSON, or PDF to print).

Every route declares its policy: ``**policy(Policy.…)`` and the matching dependency
from :mod:`tierspayant.api.deps`. A provider asking for another provider's advice gets
the same 404 as for an advice that does not exist.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated

from fastapi import APIRouter, Path, Query, Response

from tierspayant.api.deps import PlatformDep, Policy, ProviderPrincipal, policy
from tierspayant.api.json_body import StrictJsonRoute
from tierspayant.api.schemas import Strict
from tierspayant.domain.payments import RemittanceHeader
from tierspayant.formats.sepa import amount
from tierspayant.services import payments

router = APIRouter(route_class=StrictJsonRoute)

AdviceId = Annotated[str, Path(min_length=3, max_length=24, pattern=r"^R[0-9]{8}-[0-9]{1,10}$")]


class RemittanceOut(Strict):
    id: str
    payment_date: date
    provider_am_number: str
    lines: int
    accepted: str  # euros, "12.30"
    undue_recovered: str
    transferred: str
    end_to_end_id: str


class RemittanceLineOut(Strict):
    amc_number: str
    invoice_number: str
    claim_id: int
    line_no: int
    care_date: date
    act_code: str
    domain: str
    requested: str
    paid: str
    status: str
    reason_code: str | None


class RecoveredOut(Strict):
    amc_number: str
    invoice_number: str
    claim_id: int
    line_no: int
    reason_code: str
    recovered: str


class RemittanceDetailOut(Strict):
    remittance: RemittanceOut
    lines: list[RemittanceLineOut]
    undue_recovered: list[RecoveredOut]
    offset: int
    limit: int


class RemittanceListOut(Strict):
    remittances: list[RemittanceOut]


def _remittance_out(header: RemittanceHeader) -> RemittanceOut:
    return RemittanceOut(
        id=header.remittance_id,
        payment_date=header.payment_date,
        provider_am_number=header.provider_am_number,
        lines=header.lines,
        accepted=amount(header.gross_cents),
        undue_recovered=amount(header.recovered_cents),
        transferred=amount(header.transfer_cents),
        end_to_end_id=header.end_to_end_id,
    )


@router.get(
    "/v1/remittances",
    tags=["payments"],
    response_model=RemittanceListOut,
    summary="The provider's remittance advices, newest first",
    **policy(Policy.PROVIDER),
)
def list_remittances(
    principal: ProviderPrincipal,
    platform: PlatformDep,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> RemittanceListOut:
    found = payments.list_remittances(platform, principal, limit=limit)
    return RemittanceListOut(remittances=[_remittance_out(h) for h in found])


@router.get(
    "/v1/remittances/{advice_id}",
    tags=["payments"],
    response_model=RemittanceDetailOut,
    summary="One remittance advice: each line paid or rejected, undue amounts deducted",
    **policy(Policy.PROVIDER),
)
def read_remittance(
    advice_id: AdviceId,
    principal: ProviderPrincipal,
    platform: PlatformDep,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 500,
) -> RemittanceDetailOut:
    advice = payments.get_remittance(platform, principal, advice_id, offset=offset, limit=limit)
    return RemittanceDetailOut(
        remittance=_remittance_out(advice.header),
        lines=[
            RemittanceLineOut(
                amc_number=line.amc_number,
                invoice_number=line.invoice_number,
                claim_id=line.claim_id,
                line_no=line.line_no,
                care_date=line.care_date,
                act_code=line.act_code,
                domain=line.domain,
                requested=amount(line.requested_cents),
                paid=amount(line.paid_cents),
                status=line.status,
                reason_code=line.reason_code,
            )
            for line in advice.lines
        ],
        undue_recovered=[
            RecoveredOut(
                amc_number=r.amc_number,
                invoice_number=r.invoice_number,
                claim_id=r.claim_id,
                line_no=r.line_no,
                reason_code=r.reason_code,
                recovered=amount(r.cents),
            )
            for r in advice.recovered
        ],
        offset=advice.offset,
        limit=advice.limit,
    )


@router.get(
    "/v1/remittances/{advice_id}/pdf",
    tags=["payments"],
    response_class=Response,
    responses={
        200: {
            "description": "The advice as a PDF document (French), every line",
            "content": {"application/pdf": {"schema": {"type": "string", "format": "binary"}}},
        }
    },
    summary="One remittance advice as a printable PDF (French)",
    **policy(Policy.PROVIDER),
)
def read_remittance_pdf(
    advice_id: AdviceId, principal: ProviderPrincipal, platform: PlatformDep
) -> Response:
    body = payments.download_remittance(platform, principal, advice_id, "pdf")
    return Response(
        body,
        media_type="application/pdf",
        headers={"Content-Disposition": f'attachment; filename="avis-{advice_id}.pdf"'},
    )
