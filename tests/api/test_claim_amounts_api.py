"""Amount ceilings at intake, through the real app: /v1/claims and FHIR Claim/$submit.

Issue 14 had four invoices accepted for 1,386,000,007.00 €. Each amount is now held to
its care domain's line and invoice ceilings (docs/money.md#amount-ceilings): refused with
a coded 422 naming the field and the rule, nothing stored. Any malformed claims body gets
a 4xx with a code, never a 500.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from tests.api.fhir_support import FHIR, claim, outcome_code
from tests.api.test_bad_input import FUZZ, _cards, _dates, _json, _lines, send
from tests.api.test_claims_api import CARE_DAY, claim_body, drug_line
from tests.api.world import World, error_code
from tierspayant.formats.fhir import systems


def hospital_line(cents: int) -> dict[str, Any]:
    return drug_line(
        act_code="GHS",
        domain="HOSP",
        family="stay",
        br_cents=cents,
        billed_cents=cents,
        amo_paid_cents=0,
        amc_requested_cents=cents,
    )


def post(world: World, body: dict[str, Any]) -> Any:
    return world.client.post("/v1/claims", json=body, headers=world.pharmacy.headers)


def refusal(response: Any) -> tuple[int, str, str, str]:
    error = response.json()["error"]
    return response.status_code, error["code"], error.get("field"), error["message"]


def test_a_line_above_its_domain_ceiling_is_refused_naming_field_and_rule(world: World) -> None:
    person = world.covered()
    # Given a pharmacy line of 40,000 EUR (the PHAR line ceiling is 30,000 EUR)
    body = claim_body(person, lines=[drug_line(billed_cents=4_000_000, br_cents=1000)])
    # When it is sent, then a 422 names the field, the amount and the ceiling
    status, code, field, message = refusal(post(world, body))
    assert (status, code, field) == (422, "claim.line_ceiling", "lines[0].billed_cents")
    assert "40000.00 EUR" in message
    assert "30000.00 EUR" in message
    assert "PHAR" in message
    # and nothing was stored: the same number is free for the right invoice
    fixed = post(world, {**body, "lines": [drug_line()]})
    assert fixed.status_code == 201, fixed.text


def test_the_issues_hospital_invoices_are_refused(world: World) -> None:
    person = world.covered()
    # Given the issue's invoices, about 346,500,001.75 EUR each: above what the API reads
    huge = post(world, claim_body(person, lines=[hospital_line(34_650_000_175)]))
    assert huge.status_code == 422
    assert (huge.json()["error"]["code"], huge.json()["error"]["field"]) == (
        "request.invalid_value",
        "lines.0.br_cents",  # the first amount field of the line
    )
    assert "100000000" in huge.json()["error"]["message"]
    # and a stay of 600,000 EUR, within what the API reads, above the HOSP line ceiling
    stay = post(world, claim_body(person, lines=[hospital_line(60_000_000)]))
    assert refusal(stay)[:3] == (422, "claim.line_ceiling", "lines[0].br_cents")


def test_lines_of_one_domain_above_the_invoice_ceiling_are_refused(world: World) -> None:
    person = world.covered()
    # Given four optical lines of 2,000 EUR: each within the OPTI line ceiling (3,000 EUR),
    # together above its invoice ceiling (6,000 EUR)
    line = drug_line(
        act_code="2200000",
        domain="OPTI",
        family="optics_lens",
        br_cents=0,
        billed_cents=200_000,
        amo_paid_cents=0,
        amc_requested_cents=0,
    )
    status, code, field, message = refusal(post(world, claim_body(person, lines=[line] * 4)))
    assert (status, code, field) == (422, "claim.invoice_ceiling", "lines")
    assert "8000.00 EUR" in message
    assert "6000.00 EUR" in message
    assert "OPTI" in message


def test_a_negative_amount_names_its_field(world: World) -> None:
    body = claim_body(world.covered(), lines=[drug_line(amc_requested_cents=-1)])
    response = post(world, body)
    # The API schema refuses it first, naming the field; the rule is in the message
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["field"] == "lines.0.amc_requested_cents"
    assert "greater than or equal to 0" in error["message"]


def test_fhir_submit_holds_invoices_to_the_same_ceilings(world: World) -> None:
    person = world.covered()
    number = (systems.INVOICE_NUMBER, f"FHIR-{uuid.uuid4().hex[:10]}")
    resource = claim("claim", person.card(), CARE_DAY, [drug_line(billed_cents=4_000_000)], number)
    response = world.client.post(
        "/fhir/Claim/$submit",
        content=json.dumps(resource),
        headers={**world.pharmacy.headers, "Content-Type": FHIR},
    )
    assert response.status_code == 422, response.text
    assert outcome_code(response) == "claim.line_ceiling"
    assert "lines[0].billed_cents" in response.text


_claim_lines = _lines.map(
    lambda line: {
        "care_date": CARE_DAY.isoformat(),
        "amo_rate_bp": 6500,
        "amo_paid_cents": 0,
        "amc_requested_cents": 0,
        **line,
    }
)
_claims = st.fixed_dictionaries(
    {
        "invoice_number": st.from_regex(r"[A-Z0-9-]{1,12}", fullmatch=True) | _json,
        "card": _cards | _json,
        "care_date": _dates,
        "lines": st.lists(_claim_lines, max_size=4) | _json,
    },
    optional={"correction": _json, "maternity": _json, "agreement_number": _json},
)


@FUZZ
@given(body=_claims | _json)
def test_fuzzed_claims_bodies_never_get_a_5xx(sqlite_world: World, body: object) -> None:
    # Given any body: well-formed or not, amounts of any size and sign, wrong types
    response = send(sqlite_world, "/v1/claims", json.dumps(body).encode())
    # Then the answer is never a 5xx, and a refusal carries a code
    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        assert error_code(response)
