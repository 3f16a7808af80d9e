"""OAuth2 client credentials over HTTP: tokens that work, expire, are stored as digests,
and refusals that do not say which part was wrong."""

from __future__ import annotations

import base64
from datetime import timedelta

from sqlalchemy import select

from tests.api.world import TODAY, World, error_code
from tierspayant.store import audit
from tierspayant.store.tables import access_tokens


def token_request(world: World, **form: str) -> object:
    return world.client.post("/v1/oauth/token", data=form)


def check_with(world: World, token: str) -> int:
    body = {"card": world.covered().card(), "care_date": TODAY.isoformat(), "domains": ["PHAR"]}
    response = world.client.post(
        "/v1/eligibility", json=body, headers={"Authorization": f"Bearer {token}"}
    )
    return int(response.status_code)


def test_given_client_credentials_in_the_form_then_a_short_lived_bearer_token(
    world: World,
) -> None:
    account = world.pharmacy
    response = world.client.post(
        "/v1/oauth/token",
        data={
            "grant_type": "client_credentials",
            "client_id": account.client_id,
            "client_secret": account.client_secret,
        },
    )
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"access_token", "token_type", "expires_in"}
    assert (body["token_type"], body["expires_in"]) == ("Bearer", 600)
    assert response.headers["cache-control"] == "no-store"
    assert check_with(world, body["access_token"]) == 200


def test_given_http_basic_credentials_then_a_token(world: World) -> None:
    account = world.gp
    basic = base64.b64encode(f"{account.client_id}:{account.client_secret}".encode()).decode()
    response = world.client.post(
        "/v1/oauth/token",
        data={"grant_type": "client_credentials"},
        headers={"Authorization": f"Basic {basic}"},
    )
    assert response.status_code == 200
    assert check_with(world, response.json()["access_token"]) == 200


def test_given_wrong_secret_or_unknown_client_then_one_identical_refusal_audited(
    world: World,
) -> None:
    account = world.pharmacy
    wrong_secret = world.client.post(
        "/v1/oauth/token",
        data={"grant_type": "client_credentials", "client_id": account.client_id,
              "client_secret": "not-the-secret"},
    )  # fmt: skip
    with world.platform.engine.connect() as conn:
        event = audit.last_event(conn)
    assert event is not None
    assert (event.action, event.decision, event.actor) == (
        "auth.token",
        "deny",
        account.principal_id,
    )
    unknown = world.client.post(
        "/v1/oauth/token",
        data={"grant_type": "client_credentials", "client_id": "tpc_nobody",
              "client_secret": "whatever"},
    )  # fmt: skip
    assert wrong_secret.status_code == unknown.status_code == 401
    assert wrong_secret.content == unknown.content
    assert error_code(unknown) == "auth.invalid_client"
    assert account.client_secret not in wrong_secret.text


def test_given_other_grant_or_missing_parts_then_refused_with_codes(world: World) -> None:
    account = world.pharmacy
    cases = [
        ({"grant_type": "password", "client_id": account.client_id,
          "client_secret": account.client_secret}, 400, "auth.unsupported_grant"),
        ({"grant_type": "client_credentials"}, 401, "auth.invalid_client"),
        ({"client_id": account.client_id}, 422, "request.missing_field"),
    ]  # fmt: skip
    for form, status, code in cases:
        response = world.client.post("/v1/oauth/token", data=form)
        assert (response.status_code, error_code(response)) == (status, code), form
    malformed = world.client.post(
        "/v1/oauth/token",
        data={"grant_type": "client_credentials"},
        headers={"Authorization": "Basic %%%not-base64"},
    )
    assert (malformed.status_code, error_code(malformed)) == (401, "auth.invalid_client")


def test_given_token_past_its_lifetime_then_refused(world: World) -> None:
    token = world.new_token(world.gp)
    assert check_with(world, token) == 200
    start = world.clock.now
    try:
        world.clock.advance(seconds=601)
        assert check_with(world, token) == 401
    finally:
        world.clock.now = start
    assert check_with(world, token) == 200


def test_given_tokens_then_only_their_digests_are_stored(world: World) -> None:
    token = world.new_token(world.pharmacy)
    with world.platform.engine.connect() as conn:
        rows = conn.execute(select(access_tokens)).all()
    assert rows
    for row in rows:
        assert token.encode() not in bytes(row.token_digest)
        assert token not in repr(tuple(row))
        assert row.expires_at - row.issued_at == timedelta(seconds=600)
