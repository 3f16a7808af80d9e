"""Answers as FHIR R4 JSON: plain dicts serialised once, checked by the tests against the
R4B models of ``fhir.resources`` (building the models on the hot path would double the
cost of a rights check for no gain: the shapes below are fixed).

Nothing here names the person: the patient is a reference by display only, the caller's
own identifiers (the card's NIR, the member number) are never written back.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime
from typing import Any, Protocol

from tierspayant.domain.eligibility import DomainRight
from tierspayant.domain.payments import RecoveredUndue, RemittanceHeader, RemittanceLine
from tierspayant.domain.pricing import PricingResult
from tierspayant.domain.prior_auth import GuaranteedLine
from tierspayant.formats.fhir import systems

MEDIA_TYPE = "application/fhir+json"
PATIENT = {"display": "patient de la demande"}
Json = dict[str, Any]


_NUMBER = "\u0001"  # marks a decimal written as text; JSON escapes it as \\u0001
_NUMBER_TEXT = re.compile(r'"\\u0001(-?[0-9]+\.[0-9]+)"')


def dumps(resource: Mapping[str, Any]) -> bytes:
    """Compact JSON; decimals (amounts, rates) written exactly, never through a float."""
    text = json.dumps(resource, ensure_ascii=False, separators=(",", ":"))
    if "\\u0001" not in text:  # no decimal (a rights answer): nothing to rewrite
        return text.encode()
    return _NUMBER_TEXT.sub(r"\1", text).encode()


def _decimal(hundredths: int) -> str:
    """``1230`` → the JSON number ``12.30`` (see :func:`dumps`)."""
    sign = "-" if hundredths < 0 else ""
    whole, part = divmod(abs(hundredths), 100)
    return f"{_NUMBER}{sign}{whole}.{part:02d}"


def _money(cents: int) -> Json:
    return {"value": _decimal(cents), "currency": "EUR"}


def _coding(system: str, code: str, display: str | None = None) -> Json:
    coding: Json = {"system": system, "code": code}
    if display is not None:
        coding["display"] = display
    return {"coding": [coding]}


def _insurer(amc_number: str) -> Json:
    return {"identifier": {"system": systems.AMC_NUMBER, "value": amc_number}}


def _instant(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds")


def operation_outcome(code: str, message: str, status: int, element: str | None = None) -> Json:
    """One error issue: FHIR's issue type for the status, our stable code in details."""
    issue: Json = {
        "severity": "error",
        "code": _ISSUE_TYPES.get(status, "processing" if status < 500 else "exception"),
        "details": {"coding": [{"system": systems.ERROR_CODE, "code": code}], "text": message},
    }
    if element:
        issue["expression"] = [element]
    return {"resourceType": "OperationOutcome", "issue": [issue]}


_ISSUE_TYPES = {
    400: "structure",
    401: "login",
    403: "forbidden",
    404: "not-found",
    405: "not-supported",
    409: "conflict",
    413: "too-costly",
    431: "too-costly",
    415: "not-supported",
    422: "invalid",
    429: "throttled",
    503: "transient",
}


