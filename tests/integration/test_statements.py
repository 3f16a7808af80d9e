"""Money over HTTP: member statements, provider remittance advice, undue flags.

A real app over a world of enrolled beneficiaries (``tests/api/world.py``), with claims
adjudicated for them and paid by a real payment run.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date

import pytest
from sqlalchemy import func, select

from tests.api.world import (
    ENGINE_PARAMS,
    TODAY,
    World,
    _beneficiary_id,
    build_world,
    close_world,
    error_code,
    request_token,
    staff_session,
)
from tests.money_support import ACCEPTED, REDUCED, REJECTED, adjudicated_claim, make_provider
from tierspayant.services import insurers, payments, providers
from tierspayant.store.tables import audit_events


@dataclass(frozen=True, slots=True)
class Paid:
    world: World
    amc: str
    insurer_id: int
    beneficiary_id: int
    claim_id: int
    undue_claim_id: int  # paid too, for the undue tests (another beneficiary)
    provider_id: int
    headers: dict[str, str]  # the paid provider's bearer token
    other_headers: dict[str, str]  # another provider's


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture(scope="module", params=ENGINE_PARAMS)
def paid(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Paid]:
    world = build_world(str(request.param), request, tmp_path_factory, count=30)
    platform = world.platform
    person = world.covered()
    with platform.engine.connect() as conn:
        insurer_id = insurers.get_insurer(conn, person.amc_number).id
        beneficiary_id = _beneficiary_id(platform, conn, person)
    rng = random.Random(41)
    tokens = []
    made = []
    for _ in range(2):
        provider = make_provider(platform, rng)
        credentials = providers.issue_client(platform, provider.am_number, "test", "test")
        tokens.append(request_token(world.client, credentials.client_id, credentials.client_secret))
        made.append(provider)
    claim_id = adjudicated_claim(
        platform, insurer_id=insurer_id, amc_number=person.amc_number,
        provider_id=made[0].id, beneficiary_id=beneficiary_id,
        lines=(ACCEPTED, REDUCED, REJECTED), care_date=date(2026, 3, 9),
    )  # fmt: skip
    undue_claim_id = adjudicated_claim(
        platform, insurer_id=insurer_id, amc_number=person.amc_number,
        provider_id=made[0].id, beneficiary_id=beneficiary_id + 10_000, lines=(REDUCED, REDUCED),
    )  # fmt: skip
    payments.run_payments(platform, TODAY, out_dir=tmp_path_factory.mktemp("pay"))
    try:
        yield Paid(
            world, person.amc_number, insurer_id, beneficiary_id, claim_id, undue_claim_id,
            made[0].id,
            _bearer(tokens[0]), _bearer(tokens[1]),
        )  # fmt: skip
    finally:
        close_world(world)


def _audit_count(paid: Paid, action: str) -> int:
    with paid.world.platform.engine.connect() as conn:
        return int(
            conn.execute(select(func.count()).where(audit_events.c.action == action)).scalar_one()
        )


def test_a_member_sees_what_was_paid_on_their_behalf(paid: Paid) -> None:
    person = paid.world.covered()
    token = staff_session(paid.world, "member", beneficiary=person)
    before = _audit_count(paid, "member.statement")

    response = paid.world.client.get("/v1/members/me/statements", headers=_bearer(token))

    assert response.status_code == 200, response.text
    lines = response.json()["lines"]
    assert [(x["amo"], x["amc"], x["remainder"], x["status"]) for x in lines] == [
        ("6.50", "3.50", "0.00", "paid"),
        ("19.00", "7.00", "4.00", "paid"),
    ]
    assert {x["payment_date"] for x in lines} == {TODAY.isoformat()}
    assert person.nir not in response.text
    assert _audit_count(paid, "member.statement") == before + 1


def test_another_member_sees_nothing_of_it(paid: Paid) -> None:
    someone_else = next(p for p in paid.world.everyone() if p.nir != paid.world.covered().nir)
    token = staff_session(paid.world, "member", beneficiary=someone_else)
    response = paid.world.client.get("/v1/members/me/statements", headers=_bearer(token))
    assert response.status_code == 200
    assert response.json()["lines"] == []


def test_a_provider_reads_its_own_remittance_advice_only(paid: Paid) -> None:
    client = paid.world.client
    listed = client.get("/v1/remittances", headers=paid.headers)
    assert listed.status_code == 200, listed.text
    (advice,) = listed.json()["remittances"]
    assert (advice["accepted"], advice["transferred"], advice["lines"]) == ("24.50", "24.50", 5)

    detail = client.get(f"/v1/remittances/{advice['id']}", headers=paid.headers)
    assert detail.status_code == 200
    lines = [x for x in detail.json()["lines"] if x["claim_id"] == paid.claim_id]
    assert [(x["paid"], x["status"], x["reason_code"]) for x in lines] == [
        ("3.50", "accepted", None),
        ("7.00", "reduced", "ceiling"),
        ("0.00", "rejected", "rights.none"),
    ]

    stranger = client.get(f"/v1/remittances/{advice['id']}", headers=paid.other_headers)
    assert stranger.status_code == 404
    assert error_code(stranger) == "remittance.unknown"
    assert client.get("/v1/remittances", headers=paid.other_headers).json() == {"remittances": []}
    assert client.get("/v1/remittances/not-an-id", headers=paid.headers).status_code == 422


def test_insurer_staff_flag_a_paid_line_undue_for_their_insurer_only(paid: Paid) -> None:
    client = paid.world.client
    url = f"/v1/claims/{paid.undue_claim_id}/lines/2/undue"
    other_amc = next(a for a in paid.world.amc_numbers if a != paid.amc)
    stranger = staff_session(paid.world, "insurer_staff", amc=other_amc)
    refused = client.post(url, json={"reason_code": "rights.ended"}, headers=_bearer(stranger))
    assert refused.status_code == 404
    as_provider = client.post(url, json={"reason_code": "rights.ended"}, headers=paid.headers)
    assert as_provider.status_code == 403

    staff = staff_session(paid.world, "insurer_staff", amc=paid.amc)
    first = client.post(url, json={"reason_code": "rights.ended"}, headers=_bearer(staff))
    again = client.post(url, json={"reason_code": "rights.ended"}, headers=_bearer(staff))
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json() == {"claim_id": paid.undue_claim_id, "line_no": 2, "to_recover": "7.00"}
    bad = client.post(url, json={"reason_code": "x", "extra": 1}, headers=_bearer(staff))
    assert bad.status_code == 422
