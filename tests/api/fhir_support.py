"""Requests of the FHIR interface built from a world's people, and the checks of its
answers against the R4B models of ``fhir.resources`` plus the value sets they leave open.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from fhir.resources.R4B import get_fhir_model_class

from tests.api.world import TODAY, Person
from tierspayant.formats.fhir import systems

FHIR = "application/fhir+json"
# Required bindings the models do not check (FHIR R4 value sets).
STATUS = {"active", "cancelled", "draft", "entered-in-error"}
OUTCOME = {"queued", "complete", "error", "partial"}
USE = {"claim", "preauthorization", "predetermination"}
PURPOSE = {"auth-requirements", "benefits", "discovery", "validation"}
ISSUE_SEVERITY = {"fatal", "error", "warning", "information"}


def parsed(document: dict[str, Any]) -> Any:
    """The document parsed by the R4B model of its type, with the open bindings checked."""
    kind = document["resourceType"]
    model = get_fhir_model_class(kind).model_validate(document)
    if kind in {"CoverageEligibilityRequest", "CoverageEligibilityResponse", "Claim",
                "ClaimResponse", "PaymentReconciliation", "ExplanationOfBenefit"}:  # fmt: skip
        assert document["status"] in STATUS
    if kind in {"ClaimResponse", "CoverageEligibilityResponse", "PaymentReconciliation",
                "ExplanationOfBenefit"}:  # fmt: skip
        assert document["outcome"] in OUTCOME
    if kind in {"Claim", "ClaimResponse", "ExplanationOfBenefit"}:
        assert document["use"] in USE
    if kind.startswith("CoverageEligibility"):
        assert set(document["purpose"]) <= PURPOSE
    if kind == "OperationOutcome":
        for issue in document["issue"]:
            assert issue["severity"] in ISSUE_SEVERITY
            assert issue["details"]["coding"][0]["system"] == systems.ERROR_CODE
    if kind == "Bundle":
        for entry in document.get("entry", []):
            parsed(entry["resource"])
    return model


def outcome_code(response: Any) -> str:
    """The stable code of an OperationOutcome answer (fails on another shape)."""
    assert response.headers["content-type"].startswith(FHIR), response.headers
    body = response.json()
    assert body["resourceType"] == "OperationOutcome", body
    parsed(body)
    code = body["issue"][0]["details"]["coding"][0]["code"]
    assert isinstance(code, str)
    return code


def patient(card: dict[str, object]) -> dict[str, Any]:
    """The contained Patient of a /v1 card block."""
    identifiers: list[dict[str, Any]] = []
    if card.get("nir") is not None:
        identifiers.append(
            {
                "system": systems.NIR_CARD,
                "value": card["nir"],
                "extension": [{"url": systems.BIRTH_RANK, "valuePositiveInt": card["birth_rank"]}],
            }
        )
    if card.get("member_number") is not None:
        identifiers.append({"system": systems.MEMBER_NUMBER, "value": card["member_number"]})
    return {
        "resourceType": "Patient",
        "id": "p",
        "identifier": identifiers,
        "birthDate": card["birth_date"],
    }


def insurer(card: dict[str, object]) -> dict[str, Any]:
    return {"identifier": {"system": systems.AMC_NUMBER, "value": card["amc_number"]}}


def eligibility_request(
    card: dict[str, object], domains: list[str], care_date: date = TODAY
) -> dict[str, Any]:
    request: dict[str, Any] = {
        "resourceType": "CoverageEligibilityRequest",
        "status": "active",
        "purpose": ["benefits"],
        "contained": [patient(card)],
        "patient": {"reference": "#p"},
        "created": care_date.isoformat(),
        "servicedDate": care_date.isoformat(),
        "insurer": insurer(card),
        "item": [
            {"category": {"coding": [{"system": systems.CARE_DOMAIN, "code": d}]}} for d in domains
        ],
    }
    parsed(request)
    return request


def money(cents: int) -> dict[str, Any]:
    return {"value": cents / 100, "currency": "EUR"}


def claim_item(line: dict[str, Any], sequence: int) -> dict[str, Any]:
    """A Claim.item from a /v1 line (calculation, prior authorisation or invoice)."""
    ext: list[dict[str, Any]] = [
        {"url": systems.ACT_FAMILY, "valueCode": line["family"]},
        {"url": systems.BASE_AMOUNT, "valueMoney": money(line["br_cents"])},
    ]
    if "amo_rate_bp" in line:
        ext.append({"url": systems.AMO_RATE, "valueInteger": line["amo_rate_bp"]})
    if "amo_paid_cents" in line:
        ext.append({"url": systems.AMO_PAID, "valueMoney": money(line["amo_paid_cents"])})
        ext.append({"url": systems.AMC_REQUESTED, "valueMoney": money(line["amc_requested_cents"])})
    item: dict[str, Any] = {
        "extension": ext,
        "sequence": sequence,
        "category": {"coding": [{"system": systems.CARE_DOMAIN, "code": line["domain"]}]},
        "productOrService": {"coding": [{"system": systems.ACT_CODE, "code": line["act_code"]}]},
        "quantity": {"value": line.get("quantity", 1)},
        "net": money(line["billed_cents"]),
    }
    if "care_date" in line:
        item["servicedDate"] = line["care_date"]
    return item


def claim(
    use: str,
    card: dict[str, object],
    care_date: date,
    lines: list[dict[str, Any]],
    identifier: tuple[str, str] | None = None,
) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "Claim",
        "status": "active",
        "type": {"coding": [{"system": systems.CLAIM_TYPE, "code": "professional"}]},
        "use": use,
        "contained": [patient(card)],
        "patient": {"reference": "#p"},
        "billablePeriod": {"start": care_date.isoformat()},
        "created": care_date.isoformat(),
        "insurer": insurer(card),
        "provider": {"display": "logiciel du professionnel"},
        "priority": {"coding": [{"system": systems.PROCESS_PRIORITY, "code": "normal"}]},
        "insurance": [{"sequence": 1, "focal": True, "coverage": {"display": "carte"}}],
        "item": [claim_item(line, n) for n, line in enumerate(lines, start=1)],
    }
    if identifier is not None:
        resource["identifier"] = [{"system": identifier[0], "value": identifier[1]}]
    if use in USE:
        parsed(resource)
    return resource


def rights_of(response: dict[str, Any]) -> list[dict[str, object]]:
    """The /v1 ``rights`` list a CoverageEligibilityResponse says."""
    insurance = response["insurance"][0]
    end = insurance.get("benefitPeriod", {}).get("end")
    rights: list[dict[str, object]] = []
    for item in insurance["item"]:
        covered = not item["excluded"]
        benefit = item.get("benefit", [{}])[0]
        rights.append(
            {
                "domain": item["category"]["coding"][0]["code"],
                "covered": covered,
                "tiers_payant": item["extension"][0]["valueBoolean"],
                "coverage_code": benefit.get("allowedString"),
                "valid_until": end if covered else None,
            }
        )
    return rights


def no_identity(person: Person, text: str) -> None:
    for secret in (*person.identity_strings(), person.member_number):
        assert secret not in text
