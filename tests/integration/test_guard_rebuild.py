"""The rebuild of the guard's counters, once across processes however long it reads, and
the figures that wait for it: SQLite and PostgreSQL, the in-process store and Redis.

A rebuild at national scale reads 30 days of the audit log (minutes, far past the lock's
120 s): the process that rebuilds keeps its lock while it reads, so no other process
rebuilds meanwhile, and it never renews nor deletes a lock another process holds. The
people awaiting an invoice (``Guard.unbilled``, the provider portal's figure) are not
read from an empty store as zeros: they are rebuilt first, or refused (503) while
another process rebuilds.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta

import pytest

from tests.support.services import RedisDatabase
from tierspayant.app.platform import Platform
from tierspayant.security.guard import (
    EPOCH_KEY,
    ActorKind,
    CounterStore,
    CounterStoreUnavailable,
    Guard,
    GuardPolicy,
    GuardUnavailable,
    LookupContext,
    MemoryCounterStore,
    PastEvent,
    RedisCounterStore,
    Restorer,
    RestoringCounterStore,
)
from tierspayant.security.guard.restore import LOCK_KEY
from tierspayant.store import audit
from tierspayant.store.lookup_history import AuditLookupHistory

POLICY = GuardPolicy()


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
def empty_store(request: pytest.FixtureRequest) -> Callable[[], CounterStore]:
    """Makes a store with nothing in it: a new in-process one, or the test run's Redis
    database flushed (every store made by one test shares that database)."""
    if request.param == "memory":
        return MemoryCounterStore

    db: RedisDatabase = request.getfixturevalue("redis_db")

    def flushed() -> CounterStore:
        client = db.client()
        try:
            client.flushdb()
        finally:
            client.close()
        return RedisCounterStore.from_url(db.url, timeout_seconds=2)

    return flushed


class SlowHistory:
    """The audit log's history (:class:`AuditLookupHistory`), its 30-day pass read
    slowly: ``seconds`` before its first event, as a read of 30 million events takes
    minutes; ``during`` runs then (another process acting meanwhile)."""

    def __init__(
        self, platform: Platform, seconds: float, during: Callable[[], None] | None = None
    ) -> None:
        self.history = AuditLookupHistory(platform.engine)
        self.seconds = seconds
        self.during = during
        self.reading = threading.Event()
        self.reads = 0

    def past_events(self, since: datetime) -> Iterator[PastEvent]:
        self.reads += 1
        self.reading.set()
        return self.history.past_events(since)

    def suspended_principals(self) -> list[str]:
        return self.history.suspended_principals()

    def past_alerts(self, since: datetime) -> list[PastEvent]:
        return self.history.past_alerts(since)

    def unbilled_events(self, since: datetime) -> Iterator[PastEvent]:
        time.sleep(self.seconds)
        if self.during is not None:
            self.during()
        yield from self.history.unbilled_events(since)


def _answered_without_proof(platform: Platform, people: int) -> LookupContext:
    """``people`` rights checks answered an hour ago without card proof, by a principal
    of a structure of its own (the PostgreSQL database is the module's): the context of
    its next lookup without proof."""
    actor = f"provider:{uuid.uuid4().hex[:8]}"
    structure = f"{uuid.uuid4().int % 10**9:09d}"
    now = platform.now()
    with platform.engine.begin() as conn:
        for n in range(people):
            audit.append(
                conn,
                at=now - timedelta(hours=1) + timedelta(seconds=n),
                actor=actor,
                structure=structure,
                action="eligibility.check",
                decision="hit",
                subject=f"person-{uuid.uuid4().hex[:12]}",
                detail={"proof": False},
            )
    return LookupContext(actor, ActorKind.SOFTWARE, structure, "pharmacy", False, now)


def test_given_a_rebuild_longer_than_its_lock_then_no_other_process_rebuilds_meanwhile(
    platform: Platform, empty_store: Callable[[], CounterStore]
) -> None:
    """Given a rebuild that reads for 4 s under a 2 s lock, when another process needs
    the counters 3 s into it, then it waits and fails closed (503) without reading the
    log; the first writes the counters and deletes its own lock."""
    ctx = _answered_without_proof(platform, 3)
    store = empty_store()
    slow = SlowHistory(platform, seconds=4)
    first = Restorer(store, slow, POLICY, platform.now, lock_seconds=2)
    failures: list[BaseException] = []

    def rebuild() -> None:
        try:
            first.ensure()
        except BaseException as exc:  # noqa: BLE001 - reported by the test's thread
            failures.append(exc)

    thread = threading.Thread(target=rebuild)
    thread.start()
    try:
        assert slow.reading.wait(10)
        time.sleep(3)  # the lock would have lapsed a second ago without its renewals
        other = SlowHistory(platform, seconds=0)
        second = Restorer(store, other, POLICY, platform.now, wait_seconds=0.3, lock_seconds=2)
        with pytest.raises(CounterStoreUnavailable):
            second.ensure()
        assert other.reads == 0
    finally:
        thread.join(30)
    assert failures == []
    assert first.last is not None
    assert store.has_flag(EPOCH_KEY)
    assert not store.has_flag(LOCK_KEY)
    guard = Guard(store, POLICY)
    assert guard.unbilled(ctx) == (3, 0, 0)
    second.ensure()  # the counters are whole: nothing to wait for
    assert other.reads == 0


def test_given_its_lock_taken_over_then_a_rebuild_neither_writes_nor_deletes_the_new_lock(
    platform: Platform, empty_store: Callable[[], CounterStore]
) -> None:
    """Given a rebuild whose lock lapsed and was taken by another process while it read,
    then it writes nothing (that process does) and fails closed, and its release leaves
    the other process's lock in place."""
    _answered_without_proof(platform, 2)
    store = empty_store()

    def taken_over() -> None:
        store.delete(LOCK_KEY)
        assert store.take_lock(LOCK_KEY, "another process", 60)

    restorer = Restorer(store, SlowHistory(platform, 0, taken_over), POLICY, platform.now)
    with pytest.raises(CounterStoreUnavailable):
        restorer.ensure()
    assert restorer.last is None
    assert not store.has_flag(EPOCH_KEY)
    assert not store.renew_lock(LOCK_KEY, "this process", 60)
    assert store.drop_lock(LOCK_KEY, "another process")
    assert not store.has_flag(LOCK_KEY)


def test_given_an_empty_store_then_the_people_awaiting_an_invoice_are_rebuilt_first(
    platform: Platform, empty_store: Callable[[], CounterStore]
) -> None:
    """Given three people answered without card proof an hour ago, when the store is
    empty, then the figure of people awaiting an invoice is 3, rebuilt from the audit
    log (not 0); and while another process holds the rebuild, 503, not 0."""
    ctx = _answered_without_proof(platform, 3)
    store = empty_store()
    restorer = Restorer(store, AuditLookupHistory(platform.engine), POLICY, platform.now)
    guard = Guard(RestoringCounterStore(store, restorer), POLICY)
    assert guard.unbilled(ctx) == (3, 0, 0)
    assert restorer.last is not None
    assert store.has_flag(EPOCH_KEY)

    store = empty_store()
    assert store.take_lock(LOCK_KEY, "another process", 60)
    waiting = Restorer(
        store, AuditLookupHistory(platform.engine), POLICY, platform.now, wait_seconds=0.2
    )
    guard = Guard(RestoringCounterStore(store, waiting), POLICY)
    with pytest.raises(GuardUnavailable):
        guard.unbilled(ctx)
    assert waiting.last is None
