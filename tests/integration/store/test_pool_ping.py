"""PostgreSQL connections coming back from the pool are pinged only when they may be dead
(the server sent something while they sat idle, or they sat idle a while), not on every
checkout: a connection whose server side died is replaced, and one used a moment ago on
a live server costs no extra round trip."""

from __future__ import annotations

import time
from typing import Any

import pytest
from sqlalchemy import Engine

from tierspayant.store import db

pytestmark = pytest.mark.postgres


def _pid(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.exec_driver_sql("SELECT pg_backend_pid()").scalar_one())


def terminate(admin: Engine, pid: int) -> None:
    """End the server session ``pid`` and wait until the server has let it go."""
    # Autocommit: within a transaction, pg_stat_activity would show the same snapshot.
    with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql(f"SELECT pg_terminate_backend({pid})")
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            left = conn.exec_driver_sql(
                f"SELECT count(*) FROM pg_stat_activity WHERE pid = {pid}"
            ).scalar_one()
            if left == 0:
                return
            time.sleep(0.01)
    raise AssertionError(f"session {pid} still there")


def test_given_an_idle_connection_whose_server_side_died_then_the_pool_replaces_it(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = db.make_engine(postgres_url)
    other = db.make_engine(postgres_url)
    try:
        dead = _pid(engine)  # the pool keeps this connection
        terminate(other, dead)
        monkeypatch.setattr(db, "PING_IDLE_SECONDS", 0.0)  # it has sat idle long enough
        assert _pid(engine) != dead  # pinged, found dead, replaced: the caller sees nothing
    finally:
        engine.dispose()
        other.dispose()


def test_given_a_connection_used_a_moment_ago_whose_server_side_died_then_it_is_replaced(
    postgres_url: str,
) -> None:
    engine = db.make_engine(postgres_url)
    other = db.make_engine(postgres_url)
    try:
        dead = _pid(engine)
        # Given the server ended its session a moment after it was used (a restart)
        terminate(other, dead)
        # Then the next checkout sees the server's goodbye on the socket and opens
        # another connection: no statement fails (it failed before, once per connection)
        assert _pid(engine) != dead
    finally:
        engine.dispose()
        other.dispose()


def test_given_a_live_connection_used_a_moment_ago_then_it_is_not_pinged(
    postgres_url: str,
) -> None:
    engine = db.make_engine(postgres_url)
    try:
        with engine.connect() as conn:
            driver: Any = conn.connection.driver_connection
            pid = conn.exec_driver_sql("SELECT pg_backend_pid()").scalar_one()
        cursors = 0
        opened = driver.cursor

        def counted(*args: Any, **kwargs: Any) -> Any:
            nonlocal cursors
            cursors += 1
            return opened(*args, **kwargs)

        driver.cursor = counted
        with engine.connect() as conn:
            assert conn.connection.driver_connection is driver  # the same one
            # Then checking it out ran nothing on it: only this statement
            assert conn.exec_driver_sql("SELECT pg_backend_pid()").scalar_one() == pid
        assert cursors == 1
    finally:
        engine.dispose()


def test_given_the_pool_marked_lost_then_every_older_connection_is_replaced_unpinged(
    postgres_url: str,
) -> None:
    engine = db.make_engine(postgres_url)
    try:
        with engine.connect() as first, engine.connect() as second:
            before = {
                first.exec_driver_sql("SELECT pg_backend_pid()").scalar_one(),
                second.exec_driver_sql("SELECT pg_backend_pid()").scalar_one(),
            }
        # When a unit of work learnt from the driver that the server dropped its session
        db.mark_lost(engine)
        # Then neither connection of the pool is handed out again, new ones are
        with engine.connect() as first, engine.connect() as second:
            after = {
                first.exec_driver_sql("SELECT pg_backend_pid()").scalar_one(),
                second.exec_driver_sql("SELECT pg_backend_pid()").scalar_one(),
            }
        assert not before & after
        # ...and those are kept
        assert _pid(engine) in after
    finally:
        engine.dispose()
