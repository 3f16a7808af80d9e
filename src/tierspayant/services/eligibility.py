"""The rights check (IDB): card data in, per-domain decisions out, nothing else."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from sqlalchemy import Connection

from tierspayant.app.observability import REQUEST_ID_DETAIL, current_request_id
from tierspayant.app.platform import Platform
from tierspayant.domain.care import CareDomain
from tierspayant.domain.codes import EligibilityCode
from tierspayant.domain.eligibility import (
    Coverage,
    DomainRight,
    check_care_date,
    evaluate_rights,
    no_rights,
)
from tierspayant.domain.engagements import rights_engagement
from tierspayant.domain.errors import EligibilityError
from tierspayant.security.audit import DISCLOSED
from tierspayant.security.principal import Principal
from tierspayant.services.engagements import seal_rights
from tierspayant.services.identification import CardData, Identified
from tierspayant.services.insurers import Insurer
from tierspayant.services.lookup import NO_PROOF, CardProof, Deferred, guarded_read
from tierspayant.store import audit


@dataclass(frozen=True, slots=True)
class RightsCheck:
    card: CardData
    care_date: date
    domains: tuple[CareDomain, ...]


@dataclass(frozen=True, slots=True)
class RightsAnswer:
    care_date: date
    rights: tuple[DomainRight, ...]
    # Present only when a domain is answered covered: an unknown or uncovered person's
    # answer is the same value as before engagements existed.
    engagement_number: str | None = None


def check_rights(
    platform: Platform, principal: Principal, request: RightsCheck, proof: CardProof = NO_PROOF
) -> RightsAnswer:
    """Authorise, guard, identify, evaluate, audit and commit one rights check."""
    return start_rights_check(platform, principal, request, proof).settle()


def start_rights_check(
    platform: Platform, principal: Principal, request: RightsCheck, proof: CardProof = NO_PROOF
) -> Deferred[RightsAnswer]:
    """:func:`check_rights` up to the audit event's group commit: the caller settles it
    (an async caller awaits ``event`` first)."""
    if not request.domains:
        raise EligibilityError(EligibilityCode.DOMAINS_MISSING, "ask for at least one care domain")
    card = request.card.normalised()
    check_care_date(request.care_date, platform.today())

    def answer(
        conn: Connection, insurer: Insurer, found: Identified | None
    ) -> tuple[tuple[tuple[DomainRight, ...], str | None], audit.Entry]:
        rights = _rights(platform, conn, found, request)
        covered = any(r.covered for r in rights)
        # What the caller learnt: anything but the answer an unknown person gets.
        disclosed = found is not None and rights != no_rights(request.domains)
        detail: dict[str, audit.DetailValue] = {
            "care_date": request.care_date.isoformat(),
            "domains": ",".join(d.value for d in request.domains),
            "by": "nir" if card.nir else "member_number",
            "proof": proof.present,
            DISCLOSED: disclosed,
        }
        request_id = current_request_id()
        if request_id is not None:  # built tagged: the lookup need not copy it to tag it
            detail[REQUEST_ID_DETAIL] = request_id
        entry = audit.Entry(
            at=platform.now(),
            actor=principal.id,
            structure=principal.structure,
            action="eligibility.check",
            purpose="rights_check",
            subject=found.subject if found else None,
            insurer=insurer.amc_number,
            decision="miss" if found is None else ("hit" if covered else "hit_not_covered"),
            detail=detail,
        )
        return (rights, _engagement(platform, principal, insurer, found, request, rights)), entry

    deferred = guarded_read(platform, principal, card, proof, answer, care_date=request.care_date)
    return deferred.then(lambda result: RightsAnswer(request.care_date, *result))


def _engagement(
    platform: Platform,
    principal: Principal,
    insurer: Insurer,
    found: Identified | None,
    request: RightsCheck,
    rights: tuple[DomainRight, ...],
) -> str | None:
    """The engagement number of a covered answer: sealed in memory, nothing written."""
    if found is None or principal.provider_id is None:
        return None
    engagement = rights_engagement(
        insurer_id=insurer.id,
        provider_id=principal.provider_id,
        beneficiary_id=found.record.id,
        care_date=request.care_date,
        coverage_start=found.record.coverage_start,
        contract_code=found.record.contract_code,
        rights=rights,
    )
    return None if engagement is None else seal_rights(platform, engagement)


def _rights(
    platform: Platform, conn: Connection, found: Identified | None, request: RightsCheck
) -> tuple[DomainRight, ...]:
    if found is None:
        return no_rights(request.domains)
    record = found.record
    contract = platform.catalogues.contract(conn, found.insurer.id, record.contract_code)
    if contract is None:
        return no_rights(request.domains)
    coverage = Coverage(record.contract_code, record.coverage_start, record.coverage_end)
    return evaluate_rights(coverage, contract.domains, request.care_date, request.domains)
