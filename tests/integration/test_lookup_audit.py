"""Rights checks read, then wait for their audit event's group commit.

What must hold: every answer has its event in the chain (many threads at once included);
no answer leaves when its event cannot be written; the short-lived caches of the hot
path never outlive what this process itself revoked or changed.
"""

from __future__ import annotations

import asyncio
import threading
from datetime import date, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select, text, update

from tests.integration.operations_support import (
    NOW,
    Person,
    SeedInsurer,
    enrol,
    provider_principal,
    rights_check,
)
from tierspayant.app.platform import Platform
from tierspayant.domain.care import CareDomain
from tierspayant.domain.pricing import PricingLine
from tierspayant.security.audit import verify_chain
from tierspayant.services import providers
from tierspayant.services.alerts import suspend_principal
from tierspayant.services.errors import ServiceError, Unauthenticated
from tierspayant.services.identification import CardData
from tierspayant.services.pricing import Calculation, calculate
from tierspayant.store import audit
from tierspayant.store.audit_writer import AuditWriter, AuditWriterClosed
from tierspayant.store.tables import access_tokens, audit_events


def _events(platform: Platform, action: str) -> int:
    with platform.engine.connect() as conn:
        return int(
            conn.execute(
                select(func.count())
                .select_from(audit_events)
                .where(audit_events.c.action == action)
            ).scalar_one()
        )


def _chain_ok(platform: Platform) -> bool:
    with platform.engine.connect() as conn:
        return verify_chain(audit.iter_events(conn)).ok


@pytest.fixture
def world(
    platform: Platform, seed_insurer: SeedInsurer, tmp_path: Path
) -> tuple[Platform, str, list[Person]]:
    platform.clock = lambda: NOW
    insurer, people = enrol(platform, seed_insurer, tmp_path, 40)
    return platform, insurer.amc_number, people


def test_given_sixteen_threads_checking_at_once_then_every_answer_has_its_event_in_the_chain(
    world: tuple[Platform, str, list[Person]],
) -> None:
    platform, amc, people = world
    # One pharmacy per thread, five checks each: well inside the guard's no-proof quota.
    principals = [provider_principal(platform, amc, seed) for seed in range(16)]
    answers: list[bool] = []
    errors: list[BaseException] = []
    start = threading.Barrier(16)

    def worker(n: int) -> None:
        start.wait()
        try:
            for k in range(5):
                person = people[(n * 5 + k) % len(people)]
                answers.append(rights_check(platform, principals[n], person.card(amc)))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    assert len(answers) == 80
    covered = sum(answers)
    assert covered > 40  # most of the synthetic population is covered on that day
    assert _events(platform, "eligibility.check") == 80
    assert platform.audit_writer.events == 80
    with platform.engine.connect() as conn:
        hits = conn.execute(
            select(func.count())
            .select_from(audit_events)
            .where(audit_events.c.action == "eligibility.check", audit_events.c.decision == "hit")
        ).scalar_one()
    assert hits == covered  # each answer is recorded as what was answered
    assert 1 <= platform.audit_writer.batches <= 80
    assert _chain_ok(platform)


def _break_audit(platform: Platform) -> None:
    with platform.engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(
                text(
                    "CREATE FUNCTION tp_test_audit_down() RETURNS trigger LANGUAGE plpgsql AS "
                    "$$ BEGIN RAISE EXCEPTION 'audit storage down'; END $$"
                )
            )
            conn.execute(
                text(
                    "CREATE TRIGGER tp_test_audit_down BEFORE INSERT ON audit_events "
                    "FOR EACH ROW EXECUTE FUNCTION tp_test_audit_down()"
                )
            )
        else:
            conn.execute(
                text(
                    "CREATE TRIGGER tp_test_audit_down BEFORE INSERT ON audit_events "
                    "BEGIN SELECT RAISE(ABORT, 'audit storage down'); END"
                )
            )


def _repair_audit(platform: Platform) -> None:
    with platform.engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("DROP TRIGGER tp_test_audit_down ON audit_events"))
            conn.execute(text("DROP FUNCTION tp_test_audit_down()"))
        else:
            conn.execute(text("DROP TRIGGER tp_test_audit_down"))


