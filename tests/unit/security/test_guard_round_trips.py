"""Round trips to Redis of one rights check: each guard phase costs one or two.

A connection class counts what the client sends to Redis (one send per command, pipeline
or script call, each answered before the next: a round trip). The test run's own database
of the local Redis (``redis_db``), flushed; skipped when the server is absent, or fails if
``TIERSPAYANT_REQUIRE_SERVICES=1``. Before the bundled operations a check without card
proof took 6 round trips to admit and 7 to observe; with them, 3 and 2 (3 with a care
date); since each phase is one script, 1 and 1.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
import redis
from redis.connection import Connection

from tests.support.services import REDIS_HOST, REDIS_PORT, RedisDatabase
from tierspayant.security.guard import (
    ActorKind,
    Guard,
    GuardPolicy,
    Level,
    LookupContext,
    LookupOutcome,
    RedisCounterStore,
    Verdict,
)

pytestmark = pytest.mark.redis

STRUCTURE = "750000001"
T0 = datetime(2025, 3, 10, 8, 0, tzinfo=UTC)


class CountingConnection(Connection):
    """A Redis connection that counts its sends (commands, pipelines, script calls)."""

    sends = 0

    def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        CountingConnection.sends += 1
        super().send_packed_command(command, check_health)  # type: ignore[no-untyped-call]


@dataclass
class Trips:
    admit: int
    observe: int


@pytest.fixture
def client(redis_db: RedisDatabase) -> Iterator[redis.Redis]:
    pool = redis.ConnectionPool(
        host=REDIS_HOST,
        port=REDIS_PORT,
        db=redis_db.index,
        socket_timeout=2,
        socket_connect_timeout=2,
        connection_class=CountingConnection,
    )
    client = redis.Redis(connection_pool=pool)
    client.flushdb()
    try:
        yield client
    finally:
        client.flushdb()
        client.close()


def _ctx(
    i: int,
    *,
    principal: str = "client:lgo-1",
    kind: ActorKind = ActorKind.SOFTWARE,
    with_proof: bool = False,
    stepped_up: bool = False,
    care_date: date | None = None,
) -> LookupContext:
    at = T0 + timedelta(minutes=i)
    return LookupContext(
        principal, kind, STRUCTURE, "pharmacy", with_proof, at, stepped_up, care_date=care_date
    )


def _check(guard: Guard, ctx: LookupContext, outcome: LookupOutcome) -> tuple[Trips, list[Any]]:
    before = CountingConnection.sends
    admission = guard.admit(ctx)
    admitted = CountingConnection.sends
    signals = guard.observe(ctx, outcome) if admission.allowed else []
    return Trips(admitted - before, CountingConnection.sends - admitted), [admission, signals]


def _holds(client: redis.Redis) -> int:
    """Slots held by lookups in flight: the daily no-proof holds and the never-invoiced
    ones, of every structure and principal."""
    names = [*client.scan_iter("tp:guard:nphold:*"), *client.scan_iter("tp:guard:ubh:*")]
    held = 0
    for name in names:
        size = client.zcard(name)
        assert isinstance(size, int)
        held += size
    return held


def _warm(guard: Guard) -> None:
    """Load the scripts (the first call of each costs a SCRIPT LOAD) and connect."""
    warm = LookupContext("warm", ActorKind.HUMAN, "warm", "pharmacy", False, T0 - timedelta(days=9))
    guard.admit(warm)
    guard.observe(warm, LookupOutcome.hit("warm"))
    guard.counters.step_up("warm", 60, 99, "warm:flag", "warm:once", 60)
    guard.counters.claim(["warm:claim"], 60, None)


def test_a_check_with_card_proof_costs_one_round_trip_per_phase(client: redis.Redis) -> None:
    guard = Guard(RedisCounterStore(client))
    _warm(guard)
    for i in range(3):
        trips, (admission, signals) = _check(
            guard, _ctx(i, with_proof=True), LookupOutcome.hit(f"s{i}")
        )
        assert admission.allowed
        assert signals == []
        assert trips == Trips(admit=1, observe=1)


def test_a_check_without_proof_costs_one_round_trip_per_phase(client: redis.Redis) -> None:
    # The admission's script also updates the never-invoiced windows and holds their slots
    # and the daily no-proof slot; the observation's counts the care date, adds the person
    # to the never-invoiced windows and frees the holds.
    guard = Guard(RedisCounterStore(client), GuardPolicy(no_proof_watch=5))
    _warm(guard)
    for kind in (ActorKind.SOFTWARE, ActorKind.HUMAN):
        principal = f"p-{kind.value}"
        for i, care_date in enumerate((None, date(2025, 3, 10))):
            trips, (admission, signals) = _check(
                guard,
                _ctx(2 * i, principal=principal, kind=kind, care_date=care_date),
                LookupOutcome.hit(f"s-{kind}-{i}"),
            )
            assert admission.allowed
            assert signals == []
            assert trips == Trips(admit=1, observe=1), kind
            miss, _ = _check(
                guard,
                _ctx(2 * i + 1, principal=principal, kind=kind, care_date=care_date),
                LookupOutcome.miss(),
            )
            assert miss == Trips(admit=1, observe=1), kind


def test_a_signal_costs_one_more_round_trip_the_first_time_only(client: redis.Redis) -> None:
    # The benchmark's case: past ``no_proof_watch`` answers, each observation could raise
    # the (once a day) watch signal.
    guard = Guard(RedisCounterStore(client), GuardPolicy(no_proof_watch=2))
    _warm(guard)
    first, _ = _check(guard, _ctx(0), LookupOutcome.hit("s0"))
    assert first == Trips(admit=1, observe=1)
    watch, (_, signals) = _check(guard, _ctx(1), LookupOutcome.hit("s1"))
    assert [s.code for s in signals] == ["guard.no_proof_watch"]
    assert watch == Trips(admit=1, observe=2)
    for i in range(2, 5):
        later, (_, signals) = _check(guard, _ctx(i), LookupOutcome.hit(f"s{i}"))
        assert signals == []
        assert later == Trips(admit=1, observe=1)


def test_refusals_cost_one_or_two_round_trips(client: redis.Redis) -> None:
    guard = Guard(RedisCounterStore(client), GuardPolicy(no_proof_soft=1, no_proof_hard=3))
    _warm(guard)
    first, _ = _check(guard, _ctx(0), LookupOutcome.hit("s0"))
    assert first == Trips(admit=1, observe=2)  # the soft signal, once
    # Step-up asked: the admission's script (which also read whether a satisfied step-up
    # holds), the slots it held given back (one), the refusal counted per day with its
    # signal deduplicated (one) and over 30 days (one).
    step_up, (admission, _) = _check(guard, _ctx(1), LookupOutcome.hit("s1"))
    assert admission.verdict is Verdict.STEP_UP
    assert step_up == Trips(admit=4, observe=0)
    assert _holds(client) == 0  # a lookup not allowed holds nothing
    # A HARD signal: the suspension is marked with the signal's bookkeeping, in one more.
    for i in range(2, 4):
        trips, (admission, signals) = _check(
            guard, _ctx(i, stepped_up=True), LookupOutcome.hit(f"s{i}")
        )
        assert admission.allowed
    assert [(s.level, s.code) for s in signals] == [(Level.HARD, "guard.no_proof_quota")]
    # Stepped up by the caller: the slots are held, the suspension marked with the signal.
    assert trips == Trips(admit=1, observe=2)
    assert guard.suspended("client:lgo-1")
    suspended, (admission, _) = _check(guard, _ctx(5), LookupOutcome.hit("s5"))
    assert admission.code == "guard.suspended"
    assert suspended == Trips(admit=1, observe=0)
    quota, (admission, _) = _check(guard, _ctx(6, principal="other"), LookupOutcome.hit("s6"))
    assert admission.code == "guard.no_proof_quota"
    assert quota == Trips(admit=1, observe=0)
    assert _holds(client) == 0
