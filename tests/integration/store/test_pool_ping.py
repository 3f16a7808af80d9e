"""PostgreSQL connections are pinged when they come back from the pool after sitting idle,
not on every checkout: a connection whose server side died while it waited is replaced,
and one used a moment ago costs no extra round trip."""

from __future__ import annotations

import pytest
from sqlalchemy.exc import OperationalError

from tierspayant.store import db

pytestmark = pytest.mark.postgres


def _pid(engine: object) -> int:
    with engine.connect() as conn:  # type: ignore[attr-defined]
        return int(conn.exec_driver_sql("SELECT pg_backend_pid()").scalar_one())


def test_given_an_idle_connection_whose_server_side_died_then_the_pool_replaces_it(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = db.make_engine(postgres_url)
    other = db.make_engine(postgres_url)
    try:
        dead = _pid(engine)  # the pool keeps this connection
        with other.connect() as conn:
            conn.exec_driver_sql(f"SELECT pg_terminate_backend({dead})")
        monkeypatch.setattr(db, "PING_IDLE_SECONDS", 0.0)  # it has sat idle long enough
        assert _pid(engine) != dead  # pinged, found dead, replaced: the caller sees nothing
    finally:
        engine.dispose()
        other.dispose()


def test_given_a_connection_used_a_moment_ago_then_it_is_not_pinged(postgres_url: str) -> None:
    engine = db.make_engine(postgres_url)
    other = db.make_engine(postgres_url)
    try:
        dead = _pid(engine)
        with other.connect() as conn:
            conn.exec_driver_sql(f"SELECT pg_terminate_backend({dead})")
        # Used a moment ago: no ping, so the first statement meets the dead connection
        # (the request it serves fails, as after any server restart)...
        with pytest.raises(OperationalError):
            _pid(engine)
        # ...and the pool has dropped it: the next checkout opens a live one.
        assert _pid(engine) != dead
    finally:
        engine.dispose()
        other.dispose()