def test_given_the_audit_log_cannot_be_written_then_no_answer_leaves(
    world: tuple[Platform, str, list[Person]],
) -> None:
    platform, amc, people = world
    principal = provider_principal(platform, amc, 1)
    assert rights_check(platform, principal, people[0].card(amc))
    before = _events(platform, "eligibility.check")
    _break_audit(platform)
    try:
        with pytest.raises(Exception, match="audit storage down"):
            rights_check(platform, principal, people[1].card(amc))
    finally:
        _repair_audit(platform)
    assert _events(platform, "eligibility.check") == before
    assert rights_check(platform, principal, people[1].card(amc))
    assert _events(platform, "eligibility.check") == before + 1
    assert _chain_ok(platform)


def _token(platform: Platform, amc: str) -> str:
    principal = provider_principal(platform, amc, 9)
    assert principal.provider_am_number is not None
    issued = providers.issue_client(platform, principal.provider_am_number, "test", "test")
    return providers.grant_client_token(
        platform, issued.client_id, issued.client_secret
    ).access_token


def test_given_a_cached_token_when_this_process_suspends_its_principal_then_refused_at_once(
    world: tuple[Platform, str, list[Person]],
) -> None:
    platform, amc, _ = world
    token = _token(platform, amc)
    principal = providers.authenticate_token_cached(platform, token)
    assert providers.cached_principal(platform, token) == principal
    with platform.engine.begin() as conn:
        suspend_principal(platform, conn, principal.id, "test")
    assert providers.cached_principal(platform, token) is None
    with pytest.raises(Unauthenticated):
        providers.authenticate_token_cached(platform, token)


def test_given_a_cached_token_when_it_expires_then_refused_even_from_the_cache(
    world: tuple[Platform, str, list[Person]],
) -> None:
    platform, amc, _ = world
    token = _token(platform, amc)
    providers.authenticate_token_cached(platform, token)
    ttl = platform.settings.access_token_ttl_seconds
    platform.clock = lambda: NOW + timedelta(seconds=ttl)
    assert providers.cached_principal(platform, token) is None
    with pytest.raises(Unauthenticated):
        providers.authenticate_token_cached(platform, token)


def test_given_a_token_revoked_by_another_process_then_refused_once_the_cache_lapses(
    world: tuple[Platform, str, list[Person]],
) -> None:
    platform, amc, _ = world
    token = _token(platform, amc)
    providers.authenticate_token_cached(platform, token)
    with platform.engine.begin() as conn:  # what `tokens revoke` in a CLI process does
        conn.execute(update(access_tokens).values(revoked_at=NOW))
    assert providers.authenticate_token_cached(platform, token)  # within the cache time
    platform.principals.clear()  # the cache time has passed
    with pytest.raises(Unauthenticated):
        providers.authenticate_token_cached(platform, token)
    with platform.engine.connect() as conn, pytest.raises(Unauthenticated):
        providers.authenticate_token(platform, conn, token)  # never cached: the database


