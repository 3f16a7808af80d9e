"""The guard decides the same on the in-process store and on Redis.

Each store runs every lookup's counter work as one bundled operation per phase (one Lua
script on Redis, one locked call in process), written twice. Here one random sequence of
rights checks, invoices and step-ups by two principals of one structure (with and
without card proof, hits, misses, repeated people and care dates, lookups abandoned,
time moving by seconds or by days) runs through a :class:`Guard` on each store, with
thresholds low enough to be crossed: every admission (verdict, code, retry delay,
signals) and every observation's signals must agree, and so must the slots held at the
end. The test run's own Redis database (``redis_db``), flushed; skipped without Redis unless
``TIERSPAYANT_REQUIRE_SERVICES=1``. Nothing expires during a run on either store (the
in-process clock stands still, Redis's keys outlive the test): decisions read the times
stored in the counters, not their expiry.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.services import RedisDatabase
from tierspayant.security.guard import (
    ActorKind,
    Admission,
    Guard,
    GuardPolicy,
    LookupContext,
    LookupOutcome,
    MemoryCounterStore,
    RedisCounterStore,
    Signal,
)

pytestmark = pytest.mark.redis

STRUCTURE = "750000001"
T0 = datetime(2025, 3, 10, 22, 30, tzinfo=UTC)  # an hour and a half before Paris midnight
POLICY = GuardPolicy(
    daily_caps={"pharmacy": 12},
    soft_percent=75,
    no_proof_watch=2,
    no_proof_soft=3,
    no_proof_hard=5,
    miss_min_lookups=4,
    miss_window=8,
    unbilled_pending=7,
    unbilled_soft=2,
    unbilled_hard=3,
    invoice_grace_days=1,
    unbilled_window_days=3,
    step_up_refusals_hard=4,
    step_up_refusals_window_hard=6,
    miss_soft_percent=40,
    miss_hard_percent=70,
    principal_per_minute=12,
    structure_per_minute=20,
    care_dates_free=1,
    human_speed_lookups=4,
)
SUBJECTS = [f"subj-{i}" for i in range(12)]
CARE_DATES = [None, date(2025, 3, 10), date(2025, 3, 11), date(2025, 3, 12)]


@dataclass(frozen=True)
class Check:
    principal: str
    human: bool
    with_proof: bool
    stepped_up: bool
    subject: str | None  # None: a miss
    care_date: date | None


@dataclass(frozen=True)
class Finish:
    """The oldest lookup in flight gets its outcome (or is abandoned)."""

    abandon: bool


@dataclass(frozen=True)
class Invoice:
    subject: str
    days_back: int


@dataclass(frozen=True)
class StepUp:
    principal: str


Op = Check | Finish | Invoice | StepUp

checks = st.builds(
    Check,
    principal=st.sampled_from(["pharmacist-a", "pharmacist-b"]),
    human=st.booleans(),
    with_proof=st.booleans(),
    stepped_up=st.booleans().filter(lambda b: not b) | st.booleans(),
    subject=st.sampled_from([*SUBJECTS, None, None]),
    care_date=st.sampled_from(CARE_DATES),
)
ops = st.one_of(
    checks,
    checks,
    checks,
    st.builds(Finish, st.booleans().filter(lambda b: not b) | st.booleans()),
    st.builds(Finish, st.just(False)),
    st.builds(Invoice, st.sampled_from(SUBJECTS), st.integers(0, 2)),
    st.builds(StepUp, st.sampled_from(["pharmacist-a", "pharmacist-b"])),
)
# Seconds between operations: bot speed, human speed, or a day or more.
gaps = st.sampled_from([0, 0, 1, 1, 3, 20, 61, 3600, 86_400, 2 * 86_400 + 7])
scenarios = st.lists(st.tuples(gaps, ops), min_size=20, max_size=80)


@pytest.fixture(scope="module")
def client(redis_db: RedisDatabase) -> Iterator[redis.Redis]:
    client = redis_db.client()
    try:
        yield client
    finally:
        client.flushdb()
        client.close()


def _admission(a: Admission) -> tuple[object, ...]:
    return (a.verdict, a.code, a.retry_after, _signals(list(a.signals)))


def _signals(signals: list[Signal]) -> list[tuple[object, ...]]:
    return [(s.level, s.code, sorted(s.figures.items())) for s in signals]


def _run(guard: Guard, steps: list[tuple[int, Op]]) -> list[object]:
    """What the guard answered at each step (lookups stay in flight until finished)."""
    trace: list[object] = []
    in_flight: list[tuple[LookupContext, str | None]] = []
    at = T0

    def finish(abandon: bool) -> None:
        ctx, subject = in_flight.pop(0)
        if abandon:
            guard.abandon(ctx)
            trace.append("abandoned")
            return
        outcome = LookupOutcome.miss() if subject is None else LookupOutcome.hit(subject)
        trace.append(_signals(guard.observe(ctx, outcome)))

    for n, (gap, op) in enumerate(steps):
        at += timedelta(seconds=gap)
        if isinstance(op, Invoice):
            guard.record_invoice(STRUCTURE, op.subject, guard.day_of(at) - timedelta(op.days_back))
            trace.append("invoice")
        elif isinstance(op, StepUp):
            trace.append(guard.record_step_up(op.principal, at))
        elif isinstance(op, Finish):
            if in_flight:
                finish(op.abandon)
        else:
            ctx = LookupContext(
                op.principal,
                ActorKind.HUMAN if op.human else ActorKind.SOFTWARE,
                STRUCTURE,
                "pharmacy",
                op.with_proof,
                at,
                op.stepped_up,
                lookup_id=f"lookup-{n}",
                care_date=op.care_date,
            )
            admission = guard.admit(ctx)
            trace.append(_admission(admission))
            if admission.allowed:
                in_flight.append((ctx, op.subject))
    while in_flight:
        finish(False)
    # What both stores say of the never-invoiced people and of the suspensions.
    last = LookupContext("pharmacist-a", ActorKind.SOFTWARE, STRUCTURE, "pharmacy", False, at)
    trace.append(guard.unbilled(last))
    trace.append([guard.suspended(p) for p in ("pharmacist-a", "pharmacist-b")])
    return trace


@settings(
    max_examples=80,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(steps=scenarios)
def test_the_guard_decides_the_same_on_both_stores(
    client: redis.Redis, steps: list[tuple[int, Op]]
) -> None:
    client.flushdb()
    in_process = _run(Guard(MemoryCounterStore(clock=lambda: 0.0), POLICY), steps)
    on_redis = _run(Guard(RedisCounterStore(client), POLICY), steps)
    assert on_redis == in_process


def test_the_scenarios_reach_the_limits(client: redis.Redis) -> None:
    # The low thresholds above are crossed by a short run: a bot without card proof is
    # asked to step up, then refused, on both stores alike.
    steps: list[tuple[int, Op]] = [
        (1, Check("pharmacist-a", False, False, False, SUBJECTS[i], None)) for i in range(12)
    ]
    client.flushdb()
    trace = _run(Guard(RedisCounterStore(client), POLICY), steps)
    assert trace == _run(Guard(MemoryCounterStore(clock=lambda: 0.0), POLICY), steps)
    codes = {entry[1] for entry in trace if isinstance(entry, tuple) and len(entry) == 4}
    assert "auth.step_up_required" in codes or any(str(c).startswith("guard.") for c in codes)