def eligibility_response(
    rights: Sequence[DomainRight],
    *,
    care_date: date,
    amc_number: str,
    purposes: Iterable[str],
    created: datetime,
    engagement_number: str | None = None,
) -> Json:
    """The rights-check answer: one ``insurance`` whose items are the requested domains.

    ``engagement_number`` (a covered answer only) goes to the top-level ``preAuthRef``,
    the one element of R4's CoverageEligibilityResponse for the insurer's reference; an
    answer without it is byte for byte the answer an unknown person gets.
    """
    covered = any(r.covered for r in rights)
    items: list[Json] = []
    valid_until: date | None = None
    for right in rights:
        item: Json = {
            "extension": [{"url": systems.TIERS_PAYANT, "valueBoolean": right.tiers_payant}],
            "category": _coding(systems.CARE_DOMAIN, right.domain.value),
            "excluded": not right.covered,
        }
        if right.coverage_code is not None:
            item["benefit"] = [
                {
                    "type": _coding(systems.BENEFIT_TYPE, "benefit"),
                    "allowedString": right.coverage_code,
                }
            ]
        if right.valid_until is not None:
            valid_until = right.valid_until
        items.append(item)
    insurance: Json = {
        "coverage": {"display": "couverture complémentaire"},
        "inforce": covered,
    }
    if valid_until is not None:
        insurance["benefitPeriod"] = {"end": valid_until.isoformat()}
    insurance["item"] = items
    response: Json = {
        "resourceType": "CoverageEligibilityResponse",
        "status": "active",
        "purpose": sorted(set(purposes)),
        "patient": PATIENT,
        "servicedDate": care_date.isoformat(),
        "created": _instant(created),
        "request": {"display": "demande de la même requête"},
        "outcome": "complete",
        "disposition": "Droits ouverts" if covered else "Aucun droit ouvert à cette date",
        "insurer": _insurer(amc_number),
        "insurance": [insurance],
    }
    if engagement_number is not None:
        response["preAuthRef"] = engagement_number
    return response


def _adjudication(category: str, cents: int, *, ours: bool = False) -> Json:
    system = systems.ADJUDICATION_EXTRA if ours else systems.ADJUDICATION
    return {"category": _coding(system, category), "amount": _money(cents)}


def _claim_response(
    use: str,
    *,
    amc_number: str,
    created: datetime,
    outcome: str,
    disposition: str,
    items: list[Json],
    totals: list[Json],
    claim_type: str,
) -> Json:
    response: Json = {
        "resourceType": "ClaimResponse",
        "status": "active",
        "type": _coding(systems.CLAIM_TYPE, claim_type),
        "use": use,
        "patient": PATIENT,
        "created": _instant(created),
        "insurer": _insurer(amc_number),
        "outcome": outcome,
        "disposition": disposition,
    }
    if items:
        response["item"] = items
    if totals:
        response["total"] = totals
    return response


def claim_type(domains: Iterable[str]) -> str:
    """FHIR's claim type for the domains of the lines (pharmacy, vision, oral…)."""
    kinds = {"PHAR": "pharmacy", "OPTI": "vision", "DENT": "oral", "HOSP": "institutional"}
    found = {kinds.get(d, "professional") for d in domains}
    return found.pop() if len(found) == 1 else "professional"


def calculation_response(
    result: PricingResult, *, amc_number: str, created: datetime, claim_type: str
) -> Json:
    """``use`` = predetermination: per line and in total, what each payer would pay."""
    items = [
        {
            "itemSequence": n,
            "adjudication": [
                _adjudication("submitted", line.billed_cents),
                _adjudication("eligible", line.br_cents),
                {
                    "category": _coding(systems.ADJUDICATION, "eligpercent"),
                    "value": _decimal(line.amo_rate_bp),
                },
                _adjudication("amo", line.amo_paid_cents, ours=True),
                _adjudication("participation", line.participation_cents, ours=True),
                _adjudication("franchise", line.franchise_cents, ours=True),
                _adjudication("benefit", line.amc_cents),
                _adjudication("patient", line.patient_cents, ours=True),
            ],
        }
        for n, line in enumerate(result.lines, start=1)
    ]
    totals = [
        _adjudication("submitted", result.billed_cents),
        _adjudication("eligible", result.br_cents),
        _adjudication("amo", result.amo_paid_cents, ours=True),
        _adjudication("benefit", result.amc_cents),
        _adjudication("patient", result.patient_cents, ours=True),
    ]
    return _claim_response(
        "predetermination",
        amc_number=amc_number,
        created=created,
        outcome="complete",
        disposition="Calcul des parts AMO, AMC et reste à charge",
        items=items,
        totals=totals,
        claim_type=claim_type,
    )


_PRIOR_AUTH = {
    "granted": ("complete", "Accord"),
    "refused": ("complete", "Refus"),
    "pending": ("queued", "Demande en cours d'examen par l'organisme"),
    "expired": ("complete", "Accord expiré"),
}


