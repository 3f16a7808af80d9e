"""The FHIR R4 interface: the same decisions, guard and audit as /v1, every answer a valid
R4 resource, every refusal an OperationOutcome with our stable code, no search at all."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from datetime import date, timedelta
from typing import Any

import pytest
from fhir.resources.R4B.task import Task
from sqlalchemy import select

from tests.api.fhir_support import (
    FHIR,
    claim,
    eligibility_request,
    no_identity,
    outcome_code,
    parsed,
    rights_of,
)
from tests.api.test_eligibility_api import ALL_DOMAINS, _unknown_nir
from tests.api.world import (
    RELAXED_GUARD,
    TODAY,
    World,
    build_world,
    close_world,
    staff_session,
)
from tierspayant.formats.fhir import lean, systems
from tierspayant.formats.fhir.capability import RESOURCES
from tierspayant.services.engagements import open_rights
from tierspayant.store.claims_tables import claims
from tierspayant.store.tables import audit_events

CARE_DAY = TODAY - timedelta(days=3)


def fhir_check(world: World, card: dict[str, object], domains: list[str]) -> Any:
    return world.client.post(
        "/fhir/CoverageEligibilityRequest",
        content=json.dumps(eligibility_request(card, domains)),
        headers={**world.pharmacy.headers, "Content-Type": FHIR},
    )


def v1_check(world: World, card: dict[str, object], domains: list[str]) -> Any:
    body = {"card": card, "care_date": TODAY.isoformat(), "domains": domains}
    return world.client.post("/v1/eligibility", json=body, headers=world.pharmacy.headers)


def submit(world: World, resource: dict[str, Any], headers: dict[str, str] | None = None) -> Any:
    return world.client.post(
        "/fhir/Claim/$submit",
        content=json.dumps(resource),
        headers={**(headers or world.pharmacy.headers), "Content-Type": FHIR},
    )


def test_the_capability_statement_is_r4_and_lists_what_is_offered(world: World) -> None:
    response = world.client.get("/fhir/metadata")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith(FHIR)
    body = response.json()
    parsed(body)
    assert body["fhirVersion"] == "4.0.1"
    offered = {r["type"]: r for r in body["rest"][0]["resource"]}
    assert set(offered) == set(RESOURCES)
    assert offered["Claim"]["operation"][0]["name"] == "submit"


def test_a_rights_check_through_fhir_decides_as_v1_for_every_contract(world: World) -> None:
    for amc in world.amc_numbers:
        for contract in sorted({p.contract for p in world.people[amc]}):
            person = world.covered(amc, contract)
            fhir = fhir_check(world, person.card(), ALL_DOMAINS)
            assert fhir.status_code == 200, fhir.text
            assert fhir.headers["content-type"].startswith(FHIR)
            body = fhir.json()
            parsed(body)
            v1 = v1_check(world, person.card(), ALL_DOMAINS).json()
            assert rights_of(body) == v1["rights"]
            assert body["outcome"] == "complete"
            assert body["insurance"][0]["inforce"] is any(r["covered"] for r in v1["rights"])
            # The rights engagement: in the top-level preAuthRef exactly when /v1 gives one,
            # and it opens to the same engagement (the numbers differ: each is sealed anew).
            assert ("preAuthRef" in body) is ("engagement_number" in v1)
            if "preAuthRef" in body:
                assert body["preAuthRef"].startswith("ENG1-R-")
                with world.platform.engine.connect() as conn:
                    by_fhir = open_rights(world.platform, conn, body["preAuthRef"])
                    by_v1 = open_rights(world.platform, conn, v1["engagement_number"])
                assert by_fhir == by_v1
                assert {d.value for d in by_fhir.domains} == {
                    r["domain"] for r in v1["rights"] if r["covered"]
                }
            no_identity(person, fhir.text)


def test_unknown_mismatched_and_not_covered_give_the_same_fhir_bytes(world: World) -> None:
    person = world.covered()
    cards = {
        "unknown NIR": person.card(nir=_unknown_nir(world)),
        "wrong birth date": person.card(birth_date=date(1901, 1, 1).isoformat()),
        "wrong birth rank": person.card(birth_rank=person.birth_rank + 1),
        "coverage ended": world.not_covered().card(amc_number=person.amc_number),
        "insured elsewhere": world.covered(world.amc_numbers[1]).card(amc_number=person.amc_number),
    }
    answers = {}
    for label, card in cards.items():
        response = fhir_check(world, card, ["PHAR", "MED"])
        assert response.status_code == 200, (label, response.text)
        # Every header but the request's own id (which depends on nobody's data)
        headers = {k: v for k, v in response.headers.items() if k != "x-request-id"}
        answers[label] = (response.content, headers)
    assert len({content for content, _ in answers.values()}) == 1, answers
    assert len({tuple(sorted(h.items())) for _, h in answers.values()}) == 1
    body = json.loads(next(iter(answers.values()))[0])
    parsed(body)
    assert all(item["excluded"] for item in body["insurance"][0]["item"])
    assert "preAuthRef" not in body  # no engagement without rights
    covered = fhir_check(world, person.card(), ["PHAR", "MED"]).json()
    assert covered["preAuthRef"].startswith("ENG1-R-")


def test_the_lean_and_the_model_readings_answer_the_same_bytes(
    sqlite_world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    world = sqlite_world
    person = world.covered()
    cards = [person.card(), world.not_covered().card(), person.card(nir=_unknown_nir(world))]
    documents = [eligibility_request(card, ["PHAR", "OPTI"]) for card in cards]
    documents.append(json.loads(json.dumps(documents[0])))
    documents[-1]["contained"][0]["birthDate"] = "1979-02-30"

    def answers() -> list[bytes]:
        got = []
        for document in documents:
            response = world.client.post(
                "/fhir/CoverageEligibilityRequest",
                content=json.dumps(document),
                headers={**world.pharmacy.headers, "Content-Type": FHIR},
            )
            # Each engagement number is sealed anew: compare everything else.
            got.append(re.sub(rb'"preAuthRef":"[^"]+"', b'"preAuthRef":"*"', response.content))
        return got

    assert lean.eligibility_request(json.dumps(documents[0]).encode(), documents[0]) is not None
    by_lean = answers()
    assert b'"preAuthRef":"*"' in by_lean[0]
    assert b"fhir.invalid" in by_lean[3]
    monkeypatch.setattr(lean, "eligibility_request", lambda body, document: None)
    assert answers() == by_lean


def _last_audit(world: World) -> dict[str, object]:
    with world.platform.engine.connect() as conn:
        row = conn.execute(select(audit_events).order_by(audit_events.c.seq.desc()).limit(1)).one()
    event = {k: row._mapping[k] for k in ("actor", "structure", "action", "purpose", "subject",
                                          "insurer", "decision")}  # fmt: skip
    detail = json.loads(row._mapping["detail"])
    # Each request's own id (X-Request-Id), the one field that differs by design.
    assert re.fullmatch(r"[0-9a-f]{32}", detail.pop("request_id"))
    return {**event, "detail": detail}


def test_a_fhir_rights_check_writes_the_audit_event_of_v1(world: World) -> None:
    for person_card in (world.covered().card(), world.covered().card(nir=_unknown_nir(world))):
        assert v1_check(world, person_card, ["PHAR"]).status_code == 200
        by_v1 = _last_audit(world)
        assert fhir_check(world, person_card, ["PHAR"]).status_code == 200
        assert _last_audit(world) == by_v1
        assert by_v1["action"] == "eligibility.check"


@pytest.fixture(scope="module")
def tight_world(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[World]:
    """A world whose guard lets each principal make four lookups a minute."""
    built = build_world(
        "sqlite", request, tmp_path_factory, count=40,
        guard={**RELAXED_GUARD, "principal_per_minute": 4},
    )  # fmt: skip
    try:
        yield built
    finally:
        close_world(built)


def test_fhir_and_v1_lookups_count_in_the_same_guard(tight_world: World) -> None:
    world = tight_world
    guard = world.platform.guard
    assert guard is not None
    day = guard.day_of(world.clock.now)
    people = [p for p in world.people[world.amc_numbers[0]] if p.covered_on(TODAY)][:3]

    def distinct() -> int:
        figures = {f.structure: f for f in guard.day_summary(day)}
        return figures[world.pharmacy.structure].distinct_lookups

    assert v1_check(world, people[0].card(), ["PHAR"]).status_code == 200
    assert fhir_check(world, people[1].card(), ["PHAR"]).status_code == 200
    assert distinct() == 2
    assert fhir_check(world, people[0].card(), ["PHAR"]).status_code == 200
    assert distinct() == 2  # the same person, whatever the door
    assert v1_check(world, people[2].card(), ["PHAR"]).status_code == 200
    # Four lookups in the minute, two through each door: the fifth is refused, in FHIR.
    refused = fhir_check(world, people[1].card(), ["PHAR"])
    assert refused.status_code == 429
    assert outcome_code(refused) == "guard.rate"
    assert "Retry-After" in refused.headers
    assert v1_check(world, people[1].card(), ["PHAR"]).status_code == 429


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        (b"{not json", 400, "fhir.malformed"),
        (b"[1, 2]", 400, "fhir.malformed"),
        (b'{"resourceType": "Patient"}', 422, "fhir.wrong_resource_type"),
        (b'{"resourceType": "CoverageEligibilityRequest"}', 422, "fhir.invalid"),
    ],
)
def test_a_malformed_resource_is_an_operation_outcome(
    sqlite_world: World, body: bytes, status: int, code: str
) -> None:
    response = sqlite_world.client.post(
        "/fhir/CoverageEligibilityRequest",
        content=body,
        headers={**sqlite_world.pharmacy.headers, "Content-Type": FHIR},
    )
    assert response.status_code == status
    assert outcome_code(response) == code


def test_unknown_elements_and_bad_values_are_refused_without_echo(sqlite_world: World) -> None:
    world = sqlite_world
    person = world.covered()
    cases: list[tuple[str, Any]] = []
    extra = eligibility_request(person.card(), ["PHAR"])
    extra["secretField"] = person.nir
    cases.append(("unknown element", extra))
    bad_domain = eligibility_request(person.card(), ["PHAR"])
    bad_domain["item"][0]["category"]["coding"][0]["code"] = "NOPE"
    cases.append(("unknown domain", bad_domain))
    wrong_status = eligibility_request(person.card(), ["PHAR"])
    wrong_status["status"] = "draft"
    cases.append(("draft", wrong_status))
    no_rank = eligibility_request(person.card(), ["PHAR"])
    del no_rank["contained"][0]["identifier"][0]["extension"]
    cases.append(("no birth rank", no_rank))
    for label, resource in cases:
        response = world.client.post(
            "/fhir/CoverageEligibilityRequest", json=resource, headers=world.pharmacy.headers
        )
        assert response.status_code == 422, label
        assert outcome_code(response) == "fhir.invalid", label
        no_identity(person, response.text)
    # A rule of the domain (the NIR's key) keeps its own code, as in /v1.
    bad_key = person.card(nir=person.nir[:13] + ("00" if person.nir[13:] != "00" else "01"))
    response = fhir_check(world, bad_key, ["PHAR"])
    assert response.status_code == 422
    assert outcome_code(response) == "nir.key"


def test_a_claim_with_another_use_is_refused(sqlite_world: World) -> None:
    world = sqlite_world
    resource = claim("exploration", world.covered().card(), CARE_DAY, [_drug_line()])
    response = submit(world, resource)
    assert response.status_code == 422
    assert outcome_code(response) == "fhir.unsupported_use"


@pytest.mark.parametrize("kind", sorted({*RESOURCES, "Patient", "Coverage"}))
def test_every_search_is_refused_whoever_asks(sqlite_world: World, kind: str) -> None:
    world = sqlite_world
    member = staff_session(world, "member", beneficiary=world.covered())
    callers = {
        "anonymous": {},
        "provider": world.pharmacy.headers,
        "member": {"Authorization": f"Bearer {member}"},
    }
    for who, headers in callers.items():
        for method, path in (
            ("GET", f"/fhir/{kind}?identifier=279042854094418"),
            ("GET", f"/fhir/{kind}?name=DUPONT&birthdate=1979-04-16"),
            ("POST", f"/fhir/{kind}/_search"),
        ):
            response = world.client.request(method, path, headers=headers)
            assert response.status_code in (401, 403, 405), (who, method, path)
            code = outcome_code(response)
            if who != "anonymous" or kind not in RESOURCES:
                assert response.status_code == 403, (who, method, path, code)
            assert code in {"fhir.search_refused", "auth.wrong_principal",
                            "auth.missing_token"}, (who, path, code)  # fmt: skip


def test_an_unknown_resource_type_and_an_unoffered_read_are_refused(sqlite_world: World) -> None:
    world = sqlite_world
    unknown = world.client.get("/fhir/Spaceship", headers=world.pharmacy.headers)
    assert unknown.status_code == 404
    assert outcome_code(unknown) == "fhir.unknown_resource_type"
    read = world.client.get("/fhir/Patient/1", headers=world.pharmacy.headers)
    assert read.status_code == 405
    assert outcome_code(read) == "fhir.interaction_unsupported"
    advice = "/fhir/PaymentReconciliation/R20260101-1"
    no_such = world.client.get(advice, headers=world.pharmacy.headers)
    assert no_such.status_code == 404
    assert outcome_code(no_such) == "remittance.unknown"
    anonymous = world.client.post("/fhir/CoverageEligibilityRequest", json={})
    assert anonymous.status_code == 401
    assert outcome_code(anonymous) == "auth.missing_token"


def _drug_line(**changes: object) -> dict[str, Any]:
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


def _amounts(adjudication: list[dict[str, Any]]) -> dict[str, int]:
    return {
        a["category"]["coding"][0]["code"]: round(a["amount"]["value"] * 100)
        for a in adjudication
        if "amount" in a
    }


def test_a_predetermination_prices_as_the_v1_calculation(world: World) -> None:
    person = world.covered()
    line = {k: v for k, v in _drug_line().items() if k not in
            ("care_date", "amo_paid_cents", "amc_requested_cents")}  # fmt: skip
    v1 = world.client.post(
        "/v1/calculations",
        json={"card": person.card(), "care_date": CARE_DAY.isoformat(), "lines": [line]},
        headers=world.pharmacy.headers,
    )
    assert v1.status_code == 200, v1.text
    response = submit(world, claim("predetermination", person.card(), CARE_DAY, [line]))
    assert response.status_code == 200, response.text
    body = response.json()
    parsed(body)
    assert body["use"] == "predetermination"
    assert body["outcome"] == "complete"
    expected = v1.json()["lines"][0]
    got = _amounts(body["item"][0]["adjudication"])
    assert got["submitted"] == expected["billed_cents"]
    assert got["eligible"] == expected["br_cents"]
    assert got["amo"] == expected["amo_paid_cents"]
    assert got["benefit"] == expected["amc_cents"]
    assert got["patient"] == expected["patient_cents"]
    assert '"value":10.00' in response.text  # decimals written exactly
    no_identity(person, response.text)
    # No rights: the same refusal as /v1, as an OperationOutcome.
    nobody = submit(world, claim("predetermination", world.not_covered().card(), CARE_DAY, [line]))
    assert nobody.status_code == 422
    assert outcome_code(nobody) == "calculation.no_rights"


def test_a_preauthorization_gives_the_agreement_in_pre_auth_ref(world: World) -> None:
    person = world.covered()
    frame = {"act_code": "FRAME1", "domain": "OPTI", "family": "optics_frame",
             "billed_cents": 15000, "br_cents": 5}  # fmt: skip
    key = (systems.REQUEST_KEY, f"q-{uuid.uuid4().hex[:8]}")
    resource = claim("preauthorization", person.card(), CARE_DAY, [frame], key)
    optician = world.account("optician").headers  # under convention for optics
    first = submit(world, resource, optician)
    assert first.status_code == 201, first.text
    body = first.json()
    parsed(body)
    assert body["use"] == "preauthorization"
    agreement = body["preAuthRef"]
    v1 = world.client.get(f"/v1/prior-authorisations/{agreement}", headers=optician)
    assert v1.status_code == 200
    answer = v1.json()
    assert body["outcome"] == ("queued" if answer["status"] == "pending" else "complete")
    if answer["status"] == "granted":
        assert body["preAuthPeriod"]["start"] == CARE_DAY.isoformat()
    assert _amounts(body["total"])["benefit"] == answer["guaranteed_cents"]
    again = submit(world, resource, optician)
    assert again.status_code == 200
    assert again.json()["preAuthRef"] == agreement
    no_identity(person, first.text)


def test_an_invoice_is_received_and_queued(world: World) -> None:
    person = world.covered()
    invoice = (systems.INVOICE_NUMBER, f"FHIR-{uuid.uuid4().hex[:10]}")
    resource = claim("claim", person.card(), CARE_DAY, [_drug_line()], invoice)
    first = submit(world, resource)
    assert first.status_code == 201, first.text
    body = first.json()
    parsed(body)
    assert body["outcome"] == "queued"
    claim_id = next(i["value"] for i in body["identifier"] if i["system"] == systems.CLAIM_ID)
    shown = world.client.get(f"/v1/claims/{claim_id}", headers=world.pharmacy.headers)
    assert shown.status_code == 200
    assert shown.json()["invoice_number"] == invoice[1]
    assert submit(world, resource).status_code == 200  # idempotent on the invoice number
    other = world.client.get(f"/v1/claims/{claim_id}", headers=world.gp.headers)
    assert other.status_code == 404
    # Without the line's AMO and AMC amounts an invoice is refused, nothing written.
    bare = {k: v for k, v in _drug_line().items() if k not in ("amo_paid_cents",
            "amc_requested_cents")}  # fmt: skip
    missing = claim("claim", person.card(), CARE_DAY, [bare], (systems.INVOICE_NUMBER, "FHIR-X1"))
    refused = submit(world, missing)
    assert refused.status_code == 422
    assert outcome_code(refused) == "fhir.invalid"


def test_an_invoice_carries_the_engagement_in_pre_auth_ref(world: World) -> None:
    person = world.covered()
    rights = v1_check(world, person.card(), ["PHAR"]).json()
    number = rights["engagement_number"]
    assert number.startswith("ENG1-R-")
    invoice = f"FHIR-{uuid.uuid4().hex[:10]}"
    resource = claim(
        "claim", person.card(), CARE_DAY, [_drug_line()], (systems.INVOICE_NUMBER, invoice)
    )
    # The first engagement number of insurance.preAuthRef is the invoice's
    resource["insurance"][0]["preAuthRef"] = [number, "ENG1-R-AAAA"]
    parsed(resource)
    sent = submit(world, resource)
    assert sent.status_code == 201, sent.text
    with world.platform.engine.connect() as conn:
        stored = conn.execute(
            select(claims.c.engagement_number).where(claims.c.invoice_number == invoice)
        ).scalar_one()
    assert stored == number
    # A made-up number is refused as /v1 refuses it, and nothing is written
    other = f"FHIR-{uuid.uuid4().hex[:10]}"
    bad = claim("claim", person.card(), CARE_DAY, [_drug_line()], (systems.INVOICE_NUMBER, other))
    bad["insurance"][0]["preAuthRef"] = ["ENG1-R-AAAA"]
    refused = submit(world, bad)
    assert refused.status_code == 422, refused.text
    assert outcome_code(refused) == "engagement.invalid"
    with world.platform.engine.connect() as conn:
        assert conn.execute(select(claims.c.id).where(claims.c.invoice_number == other)).all() == []


def test_a_member_reads_their_own_statement_and_a_provider_cannot(sqlite_world: World) -> None:
    world = sqlite_world
    member = staff_session(world, "member", beneficiary=world.covered())
    response = world.client.get(
        "/fhir/ExplanationOfBenefit", headers={"Authorization": f"Bearer {member}"}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    parsed(body)
    assert body["type"] == "searchset"
    refused = world.client.get("/fhir/ExplanationOfBenefit", headers=world.pharmacy.headers)
    assert refused.status_code == 403
    assert outcome_code(refused) == "auth.wrong_principal"


def test_a_member_reads_their_own_coverage_and_nobody_else_can(sqlite_world: World) -> None:
    world = sqlite_world
    people = [world.covered(), world.not_covered()]
    for person in people:
        member = staff_session(world, "member", beneficiary=person)
        response = world.client.get("/fhir/Coverage", headers={"Authorization": f"Bearer {member}"})
        assert response.status_code == 200, response.text
        body = response.json()
        parsed(body)
        assert (body["type"], body["total"]) == ("searchset", 1)
        coverage = body["entry"][0]["resource"]
        assert coverage["resourceType"] == "Coverage"
        assert coverage["payor"][0]["identifier"]["value"] == person.amc_number
        assert coverage["class"][0]["value"] == person.contract
        assert coverage["period"]["start"] == person.coverage_start.isoformat()
        end = person.coverage_end.isoformat() if person.coverage_end else None
        assert coverage["period"].get("end") == end
        no_identity(person, response.text)
        with world.platform.engine.connect() as conn:
            action = conn.execute(
                select(audit_events.c.action, audit_events.c.actor)
                .order_by(audit_events.c.seq.desc())
                .limit(1)
            ).one()
        assert action.action == "member.coverage"
        # Any parameter is a search: refused, even for the member's own coverage.
        searched = world.client.get(
            f"/fhir/Coverage?identifier={person.nir}",
            headers={"Authorization": f"Bearer {member}"},
        )
        assert (searched.status_code, outcome_code(searched)) == (403, "fhir.search_refused")
    provider = world.client.get("/fhir/Coverage", headers=world.pharmacy.headers)
    assert (provider.status_code, outcome_code(provider)) == (403, "auth.wrong_principal")
    anonymous = world.client.get("/fhir/Coverage")
    assert (anonymous.status_code, outcome_code(anonymous)) == (401, "auth.missing_token")
    read = world.client.get("/fhir/Coverage/contrat", headers=world.pharmacy.headers)
    assert (read.status_code, outcome_code(read)) == (405, "fhir.interaction_unsupported")


def cancellation_task(number: str, **changes: Any) -> dict[str, Any]:
    """The Task of docs/fhir.md that cancels the engagement ``number``."""
    task: dict[str, Any] = {
        "resourceType": "Task",
        "status": "requested",
        "intent": "order",
        "code": {"coding": [{"system": systems.TASK_CODE, "code": "cancel"}]},
        "focus": {"identifier": {"system": systems.ENGAGEMENT, "value": number}},
    }
    task.update(changes)
    Task.model_validate(task)  # what a client sends is a valid R4 Task
    return task


def send_task(world: World, task: dict[str, Any], headers: dict[str, str] | None = None) -> Any:
    return world.client.post(
        "/fhir/Task",
        content=json.dumps(task),
        headers={**(headers or world.pharmacy.headers), "Content-Type": FHIR},
    )


def _amount_engagement(world: World) -> str:
    line = {k: v for k, v in _drug_line().items() if k not in
            ("care_date", "amo_paid_cents", "amc_requested_cents")}  # fmt: skip
    body = {"card": world.covered().card(), "care_date": CARE_DAY.isoformat(), "lines": [line]}
    answer = world.client.post("/v1/calculations", json=body, headers=world.pharmacy.headers)
    assert answer.status_code == 200, answer.text
    number = answer.json()["engagement_number"]
    assert isinstance(number, str)
    assert number.startswith("ENG1-C-")
    return number


def _cancel_audits(world: World) -> list[Any]:
    with world.platform.engine.connect() as conn:
        rows = conn.execute(
            select(audit_events.c.detail)
            .where(audit_events.c.action == "engagement.cancel")
            .order_by(audit_events.c.seq)
        ).all()
    return [json.loads(r.detail) if isinstance(r.detail, str) else r.detail for r in rows]


def test_a_task_cancels_an_engagement_as_the_v1_delete(world: World) -> None:
    number = _amount_engagement(world)
    before = len(_cancel_audits(world))
    first = send_task(world, cancellation_task(number))
    assert first.status_code == 201, first.text
    assert first.headers["content-type"].startswith(FHIR)
    done = Task.model_validate(first.json())
    assert done.status == "completed"
    assert done.intent == "order"
    assert done.focus is not None
    assert done.focus.identifier is not None
    assert done.focus.identifier.value == number
    # Idempotent: the same answer again, and the service saw both (the second one "again")
    again = send_task(world, cancellation_task(number))
    assert again.status_code == 201
    assert again.content == first.content
    details = _cancel_audits(world)[before:]
    assert [d["again"] for d in details] == [False, True]
    # /v1 agrees that it is the same, cancelled engagement
    deleted = world.client.delete(f"/v1/engagements/{number}", headers=world.pharmacy.headers)
    assert deleted.status_code == 204


def test_a_task_on_a_number_that_is_not_ours_to_cancel_is_not_found(world: World) -> None:
    number = _amount_engagement(world)
    rights = v1_check(world, world.covered().card(), ["PHAR"]).json()["engagement_number"]
    assert rights.startswith("ENG1-R-")
    for what, headers in ((number, world.gp.headers), (rights, None),
                          ("ENG1-C-AAAA", None), ("pas-un-numero", None)):  # fmt: skip
        refused = send_task(world, cancellation_task(what), headers)
        assert refused.status_code == 404, (what, refused.text)
        assert outcome_code(refused) == "engagement.not_found"
        v1 = world.client.delete(f"/v1/engagements/{what}", headers=headers or
                                 world.pharmacy.headers)  # fmt: skip
        assert v1.status_code == 404
        assert v1.json()["error"]["code"] == "engagement.not_found"
    # The other professional's attempt left the engagement open: its owner cancels it once
    before = len(_cancel_audits(world))
    assert send_task(world, cancellation_task(number)).status_code == 201
    assert [d["again"] for d in _cancel_audits(world)[before:]] == [False]


def test_a_task_of_another_kind_or_shape_is_refused(sqlite_world: World) -> None:
    world = sqlite_world
    number = "ENG1-C-AAAA"
    other_system = {"identifier": {"system": systems.INVOICE_NUMBER, "value": number}}
    cases: list[tuple[dict[str, Any], int, str]] = [
        (cancellation_task(number, code={"coding": [{"system": systems.TASK_CODE,
                                                      "code": "abort"}]}),
         422, "fhir.unsupported_task"),
        (cancellation_task(number, code={"coding": [{"system": "urn:x", "code": "cancel"}]}),
         422, "fhir.unsupported_task"),
        (cancellation_task(number, intent="proposal"), 422, "fhir.invalid"),
        (cancellation_task(number, status="completed"), 422, "fhir.invalid"),
        (cancellation_task(number, focus=other_system), 422, "fhir.invalid"),
        (cancellation_task(number, focus={"reference": "Claim/1"}), 422, "fhir.invalid"),
        ({**cancellation_task(number), "focus": None}, 422, "fhir.invalid"),
        ({**cancellation_task(number), "spaceship": True}, 422, "fhir.invalid"),
        ({**cancellation_task(number), "resourceType": "Claim"}, 422, "fhir.wrong_resource_type"),
    ]  # fmt: skip
    del cases[-1][0]["focus"]  # a Claim body: refused by its type before anything else
    for task, status, code in cases:
        refused = send_task(world, task)
        assert refused.status_code == status, (task, refused.text)
        assert outcome_code(refused) == code
        assert number not in refused.text  # values are never echoed
    missing = {k: v for k, v in cancellation_task(number).items() if k != "focus"}
    assert outcome_code(send_task(world, missing)) == "fhir.invalid"
    unreadable = world.client.post("/fhir/Task", content=b"[", headers={
        **world.pharmacy.headers, "Content-Type": FHIR})  # fmt: skip
    assert unreadable.status_code == 400
    assert outcome_code(unreadable) == "fhir.malformed"
    anonymous = world.client.post("/fhir/Task", content=json.dumps(cancellation_task(number)))
    assert anonymous.status_code == 401
    assert outcome_code(anonymous) == "auth.missing_token"
    member_or_read = world.client.get("/fhir/Task/1", headers=world.pharmacy.headers)
    assert member_or_read.status_code == 405


def _with_identifiers(request: dict[str, Any], identifiers: list[dict[str, Any]]) -> dict[str, Any]:
    request["contained"][0]["identifier"] = identifiers
    return request


def _nir_identifier(system: str, nir: str, rank: int | None) -> dict[str, Any]:
    identifier: dict[str, Any] = {"system": system, "value": nir}
    if rank is not None:
        identifier["extension"] = [{"url": systems.BIRTH_RANK, "valuePositiveInt": rank}]
    return identifier


def test_the_patients_own_ins_finds_the_insured_person_and_is_never_written_back(
    world: World,
) -> None:
    person = world.covered()
    card = person.card()
    by_card = fhir_check(world, card, ["PHAR", "MED"])
    request = _with_identifiers(
        eligibility_request(card, ["PHAR", "MED"]),
        [_nir_identifier(systems.INS_NIR, person.nir, person.birth_rank)],
    )
    by_ins = world.client.post(
        "/fhir/CoverageEligibilityRequest",
        content=json.dumps(request),
        headers={**world.pharmacy.headers, "Content-Type": FHIR},
    )
    assert by_ins.status_code == 200, by_ins.text
    parsed(by_ins.json())
    assert rights_of(by_ins.json()) == rights_of(by_card.json())
    assert any(r["covered"] for r in rights_of(by_ins.json()))
    assert by_ins.json()["preAuthRef"].startswith("ENG1-R-")
    assert systems.INS_NIR not in by_ins.text  # read, never written in an answer
    no_identity(person, by_ins.text)


def test_the_card_nir_prevails_over_an_ins_that_no_card_carries(world: World) -> None:
    """A child's or a spouse's own INS is not the card's NIR: sent beside the card's NIR,
    it changes nothing; sent alone, it finds nobody, and the answer is the one of any
    unknown person."""
    person = world.covered()
    card = person.card()
    other_ins = _unknown_nir(world)
    both = _with_identifiers(
        eligibility_request(card, ["PHAR"]),
        [
            _nir_identifier(systems.NIR_CARD, person.nir, person.birth_rank),
            _nir_identifier(systems.INS_NIR, other_ins, 1),
        ],
    )
    headers = {**world.pharmacy.headers, "Content-Type": FHIR}
    answer = world.client.post("/fhir/CoverageEligibilityRequest", content=json.dumps(both),
                                headers=headers)  # fmt: skip
    assert answer.status_code == 200, answer.text
    assert rights_of(answer.json()) == rights_of(fhir_check(world, card, ["PHAR"]).json())
    assert all(r["covered"] for r in rights_of(answer.json()))

    alone = _with_identifiers(
        eligibility_request(card, ["PHAR"]), [_nir_identifier(systems.INS_NIR, other_ins, 1)]
    )
    unknown = world.client.post("/fhir/CoverageEligibilityRequest", content=json.dumps(alone),
                                headers=headers)  # fmt: skip
    reference = fhir_check(world, person.card(nir=_unknown_nir(world)), ["PHAR"])
    assert unknown.status_code == 200
    assert unknown.content == reference.content


@pytest.mark.parametrize(
    "identifiers",
    [
        pytest.param([("ins", 1), ("ins", 1)], id="two INS"),
        pytest.param([("ins", None)], id="INS without birth rank"),
        pytest.param([("nir", 1), ("nir", 1)], id="two card NIRs"),
    ],
)
def test_ambiguous_or_incomplete_nir_identifiers_are_refused(
    sqlite_world: World, identifiers: list[tuple[str, int | None]]
) -> None:
    world = sqlite_world
    person = world.covered()
    system = {"ins": systems.INS_NIR, "nir": systems.NIR_CARD}
    request = _with_identifiers(
        eligibility_request(person.card(), ["PHAR"]),
        [_nir_identifier(system[kind], person.nir, rank) for kind, rank in identifiers],
    )
    response = world.client.post(
        "/fhir/CoverageEligibilityRequest",
        content=json.dumps(request),
        headers={**world.pharmacy.headers, "Content-Type": FHIR},
    )
    assert response.status_code == 422, response.text
    assert outcome_code(response) == "fhir.invalid"
    no_identity(person, response.text)
