"""The bundled counter operations do what the simple ones do, one after the other.

:meth:`CounterStore.admit_lookup`, :meth:`~CounterStore.observe_lookup`,
:meth:`~CounterStore.release_lookup`, :meth:`~CounterStore.step_up` and
:meth:`~CounterStore.claim` stand for sequences of the simple operations (one round trip
to Redis instead of many). Here the same random sequence runs on two stores of one kind:
one through the bundles, one through the simple operations as the docstrings spell them
out; every answer and the whole state after each step must agree. Two steps of a lookup
have no simple operation of their own (the daily no-proof slot held at admission, the
person added to the never-invoiced people at observation): the second store takes them
by raw commands on Redis, by the store's unlocked helpers in process (what the simple
operations ``reserve`` and ``unbilled_answer``, gone since, ran). On Redis the two stores
share the test run's database under two key prefixes.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import Any, cast

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from redis.backoff import NoBackoff
from redis.retry import Retry

from tests.support.services import RedisDatabase
from tierspayant.security.guard import (
    AdmitReading,
    CounterStore,
    CounterStoreUnavailable,
    LookupKeys,
    MemoryCounterStore,
    ObserveReading,
    RedisCounterStore,
    StoreLimits,
    UnbilledPlan,
)

BUNDLED, STEPWISE = "tp:guard:", "tp:guard-steps:"

# Key pools, one per kind of value (the guard never mixes kinds under one key). Step-ups
# and claims set FLAGS; "susp:c" only by a setup, so that many admissions get past it.
FLAGS = ["susp:a", "susp:b", "once:x", "once:y", "invchk:s", "epoch"]
SUSPENSIONS = ["susp:a", "susp:c", "susp:c"]
WINDOWS = ["rate:g", "rate:p:a", "rate:s:s"]
HOLDS = ["nphold:s", "nphold:t"]
LISTS = ["speed:a", "out:a", "out:b"]
SETS = ["seen:s", "np:s", "seen:old", "inv:old"]
HASHES = ["active:d1", "active:d2"]
STEP_UPS = ["stepok:a", "stepok:b"]
COUNTERS = ["stepup:a", "stepup:b"]
SCOPES = ["p:a", "p:b", "s:s"]  # each with its ubh:, ubp: and ubo: sorted sets
BILLS = ["ubb:s", "ubb:t"]
BYS = ["uby:s", "uby:t"]
DATES = ["cd:s:d1:", "cd:s:d2:"]
SUBJECTS = ["s1", "s2", "s3", "s4", "s5"]
CARE_DATES = ["2025-03-10", "2025-03-11", "2025-03-12"]


def _unbilled(scopes: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(f"{kind}:{scope}" for scope in scopes for kind in ("ubh", "ubp", "ubo"))


# --------------------------------------------------------------------------- the two stores


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

    # The two steps without a simple operation, on the stepwise store.
    def hold_daily(
        self,
        store: CounterStore,
        keys: LookupKeys,
        limits: StoreLimits,
        now_ms: int,
        token: str,
        limit: int,
    ) -> bool:
        """Hold a slot of the daily no-proof quota if its people and live holds are fewer
        than ``limit``."""
        if self.client is None:
            m = cast(Any, store)
            with m._lock:
                m._now = m._clock()
                held: bool = m._reserve(
                    keys.answered, keys.holds, token, limit, now_ms, limits.hold_ms, limits.day_ttl
                )
                return held
        holds, answered = STEPWISE + keys.holds, STEPWISE + keys.answered
        self.client.zremrangebyscore(holds, "-inf", now_ms)
        used = cast(int, self.client.scard(answered)) + cast(int, self.client.zcard(holds))
        if used >= limit:
            return False
        self.client.zadd(holds, {token: now_ms + limits.hold_ms})
        self.client.expire(holds, limits.day_ttl)
        return True

    def answer_unbilled(
        self,
        store: CounterStore,
        keys: LookupKeys,
        token: str,
        subject: str | None,
        now_ms: int,
        ttl: int,
    ) -> None:
        """Release ``token``'s never-invoiced holds; on a hit, add ``subject`` to the
        pending people of every scope where it is neither pending nor overdue, and note in
        ``keys.by`` that the first scope answered it."""
        if self.client is None:
            m = cast(Any, store)
            with m._lock:
                m._now = m._clock()
                m._unbilled_answer(keys.unbilled, keys.scopes, token, subject, keys.by, now_ms, ttl)
            return
        for holds in keys.unbilled[::3]:
            store.release(holds, token)
        if subject is None:
            return
        for pend, over in zip(keys.unbilled[1::3], keys.unbilled[2::3], strict=True):
            pend, over = STEPWISE + pend, STEPWISE + over
            if (
                self.client.zscore(pend, subject) is None
                and self.client.zscore(over, subject) is None
            ):
                self.client.zadd(pend, {subject: now_ms})
            self.client.expire(pend, ttl)
        store.hash_set(keys.by, subject, keys.scopes[0], ttl)

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


# --------------------------------------------------------------------------- the specification


def admit_by_steps(
    pair: Pair,
    store: CounterStore,
    keys: LookupKeys,
    limits: StoreLimits,
    now_ms: int,
    token: str,
    pace: bool,
    no_proof: bool,
    pending_limit: int,
    quota_limit: int,
    epoch_key: str | None,
) -> AdmitReading:
    if epoch_key is not None and not store.has_flag(epoch_key):
        return AdmitReading(empty=True)
    if store.has_flag(keys.flag):
        return AdmitReading(suspended=True)
    full = store.hit_windows(keys.windows, limits.window_limits, now_ms, limits.window_ms, token)
    if full >= 0:
        return AdmitReading(full=full)
    stamps: list[str] = []
    if pace:
        stamps = store.push_recent(keys.pace, str(now_ms), limits.pace_keep, limits.pace_ttl)
    seen = store.count_distinct(keys.seen)
    until = int(store.hash_all(keys.step_up).get("until", 0))
    if not no_proof:
        return AdmitReading(False, False, -1, tuple(stamps), seen, (), 0, until)
    outcomes = store.recent(keys.outcomes)
    answered = store.count_distinct(keys.answered)
    plan = UnbilledPlan(
        scopes=keys.scopes,
        bill_key=keys.bill,
        now_ms=now_ms,
        grace_ms=limits.grace_ms,
        window_ms=limits.unbilled_window_ms,
        slack_ms=limits.slack_ms,
        overdue_limit=limits.overdue_limit,
        pending_limit=pending_limit,
        token=token,
        hold_ms=limits.hold_ms,
        ttl_seconds=limits.unbilled_ttl,
    )
    counts = store.unbilled(plan)
    held, quota_full = counts.reserved, False
    if held and not pair.hold_daily(store, keys, limits, now_ms, token, quota_limit):
        held, quota_full = False, True
        for holds in keys.unbilled[::3]:
            store.release(holds, token)
    return AdmitReading(
        False,
        False,
        -1,
        tuple(stamps),
        seen,
        tuple(outcomes),
        answered,
        until,
        counts.pending,
        counts.overdue,
        held,
        quota_full,
    )


def observe_by_steps(
    pair: Pair,
    store: CounterStore,
    keys: LookupKeys,
    limits: StoreLimits,
    now_ms: int,
    token: str,
    no_proof: bool,
    outcome: str,
    subject: str | None,
    care_date: str | None,
    once_keys: tuple[str, ...],
    epoch_key: str | None,
) -> ObserveReading:
    if epoch_key is not None and not store.has_flag(epoch_key):
        return ObserveReading(empty=True)
    if subject is not None and care_date is not None:
        dates = store.add_distinct(keys.dates + subject, care_date, limits.dates_ttl)
        if dates > limits.dates_free:
            subject = f"{subject}@{care_date}"
    ttl = limits.day_ttl
    store.hash_set(keys.active, keys.structure, keys.category, ttl)
    outcomes: list[str] = []
    if no_proof:
        outcomes = store.push_recent(
            keys.outcomes, outcome, limits.outcomes_keep, limits.outcomes_ttl
        )
    seen = answered = 0
    if subject is not None:
        seen = store.add_distinct(keys.seen, subject, ttl)
        if no_proof:
            answered = store.add_distinct(keys.answered, subject, ttl)
    if no_proof:
        store.release(keys.holds, token)
    checked = store.set_once(keys.check, limits.check_ttl)
    looked = invoiced = 0
    if checked:
        looked = store.count_distinct(keys.judged_seen)
        if looked >= limits.min_looked:
            invoiced = store.count_common(keys.judged_seen, keys.judged_invoiced)
    once_set = tuple(store.has_flag(k) for k in once_keys)
    if no_proof:
        pair.answer_unbilled(store, keys, token, subject, now_ms, limits.unbilled_ttl)
    return ObserveReading(tuple(outcomes), seen, answered, checked, looked, invoiced, once_set)


def release_by_steps(store: CounterStore, keys: LookupKeys, token: str) -> None:
    store.release(keys.holds, token)
    for holds in keys.unbilled[::3]:
        store.release(holds, token)


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
    stepwise: Callable[[Pair, CounterStore], object]


def _keys(pool: list[str], max_size: int) -> st.SearchStrategy[list[str]]:
    return st.lists(st.sampled_from(pool), min_size=1, max_size=max_size, unique=True)


ttls = st.integers(min_value=30, max_value=600)
small = st.integers(min_value=1, max_value=4)
# Times in ms of the never-invoiced windows and holds, against the scenarios' steps.
spans = st.sampled_from([400, 1_000, 2_000, 60_000])


@st.composite
def store_limits(draw: st.DrawFn) -> StoreLimits:
    """One guard's limits: built once per guard, so once per scenario."""
    grace_ms = draw(spans)
    return StoreLimits(
        window_limits=tuple(draw(st.lists(st.integers(1, 8), min_size=1, max_size=3))),
        window_ms=draw(st.sampled_from([1_000, 60_000])),
        pace_keep=draw(small),
        pace_ttl=draw(ttls),
        grace_ms=grace_ms,
        unbilled_window_ms=grace_ms + draw(spans),
        slack_ms=draw(st.sampled_from([0, 400])),
        overdue_limit=draw(small),
        hold_ms=draw(st.sampled_from([500, 30_000])),
        unbilled_ttl=draw(ttls),
        day_ttl=draw(ttls),
        outcomes_keep=draw(small),
        outcomes_ttl=draw(ttls),
        dates_free=draw(st.integers(0, 2)),
        dates_ttl=draw(ttls),
        check_ttl=draw(ttls),
        min_looked=draw(st.integers(0, 3)),
    )