def prior_auth_response(
    *,
    agreement_number: str,
    status: str,
    care_date: date,
    valid_until: date | None,
    reason_code: str | None,
    lines: Sequence[GuaranteedLine],
    guaranteed_cents: int,
    amc_number: str,
    created: datetime,
    claim_type: str,
) -> Json:
    """``use`` = preauthorization: the agreement number in ``preAuthRef``."""
    outcome, disposition = _PRIOR_AUTH.get(status, ("complete", status))
    reason = [{"reason": _coding(systems.REASON, reason_code)}] if reason_code is not None else []
    items = [
        {
            "itemSequence": n,
            "adjudication": [
                _adjudication("submitted", line.billed_cents),
                {**_adjudication("benefit", line.guaranteed_cents), **reason[0]}
                if reason
                else _adjudication("benefit", line.guaranteed_cents),
            ],
        }
        for n, line in enumerate(lines, start=1)
    ]
    response = _claim_response(
        "preauthorization",
        amc_number=amc_number,
        created=created,
        outcome=outcome,
        disposition=disposition,
        items=items,
        totals=[_adjudication("benefit", guaranteed_cents)],
        claim_type=claim_type,
    )
    response["preAuthRef"] = agreement_number
    if status == "granted" or status == "expired":
        period: Json = {"start": care_date.isoformat()}
        if valid_until is not None:
            period["end"] = valid_until.isoformat()
        response["preAuthPeriod"] = period
    return response


def claim_receipt_response(
    *,
    claim_id: int,
    invoice_number: str,
    billed_cents: Sequence[int],
    amc_requested_cents: Sequence[int],
    amc_number: str,
    created: datetime,
    claim_type: str,
) -> Json:
    """``use`` = claim: received and queued; adjudication follows in the nightly run."""
    items = [
        {
            "itemSequence": n,
            "adjudication": [
                _adjudication("submitted", billed),
                _adjudication("amc-requested", requested, ours=True),
            ],
        }
        for n, (billed, requested) in enumerate(
            zip(billed_cents, amc_requested_cents, strict=True), start=1
        )
    ]
    response = _claim_response(
        "claim",
        amc_number=amc_number,
        created=created,
        outcome="queued",
        disposition="Facture reçue : elle sera liquidée au prochain traitement",
        items=items,
        totals=[],
        claim_type=claim_type,
    )
    response["identifier"] = [
        {"system": systems.CLAIM_ID, "value": str(claim_id)},
        {"system": systems.INVOICE_NUMBER, "value": invoice_number},
    ]
    return response


def payment_reconciliation(
    header: RemittanceHeader,
    lines: Sequence[RemittanceLine],
    recovered: Sequence[RecoveredUndue],
    *,
    created: datetime,
) -> Json:
    """A remittance advice: each line paid or rejected, undue amounts deducted."""
    details: list[Json] = []
    for line in lines:
        detail: Json = {
            "identifier": {
                "system": systems.INVOICE_NUMBER,
                "value": f"{line.invoice_number}/{line.line_no}",
            },
            "type": _coding(systems.PAYMENT_TYPE, "payment"),
            "request": {"identifier": {"system": systems.CLAIM_ID, "value": str(line.claim_id)}},
            "date": line.care_date.isoformat(),
            "amount": _money(line.paid_cents),
        }
        if line.reason_code:
            detail["extension"] = [{"url": systems.REASON, "valueCode": line.reason_code}]
        details.append(detail)
    for undue in recovered:
        details.append(
            {
                "identifier": {
                    "system": systems.INVOICE_NUMBER,
                    "value": f"{undue.invoice_number}/{undue.line_no}",
                },
                "type": _coding(systems.PAYMENT_TYPE, "adjustment"),
                "request": {
                    "identifier": {"system": systems.CLAIM_ID, "value": str(undue.claim_id)}
                },
                "amount": _money(-undue.cents),
                "extension": [{"url": systems.REASON, "valueCode": undue.reason_code}],
            }
        )
    resource: Json = {
        "resourceType": "PaymentReconciliation",
        "id": header.remittance_id,
        "identifier": [
            {"system": systems.REMITTANCE, "value": header.remittance_id},
            {"system": "urn:ietf:rfc:3986", "value": f"urn:sepa:e2e:{header.end_to_end_id}"},
        ],
        "status": "active",
        "created": _instant(created),
        "paymentIdentifier": {"value": header.end_to_end_id},
        "requestor": {
            "identifier": {"system": systems.AM_NUMBER, "value": header.provider_am_number}
        },
        "outcome": "complete",
        "disposition": "Avis de paiement",
        "paymentDate": header.payment_date.isoformat(),
        "paymentAmount": _money(header.net_cents),
    }
    if details:
        resource["detail"] = details
    return resource


