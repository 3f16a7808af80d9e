"""The portals when the database drops a connection under a page (a PostgreSQL restart, a
failover, ``pg_terminate_backend``): the page's reads run once more on a new connection
(``services.portal_views``, ``services.insurer_desk``); a connection lost past that second
run shows a French "try again" page with 503, never the server's 500. A database busy with
other writers (SQLite) shows the same kind of page instead of the API's JSON.

The server ends the page's session from another connection when the page sends a chosen
statement (a SQLAlchemy ``before_cursor_execute`` listener on the platform's engine), so
the statement goes out on a dead connection, as it does after a restart.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import Connection, event, func, select

from tests.integration.store.test_pool_ping import terminate
from tests.web.portal_client import PortalClient
from tests.web.world import World, build_world
from tierspayant.store import db
from tierspayant.store.tables import audit_events, insurers

MY_INVOICES = "/portail/prestataire/factures/mes-factures"
DESK_SEARCH = "/portail/assureur/factures/recherche"
LOST_SENTENCE = "Service momentanément indisponible, réessayez dans un instant."


@pytest.fixture(scope="module")
def pg_world(request: pytest.FixtureRequest) -> Iterator[World]:
    built = build_world(
        request.getfixturevalue("postgres_data_dir"), url=request.getfixturevalue("postgres_url")
    )
    try:
        yield built
    finally:
        built.platform.close()


@contextmanager
def session_ended_at(world: World, sends: Callable[[str], bool], times: int) -> Iterator[list[int]]:
    """The server ends the session of the connection about to send a statement that
    ``sends`` picks, the first ``times`` such statements; yields the sessions ended."""
    engine = world.platform.engine
    admin = db.make_engine(engine.url.render_as_string(hide_password=False))
    ended: list[int] = []

    def before(conn: Connection, _cursor: Any, statement: str, *_: Any) -> None:
        if len(ended) < times and sends(statement):
            driver: Any = conn.connection.driver_connection
            pid = int(driver.info.backend_pid)
            terminate(admin, pid)
            ended.append(pid)

    event.listen(engine, "before_cursor_execute", before)
    try:
        yield ended
    finally:
        event.remove(engine, "before_cursor_execute", before)
        admin.dispose()


def counts_my_invoices(statement: str) -> bool:
    """The first read of « Mes factures »: how many invoices the provider has."""
    return "count(*)" in statement and "FROM claims" in statement and "provider_id" in statement


def appends_audit(statement: str) -> bool:
    return statement.lstrip().startswith("INSERT INTO audit_events")


def provider_browser(world: World) -> PortalClient:
    browser = PortalClient(world, faults_raise=False)
    browser.login_provider()
    return browser


@pytest.mark.postgres
def test_given_the_connection_dies_under_my_invoices_then_the_page_is_served(
    pg_world: World,
) -> None:
    browser = provider_browser(pg_world)
    # When the server ends the session « Mes factures » reads on, once
    with session_ended_at(pg_world, counts_my_invoices, times=1) as ended:
        page = browser.get(MY_INVOICES)
    # Then the read ran again on a new connection: the page is served
    assert ended  # the hook was reached
    assert page.status_code == 200, page.text
    assert "<h1>Mes factures</h1>" in page.text


@pytest.mark.postgres
def test_given_the_connection_lost_again_then_a_french_page_says_try_again_with_503(
    pg_world: World,
) -> None:
    browser = provider_browser(pg_world)
    # When the server ends the session « Mes factures » reads on, and that of its second run
    with session_ended_at(pg_world, counts_my_invoices, times=2) as ended:
        page = browser.get(MY_INVOICES)
    # Then the page says, in French, to try again in a moment, with 503 and Retry-After
    assert page.status_code == 503, page.text
    assert len(ended) == 2
    assert page.headers["content-type"].startswith("text/html")
    assert page.headers["retry-after"] == "2"
    assert LOST_SENTENCE in page.text
    assert "(database.unavailable)" in page.text
    assert "Internal Server Error" not in page.text
    # And once the database answers, the same page is served
    assert browser.get(MY_INVOICES).status_code == 200


@pytest.mark.postgres
def test_given_the_connection_dies_under_the_desk_search_then_it_is_answered_and_audited_once(
    pg_world: World,
) -> None:
    staff = PortalClient(pg_world, faults_raise=False)
    staff.login("staff")

    def searches() -> int:
        with pg_world.platform.engine.connect() as conn:
            count = select(func.count()).where(audit_events.c.action == "insurer.claim_search")
            return int(conn.execute(count).scalar_one())

    before = searches()
    # When the server ends the session of the search's transaction as it appends its audit
    # event (before COMMIT)
    with session_ended_at(pg_world, appends_audit, times=1) as ended:
        page = staff.get(DESK_SEARCH, params={"facture": "INCONNUE-1"})
    # Then the search ran again on a new connection, and its event is in the log once
    assert ended
    assert page.status_code == 200, page.text
    assert searches() == before + 1


def test_given_the_database_busy_then_a_french_page_not_the_apis_json(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    staff = PortalClient(world, faults_raise=False)
    staff.login("staff")
    monkeypatch.setattr(db, "GATE_TIMEOUT_SECONDS", 0.3)
    # When a writer of the process holds SQLite's write gate past the timeout while the
    # desk's audited search waits for it
    with world.platform.engine.begin() as conn:
        conn.execute(insurers.update().where(insurers.c.id == -1).values(name="x"))
        page = staff.get(DESK_SEARCH, params={"facture": "INCONNUE-2"})
    # Then the portal shows its French page with 503, as the API answers 503 database.busy
    assert page.status_code == 503, page.text
    assert page.headers["content-type"].startswith("text/html")
    assert page.headers["retry-after"] == "1"
    assert "Service occupé : réessayez." in page.text
    assert "(database.busy)" in page.text
