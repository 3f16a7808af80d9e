"""Every writer takes the process's write gate before SQLite's lock, never after.

The scenario that stalled: a transaction writes a row (SQLite's lock taken), the audit
writer's batch takes the gate and waits for SQLite's lock, then the transaction appends
its audit event and waits for the gate. With one order the transaction waits for nothing
it does not already hold: the batch simply commits after it. On PostgreSQL the same
scenario exercises the advisory lock of the chain.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from sqlalchemy import Connection, select

from tests.conftest import SeededInsurer
from tierspayant.app.platform import Platform
from tierspayant.security.audit import verify_chain
from tierspayant.store import audit, claims, prior_auth
from tierspayant.store.audit_writer import AuditWriter
from tierspayant.store.claims_tables import claims as claims_table
from tierspayant.store.tables import audit_events, insurers, providers

AT = datetime(2026, 3, 16, 9, 0, tzinfo=UTC)
BOUND_SECONDS = 3.0  # the stall it guards against lasted the 10 s timeouts


def _entry(action: str) -> audit.Entry:
    return audit.Entry(at=AT, actor="test:gate", action=action, decision="allow")


def test_given_a_writer_then_an_audit_batch_then_its_append_nothing_stalls(
    platform: Platform,
) -> None:
    writer = AuditWriter(platform.engine)
    wrote, batch_queued = threading.Event(), threading.Event()
    outcome: dict[str, object] = {}

    def transaction() -> None:
        started = time.perf_counter()
        try:
            with platform.engine.begin() as conn:
                conn.execute(
                    insurers.insert().values(
                        amc_number="990000001", name="Gate", kind="mutuelle", created_at=AT
                    )
                )
                wrote.set()
                batch_queued.wait(10)
                time.sleep(0.3)  # the batch is now waiting for a lock
                audit.append(conn, at=AT, actor="test:gate", action="gate.tx", decision="allow")
        except BaseException as exc:  # noqa: BLE001 - reported below
            outcome["error"] = exc
        outcome["seconds"] = time.perf_counter() - started

    thread = threading.Thread(target=transaction)
    thread.start()
    try:
        assert wrote.wait(10)
        batch = writer.submit(_entry("gate.batch"))
        batch_queued.set()
        thread.join(30)
        batch.result(30)
    finally:
        writer.close()
    assert "error" not in outcome, outcome
    assert isinstance(outcome["seconds"], float)
    assert outcome["seconds"] < BOUND_SECONDS, outcome
    with platform.engine.connect() as conn:
        actions = conn.execute(select(audit_events.c.action).order_by(audit_events.c.seq)).all()
        ours = [a for (a,) in actions if a.startswith("gate.")]
        if platform.engine.dialect.name == "sqlite":
            assert ours == ["gate.tx", "gate.batch"]  # the batch queued behind the writer
        else:
            assert sorted(ours) == ["gate.batch", "gate.tx"]  # the batch did not wait
        assert verify_chain(audit.iter_events(conn)).ok


def _plan(conn: Connection, sql: str) -> str:
    if conn.dialect.name == "postgresql":
        # A test database is tiny: without this the planner rightly prefers a scan.
        conn.exec_driver_sql("SET LOCAL enable_seqscan = off")
        rows = conn.exec_driver_sql("EXPLAIN " + sql).all()
    else:
        rows = conn.exec_driver_sql("EXPLAIN QUERY PLAN " + sql).all()
    return "\n".join(str(row[-1]) for row in rows)


@pytest.mark.parametrize("table", ["claims", "prior_authorisations"])
def test_the_next_id_probes_each_insurers_key_instead_of_reading_it_whole(
    platform: Platform, table: str
) -> None:
    """It runs under the write lock: max(id) over (insurer_id, id) read the whole key,
    108 ms at a million claims on SQLite, while every other writer waited."""
    query = claims._NEXT_CLAIM_ID if table == "claims" else prior_auth._NEXT_AGREEMENT_ID
    with platform.engine.begin() as conn:
        sql = str(query.compile(conn, compile_kwargs={"literal_binds": True}))
        plan = _plan(conn, sql)
    if platform.engine.dialect.name == "postgresql":
        # Hash-partitioned by insurer (migration 0018): each probe is a backward scan of
        # one partition's key, the others pruned at run time (the insurer is a parameter).
        assert re.search(
            rf"Index Only Scan Backward using pk_{table}_p\d\d on {table}_p\d\d", plan
        ), plan
        assert "Index Cond: ((insurer_id = insurers.id)" in plan, plan
    else:
        assert f"SEARCH {table} USING COVERING INDEX" in plan, plan
        assert "(insurer_id=?)" in plan, plan


def test_the_next_id_follows_the_greatest_of_every_insurer(
    platform: Platform, seed_insurer: Callable[..., SeededInsurer]
) -> None:
    first, second = seed_insurer(platform), seed_insurer(platform)
    with platform.engine.begin() as conn:
        assert claims.next_claim_id(conn) == 1
        provider = _provider(conn)
        for insurer_id, claim_id in ((first.id, 7), (second.id, 41), (first.id, 12)):
            conn.execute(claims_table.insert().values(_claim(insurer_id, claim_id, provider)))
        assert claims.next_claim_id(conn) == 42


def _provider(conn: Connection) -> int:
    return int(
        conn.execute(
            providers.insert()
            .values(am_number="751234567", category="pharmacy", name="Gate", created_at=AT)
            .returning(providers.c.id)
        ).scalar_one()
    )


def _claim(insurer_id: int, claim_id: int, provider_id: int) -> dict[str, object]:
    return {
        "insurer_id": insurer_id,
        "id": claim_id,
        "provider_id": provider_id,
        "invoice_number": f"GATE-{claim_id}",
        "beneficiary_id": 0,
        "care_date": AT.date(),
        "request_digest": b"\0" * 32,
        "status": "received",
        "source": "api",
        "received_at": AT,
        "billed_cents": 0,
        "amc_requested_cents": 0,
    }