@st.composite
def lookup_keys(draw: st.DrawFn, windows: int) -> LookupKeys:
    scopes = tuple(draw(st.permutations(SCOPES))[:2])
    return LookupKeys(
        flag=draw(st.sampled_from(SUSPENSIONS)),
        windows=tuple(draw(st.permutations(WINDOWS))[:windows]),
        pace=draw(st.sampled_from(LISTS)),
        seen=draw(st.sampled_from(SETS)),
        outcomes=draw(st.sampled_from(LISTS)),
        answered=draw(st.sampled_from(SETS)),
        holds=draw(st.sampled_from(HOLDS)),
        step_up=draw(st.sampled_from(STEP_UPS)),
        bill=draw(st.sampled_from(BILLS)),
        scopes=scopes,
        unbilled=_unbilled(scopes),
        by=draw(st.sampled_from(BYS)),
        active=draw(st.sampled_from(HASHES)),
        check=draw(st.sampled_from(FLAGS)),
        judged_seen=draw(st.sampled_from(SETS)),
        judged_invoiced=draw(st.sampled_from(SETS)),
        dates=draw(st.sampled_from(DATES)),
        structure=draw(st.sampled_from(["S1", "S2"])),
        category=draw(st.sampled_from(["pharmacy", "gp"])),
        once=(),
    )


