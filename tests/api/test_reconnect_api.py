"""After PostgreSQL drops every connection (a restart, a failover, ``pg_terminate_backend``,
an idle timeout), no request fails: the first statement on a dead pooled connection is run
again on a new one when that is safe (``store/reconnect.py``)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from tests.api.test_claims_api import claim_body
from tests.api.world import TODAY, World, build_world, close_world
from tierspayant.services.adjudication import adjudicate_pending

pytestmark = pytest.mark.postgres


@pytest.fixture(scope="module")
def pg_world(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[World]:
    built = build_world("postgres", request, tmp_path_factory, count=20)
    try:
        yield built
    finally:
        close_world(built)


def drop_every_connection(world: World) -> None:
    """What a server restart does to the app: every one of its server sessions ends.

    Waits until the server has let them go, so the app's sockets are closed when it next
    uses them (as they are after a restart)."""
    url = world.platform.engine.url.render_as_string(hide_password=False)
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            killed = conn.execute(
                text(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                    " WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
            ).scalar_one()
            assert killed > 0  # the app held connections: the test tests something
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                left = conn.execute(
                    text(
                        "SELECT count(*) FROM pg_stat_activity"
                        " WHERE datname = current_database() AND pid <> pg_backend_pid()"
                    )
                ).scalar_one()
                if left == 0:
                    return
                time.sleep(0.02)
            raise AssertionError("the server kept the app's sessions")
    finally:
        admin.dispose()


def rights_check(world: World) -> Any:
    body = {
        "card": world.covered().card(),
        "care_date": TODAY.isoformat(),
        "domains": ["PHAR", "MED"],
    }
    return world.client.post("/v1/eligibility", json=body, headers=world.pharmacy.headers)


def test_given_the_server_dropped_every_connection_then_a_rights_check_succeeds(
    pg_world: World,
) -> None:
    # Given an app whose pool and audit writer hold connections used a moment ago
    for _ in range(3):
        assert rights_check(pg_world).status_code == 200
    # When the server drops them all
    drop_every_connection(pg_world)
    # Then the next rights checks are answered, none with a 500
    for _ in range(3):
        response = rights_check(pg_world)
        assert response.status_code == 200, response.text


def test_given_the_server_dropped_every_connection_then_a_read_succeeds(
    pg_world: World,
) -> None:
    # Given a claim the provider can read
    person = pg_world.covered()
    sent = pg_world.client.post(
        "/v1/claims", json=claim_body(person), headers=pg_world.pharmacy.headers
    )
    assert sent.status_code == 201, sent.text
    path = f"/v1/claims/{sent.json()['claim_id']}"
    assert pg_world.client.get(path, headers=pg_world.pharmacy.headers).status_code == 200
    # When the server drops every connection
    drop_every_connection(pg_world)
    # Then reading it again is answered
    response = pg_world.client.get(path, headers=pg_world.pharmacy.headers)
    assert response.status_code == 200, response.text


def test_given_the_server_dropped_every_connection_then_a_job_judges_its_claims(
    pg_world: World,
) -> None:
    # Given a received claim
    person = pg_world.covered()
    sent = pg_world.client.post(
        "/v1/claims", json=claim_body(person), headers=pg_world.pharmacy.headers
    )
    assert sent.status_code == 201, sent.text
    # When the server drops every connection
    drop_every_connection(pg_world)
    # Then the adjudication job's next tick judges it (reads, then writes in a transaction)
    run = adjudicate_pending(pg_world.platform, insurer_amc=person.amc_number)
    assert run.claims >= 1
