"""HTTP API of invoices and prior authorisations: status codes, idempotency, ownership,
policies, and answers free of identity data."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from tests.api.world import TODAY, Person, World, error_code, staff_session
from tierspayant.services.adjudication import adjudicate_pending

CARE_DAY = TODAY - timedelta(days=3)


def drug_line(**changes: object) -> dict[str, Any]:
    line: dict[str, Any] = {
        "act_code": "3400930000001",
        "domain": "PHAR",
        "family": "drug_65",
        "quantity": 1,
        "care_date": CARE_DAY.isoformat(),
        "br_cents": 1000,
        "billed_cents": 1000,
        "amo_rate_bp": 6500,
        "amo_paid_cents": 550,
        "amc_requested_cents": 350,
    }
    line.update(changes)
    return line


def claim_body(person: Person, invoice: str | None = None, **changes: object) -> dict[str, Any]:
    body: dict[str, Any] = {
        "invoice_number": invoice or f"API-{uuid.uuid4().hex[:12]}",
        "card": person.card(),
        "care_date": CARE_DAY.isoformat(),
        "lines": [drug_line()],
    }
    body.update(changes)
    return body


def no_identity(world: World, person: Person, text: str) -> None:
    for secret in person.identity_strings():
        assert secret not in text


def test_an_invoice_is_received_once_and_shown_to_its_sender(world: World) -> None:
    person = world.covered()
    body = claim_body(person)
    first = world.client.post("/v1/claims", json=body, headers=world.pharmacy.headers)
    assert first.status_code == 201, first.text
    receipt = first.json()
    assert receipt["status"] == "received"
    assert receipt["version"] == 1
    no_identity(world, person, first.text)
    again = world.client.post("/v1/claims", json=body, headers=world.pharmacy.headers)
    assert again.status_code == 200
    assert again.json() == receipt
    adjudicate_pending(world.platform, insurer_amc=person.amc_number)
    shown = world.client.get(f"/v1/claims/{receipt['claim_id']}", headers=world.pharmacy.headers)
    assert shown.status_code == 200
    view = shown.json()
    assert view["status"] == "adjudicated"
    assert [(ln["status"], ln["amc_accepted_cents"]) for ln in view["lines"]] == [("accepted", 350)]
    no_identity(world, person, shown.text)


def test_a_reused_number_is_a_conflict_unless_a_correction(world: World) -> None:
    person = world.covered()
    body = claim_body(person)
    assert world.client.post("/v1/claims", json=body, headers=world.pharmacy.headers).is_success
    changed = {
        **body,
        "lines": [
            drug_line(
                br_cents=2000, billed_cents=2000, amo_paid_cents=1200, amc_requested_cents=700
            )
        ],
    }
    clash = world.client.post("/v1/claims", json=changed, headers=world.pharmacy.headers)
    assert clash.status_code == 409
    assert error_code(clash) == "claim.number_reused"
    fixed = world.client.post(
        "/v1/claims", json={**changed, "correction": True}, headers=world.pharmacy.headers
    )
    assert fixed.status_code == 201
    assert fixed.json()["version"] == 2


def test_other_providers_get_the_404_of_an_unknown_claim(world: World) -> None:
    body = claim_body(world.covered())
    receipt = world.client.post("/v1/claims", json=body, headers=world.pharmacy.headers).json()
    hidden = world.client.get(f"/v1/claims/{receipt['claim_id']}", headers=world.gp.headers)
    unknown = world.client.get("/v1/claims/999999999", headers=world.pharmacy.headers)
    assert hidden.status_code == unknown.status_code == 404
    assert hidden.json() == unknown.json()
    cancel = world.client.post(
        f"/v1/claims/{receipt['claim_id']}/cancellation", json={}, headers=world.gp.headers
    )
    assert cancel.status_code == 404


def test_a_claim_is_cancelled_before_payment(world: World) -> None:
    body = claim_body(world.covered())
    receipt = world.client.post("/v1/claims", json=body, headers=world.pharmacy.headers).json()
    path = f"/v1/claims/{receipt['claim_id']}/cancellation"
    done = world.client.post(path, json={"reason": "error"}, headers=world.pharmacy.headers)
    assert done.status_code == 200
    assert done.json()["status"] == "cancelled"
    assert done.json()["reason_code"] == "claim.cancelled.error"


def test_claims_need_a_provider_and_a_well_formed_body(world: World) -> None:
    body = claim_body(world.covered())
    assert world.client.post("/v1/claims", json=body).status_code == 401
    extra = world.client.post(
        "/v1/claims", json={**body, "colour": "blue"}, headers=world.pharmacy.headers
    )
    assert extra.status_code == 422
    negative = world.client.post(
        "/v1/claims",
        json=claim_body(world.covered(), lines=[drug_line(billed_cents=-1)]),
        headers=world.pharmacy.headers,
    )
    assert negative.status_code == 422


def frame_quote(person: Person, key: str) -> dict[str, Any]:
    return {
        "card": person.card(),
        "care_date": CARE_DAY.isoformat(),
        "request_key": key,
        "lines": [
            {
                "act_code": "FRAME1",
                "domain": "OPTI",
                "family": "optics_frame",
                "billed_cents": 15000,
                "br_cents": 5,
            }
        ],
    }


def test_a_prior_authorisation_round_trip(world: World) -> None:
    person = world.covered()
    body = frame_quote(person, f"q-{uuid.uuid4().hex[:8]}")
    optician = world.account("optician")
    first = world.client.post("/v1/prior-authorisations", json=body, headers=optician.headers)
    assert first.status_code == 201, first.text
    answer = first.json()
    assert answer["status"] in {"granted", "refused", "pending"}
    no_identity(world, person, first.text)
    again = world.client.post("/v1/prior-authorisations", json=body, headers=optician.headers)
    assert again.status_code == 200
    assert again.json() == answer
    path = f"/v1/prior-authorisations/{answer['agreement_number']}"
    assert world.client.get(path, headers=optician.headers).json() == answer
    hidden = world.client.get(path, headers=world.gp.headers)
    assert hidden.status_code == 404
    assert error_code(hidden) == "prior_auth.unknown"


def test_insurer_staff_decide_a_pending_stay(world: World) -> None:
    person = world.covered()
    stay = {
        "card": person.card(),
        "care_date": CARE_DAY.isoformat(),
        "request_key": f"stay-{uuid.uuid4().hex[:8]}",
        "lines": [
            {
                "act_code": "GHS0001",
                "domain": "HOSP",
                "family": "hospital_stay",
                "billed_cents": 300000,
                "br_cents": 300000,
            }
        ],
    }
    hospital = world.account("hospital").headers
    asked = world.client.post("/v1/prior-authorisations", json=stay, headers=hospital)
    assert asked.json()["status"] == "pending", asked.text
    path = f"/v1/prior-authorisations/{asked.json()['agreement_number']}/decision"
    as_provider = world.client.post(path, json={"accept": True}, headers=hospital)
    assert as_provider.status_code == 403
    other_amc = next(amc for amc in world.amc_numbers if amc != person.amc_number)
    stranger = staff_session(world, "insurer_staff", amc=other_amc)
    foreign = world.client.post(
        path, json={"accept": True}, headers={"Authorization": f"Bearer {stranger}"}
    )
    assert foreign.status_code == 404
    staff = staff_session(world, "insurer_staff", amc=person.amc_number)
    decided = world.client.post(
        path,
        json={"accept": True, "reason": "séjour programmé"},
        headers={"Authorization": f"Bearer {staff}"},
    )
    assert decided.status_code == 200, decided.text
    assert decided.json()["status"] == "granted"