# The epoch (a flag the setups set and delete): without it, nothing is done. Asked for by
# one lookup in three.
epochs = st.sampled_from([None, None, "epoch"])


@st.composite
def admissions(
    draw: st.DrawFn, pool: list[LookupKeys], limits: StoreLimits, now_ms: int, token: str
) -> Op:
    keys = draw(st.sampled_from(pool))
    args = (
        keys,
        limits,
        now_ms,
        token,
        draw(st.booleans()),
        draw(st.booleans()),
        draw(small),
        draw(small),
        draw(epochs),
    )
    return Op(
        "admit_lookup",
        lambda s: s.admit_lookup(*args),
        lambda pair, s: admit_by_steps(pair, s, *args),
    )


@st.composite
def observations(
    draw: st.DrawFn, pool: list[LookupKeys], limits: StoreLimits, now_ms: int, token: str
) -> Op:
    keys = draw(st.sampled_from(pool))
    args = (
        keys,
        limits,
        now_ms,
        token,
        draw(st.booleans()),
        draw(st.sampled_from(["h", "m"])),
        draw(st.none() | st.sampled_from(SUBJECTS)),
        draw(st.none() | st.sampled_from(CARE_DATES)),
        tuple(draw(st.lists(st.sampled_from(FLAGS), max_size=4, unique=True))),
        draw(epochs),
    )
    return Op(
        "observe_lookup",
        lambda s: s.observe_lookup(*args),
        lambda pair, s: observe_by_steps(pair, s, *args),
    )