class StatementLineLike(Protocol):
    """A line of a member's statement (``services.statements.StatementLine``)."""

    @property
    def care_date(self) -> date: ...
    @property
    def payment_date(self) -> date: ...
    @property
    def domain(self) -> str: ...
    @property
    def act_code(self) -> str: ...
    @property
    def billed_cents(self) -> int: ...
    @property
    def amo_cents(self) -> int: ...
    @property
    def amc_cents(self) -> int: ...
    @property
    def remainder_cents(self) -> int: ...
    @property
    def status(self) -> str: ...


def explanation_of_benefit(line: StatementLineLike, n: int, *, created: datetime) -> Json:
    """One paid line of a member's statement (décompte) as an ExplanationOfBenefit."""
    return {
        "resourceType": "ExplanationOfBenefit",
        "id": f"releve-{n}",
        "status": "cancelled" if line.status == "cancelled" else "active",
        "type": _coding(systems.CLAIM_TYPE, claim_type([line.domain])),
        "use": "claim",
        "patient": {"display": "vous"},
        "created": _instant(created),
        "insurer": {"display": "votre complémentaire santé"},
        "provider": {"display": "professionnel de santé"},
        "outcome": "complete",
        "billablePeriod": {"start": line.care_date.isoformat()},
        "insurance": [{"focal": True, "coverage": {"display": "votre contrat"}}],
        "item": [
            {
                "sequence": 1,
                "category": _coding(systems.CARE_DOMAIN, line.domain),
                "productOrService": _coding(systems.ACT_CODE, line.act_code),
                "servicedDate": line.care_date.isoformat(),
                "adjudication": [
                    _adjudication("submitted", line.billed_cents),
                    _adjudication("amo", line.amo_cents, ours=True),
                    _adjudication("benefit", line.amc_cents),
                    _adjudication("patient", line.remainder_cents, ours=True),
                ],
            }
        ],
        "payment": {"date": line.payment_date.isoformat(), "amount": _money(line.amc_cents)},
    }


def member_coverage(*, amc_number: str, contract: str, start: date, end: date | None) -> Json:
    """The signed-in member's own contract coverage: the insurer, the contract, the period.

    No identifier of the person (no NIR, no member number): the beneficiary is "vous".
    ``status`` is the resource's (R4: active unless withdrawn); an ended coverage shows
    by its ``period.end``.
    """
    period: Json = {"start": start.isoformat()}
    if end is not None:
        period["end"] = end.isoformat()
    return {
        "resourceType": "Coverage",
        "id": "contrat",
        "status": "active",
        "beneficiary": {"display": "vous"},
        "period": period,
        "payor": [_insurer(amc_number)],
        "class": [
            {
                "type": _coding(systems.COVERAGE_CLASS, "plan"),
                "value": contract,
                "name": "contrat",
            }
        ],
    }


def searchset(resources: Sequence[Json]) -> Json:
    return {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": len(resources),
        "entry": [{"resource": r, "search": {"mode": "match"}} for r in resources],
    }


def task_cancelled(number: str) -> Json:
    """The answer to a cancellation Task: the same Task, done. It depends on the number
    only, so a cancellation sent again answers the same bytes."""
    return {
        "resourceType": "Task",
        "status": "completed",
        "intent": "order",
        "code": _coding(systems.TASK_CODE, "cancel"),
        "focus": {"identifier": {"system": systems.ENGAGEMENT, "value": number}},
    }