def test_given_a_forked_child_then_its_events_are_written_by_its_own_writer(
    world: tuple[Platform, str, list[Person]],
) -> None:
    import os

    platform, amc, people = world
    if platform.engine.dialect.name != "sqlite":
        pytest.skip("one engine is enough: the subject is the writer thread, not the database")
    principal = provider_principal(platform, amc, 3)
    assert rights_check(platform, principal, people[0].card(amc))  # parent's thread runs
    platform.engine.dispose(close=False)  # the child must not share the parent's sockets
    child = os.fork()
    if child == 0:  # pragma: no cover - runs in the child, which reports by exit status
        ok = False
        try:
            ok = rights_check(platform, principal, people[1].card(amc))
        finally:
            os._exit(0 if ok else 1)
    _, status = os.waitpid(child, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert _events(platform, "eligibility.check") == 2
    assert _chain_ok(platform)


def test_given_no_rights_and_an_audit_log_that_cannot_be_written_then_even_the_refusal_waits(
    world: tuple[Platform, str, list[Person]],
) -> None:
    """A calculation's "no rights" is an answer too: it must not leave before its event."""
    platform, amc, people = world
    principal = provider_principal(platform, amc, 4)
    stranger = CardData(amc, people[0].birth, people[0].nir, people[0].rank + 1)
    line = PricingLine("PH7", CareDomain.PHAR, "drug_65", 1, 1000, 1000)
    request = Calculation(stranger, date(2025, 3, 10), (line,))
    with pytest.raises(ServiceError, match="no complementary rights"):
        calculate(platform, principal, request)
    _break_audit(platform)
    try:
        with pytest.raises(Exception, match="audit storage down"):
            calculate(platform, principal, request)
    finally:
        _repair_audit(platform)
    assert _events(platform, "calculation") == 1


def test_given_a_closed_writer_then_queued_events_are_written_and_new_ones_refused(
    world: tuple[Platform, str, list[Person]],
) -> None:
    platform, _, _ = world
    writer = AuditWriter(platform.engine)
    entries = [
        audit.Entry(at=NOW, actor="test", action="writer.close", decision="allow", detail={"n": n})
        for n in range(5)
    ]
    futures = [writer.submit(entry) for entry in entries]
    writer.close()
    assert [f.result(5).detail["n"] for f in futures] == [0, 1, 2, 3, 4]
    with pytest.raises(AuditWriterClosed):
        writer.submit(entries[0])
    with pytest.raises(ValueError, match="actor"):
        AuditWriter(platform.engine).submit(audit.Entry(at=NOW, actor="", action="x", decision="y"))
    assert _events(platform, "writer.close") == 5
    assert _chain_ok(platform)


def test_given_a_waiter_that_gave_up_then_its_event_is_written_and_the_writer_goes_on(
    world: tuple[Platform, str, list[Person]],
) -> None:
    """An async request cancelled while awaiting its event cancels the event's future."""
    platform, _, _ = world
    writer = AuditWriter(platform.engine)
    try:
        with platform.engine.begin() as conn:  # hold the chain so the first batch waits
            audit.append(conn, at=NOW, actor="test", action="writer.hold", decision="allow")
            first = writer.submit(
                audit.Entry(at=NOW, actor="test", action="writer.cancel", decision="allow")
            )
            assert first.cancel()  # the waiter gives up before its batch is written
        later = writer.submit(
            audit.Entry(at=NOW, actor="test", action="writer.after", decision="allow")
        )
        assert later.result(10).action == "writer.after"
    finally:
        writer.close()
    assert _events(platform, "writer.cancel") == 1
    assert _events(platform, "writer.after") == 1
    assert _chain_ok(platform)


def test_given_events_submitted_on_a_loop_then_they_reach_the_writer_together_once_it_turns(
    world: tuple[Platform, str, list[Person]],
) -> None:
    """A loop iteration's events go to the writer as one batch when the iteration ends;
    none is committed before, and every one is committed after."""
    platform, _, _ = world
    writer = AuditWriter(platform.engine)

    async def iteration() -> list[str]:
        futures = [
            writer.submit_from_loop(
                audit.Entry(at=NOW, actor="test", action="writer.loop", decision="allow")
            )
            for _ in range(6)
        ]
        assert not any(f.done() for f in futures)  # held until the loop turns
        await asyncio.gather(*(asyncio.wrap_future(f) for f in futures))
        return [f.result().action for f in futures]

    before = _events(platform, "writer.loop")
    try:
        assert asyncio.run(iteration()) == ["writer.loop"] * 6
        assert writer.batches == 1
    finally:
        writer.close()
    assert _events(platform, "writer.loop") == before + 6
    assert _chain_ok(platform)


def test_given_an_event_held_for_a_loop_that_blocks_on_it_then_settling_flushes_it(
    world: tuple[Platform, str, list[Person]],
) -> None:
    """A synchronous rights check on a loop's thread (it blocks the loop) must not wait
    for a loop iteration that cannot come: settling hands its event over first."""
    platform, amc, people = world
    principal = provider_principal(platform, amc, 3)

    async def blocking() -> bool:
        return rights_check(platform, principal, people[0].card(amc))

    before = _events(platform, "eligibility.check")
    assert asyncio.run(asyncio.wait_for(blocking(), 20)) in (True, False)
    assert _events(platform, "eligibility.check") == before + 1


def test_given_a_closed_writer_then_events_held_for_a_loop_are_written(
    world: tuple[Platform, str, list[Person]],
) -> None:
    platform, _, _ = world
    writer = AuditWriter(platform.engine)

    async def submit_and_close() -> object:
        future = writer.submit_from_loop(
            audit.Entry(at=NOW, actor="test", action="writer.held", decision="allow")
        )
        writer.close()  # before the loop turns
        return future.result(10).action

    before = _events(platform, "writer.held")
    assert asyncio.run(submit_and_close()) == "writer.held"
    assert _events(platform, "writer.held") == before + 1