@st.composite
def releases(draw: st.DrawFn, pool: list[LookupKeys], token: str) -> Op:
    keys = draw(st.sampled_from(pool))
    return Op(
        "release_lookup",
        lambda s: s.release_lookup(keys, token),
        lambda pair, s: release_by_steps(s, keys, token),
    )


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
    return Op("step_up", lambda s: s.step_up(*args), lambda pair, s: step_up_by_steps(s, *args))


@st.composite
def claims(draw: st.DrawFn) -> Op:
    keys = draw(st.lists(st.sampled_from(FLAGS), max_size=3, unique=True))
    ttl = draw(ttls)
    flag = draw(st.none() | st.sampled_from(FLAGS))
    return Op(
        "claim",
        lambda s: s.claim(keys, ttl, flag),
        lambda pair, s: claim_by_steps(s, keys, ttl, flag),
    )


def _alike(name: str, run: Callable[[CounterStore], object]) -> Op:
    return Op(name, run, lambda pair, s: run(s))


@st.composite
def setups(draw: st.DrawFn, limits: StoreLimits, now_ms: int) -> Op:
    """Simple operations run alike on both stores, to reach varied states."""
    kind = draw(st.sampled_from(["add", "flag", "delete", "step_up_until", "invoice", "sweep"]))
    if kind == "add":
        key, member = draw(st.sampled_from(SETS)), draw(st.sampled_from(SUBJECTS))
        return _alike(kind, lambda s: s.add_distinct(key, member, 60))
    if kind == "flag":
        key = draw(st.sampled_from([*FLAGS, "susp:c"]))
        return _alike(kind, lambda s: s.set_flag(key, None))
    if kind == "step_up_until":  # a satisfied step-up, as the guard records it
        key, until = draw(st.sampled_from(STEP_UPS)), str(now_ms + draw(spans))
        return _alike(kind, lambda s: s.hash_set(key, "until", until, 60))
    if kind == "invoice":
        args = (
            draw(st.sampled_from(SCOPES)),
            draw(st.sampled_from(BILLS)),
            draw(st.sampled_from(BYS)),
            draw(st.sampled_from(SUBJECTS)),
            now_ms + draw(st.sampled_from([-2_000, -400, 0, 400])),
            draw(st.sampled_from([0, 400])),
            draw(ttls),
        )
        return _alike(kind, lambda s: s.unbilled_invoice(*args))
    if kind == "sweep":  # the figures' reading of the never-invoiced people
        plan = UnbilledPlan(
            scopes=tuple(draw(_keys(SCOPES, 2))),
            bill_key=draw(st.sampled_from(BILLS)),
            now_ms=now_ms,
            grace_ms=limits.grace_ms,
            window_ms=limits.unbilled_window_ms,
            slack_ms=limits.slack_ms,
            overdue_limit=limits.overdue_limit,
            pending_limit=draw(small),
            token="",
            hold_ms=limits.hold_ms,
            ttl_seconds=limits.unbilled_ttl,
            reserve=False,
        )
        return _alike(kind, lambda s: s.unbilled(plan))
    doomed = draw(_keys([*FLAGS, "susp:c", *LISTS, *COUNTERS, *STEP_UPS], 3))
    return _alike(kind, lambda s: s.delete(*doomed))


@st.composite
def scenarios(draw: st.DrawFn) -> list[tuple[int, Op]]:
    """Steps with their clock (milliseconds): gaps let windows slide and holds lapse.

    The lookups use one to three sets of keys (a guard's principals and structures, whose
    keys may share some names). Each admission holds with a token of its own
    (``t<step>``, as each lookup has its id); an observation or a release names one of the
    last few steps'.
    """
    limits = draw(store_limits())
    pool = draw(st.lists(lookup_keys(len(limits.window_limits)), min_size=1, max_size=3))
    steps: list[tuple[int, Op]] = []
    now_ms = 1_000_000
    for i in range(draw(st.integers(min_value=5, max_value=40))):
        # 1 000 and 60 000 land events exactly on the edge of a window.
        now_ms += draw(st.sampled_from([0, 10, 400, 1_000, 2_000, 60_000]))
        earlier = f"t{draw(st.integers(max(0, i - 4), i))}"
        op = draw(
            st.one_of(
                admissions(pool, limits, now_ms, f"t{i}"),
                admissions(pool, limits, now_ms, f"t{i}"),
                observations(pool, limits, now_ms, earlier),
                observations(pool, limits, now_ms, earlier),
                releases(pool, earlier),
                step_ups(),
                claims(),
                setups(limits, now_ms),
            )
        )
        steps.append((now_ms, op))
    return steps


