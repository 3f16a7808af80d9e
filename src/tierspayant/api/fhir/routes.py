"""The ``/fhir`` routes. Every route declares its policy like the ``/v1`` routes.

Searches that could find people are refused whatever the caller sends: the catch-all
routes at the end answer ``fhir.search_refused`` (403), ``fhir.interaction_unsupported``
(405) or ``fhir.unknown_resource_type`` (404) without looking at the credentials, so they
tell an anonymous caller nothing the CapabilityStatement does not.
"""

from __future__ import annotations

import json
from typing import Annotated

from fastapi import APIRouter, Path, Request, Response
from fastapi.concurrency import run_in_threadpool

from tierspayant import __version__
from tierspayant.api.deps import (
    LaneDep,
    MemberPrincipal,
    PlatformDep,
    Policy,
    ProviderPrincipal,
    policy,
)
from tierspayant.api.fhir import PREFIX
from tierspayant.api.idempotency import IdempotencyKeyDep, kept, replayed
from tierspayant.app.platform import Platform
from tierspayant.domain.claims import ClaimContent, ClaimLine
from tierspayant.domain.codes import FhirCode
from tierspayant.domain.errors import FhirNotAllowed, FhirRefused
from tierspayant.domain.pricing import PricingLine, PricingResult
from tierspayant.formats.fhir import read, write
from tierspayant.formats.fhir.capability import RESOURCES, capability_statement
from tierspayant.security.principal import Principal
from tierspayant.services import member_portal, payments, statements
from tierspayant.services.claims import ClaimSubmission, submit_claim
from tierspayant.services.eligibility import RightsCheck, start_rights_check
from tierspayant.services.engagements import cancel_amount
from tierspayant.services.errors import NotFound
from tierspayant.services.idempotency import StoredAnswer, request_key
from tierspayant.services.identification import CardData
from tierspayant.services.lookup import NO_PROOF, CardProof
from tierspayant.services.pricing import Calculation, start_calculation, start_keyed_calculation
from tierspayant.services.prior_auth import PriorAuthRequest, request_prior_auth

router = APIRouter(prefix=PREFIX, tags=["fhir"])
TYPE = r"^[A-Za-z]{1,64}$"
ResourceType = Annotated[str, Path(pattern=TYPE)]
LogicalId = Annotated[str, Path(pattern=r"^[A-Za-z0-9.-]{1,64}$")]
AdviceId = Annotated[str, Path(min_length=3, max_length=24, pattern=r"^R[0-9]{8}-[0-9]{1,10}$")]
SUBMIT = f"POST {PREFIX}/Claim/$submit"  # the route's name in the scope of idempotency keys


def _fhir(resource: dict[str, object], status: int = 200) -> Response:
    return Response(write.dumps(resource), status, media_type=write.MEDIA_TYPE)


def _card(card: read.Card) -> CardData:
    return CardData(
        amc_number=card.amc_number,
        birth_date=card.birth_date,
        nir=card.nir,
        birth_rank=card.birth_rank,
        member_number=card.member_number,
    )


def _proof(text: str | None) -> CardProof:
    return NO_PROOF if text is None else CardProof(text)


@router.get(
    "/metadata",
    summary="FHIR CapabilityStatement: what the interface offers",
    **policy(Policy.PUBLIC),
)
def metadata(platform: PlatformDep) -> Response:
    return _fhir(capability_statement(__version__, platform.now()))


@router.post(
    "/CoverageEligibilityRequest",
    summary="Rights check (IDB) as a FHIR CoverageEligibilityRequest",
    **policy(Policy.PROVIDER),
)
async def coverage_eligibility(
    request: Request, principal: ProviderPrincipal, platform: PlatformDep, lane: LaneDep
) -> Response:
    ask = read.rights_ask(await request.body())
    check = RightsCheck(_card(ask.card), ask.care_date, ask.domains)
    proof = _proof(ask.card_proof)
    answer = await lane.run(lambda: start_rights_check(platform, principal, check, proof))
    return _fhir(
        write.eligibility_response(
            answer.rights,
            care_date=answer.care_date,
            amc_number=ask.card.amc_number,
            purposes=("benefits",),
            created=platform.now(),
            engagement_number=answer.engagement_number,
        )
    )


def _pricing_line(item: read.Item) -> PricingLine:
    return PricingLine(
        act_code=item.act_code,
        domain=item.domain,
        family=item.family,
        quantity=item.quantity,
        billed_cents=item.billed_cents,
        br_cents=item.br_cents,
        amo_rate_bp=item.amo_rate_bp,
        exemption=item.exemption,
        in_care_pathway=item.in_care_pathway,
        rss_class=item.rss_class,
        plv_cents=item.plv_cents,
        psychiatry=item.psychiatry,
    )


