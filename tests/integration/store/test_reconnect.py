"""A unit of work whose connection the server drops under it (``store/reconnect.py``):
run again on a new connection when nothing of it took effect, never once COMMIT was sent;
the errors that say a connection was lost told apart from the database's refusals.

The connection is ended while checked out, after the checkout's look at it: what a
server restart does to a request under way, which the pool cannot see coming."""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest
from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import OperationalError

from tests.integration.store.test_pool_ping import terminate
from tierspayant.services import run_failures
from tierspayant.store import db, reconnect
from tierspayant.store.beneficiary_reads import LookupReads, find_by_nir_index_padded

pytestmark = pytest.mark.postgres


@pytest.fixture
def engines(postgres_url: str) -> Iterator[tuple[Engine, Engine]]:
    engine = db.make_engine(postgres_url)
    admin = db.make_engine(postgres_url)
    with admin.begin() as conn:
        conn.exec_driver_sql("DROP TABLE IF EXISTS reconnect_probe")
        conn.exec_driver_sql("CREATE TABLE reconnect_probe (run int NOT NULL)")
    try:
        yield engine, admin
    finally:
        engine.dispose()
        admin.dispose()


def own_pid(conn: Connection | LookupReads) -> int:
    return int(conn.execute(text("SELECT pg_backend_pid()")).scalar_one())


def probe_runs(admin: Engine) -> list[int]:
    with admin.connect() as conn:
        return [row.run for row in conn.execute(text("SELECT run FROM reconnect_probe"))]


def test_a_read_whose_connection_died_is_run_again_on_a_new_one(
    engines: tuple[Engine, Engine],
) -> None:
    engine, admin = engines
    pids: list[int] = []

    def work(conn: Connection) -> int:
        pids.append(own_pid(conn))
        if len(pids) == 1:
            terminate(admin, pids[0])  # the server goes away in the middle
        return int(conn.execute(text("SELECT 41 + 1")).scalar_one())

    # When the first run's connection dies under it
    # Then the read is answered, by a second run on another connection
    assert reconnect.read(engine, work) == 42
    assert len(pids) == 2
    assert pids[0] != pids[1]


def test_a_transaction_that_died_before_commit_is_run_again_and_written_once(
    engines: tuple[Engine, Engine],
) -> None:
    engine, admin = engines
    runs = 0

    def work(conn: Connection) -> None:
        nonlocal runs
        runs += 1
        conn.execute(text("INSERT INTO reconnect_probe VALUES (:run)"), {"run": runs})
        if runs == 1:
            terminate(admin, own_pid(conn))
        conn.execute(text("SELECT count(*) FROM reconnect_probe")).scalar_one()

    # When the connection dies between two statements of the transaction
    reconnect.transaction(engine, work)
    # Then the server undid the first run, and the second one is written
    assert runs == 2
    assert probe_runs(admin) == [2]


def test_a_transaction_whose_commit_was_sent_on_a_dead_connection_is_not_run_again(
    engines: tuple[Engine, Engine],
) -> None:
    engine, admin = engines
    runs = 0

    def work(conn: Connection) -> None:
        nonlocal runs
        runs += 1
        conn.execute(text("INSERT INTO reconnect_probe VALUES (:run)"), {"run": runs})
        # Every statement answered; the server goes away before COMMIT arrives. From
        # the client's side this is a COMMIT without an answer: committed or not, it
        # cannot know (had the server died after committing, a second run would write
        # the row twice).
        terminate(admin, own_pid(conn))

    # Then the error reaches the caller, after one run only
    with pytest.raises(OperationalError) as raised:
        reconnect.transaction(engine, work)
    assert raised.value.connection_invalidated
    assert runs == 1
    assert probe_runs(admin) == []  # here the server had not committed: nothing written


def test_an_error_that_is_not_a_lost_connection_is_not_run_again(
    engines: tuple[Engine, Engine],
) -> None:
    engine, _ = engines
    runs = 0

    def work(conn: Connection) -> None:
        nonlocal runs
        runs += 1
        conn.execute(text("INSERT INTO reconnect_probe VALUES (NULL)"))

    with pytest.raises(Exception, match="null value"):
        reconnect.transaction(engine, work)
    assert runs == 1


