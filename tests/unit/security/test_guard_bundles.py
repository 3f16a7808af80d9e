"""The bundled counter operations do what the simple ones do, one after the other.

:meth:`CounterStore.admission`, :meth:`~CounterStore.observation`,
:meth:`~CounterStore.step_up` and :meth:`~CounterStore.claim` stand for sequences of the
simple operations (one round trip to Redis instead of many). Here the same random
sequence runs on two stores of one kind: one through the bundles, one through the simple
operations as the docstrings spell them out; every answer and the whole state after each
step must agree. On Redis the two stores share database 15 under two key prefixes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import Any, cast

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from redis.backoff import NoBackoff
from redis.retry import Retry

from tests.support.services import reachable_redis
from tierspayant.security.guard import (
    AdmissionCounts,
    AdmissionPlan,
    CounterStore,
    CounterStoreUnavailable,
    MemoryCounterStore,
    ObservationCounts,
    ObservationPlan,
    RedisCounterStore,
)

REDIS_URL = "redis://127.0.0.1:6379/15"
BUNDLED, STEPWISE = "tp:guard:", "tp:guard-steps:"

# Key pools, one per kind of value (the guard never mixes kinds under one key).
FLAGS = ["susp:a", "susp:b", "once:x", "once:y", "invchk:s", "epoch"]
WINDOWS = ["rate:g", "rate:p:a", "rate:s:s"]
HOLDS = ["nphold:s", "nphold:t"]
LISTS = ["speed:a", "out:a", "out:b"]
SETS = ["seen:s", "np:s", "seen:old", "inv:old"]
HASHES = ["active:d1", "active:d2"]
COUNTERS = ["stepup:a", "stepup:b"]
SUBJECTS = ["s1", "s2", "s3", "s4", "s5"]
TOKENS = ["t1", "t2", "t3"]


# --------------------------------------------------------------------------- the specification


def admission_by_steps(store: CounterStore, plan: AdmissionPlan) -> AdmissionCounts:
    if plan.epoch_key is not None and not store.has_flag(plan.epoch_key):
        return AdmissionCounts(empty=True)
    if store.has_flag(plan.flag_key):
        return AdmissionCounts(suspended=True)
    full = store.hit_windows(
        plan.window_keys, plan.window_limits, plan.now_ms, plan.window_ms, plan.member
    )
    if full >= 0:
        return AdmissionCounts(full=full)
    pace: list[str] = []
    if plan.pace:
        pace = store.push_recent(
            plan.pace_key, plan.pace_value, plan.pace_keep, plan.pace_ttl_seconds
        )
    seen = store.count_distinct(plan.seen_key)
    outcomes: list[str] = []
    answered = 0
    if plan.no_proof:
        outcomes = store.recent(plan.outcomes_key)
        answered = store.count_distinct(plan.answered_key)
    return AdmissionCounts(False, -1, tuple(pace), seen, tuple(outcomes), answered)


def observation_by_steps(store: CounterStore, plan: ObservationPlan) -> ObservationCounts:
    if plan.epoch_key is not None and not store.has_flag(plan.epoch_key):
        return ObservationCounts(empty=True)
    ttl = plan.day_ttl_seconds
    store.hash_set(plan.active_key, plan.structure, plan.category, ttl)
    outcomes: list[str] = []
    if plan.no_proof:
        outcomes = store.push_recent(
            plan.outcomes_key, plan.outcome, plan.outcomes_keep, plan.outcomes_ttl_seconds
        )
    seen = answered = 0
    if plan.subject is not None:
        seen = store.add_distinct(plan.seen_key, plan.subject, ttl)
        if plan.no_proof:
            answered = store.add_distinct(plan.answered_key, plan.subject, ttl)
    if plan.no_proof:
        store.release(plan.holds_key, plan.token)
    checked = store.set_once(plan.check_key, plan.check_ttl_seconds)
    looked = invoiced = 0
    if checked:
        looked = store.count_distinct(plan.judged_seen_key)
        if looked >= plan.min_looked:
            invoiced = store.count_common(plan.judged_seen_key, plan.judged_invoiced_key)
    once_set = tuple(store.has_flag(k) for k in plan.once_keys)
    return ObservationCounts(tuple(outcomes), seen, answered, checked, looked, invoiced, once_set)


def step_up_by_steps(
    store: CounterStore, counter: str, ttl: int, limit: int, flag: str, once: str, once_ttl: int
) -> tuple[int, bool]:
    count = store.incr(counter, ttl)
    if count >= limit:
        store.set_flag(flag, None)
        return count, False
    return count, store.set_once(once, once_ttl)


def claim_by_steps(store: CounterStore, keys: list[str], ttl: int, flag: str | None) -> list[bool]:
    first = [store.set_once(k, ttl) for k in keys]
    if flag is not None:
        store.set_flag(flag, None)
    return first


# --------------------------------------------------------------------------- operations


@dataclass(frozen=True)
class Op:
    """One step: ``bundled`` runs it on the first store, ``stepwise`` on the second."""

    name: str
    bundled: Callable[[CounterStore], object]
    stepwise: Callable[[CounterStore], object]


def _keys(pool: list[str], max_size: int) -> st.SearchStrategy[list[str]]:
    return st.lists(st.sampled_from(pool), min_size=1, max_size=max_size, unique=True)


ttls = st.integers(min_value=30, max_value=600)
small = st.integers(min_value=1, max_value=4)


@st.composite
def admissions(draw: st.DrawFn, now_ms: int) -> Op:
    windows = draw(_keys(WINDOWS, 3))
    plan = AdmissionPlan(
        flag_key=draw(st.sampled_from(FLAGS)),
        window_keys=tuple(windows),
        window_limits=tuple(draw(st.integers(min_value=1, max_value=8)) for _ in windows),
        now_ms=now_ms,
        window_ms=draw(st.sampled_from([1_000, 60_000])),
        member=f"m{now_ms}",
        pace=draw(st.booleans()),
        pace_key=draw(st.sampled_from(LISTS)),
        pace_value=str(now_ms),
        pace_keep=draw(small),
        pace_ttl_seconds=draw(ttls),
        seen_key=draw(st.sampled_from(SETS)),
        no_proof=draw(st.booleans()),
        outcomes_key=draw(st.sampled_from(LISTS)),
        answered_key=draw(st.sampled_from(SETS)),
        # The epoch (a flag the setups set and delete): without it, nothing is done.
        epoch_key=draw(st.none() | st.just("epoch")),
    )
    return Op("admission", lambda s: s.admission(plan), lambda s: admission_by_steps(s, plan))


@st.composite
def observations(draw: st.DrawFn) -> Op:
    plan = ObservationPlan(
        active_key=draw(st.sampled_from(HASHES)),
        structure=draw(st.sampled_from(["S1", "S2"])),
        category=draw(st.sampled_from(["pharmacy", "gp"])),
        day_ttl_seconds=draw(ttls),
        no_proof=draw(st.booleans()),
        outcomes_key=draw(st.sampled_from(LISTS)),
        outcome=draw(st.sampled_from(["h", "m"])),
        outcomes_keep=draw(small),
        outcomes_ttl_seconds=draw(ttls),
        subject=draw(st.none() | st.sampled_from(SUBJECTS)),
        seen_key=draw(st.sampled_from(SETS)),
        answered_key=draw(st.sampled_from(SETS)),
        holds_key=draw(st.sampled_from(HOLDS)),
        token=draw(st.sampled_from(TOKENS)),
        check_key=draw(st.sampled_from(FLAGS)),
        check_ttl_seconds=draw(ttls),
        judged_seen_key=draw(st.sampled_from(SETS)),
        judged_invoiced_key=draw(st.sampled_from(SETS)),
        min_looked=draw(st.integers(min_value=0, max_value=3)),
        once_keys=tuple(draw(st.lists(st.sampled_from(FLAGS), max_size=4, unique=True))),
        epoch_key=draw(st.none() | st.just("epoch")),
    )
    return Op("observation", lambda s: s.observation(plan), lambda s: observation_by_steps(s, plan))


@st.composite
def step_ups(draw: st.DrawFn) -> Op:
    args = (
        draw(st.sampled_from(COUNTERS)),
        draw(ttls),
        draw(small),
        draw(st.sampled_from(FLAGS)),
        draw(st.sampled_from(FLAGS)),
        draw(ttls),
    )
    return Op("step_up", lambda s: s.step_up(*args), lambda s: step_up_by_steps(s, *args))


@st.composite
def claims(draw: st.DrawFn) -> Op:
    keys = draw(st.lists(st.sampled_from(FLAGS), max_size=3, unique=True))
    ttl = draw(ttls)
    flag = draw(st.none() | st.sampled_from(FLAGS))
    return Op(
        "claim", lambda s: s.claim(keys, ttl, flag), lambda s: claim_by_steps(s, keys, ttl, flag)
    )


@st.composite
def setups(draw: st.DrawFn, now_ms: int) -> Op:
    """Simple operations run alike on both stores, to reach varied states."""
    kind = draw(st.sampled_from(["reserve", "add", "flag", "delete"]))
    if kind == "reserve":
        args = (
            draw(st.sampled_from(SETS)),
            draw(st.sampled_from(HOLDS)),
            draw(st.sampled_from(TOKENS)),
            draw(small),
            now_ms,
            draw(st.sampled_from([500, 30_000])),
            draw(ttls),
        )
        return Op(kind, lambda s: s.reserve(*args), lambda s: s.reserve(*args))
    if kind == "add":
        key, member = draw(st.sampled_from(SETS)), draw(st.sampled_from(SUBJECTS))
        return Op(
            kind,
            lambda s: s.add_distinct(key, member, 60),
            lambda s: s.add_distinct(key, member, 60),
        )
    if kind == "flag":
        key = draw(st.sampled_from(FLAGS))
        return Op(kind, lambda s: s.set_flag(key, None), lambda s: s.set_flag(key, None))
    doomed = draw(_keys(FLAGS + LISTS + COUNTERS, 3))
    return Op(kind, lambda s: s.delete(*doomed), lambda s: s.delete(*doomed))


@st.composite
def scenarios(draw: st.DrawFn) -> list[tuple[int, Op]]:
    """Steps with their clock (milliseconds): gaps let windows slide and holds lapse."""
    steps: list[tuple[int, Op]] = []
    now_ms = 1_000_000
    for _ in range(draw(st.integers(min_value=5, max_value=40))):
        # 1 000 and 60 000 land events exactly on the edge of a window.
        now_ms += draw(st.sampled_from([0, 10, 400, 1_000, 2_000, 60_000]))
        op = draw(
            st.one_of(admissions(now_ms), observations(), step_ups(), claims(), setups(now_ms))
        )
        steps.append((now_ms, op))
    return steps


# --------------------------------------------------------------------------- the two stores


def _redis_client() -> redis.Redis:
    client = redis.Redis.from_url(REDIS_URL, socket_timeout=2, socket_connect_timeout=2)
    return reachable_redis(client, REDIS_URL)


class Pair:
    """Two stores of one kind, fresh and empty, and a way to compare their whole state."""

    def __init__(self, kind: str, client: redis.Redis | None) -> None:
        self.kind = kind
        self.client = client
        self.now = [0.0]

    def fresh(self) -> tuple[CounterStore, CounterStore]:
        if self.client is None:
            self.now[0] = 0.0

            def clock() -> float:  # shared by both stores
                return self.now[0]

            return MemoryCounterStore(clock), MemoryCounterStore(clock)
        self.client.flushdb()
        return RedisCounterStore(self.client, BUNDLED), RedisCounterStore(self.client, STEPWISE)

    def state(self, store: CounterStore) -> dict[str, Any]:
        if isinstance(store, MemoryCounterStore):
            # The private tables: nothing in the protocol lists keys or reads sorted sets.
            m = cast(Any, store)
            return {
                "zsets": {k: dict(v) for k, v in m._zsets.items() if v},
                "lists": {k: list(v) for k, v in m._lists.items() if v},
                "sets": {k: set(v) for k, v in m._sets.items() if v},
                "hashes": {k: dict(v) for k, v in m._hashes.items() if v},
                "ints": dict(m._ints),
                "flags": set(m._flags),
                "deadlines": dict(m._deadlines),
            }
        assert self.client is not None
        prefix = BUNDLED if cast(Any, store)._prefix == BUNDLED else STEPWISE
        state: dict[str, Any] = {}
        for raw in cast(list[bytes], self.client.keys(prefix + "*")):
            key = raw.decode()
            kind = cast(bytes, self.client.type(key)).decode()
            value: object
            if kind == "string":
                value = self.client.get(key)
            elif kind == "list":
                value = self.client.lrange(key, 0, -1)
            elif kind == "set":
                value = sorted(cast(set[bytes], self.client.smembers(key)))
            elif kind == "zset":
                value = self.client.zrange(key, 0, -1, withscores=True)
            else:
                value = sorted(cast(dict[bytes, bytes], self.client.hgetall(key)).items())
            state[key.removeprefix(prefix)] = (kind, value, cast(int, self.client.ttl(key)))
        return state

    def assert_same(self, bundled: CounterStore, stepwise: CounterStore, where: object) -> None:
        a, b = self.state(bundled), self.state(stepwise)
        if self.client is None:
            assert a == b, where
            return
        # Written a few milliseconds apart, a Redis TTL (whole seconds) may read one less.
        assert {k: v[:2] for k, v in a.items()} == {k: v[:2] for k, v in b.items()}, where
        for key, (_, _, ttl) in a.items():
            other = b[key][2]
            assert ttl == other if min(ttl, other) < 0 else abs(ttl - other) <= 1, (where, key)

    def tick(self, now_ms: int) -> None:
        self.now[0] = now_ms / 1000


@pytest.fixture(scope="module", params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
def pair(request: pytest.FixtureRequest) -> Iterator[Pair]:
    if request.param == "memory":
        yield Pair("memory", None)
        return
    client = _redis_client()
    try:
        yield Pair("redis", client)
    finally:
        client.flushdb()
        client.close()


@settings(
    max_examples=80,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(steps=scenarios())
def test_bundles_leave_the_state_and_answers_of_the_simple_operations(
    pair: Pair, steps: list[tuple[int, Op]]
) -> None:
    bundled, stepwise = pair.fresh()
    for i, (now_ms, op) in enumerate(steps):
        pair.tick(now_ms)
        got, expected = op.bundled(bundled), op.stepwise(stepwise)
        assert got == expected, (i, op.name)
        pair.assert_same(bundled, stepwise, (i, op.name))


BASE_ADMISSION = AdmissionPlan(
    flag_key="susp:a",
    window_keys=("rate:g",),
    window_limits=(1,),
    now_ms=1000,
    window_ms=60_000,
    member="m1",
    pace=True,
    pace_key="speed:a",
    pace_value="1000",
    pace_keep=3,
    pace_ttl_seconds=60,
    seen_key="seen:s",
    no_proof=True,
    outcomes_key="out:a",
    answered_key="np:s",
)
BASE_OBSERVATION = ObservationPlan(
    active_key="active:d1",
    structure="S1",
    category="gp",
    day_ttl_seconds=60,
    no_proof=True,
    outcomes_key="out:a",
    outcome="h",
    outcomes_keep=5,
    outcomes_ttl_seconds=60,
    subject="s3",
    seen_key="seen:old",
    answered_key="np:s",
    holds_key="nphold:s",
    token="t1",
    check_key="invchk:s",
    check_ttl_seconds=60,
    judged_seen_key="seen:old",
    judged_invoiced_key="inv:old",
    min_looked=2,
    once_keys=("once:x", "susp:a"),
)


def test_each_branch_of_the_bundles_on_a_known_state(pair: Pair) -> None:
    """Known answers, so that the comparison above cannot pass on two equal wrongs."""
    store, _ = pair.fresh()
    # The pace list keeps pace_keep (3) stamps; an event leaves its window at its edge.
    for i in range(4):
        at = 1000 + 60_000 * i
        paced = replace(BASE_ADMISSION, now_ms=at, pace_value=str(at), no_proof=False)
        assert store.admission(paced).full == -1
    pace = store.admission(replace(BASE_ADMISSION, now_ms=241_000, pace_value="x")).pace
    assert pace == ("x", "181000", "121000")
    store.delete("rate:g", "speed:a")
    store.add_distinct("seen:s", "s1", 60)
    store.add_distinct("np:s", "s2", 60)
    store.push_recent("out:a", "m", 5, 60)
    assert store.admission(BASE_ADMISSION) == AdmissionCounts(False, -1, ("1000",), 1, ("m",), 1)
    assert store.admission(BASE_ADMISSION) == AdmissionCounts(full=0)  # rate:g holds 1 of 1
    store.set_flag("susp:a", None)
    assert store.admission(BASE_ADMISSION) == AdmissionCounts(suspended=True)
    assert store.step_up("stepup:a", 60, 2, "susp:b", "once:x", 60) == (1, True)
    assert store.step_up("stepup:a", 60, 2, "susp:b", "once:y", 60) == (2, False)
    assert store.has_flag("susp:b")
    assert not store.has_flag("once:y")
    assert store.claim(["once:x", "once:y"], 60, None) == [False, True]
    assert store.claim([], 60, None) == []
    store.add_distinct("inv:old", "s1", 60)
    observed = store.observation(BASE_OBSERVATION)
    # "h" pushed before "m"; s3 is the first of seen:old and the second of np:s; the
    # day's check runs, but 1 looked-up beneficiary is under min_looked (2).
    assert observed == ObservationCounts(("h", "m"), 1, 2, True, 1, 0, (True, True))
    store.add_distinct("seen:old", "s1", 60)
    store.delete("invchk:s")
    again = store.observation(replace(BASE_OBSERVATION, no_proof=False, subject=None, once_keys=()))
    assert (again.outcomes, again.seen, again.checked, again.looked, again.invoiced) == (
        (),
        0,
        True,
        2,
        1,
    )
    assert not store.observation(BASE_OBSERVATION).checked  # once a day
    assert store.hash_all("active:d1") == {"S1": "gp"}


def test_given_redis_down_then_every_bundle_fails_closed() -> None:
    client = redis.Redis(
        host="127.0.0.1",
        port=9,
        socket_connect_timeout=0.2,
        socket_timeout=0.2,
        retry=Retry(NoBackoff(), 0),
    )
    store = RedisCounterStore(client)
    try:
        with pytest.raises(CounterStoreUnavailable):
            store.admission(BASE_ADMISSION)
        with pytest.raises(CounterStoreUnavailable):
            store.observation(BASE_OBSERVATION)
        with pytest.raises(CounterStoreUnavailable):
            store.step_up("stepup:a", 60, 2, "susp:a", "once:x", 60)
        with pytest.raises(CounterStoreUnavailable):
            store.claim(["once:x"], 60, "susp:a")
    finally:
        client.close()


def test_an_admission_plan_needs_one_limit_per_window() -> None:
    with pytest.raises(ValueError, match="one limit per window"):
        replace(BASE_ADMISSION, window_keys=("a", "b"))