def _claim_line(item: read.Item, index: int) -> ClaimLine:
    if item.amo_rate_bp is None or item.amo_paid_cents is None or item.amc_requested_cents is None:
        raise read.invalid(
            "une facture porte le taux AMO, la part AMO payée et la part AMC demandée",
            f"item.{index}.extension",
        )
    return ClaimLine(
        act_code=item.act_code,
        domain=item.domain,
        family=item.family,
        quantity=item.quantity,
        care_date=item.care_date,
        br_cents=item.br_cents,
        billed_cents=item.billed_cents,
        amo_rate_bp=item.amo_rate_bp,
        amo_paid_cents=item.amo_paid_cents,
        amc_requested_cents=item.amc_requested_cents,
        exemption=item.exemption,
        in_care_pathway=item.in_care_pathway,
        rss_class=item.rss_class,
        plv_cents=item.plv_cents,
        psychiatry=item.psychiatry,
    )


@router.post(
    "/Claim/$submit",
    summary="Calculation, prior authorisation or invoice, by the Claim's use",
    **policy(Policy.PROVIDER),
)
async def claim_submit(
    request: Request,
    principal: ProviderPrincipal,
    platform: PlatformDep,
    lane: LaneDep,
    key: IdempotencyKeyDep,
) -> Response:
    """A calculation (``predetermination``) honours ``Idempotency-Key`` as ``POST
    /v1/calculations`` does; a prior authorisation and an invoice are keyed by their
    ``identifier`` and ignore the header."""
    raw = await request.body()
    ask = read.claim_ask(raw)
    kind = write.claim_type(item.domain.value for item in ask.items)
    card, amc = _card(ask.card), ask.card.amc_number
    if ask.use == "predetermination":
        lines = tuple(_pricing_line(item) for item in ask.items)
        calc = Calculation(card, ask.care_date, lines, ask.maternity)
        proof = _proof(ask.card_proof)

        def render(result: PricingResult) -> Response:
            return _fhir(
                write.calculation_response(
                    result, amc_number=amc, created=platform.now(), claim_type=kind
                )
            )

        if key is None:
            result = await lane.run(lambda: start_calculation(platform, principal, calc, proof))
            return render(result)
        keyed = request_key(principal, SUBMIT, key, json.loads(raw))

        def keep(result: PricingResult) -> StoredAnswer:
            return kept(render(result))

        answer = await lane.run(
            lambda: start_keyed_calculation(platform, principal, calc, proof, keyed, keep)
        )
        return replayed(answer)
    if ask.use == "preauthorization":
        return await run_in_threadpool(_prior_auth, platform, principal, ask, card, kind)
    return await run_in_threadpool(_invoice, platform, principal, ask, card, kind)


def _prior_auth(
    platform: Platform, principal: Principal, ask: read.ClaimAsk, card: CardData, kind: str
) -> Response:
    if ask.identifier is None:
        raise read.invalid("la clé de la demande (identifier) est attendue", "identifier")
    answer, created = request_prior_auth(
        platform,
        principal,
        PriorAuthRequest(
            card=card,
            care_date=ask.care_date,
            request_key=ask.identifier,
            lines=tuple(_pricing_line(item) for item in ask.items),
        ),
        _proof(ask.card_proof),
    )
    resource = write.prior_auth_response(
        agreement_number=answer.agreement_number,
        status=answer.status,
        care_date=answer.care_date,
        valid_until=answer.valid_until,
        reason_code=answer.reason_code,
        lines=answer.lines,
        guaranteed_cents=answer.guaranteed_cents,
        amc_number=ask.card.amc_number,
        created=platform.now(),
        claim_type=kind,
    )
    return _fhir(resource, 201 if created else 200)


def _invoice(
    platform: Platform, principal: Principal, ask: read.ClaimAsk, card: CardData, kind: str
) -> Response:
    if ask.identifier is None:
        raise read.invalid("le numéro de facture (identifier) est attendu", "identifier")
    lines = tuple(_claim_line(item, n) for n, item in enumerate(ask.items))
    content = ClaimContent(
        invoice_number=ask.identifier,
        care_date=ask.care_date,
        agreement_number=ask.agreement_number,
        maternity=ask.maternity,
        lines=lines,
        engagement_number=ask.engagement_number,
    )
    receipt = submit_claim(platform, principal, ClaimSubmission(card=card, content=content))
    resource = write.claim_receipt_response(
        claim_id=receipt.claim_id,
        invoice_number=receipt.invoice_number,
        billed_cents=[line.billed_cents for line in lines],
        amc_requested_cents=[line.amc_requested_cents for line in lines],
        amc_number=ask.card.amc_number,
        created=platform.now(),
        claim_type=kind,
    )
    return _fhir(resource, 201 if receipt.created else 200)


