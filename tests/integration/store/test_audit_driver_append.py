"""The group-commit writer appends on the driver's own connection: the rows it stores are
the rows the SQLAlchemy append stores (same column values, byte for byte), the chain
runs on from one to the other and verifies, and a failed batch leaves the writer able to
append the next one."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.integration.store.test_pool_ping import terminate
from tierspayant.app.platform import Platform
from tierspayant.security.audit import DISCLOSED, verify_chain
from tierspayant.store import audit
from tierspayant.store.audit_writer import AuditWriter
from tierspayant.store.db import make_engine

AT = datetime(2026, 3, 16, 9, 0, 0, 123456, tzinfo=UTC)


def _entry(index: int) -> audit.Entry:
    return audit.Entry(
        at=AT + timedelta(seconds=index),
        actor="test:driver",
        structure="123456789",
        action="eligibility.check",
        purpose="rights_check",
        subject=f"subject-{index}",
        insurer="75012345",
        decision="hit",
        detail={"care_date": "2026-03-16", "proof": False, DISCLOSED: True, "n": index},
    )


def _stored(platform: Platform) -> list[tuple[object, ...]]:
    """Every column as the database hands it back, without SQLAlchemy's type processing."""
    with platform.engine.connect() as conn:
        rows = conn.exec_driver_sql(
            "SELECT seq, at, actor, structure, action, purpose, subject, insurer, decision,"
            " detail, prev_hash, hash FROM audit_events WHERE actor = 'test:driver'"
            " ORDER BY seq"
        ).all()
    return [tuple(bytes(v) if isinstance(v, memoryview) else v for v in row) for row in rows]


def test_given_both_appends_then_their_rows_have_one_format_and_the_chain_verifies(
    platform: Platform,
) -> None:
    writer = AuditWriter(platform.engine)
    try:
        by_driver = [writer.append(_entry(i)) for i in range(3)]
        with platform.engine.begin() as conn:
            by_sqlalchemy = audit.append_entries(conn, [_entry(i) for i in range(3, 6)])
        by_driver += [writer.append(_entry(i)) for i in range(6, 8)]
    finally:
        writer.close()
    stored = _stored(platform)
    assert len(stored) == 8
    # The same text for the same kind of value, whichever path wrote it.
    driver_at, sqlalchemy_at = stored[0][1], stored[3][1]
    assert type(driver_at) is type(sqlalchemy_at)
    if isinstance(driver_at, str):  # SQLite: SQLAlchemy's text form of a datetime
        assert len(driver_at) == len(str(sqlalchemy_at))
        assert driver_at.startswith("2026-03-16 09:00:00.123456")
    assert str(stored[0][9]) == str(stored[3][9]).replace('"n":3', '"n":0')  # one JSON form
    # Read back through the store, each event is the one its append returned.
    with platform.engine.connect() as conn:
        events = [e for e in audit.iter_events(conn) if e.actor == "test:driver"]
        assert verify_chain(audit.iter_events(conn)).ok
    assert events == [*by_driver[:3], *by_sqlalchemy, *by_driver[3:]]
    assert [e.seq for e in events] == sorted(e.seq for e in events)


def test_given_a_broken_connection_then_its_batch_fails_and_the_next_one_is_appended(
    platform: Platform,
) -> None:
    writer = AuditWriter(platform.engine)
    try:
        first = writer.append(_entry(0))
        held = writer._raw
        assert held is not None
        held.driver_connection.close()  # type: ignore[union-attr]
        if platform.engine.dialect.name == "postgresql":
            # A lost connection, before COMMIT: the batch is written on a new one
            lost = writer.append(_entry(1))
            assert lost.seq == first.seq + 1
            first = lost
        else:
            with pytest.raises(Exception, match=r"(?i)closed"):
                writer.append(_entry(1))
        after = writer.append(_entry(2))
    finally:
        writer.close()
    assert after.seq == first.seq + 1
    assert after.prev_hash == first.hash


@pytest.mark.postgres
def test_given_the_server_dropped_the_writers_connection_then_the_batch_is_written_on_a_new_one(
    postgres_url: str,
) -> None:
    engine = make_engine(postgres_url)
    admin = make_engine(postgres_url)
    writer = AuditWriter(engine)
    try:
        first = writer.append(_entry(10))
        held = writer._raw
        assert held is not None
        driver: Any = held.driver_connection
        # Given the server ended the writer's session (a restart) after its last batch
        terminate(admin, driver.info.backend_pid)
        # Then the next batch fails before its COMMIT is sent, and is written again
        after = writer.append(_entry(11))
        assert writer._raw is not held
    finally:
        writer.close()
        engine.dispose()
        admin.dispose()
    assert after.seq == first.seq + 1
    assert after.prev_hash == first.hash