def test_the_rights_check_index_read_on_the_driver_says_its_connection_was_lost(
    engines: tuple[Engine, Engine],
) -> None:
    engine, admin = engines

    def lookup(_: reconnect.Attempt) -> Any:
        with LookupReads(engine) as reads:
            if not pids:
                pids.append(own_pid(reads))
                terminate(admin, pids[0])
            else:
                pids.append(own_pid(reads))
            return find_by_nir_index_padded(reads, 1, b"\x00" * 32)

    pids: list[int] = []
    # The index read runs on the driver itself, where SQLAlchemy sees no error: it says
    # the connection was lost, and the lookup runs again on a new one
    assert reconnect.once_more_if_disconnected(engine, lookup) == (None, False)
    assert len(pids) == 2
    assert pids[0] != pids[1]
    # Without a second run, the caller gets that error
    pids.clear()
    with LookupReads(engine) as reads:
        terminate(admin, own_pid(reads))
        with pytest.raises(reconnect.Disconnected):
            find_by_nir_index_padded(reads, 1, b"\x00" * 32)


def free_port() -> int:
    """A local TCP port nothing listens on (bound, then let go)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def raised(work: Callable[[], object]) -> BaseException:
    try:
        work()
    except Exception as exc:  # noqa: BLE001 - the error is what the test looks at
        return exc
    raise AssertionError("no error")


def test_what_says_the_connection_was_lost_and_what_is_a_fault(
    engines: tuple[Engine, Engine],
) -> None:
    engine, admin = engines
    # Given the driver's own connection, the server ending its session under it
    raw = engine.raw_connection()
    driver: Any = raw.driver_connection
    driver.execute("SELECT 1")
    terminate(admin, int(driver.info.backend_pid))
    ended = raised(driver.commit)  # the server's last words (57P01 admin shutdown)
    closed = raised(lambda: driver.execute("SELECT 1"))  # what libpq says after
    raw.invalidate()
    # and a database that refuses connections, through SQLAlchemy and through the driver
    nowhere = f"postgresql://postgres@127.0.0.1:{free_port()}/postgres"
    refused_engine = db.make_engine(nowhere)
    try:
        refused = raised(refused_engine.connect)
    finally:
        refused_engine.dispose()
    refused_driver = raised(lambda: psycopg.connect(nowhere, connect_timeout=2))
    # and a connection that SQLAlchemy saw die under a statement
    with engine.connect() as conn:
        terminate(admin, own_pid(conn))
        invalidated = raised(lambda: conn.execute(text("SELECT 1")))
    # Then each of them is a lost connection
    for lost in (ended, closed, refused, refused_driver, invalidated, reconnect.Disconnected()):
        assert reconnect.connection_lost(lost), repr(lost)
        assert run_failures.is_lost(lost), repr(lost)
    # (SQLAlchemy itself does not call a refused connection a disconnect)
    assert isinstance(refused, OperationalError)
    assert not refused.connection_invalidated

    # Given errors the server answered a statement with, on a live connection: a division
    # by zero, a constraint, a statement timeout (an OperationalError with its SQLSTATE)
    def timed_out() -> None:
        with engine.connect() as conn:
            conn.exec_driver_sql("SET statement_timeout = 1")
            conn.exec_driver_sql("SELECT pg_sleep(1)")

    def not_null() -> None:
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO reconnect_probe VALUES (NULL)"))

    with engine.connect() as conn:
        live: Any = conn.connection.driver_connection
        zero_driver = raised(lambda: live.execute("SELECT 1 / 0"))
    faults = (raised(timed_out), raised(not_null), zero_driver)
    assert isinstance(faults[0], OperationalError)
    # Then none of them is a lost connection: each stays a fault (a 500)
    for fault in faults:
        assert not reconnect.connection_lost(fault), repr(fault)
        assert not run_failures.is_lost(fault), repr(fault)