@router.get(
    "/PaymentReconciliation/{advice_id}",
    summary="One of the provider's remittance advices as a PaymentReconciliation",
    **policy(Policy.PROVIDER),
)
def payment_reconciliation(
    advice_id: AdviceId, principal: ProviderPrincipal, platform: PlatformDep
) -> Response:
    advice = payments.get_remittance(platform, principal, advice_id, offset=0, limit=1000)
    return _fhir(
        write.payment_reconciliation(
            advice.header, advice.lines, advice.recovered, created=platform.now()
        )
    )


@router.get(
    "/ExplanationOfBenefit",
    summary="The signed-in member's own statement lines, as ExplanationOfBenefit",
    **policy(Policy.MEMBER),
)
def explanation_of_benefit(
    request: Request, principal: MemberPrincipal, platform: PlatformDep
) -> Response:
    if request.query_params:
        raise FhirRefused(
            FhirCode.SEARCH_REFUSED, "la liste de l'assuré ne prend aucun paramètre de recherche"
        )
    lines = statements.member_statement(platform, principal)
    now = platform.now()
    return _fhir(
        write.searchset(
            [write.explanation_of_benefit(line, n, created=now) for n, line in enumerate(lines)]
        )
    )


@router.get(
    "/Coverage",
    summary="The signed-in member's own contract coverage, as a Coverage",
    **policy(Policy.MEMBER),
)
def coverage(request: Request, principal: MemberPrincipal, platform: PlatformDep) -> Response:
    if request.query_params:
        raise _search_refused()
    own = member_portal.own_coverage(platform, principal)
    resource = write.member_coverage(
        amc_number=own.insurer,
        contract=own.contract,
        start=own.coverage_start,
        end=own.coverage_end,
    )
    return _fhir(write.searchset([resource]))


@router.post(
    "/Task",
    status_code=201,
    summary="Cancel an engagement on amounts, as a Task (code cancel)",
    **policy(Policy.PROVIDER),
)
async def task_create(
    request: Request, principal: ProviderPrincipal, platform: PlatformDep
) -> Response:
    """The service of ``DELETE /v1/engagements/{number}``: idempotent, and every number it
    cannot cancel (unknown, rights kind, another professional's) is ``engagement.not_found``."""
    number = read.cancellation(await request.body())
    await run_in_threadpool(cancel_amount, platform, principal, number)
    return _fhir(write.task_cancelled(number), 201)


# Everything else: refused, the same for every caller (see the module's docstring).


def _known(resource_type: str) -> None:
    if resource_type not in RESOURCES and resource_type not in _PEOPLE:
        raise NotFound(FhirCode.UNKNOWN_RESOURCE_TYPE, "type de ressource non pris en charge")


# The catch-all routes below exist only to refuse (searches, reads and creates the interface
# does not offer) with an OperationOutcome; they are left out of the OpenAPI document.
# Types a caller may try to search for people; refused as searches, not as unknown types.
_PEOPLE = frozenset(
    {"Patient", "Coverage", "Person", "RelatedPerson", "Practitioner", "PractitionerRole",
     "Organization", "ClaimResponse", "CoverageEligibilityResponse", "Account"}
)  # fmt: skip


def _search_refused() -> FhirRefused:
    return FhirRefused(
        FhirCode.SEARCH_REFUSED,
        "aucune recherche : chaque demande porte les données de la carte du patient",
    )


@router.get(
    "/{resource_type}",
    summary="Search: refused (no search can find people)",
    include_in_schema=False,  # a refusal, not an operation a client could use
    **policy(Policy.PUBLIC),
)
def search(resource_type: ResourceType) -> Response:
    _known(resource_type)
    raise _search_refused()


@router.post(
    "/{resource_type}/_search",
    summary="Search by POST: refused (no search can find people)",
    include_in_schema=False,  # a refusal, not an operation a client could use
    **policy(Policy.PUBLIC),
)
def search_by_post(resource_type: ResourceType) -> Response:
    _known(resource_type)
    raise _search_refused()


@router.get(
    "/{resource_type}/{logical_id}",
    summary="Read of a resource type the interface does not offer to read: refused",
    include_in_schema=False,  # a refusal, not an operation a client could use
    **policy(Policy.PUBLIC),
)
def read_unsupported(resource_type: ResourceType, logical_id: LogicalId) -> Response:
    _known(resource_type)
    raise FhirNotAllowed(
        FhirCode.INTERACTION_UNSUPPORTED, "lecture non prise en charge pour ce type de ressource"
    )


@router.post(
    "/{resource_type}",
    summary="Create of a resource type the interface does not take: refused",
    include_in_schema=False,  # a refusal, not an operation a client could use
    **policy(Policy.PUBLIC),
)
def create_unsupported(resource_type: ResourceType) -> Response:
    _known(resource_type)
    raise FhirNotAllowed(
        FhirCode.INTERACTION_UNSUPPORTED, "création non prise en charge pour ce type de ressource"
    )
