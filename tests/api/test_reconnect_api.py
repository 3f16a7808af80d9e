"""After PostgreSQL drops every connection (a restart, a failover, ``pg_terminate_backend``,
an idle timeout), no request fails: the first statement on a dead pooled connection is run
again on a new one when that is safe (``store/reconnect.py``). A connection lost where
running again is not safe (its COMMIT was sent) answers 503 ``database.unavailable``, and
the client's own retry of a write is applied once."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import Connection, Engine, create_engine, event, text

from tests.api.fhir_support import FHIR, claim, outcome_code
from tests.api.test_claims_api import claim_body
from tests.api.test_fhir_api import CARE_DAY, _drug_line
from tests.api.world import TODAY, World, build_world, close_world, error_code
from tests.integration.store.test_pool_ping import terminate
from tierspayant.formats.fhir import systems
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


_CLAIM_WRITTEN = "test.claim_written"


@contextmanager
def commit_connection_killed(
    world: World, *, applied: bool, table: str = "claims"
) -> Iterator[list[int]]:
    """The server ends the session of the next transaction that writes a claim (a row of
    ``table``), as that transaction commits: before the server received its COMMIT
    (``applied=False``: the server undid it), or after the server applied it and before
    the app heard back (``applied=True``). Either way the app's COMMIT fails with a lost
    connection. Yields the server sessions ended (one)."""
    engine = world.platform.engine
    admin = create_engine(engine.url.render_as_string(hide_password=False))
    ended: list[int] = []

    def on_statement(conn: Connection, _cursor: Any, statement: str, *_: Any) -> None:
        if statement.lstrip().startswith(f"INSERT INTO {table} "):
            conn.info[_CLAIM_WRITTEN] = True

    def on_rollback(conn: Connection) -> None:
        conn.info.pop(_CLAIM_WRITTEN, None)

    def on_commit(conn: Connection) -> None:
        if not conn.info.pop(_CLAIM_WRITTEN, False) or ended:
            return
        driver: Any = conn.connection.driver_connection
        pid = int(driver.info.backend_pid)
        if applied:
            driver.commit()  # the server applies the claim's transaction...
            driver.execute("SELECT 1")  # ...and the app's own COMMIT goes out after it
        terminate(admin, pid)
        ended.append(pid)

    listeners = (
        ("before_cursor_execute", on_statement),
        ("rollback", on_rollback),
        ("commit", on_commit),
    )
    for name, listener in listeners:
        event.listen(engine, name, listener)
    try:
        yield ended
    finally:
        for name, listener in listeners:
            event.remove(engine, name, listener)
        admin.dispose()


def stored_versions(engine: Engine, invoice: str) -> list[int]:
    with engine.connect() as conn:
        return list(
            conn.execute(
                text("SELECT id FROM claims WHERE invoice_number = :n"), {"n": invoice}
            ).scalars()
        )


def send_invoice(world: World, route: str, invoice: str, person: Any) -> Any:
    if route == "v1":
        body = claim_body(person, invoice)
        return world.client.post("/v1/claims", json=body, headers=world.pharmacy.headers)
    resource = claim(
        "claim", person.card(), CARE_DAY, [_drug_line()], (systems.INVOICE_NUMBER, invoice)
    )
    return world.client.post(
        "/fhir/Claim/$submit",
        content=json.dumps(resource),
        headers={**world.pharmacy.headers, "Content-Type": FHIR},
    )


def refusal_code(route: str, response: Any) -> str:
    return error_code(response) if route == "v1" else outcome_code(response)


def claim_id_of(route: str, response: Any) -> int:
    body = response.json()
    if route == "v1":
        return int(body["claim_id"])
    return int(next(i["value"] for i in body["identifier"] if i["system"] == systems.CLAIM_ID))


@pytest.mark.parametrize(
    ("route", "applied"),
    [("v1", False), ("v1", True), ("fhir", True)],
    ids=["v1-commit-not-received", "v1-commit-applied", "fhir-commit-applied"],
)
def test_given_the_connection_lost_at_commit_then_503_and_the_retry_writes_once(
    pg_world: World, route: str, applied: bool
) -> None:
    engine = pg_world.platform.engine
    person = pg_world.covered()
    invoice = f"LOST-{uuid.uuid4().hex[:12]}"
    # Given an invoice whose transaction loses its connection as it commits
    with commit_connection_killed(pg_world, applied=applied) as ended:
        lost = send_invoice(pg_world, route, invoice, person)
    assert len(ended) == 1  # the hook was reached: the COMMIT went out on a dead session
    # Then the answer is a 503 the client can act on, in the route's shape, not a 500
    assert lost.status_code == 503, lost.text
    assert refusal_code(route, lost) == "database.unavailable"
    assert lost.headers["Retry-After"] == "2"
    # (the server applied the claim or undid it: the app cannot know which)
    assert len(stored_versions(engine, invoice)) == (1 if applied else 0)
    # When the client sends the same invoice again, then it is written once
    again = send_invoice(pg_world, route, invoice, person)
    assert again.status_code == (200 if applied else 201), again.text
    stored = stored_versions(engine, invoice)
    assert stored == [claim_id_of(route, again)]
    # and once more: the same receipt, never a second claim
    third = send_invoice(pg_world, route, invoice, person)
    assert third.status_code == 200, third.text
    assert stored_versions(engine, invoice) == stored


def test_only_a_lost_connection_answers_503_another_database_error_stays_a_500(
    pg_world: World,
) -> None:
    engine = pg_world.platform.engine
    person = pg_world.covered()
    # Given a COMMIT whose connection dies: 503
    with commit_connection_killed(pg_world, applied=False):
        lost = send_invoice(pg_world, "v1", f"LOST-{uuid.uuid4().hex[:12]}", person)
    assert lost.status_code == 503, lost.text

    # When the server refuses a statement of the same transaction instead (a real error
    # of the database, on a live connection)
    def refused(conn: Connection) -> None:
        if conn.info.pop(_CLAIM_WRITTEN, False):
            conn.exec_driver_sql("SELECT 1 / 0")

    marker = f"FAULT-{uuid.uuid4().hex[:12]}"

    def on_statement(conn: Connection, _cursor: Any, statement: str, *_: Any) -> None:
        if statement.lstrip().startswith("INSERT INTO claims "):
            conn.info[_CLAIM_WRITTEN] = True

    event.listen(engine, "before_cursor_execute", on_statement)
    event.listen(engine, "commit", refused)
    try:
        fault = send_invoice(pg_world, "v1", marker, person)
    finally:
        event.remove(engine, "commit", refused)
        event.remove(engine, "before_cursor_execute", on_statement)
    # Then it is a fault: the server's 500, nothing written
    assert fault.status_code == 500, fault.text
    assert stored_versions(engine, marker) == []