@pytest.fixture(scope="module", params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
def pair(request: pytest.FixtureRequest) -> Iterator[Pair]:
    if request.param == "memory":
        yield Pair("memory", None)
        return
    db: RedisDatabase = request.getfixturevalue("redis_db")
    client = db.client()
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
        got, expected = op.bundled(bundled), op.stepwise(pair, stepwise)
        assert got == expected, (i, op.name)
        pair.assert_same(bundled, stepwise, (i, op.name))


# --------------------------------------------------------------------------- known answers

KEYS = LookupKeys(
    flag="susp:a",
    windows=("rate:g",),
    pace="speed:a",
    seen="seen:s",
    outcomes="out:a",
    answered="np:s",
    holds="nphold:s",
    step_up="stepok:a",
    bill="ubb:s",
    scopes=("p:a", "s:s"),
    unbilled=_unbilled(("p:a", "s:s")),
    by="uby:s",
    active="active:d1",
    check="invchk:s",
    judged_seen="seen:old",
    judged_invoiced="inv:old",
    dates="cd:s:d1:",
    structure="S1",
    category="gp",
    once=(),
)
LIMITS = StoreLimits(
    window_limits=(1,),
    window_ms=60_000,
    pace_keep=3,
    pace_ttl=60,
    grace_ms=1_000,
    unbilled_window_ms=120_000,
    slack_ms=0,
    overdue_limit=2,
    hold_ms=500,
    unbilled_ttl=60,
    day_ttl=60,
    outcomes_keep=5,
    outcomes_ttl=60,
    dates_free=1,
    dates_ttl=60,
    check_ttl=60,
    min_looked=2,
)
_tokens = (f"k{n}" for n in itertools.count())


def _admit(
    store: CounterStore,
    now_ms: int,
    *,
    pace: bool = True,
    no_proof: bool = True,
    pending: int = 5,
    quota: int = 5,
    limits: StoreLimits = LIMITS,
    token: str | None = None,
    epoch: str | None = None,
) -> AdmitReading:
    token = token or next(_tokens)
    return store.admit_lookup(KEYS, limits, now_ms, token, pace, no_proof, pending, quota, epoch)


def test_each_branch_of_the_admission_on_a_known_state(pair: Pair) -> None:
    """Known answers, so that the comparison above cannot pass on two equal wrongs."""
    store, _ = pair.fresh()
    assert _admit(store, 1000, epoch="epoch") == AdmitReading(empty=True)
    store.set_flag("epoch", None)
    # The pace list keeps pace_keep (3) stamps; an event leaves its window at its edge.
    for i in range(4):
        at = 1000 + 60_000 * i
        assert _admit(store, at, no_proof=False, epoch="epoch").full == -1
    assert _admit(store, 241_000, no_proof=False).pace == ("241000", "181000", "121000")
    store.delete("rate:g", "speed:a")
    store.add_distinct("seen:s", "s1", 60)
    store.add_distinct("np:s", "s2", 60)
    store.push_recent("out:a", "m", 5, 60)
    store.hash_set("stepok:a", "until", "9000", 60)
    # Without card proof both holds are taken: the first one finds nothing held.
    first = _admit(store, 1000, token="t1")
    assert first == AdmitReading(
        False, False, -1, ("1000",), 1, ("m",), 1, 9000, (0, 0), (0, 0), True, False
    )
    assert _admit(store, 1000) == AdmitReading(full=0)  # rate:g holds 1 of 1
    wide = LIMITS._replace(window_limits=(100,))
    # t1's slot counts as awaiting an invoice: a pending limit of 1 takes nothing.
    refused = _admit(store, 1100, pending=1, limits=wide, token="t2")
    assert (refused.pending, refused.held, refused.quota_full) == ((1, 1), False, False)
    # The daily quota (2) counts s2 answered and t1 held: the never-invoiced slots are
    # given back, so the next lookup still finds t1's alone.
    full = _admit(store, 1200, quota=2, limits=wide, token="t3")
    assert (full.pending, full.held, full.quota_full) == ((1, 1), False, True)
    store.release_lookup(KEYS, "t1")
    again = _admit(store, 1300, quota=2, limits=wide, token="t4")
    assert (again.pending, again.held, again.quota_full) == ((0, 0), True, False)
    # t4's holds lapse 500 ms later without a release.
    lapsed = _admit(store, 1800, quota=2, limits=wide, token="t5")
    assert (lapsed.pending, lapsed.held) == ((0, 0), True)
    store.set_flag("susp:a", None)
    assert _admit(store, 1900, limits=wide) == AdmitReading(suspended=True)


def test_each_branch_of_the_observation_on_a_known_state(pair: Pair) -> None:
    store, _ = pair.fresh()
    observed = KEYS._replace(seen="seen:old")

    def observe(
        now_ms: int,
        subject: str | None,
        *,
        no_proof: bool = True,
        care_date: str | None = None,
        once: tuple[str, ...] = (),
        epoch: str | None = None,
    ) -> ObserveReading:
        return store.observe_lookup(
            observed, LIMITS, now_ms, "t1", no_proof, "h", subject, care_date, once, epoch
        )

    assert observe(1000, "s3", epoch="epoch") == ObserveReading(empty=True)
    assert store.hash_all("active:d1") == {}  # nothing done
    # An admitted lookup without proof holds its slots (t1) until observed.
    assert store.admit_lookup(KEYS, LIMITS, 900, "t1", False, True, 5, 5).held
    assert store.step_up("stepup:a", 60, 2, "susp:b", "once:x", 60) == (1, True)
    assert store.step_up("stepup:a", 60, 2, "susp:b", "once:y", 60) == (2, False)
    assert store.has_flag("susp:b")
    assert not store.has_flag("once:y")
    assert store.claim(["once:x", "once:y"], 60, None) == [False, True]
    assert store.claim([], 60, "susp:a") == []
    store.add_distinct("inv:old", "s1", 60)
    store.add_distinct("np:s", "s2", 60)
    store.push_recent("out:a", "m", 5, 60)
    # "h" pushed before "m"; s3 is the first of seen:old and the second of np:s; the
    # day's check runs, but 1 looked-up beneficiary is under min_looked (2).
    assert observe(1000, "s3", once=("once:x", "susp:a")) == ObserveReading(
        ("h", "m"), 1, 2, True, 1, 0, (True, True)
    )

    # t1's holds are given back and s3 awaits an invoice in both scopes, answered by the
    # first; past the grace (1 s) it is overdue, until its invoice clears it from both.
    def sweep(now_ms: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
        plan = UnbilledPlan(KEYS.scopes, "ubb:s", now_ms, 1_000, 120_000, 0, 2, 5, "", 0, 60)
        counts = store.unbilled(replace(plan, reserve=False))
        assert not counts.reserved
        return counts.pending, counts.overdue

    assert sweep(1000) == ((1, 1), (0, 0))
    assert store.hash_all("uby:s") == {"s3": "p:a"}
    assert sweep(2000) == ((0, 0), (1, 1))
    store.unbilled_invoice("s:s", "ubb:s", "uby:s", "s3", 1000, 0, 60)
    assert sweep(2000) == ((0, 0), (0, 0))
    store.add_distinct("seen:old", "s1", 60)
    store.delete("invchk:s")
    again = observe(3000, None, no_proof=False)
    assert (again.outcomes, again.seen, again.checked, again.looked, again.invoiced) == (
        (),
        0,
        True,
        2,
        1,
    )
    assert not observe(3000, "s4").checked  # once a day
    # Past dates_free (1) care dates, the person counted is the person at that date.
    assert observe(4000, "s5", no_proof=False, care_date="2025-03-10").seen == 4
    assert observe(4000, "s5", no_proof=False, care_date="2025-03-11").seen == 5
    assert store.count_distinct("seen:old") == 5  # s3, s1, s4, s5, s5@2025-03-11
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
            store.admit_lookup(KEYS, LIMITS, 1000, "t", True, True, 5, 5)
        with pytest.raises(CounterStoreUnavailable):
            store.observe_lookup(KEYS, LIMITS, 1000, "t", True, "h", "s1", None, ())
        with pytest.raises(CounterStoreUnavailable):
            store.release_lookup(KEYS, "t")
        with pytest.raises(CounterStoreUnavailable):
            store.step_up("stepup:a", 60, 2, "susp:a", "once:x", 60)
        with pytest.raises(CounterStoreUnavailable):
            store.claim(["once:x"], 60, "susp:a")
    finally:
        client.close()
