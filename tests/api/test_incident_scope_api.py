"""Over HTTP, each route that answers about a person puts exactly the person answered in
the incident scope of the caller, and a person answered "no rights" stays out of it
(SQLite and PostgreSQL).

Each test moves the clock a minute on and scopes only its own minute, so the tests of this
module do not see each other's requests.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from tests.api.test_claims_api import CARE_DAY, claim_body, frame_quote
from tests.api.world import TODAY, Person, World
from tierspayant.services import incident
from tierspayant.services.identification import CardData, identify


def beneficiary_id(world: World, person: Person) -> int:
    card = CardData(person.amc_number, person.birth_date, person.nir, person.birth_rank)
    with world.platform.engine.connect() as conn:
        found = identify(world.platform, conn, card)[1]
    assert found is not None
    return found.record.id


def rights_body(person: Person) -> dict[str, Any]:
    return {"card": person.card(), "care_date": TODAY.isoformat(), "domains": ["PHAR"]}


def calculation_body(person: Person) -> dict[str, Any]:
    line = {
        "act_code": "3400930000001",
        "domain": "PHAR",
        "family": "drug_65",
        "quantity": 1,
        "billed_cents": 1000,
        "br_cents": 1000,
    }
    return {"card": person.card(), "care_date": TODAY.isoformat(), "lines": [line]}


ROUTES: dict[str, tuple[str, Callable[[Person], dict[str, Any]]]] = {
    "eligibility": ("/v1/eligibility", rights_body),
    "calculation": ("/v1/calculations", calculation_body),
    "prior-authorisation": (
        "/v1/prior-authorisations",
        lambda p: frame_quote(p, f"s-{uuid.uuid4().hex[:8]}"),
    ),
    "claim": ("/v1/claims", lambda p: claim_body(p)),
}


@pytest.mark.parametrize("route", list(ROUTES))
def test_the_scope_lists_the_person_answered_by_each_route(world: World, route: str) -> None:
    path, body = ROUTES[route]
    # Optics quotes come from an optician: the counter refuses a pharmacy's before reading
    # anyone (no convention), which would disclose nobody.
    caller = world.account("optician") if route == "prior-authorisation" else world.pharmacy
    start = world.clock.advance(minutes=1)
    covered, former = world.covered(), world.not_covered()
    assert former.coverage_end is not None
    assert former.coverage_end < CARE_DAY
    for person in (covered, former):
        response = world.client.post(path, json=body(person), headers=caller.headers)
        assert response.status_code < 500, response.text
    criteria = incident.ScopeCriteria(
        start, start + timedelta(seconds=30), principal=caller.principal_id
    )
    result = incident.scope_incident(world.platform, criteria, "operator:scope-api")
    listed = {r.beneficiary_id for scope in result.insurers for r in scope.records}
    expected = {beneficiary_id(world, covered)}
    if route == "claim":
        # An invoice for someone identified is a disclosure, covered or not.
        expected.add(beneficiary_id(world, former))
    assert listed == expected
