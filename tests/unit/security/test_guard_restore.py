"""Counters rebuilt from the audit log equal the counters the guard kept (issue 13, point 4).

The property: run any sequence of lookups through the guard, recording what the audit log
would (the answers, the guard's refusals and step-ups, misreads, the signals raised, the
suspensions, the reinstatements); rebuild the counters from that record alone; every
counter a decision reads is then what the live guard holds. Then, on a Redis the test
starts itself: a lookup admitted before an empty restart is counted after it, processes
rebuild once between them, and while another process rebuilds a lookup waits or fails
closed.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.own_redis import OwnRedis
from tests.support.services import RedisDatabase
from tierspayant.domain.codes import GuardCode
from tierspayant.security.guard import (
    EPOCH_KEY,
    ActorKind,
    CounterStore,
    Guard,
    GuardPolicy,
    LookupContext,
    LookupOutcome,
    MemoryCounterStore,
    PastEvent,
    PastKind,
    ProofFault,
    RedisCounterStore,
    Restorer,
    RestoringCounterStore,
    Signal,
    Verdict,
    history_start,
    snapshot_of,
    unbilled_start,
)
from tierspayant.security.guard.counters import answered_by
from tierspayant.security.guard.restore import NOT_REBUILT

POLICY = GuardPolicy(
    daily_caps={"pharmacy": 6},
    no_proof_watch=1,
    no_proof_soft=3,
    no_proof_hard=5,
    miss_window=5,
    miss_min_lookups=3,
    human_speed_lookups=3,
    human_speed_median_ms=2000,
    step_up_refusals_hard=3,
    principal_per_minute=4,
    structure_per_minute=6,
    global_per_minute=8,
    # The never-invoiced people over days, not weeks, so that random runs cross the
    # grace and the window; bounds low enough to be reached by 10 people.
    unbilled_window_days=3,
    invoice_grace_days=1,
    unbilled_pending=4,
    unbilled_soft=3,
    unbilled_hard=4,
)
# (principal, structure, human?)
PRINCIPALS = (("p:a", "750000001", True), ("p:b", "750000001", False), ("p:c", "750000002", False))
START = datetime(2025, 3, 10, 20, 0, tzinfo=UTC)  # 21:00 in Paris: runs cross midnight
EARLIER = START - timedelta(hours=1)  # the same day, out of the rate windows


@dataclass
class Run:
    """The guard's live counters beside what the audit log records."""

    now: datetime = START
    events: list[PastEvent] = field(default_factory=list)
    suspended: set[str] = field(default_factory=set)
    lookups: int = 0

    def clock(self) -> float:
        return self.now.timestamp()

    def record(self, signals: list[Signal] | tuple[Signal, ...], principal: str) -> None:
        # As services.alerts does: every signal is a row, a hard one suspends in the DB.
        for signal in signals:
            self.events.append(
                PastEvent(signal.at, PastKind.ALERT, principal, signal.structure, code=signal.code)
            )
            if signal.hard:
                self.suspended.add(principal)


Action = tuple[int, int, int | None, bool, bool, int, int | None, bool]


def step(guard: Guard, run: Run, action: Action) -> None:
    who, gap_ms, person, with_proof, misread, stepped, invoice_back, reinstate = action
    run.now += timedelta(milliseconds=gap_ms)
    principal, structure, human = PRINCIPALS[who]
    if reinstate:
        # Two operators reinstate the principal (``services.alerts``): the event, then the
        # guard's counters cleared. Suspended or not: what the counters forget is the same.
        guard.clear_suspension(principal)
        run.events.append(PastEvent(run.now, PastKind.REINSTATED, principal))
        run.suspended.discard(principal)
        return
    if invoice_back is not None and person is not None:
        # The structure invoices the person for care ``invoice_back`` days ago (claims
        # intake, after the claim's commit: its ``claim.receive`` event is in the log).
        care = guard.day_of(run.now) - timedelta(days=invoice_back)
        guard.record_invoice(structure, f"s{person}", care)
        run.events.append(
            PastEvent(run.now, PastKind.INVOICE, principal, structure, f"s{person}", care=care)
        )
        return
    run.lookups += 1
    ctx = LookupContext(
        principal,
        ActorKind.HUMAN if human else ActorKind.SOFTWARE,
        structure,
        "pharmacy",
        with_proof,
        run.now,
        stepped_up=stepped == 1,
        lookup_id=f"l{run.lookups}",
    )
    if misread:
        run.record(guard.reject_proof(ctx, ProofFault.MISREAD), principal)
        run.events.append(PastEvent(run.now, PastKind.MISREAD, principal, structure))
        return
    admission = guard.admit(ctx)
    run.record(admission.signals, principal)
    if not admission.allowed:
        kind = PastKind.STEP_UP if admission.verdict is Verdict.STEP_UP else PastKind.REFUSED
        run.events.append(
            PastEvent(run.now, kind, principal, structure, human=human, code=admission.code)
        )
        return
    subject = None if person is None else f"s{person}"
    outcome = LookupOutcome.miss() if subject is None else LookupOutcome.hit(subject)
    run.record(guard.observe(ctx, outcome), principal)
    kind = PastKind.MISS if subject is None else PastKind.HIT
    run.events.append(PastEvent(run.now, kind, principal, structure, subject, with_proof, human))


def state(store: MemoryCounterStore, now: datetime, policy: GuardPolicy = POLICY) -> dict[str, Any]:
    """Every live counter a decision reads, as plain values.

    The never-invoiced people as stored (swept or not: :func:`swept` first to compare
    what a decision reads); the invoices that may still clear an answer of the window
    (care at most a day before it); which principal answered each of those people last.
    """
    day = now.astimezone(ZoneInfo(GuardPolicy().timezone)).date().isoformat()
    now_ms = int(now.timestamp() * 1000)
    minute_ago = now_ms - 60_000
    billable = now_ms - (policy.unbilled_window_days + 1) * 86_400_000
    out: dict[str, Any] = {}
    with store._lock:
        people = {
            subject
            for key, members in store._zsets.items()
            if key.startswith(("ubp:", "ubo:"))
            for subject in members
        }
        keys = set(store._sets) | set(store._lists) | set(store._hashes) | set(store._ints)
        keys |= set(store._flags) | set(store._zsets)
        for key in sorted(keys):
            store._fresh(key)
            if key.startswith(("nphold:", "inv:", *NOT_REBUILT)) or key == EPOCH_KEY:
                continue  # holds lapse; invoices per care day are not rebuilt; gaps
            if key.startswith("stepup:") and not key.endswith(day):
                continue  # an earlier day's count is read by nobody
            if key.startswith(("ubp:", "ubo:", "ubb:")) and key in store._zsets:
                scored = store._zsets[key].items()
                if key.startswith("ubb:"):
                    scored = {k: v for k, v in scored if v > billable}.items()
                if scored:
                    out[key] = sorted(scored)
                continue
            if key.startswith("uby:") and key in store._hashes:
                # The principals that answered each person, those whose scope still holds
                # them: an invoice clears the others of nothing, and a rebuild cannot know
                # an answer older than its window that the live hash still lists.
                by = []
                for subject, value in store._hashes[key].items():
                    holding = [
                        scope
                        for scope in answered_by(value)
                        if subject in store._zsets.get(f"ubp:{scope}", {})
                        or subject in store._zsets.get(f"ubo:{scope}", {})
                    ]
                    if subject in people and holding:
                        by.append((subject, holding))
                if by:
                    out[key] = sorted(by)
                continue
            if key in store._sets:
                out[key] = sorted(store._sets[key])
            elif key in store._lists:
                out[key] = list(store._lists[key])
            elif key in store._hashes:
                out[key] = sorted(store._hashes[key])  # the structures; categories aside
            elif key in store._ints:
                out[key] = store._ints[key]
            elif key in store._flags:
                out[key] = True
            elif key in store._zsets:
                scores = sorted(v for v in store._zsets[key].values() if v > minute_ago)
                if scores:
                    out[key] = scores
    return out


def swept(store: MemoryCounterStore, now: datetime) -> None:
    """Bring every principal's and structure's never-invoiced people up to ``now``, as
    the next lookup without proof would (pending people past the grace made overdue or
    dropped, overdue ones past the window dropped)."""
    guard = Guard(store, POLICY)
    for principal, structure, _ in PRINCIPALS:
        guard.unbilled(
            LookupContext(principal, ActorKind.SOFTWARE, structure, "pharmacy", False, now)
        )


def _actions(gaps: list[int]) -> st.SearchStrategy[list[Action]]:
    return st.lists(
        st.tuples(
            st.integers(0, len(PRINCIPALS) - 1),
            st.sampled_from(gaps),
            st.one_of(st.none(), st.integers(0, 9)),
            st.booleans(),
            st.integers(0, 9).map(lambda n: n == 0),
            st.integers(0, 3),
            # An invoice for care that many days back, one action in four.
            st.sampled_from([None, None, None, 0, 0, 1, 2, 5]),
            # A reinstatement, one action in twelve.
            st.integers(0, 11).map(lambda n: n == 0),
        ),
        max_size=60,
    )


# Within about two days: every counter of the day is compared.
HOURS = [0, 500, 1500, 3000, 20_000, 600_000, 3_000_000]
# Up to two days between two actions: the runs cross the grace and the window of the
# never-invoiced people (the day's counters of earlier days are read by nobody).
DAYS = [*HOURS, 72_000_000, 172_800_000]


def _replayed(plan: list[Action]) -> tuple[Run, MemoryCounterStore, MemoryCounterStore]:
    """The live store after ``plan``, and the one rebuilt from its record."""
    run = Run()
    live = MemoryCounterStore(clock=run.clock)
    guard = Guard(live, POLICY)
    for action in plan:
        step(guard, run, action)
    rebuilt = MemoryCounterStore(clock=run.clock)
    # Each pass reads the events of its own window, as ``Restorer.rebuild`` does.
    events = [e for e in run.events if e.at >= history_start(POLICY, run.now)]
    unbilled = [e for e in run.events if e.at >= unbilled_start(POLICY, run.now)]
    rebuilt.restore(snapshot_of(events, run.suspended, POLICY, run.now, "e1", unbilled))
    assert rebuilt.has_flag(EPOCH_KEY)
    return run, live, rebuilt


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_actions(HOURS))
def test_for_any_lookups_the_rebuilt_counters_equal_the_live_ones(plan: list[Action]) -> None:
    run, live, rebuilt = _replayed(plan)
    assert state(rebuilt, run.now) == state(live, run.now)


# Two principals past the soft level of their structures' no-proof quota (3 people each,
# 20 s apart): the lookups without proof after them ask for step-ups, ignored until the
# principal is suspended, and some of those principals are reinstated.
BUSY: list[Action] = [
    (who, 20_000, n, False, False, 0, None, False)
    for who in (1, 2)
    for n in range(3 * who, 3 * who + 3)
]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_actions(HOURS))
def test_after_step_ups_and_reinstatements_the_rebuilt_counters_equal_the_live_ones(
    plan: list[Action],
) -> None:
    """A reinstatement forgets the principal's pace, misses, ignored step-ups and people
    awaiting an invoice (``Guard.clear_suspension``): so does the rebuild."""
    run, live, rebuilt = _replayed(BUSY + plan)
    assert state(rebuilt, run.now) == state(live, run.now)


def _unbilled_state(store: MemoryCounterStore, now: datetime) -> dict[str, Any]:
    return {k: v for k, v in state(store, now).items() if k.startswith("ub")}


def _split(unbilled: dict[str, Any], old: set[str]) -> tuple[dict[str, Any], set[Any]]:
    """The never-invoiced people of a state without the ``old`` subjects, and the
    (key, subject) pairs of those subjects."""
    kept: dict[str, Any] = {}
    held: set[Any] = set()
    for key, entries in unbilled.items():
        rest = [entry for entry in entries if entry[0] not in old]
        if rest:
            kept[key] = rest
        held.update((key, entry[0]) for entry in entries if entry[0] in old)
    return kept, held


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_actions(DAYS))
def test_over_weeks_the_rebuilt_never_invoiced_people_equal_the_live_ones(
    plan: list[Action],
) -> None:
    """Lookups and invoices over days: the people awaiting an invoice and those never
    invoiced, per principal and per structure, are rebuilt as the live store keeps them,
    and the next lookup without proof reads the same figures from both.

    Except for the people answered before the rebuild's window too: the live store
    keeps, for a person answered again while already held, the time of the first answer
    (and drops them once it is past the window), so what it holds of a chain of answers
    depends on answers older than any bounded read; the rebuild reads the window only.
    Such a person may be held more or less long by either (docs/guard.md, "Rebuilding
    the counters"); every other person is held alike, and the figures are equal when
    neither holds one of them."""
    run, live, rebuilt = _replayed(plan)
    # Compared once swept: an answer of the window's first day lingers in the live store
    # until its next sweep, read by nobody.
    swept(rebuilt, run.now)
    swept(live, run.now)
    start = unbilled_start(POLICY, run.now)
    old = {e.subject for e in run.events if e.at < start and e.subject is not None}
    live_kept, live_old = _split(_unbilled_state(live, run.now), old)
    rebuilt_kept, rebuilt_old = _split(_unbilled_state(rebuilt, run.now), old)
    assert rebuilt_kept == live_kept
    if live_old or rebuilt_old:
        return
    for principal, structure, _ in PRINCIPALS:
        ctx = LookupContext(principal, ActorKind.SOFTWARE, structure, "pharmacy", False, run.now)
        assert Guard(rebuilt, POLICY).unbilled(ctx) == Guard(live, POLICY).unbilled(ctx)


def test_a_rebuild_reads_only_what_is_recorded_and_marks_the_epoch_last() -> None:
    """Given hits of two structures and a suspension, the snapshot counts each person
    once per structure and day, the no-proof ones apart, and writes the epoch."""
    at = START
    events = [
        PastEvent(at, PastKind.HIT, "p:b", "750000001", "s1", with_proof=False),
        PastEvent(at, PastKind.HIT, "p:b", "750000001", "s1", with_proof=True),
        PastEvent(at, PastKind.HIT, "p:b", "750000001", "s2", with_proof=True),
        PastEvent(at, PastKind.HIT, "p:c", "750000002", "s1", with_proof=True),
        PastEvent(at, PastKind.MISS, "p:c", "750000002", with_proof=False),
        # A future event (a clock ahead) counts for nothing.
        PastEvent(at + timedelta(hours=1), PastKind.HIT, "p:c", "750000002", "s9"),
    ]
    snapshot = snapshot_of(events, ["p:z"], POLICY, at, "e2")
    assert snapshot.sets["seen:750000001:2025-03-10"][0] == {"s1", "s2"}
    assert snapshot.sets["np:750000001:2025-03-10"][0] == {"s1"}
    assert snapshot.sets["seen:750000002:2025-03-10"][0] == {"s1"}
    assert snapshot.lists["out:p:c"][0] == ("m",)
    assert snapshot.flags["susp:p:z"] is None
    store = MemoryCounterStore()
    assert not store.has_flag(EPOCH_KEY)
    store.restore(snapshot)
    assert store.has_flag(EPOCH_KEY)
    assert store.count_distinct("seen:750000001:2025-03-10") == 2


def test_a_refusal_alerted_today_is_not_alerted_again_after_a_rebuild() -> None:
    """Given the structure's people awaiting an invoice refused a lookup (its alert goes
    out once a day), the rebuilt counters hold that day's once-key; the never-invoiced
    refusal whose code a suspension shares (``guard.unbilled``) is left out."""
    events = [
        PastEvent(START, PastKind.ALERT, "p:b", "750000001", code=GuardCode.UNBILLED_PENDING),
        PastEvent(START, PastKind.ALERT, "p:c", "750000002", code=GuardCode.UNBILLED),
    ]
    flags = snapshot_of(events, [], POLICY, START, "e3").flags
    assert "once:guard.unbilled_pending:750000001:2025-03-10" in flags
    assert not [key for key in flags if key.startswith("once:guard.unbilled:")]


# --------------------------------------------------------------------- on a Redis of our own


@dataclass
class ListHistory:
    """The audit log's record as a list (the store's reader is tested on a database in
    ``tests/integration/test_guard_restart.py``); ``delay`` makes a rebuild slow."""

    events: list[PastEvent]
    suspended: list[str] = field(default_factory=list)
    delay: float = 0.0
    reads: int = 0

    def past_events(self, since: datetime) -> Iterator[PastEvent]:
        self.reads += 1
        time.sleep(self.delay)
        return iter([e for e in self.events if e.at >= since])

    def suspended_principals(self) -> list[str]:
        return list(self.suspended)

    def past_alerts(self, since: datetime) -> list[PastEvent]:
        return []

    def unbilled_events(self, since: datetime) -> Iterator[PastEvent]:
        return iter([e for e in self.events if e.at >= since])


@pytest.fixture(scope="module")
def own_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OwnRedis]:
    server = OwnRedis(tmp_path_factory.mktemp("redis"))
    try:
        yield server
    finally:
        server.kill()


def _guard(server: OwnRedis, history: ListHistory, now: datetime, **kw: Any) -> Guard:
    store = RedisCounterStore.from_url(server.url, timeout_seconds=2)
    restorer = Restorer(store, history, POLICY, lambda: now, **kw)
    return Guard(RestoringCounterStore(store, restorer), POLICY)


def _ctx(at: datetime, lookup_id: str, structure: str = "750000002") -> LookupContext:
    return LookupContext(
        "p:c", ActorKind.SOFTWARE, structure, "pharmacy", True, at, lookup_id=lookup_id
    )


@pytest.mark.redis
def test_given_a_lookup_admitted_before_an_empty_restart_then_it_is_counted_after(
    own_redis: OwnRedis,
) -> None:
    own_redis.flush()
    at = START
    answered = [
        PastEvent(EARLIER, PastKind.HIT, "p:c", "750000002", f"s{n}", True) for n in range(4)
    ]
    history = ListHistory(list(answered))
    guard = _guard(own_redis, history, at)
    assert guard.admit(_ctx(at, "l1")).allowed  # first use: rebuilt from the 4 answers
    assert history.reads == 1
    own_redis.restart()
    guard.observe(_ctx(at, "l1"), LookupOutcome.hit("s4"))
    # Rebuilt again (the 4 answers), then this one counted: 5, not 1.
    assert history.reads == 2
    assert guard.counters.count_distinct("seen:750000002:2025-03-10") == 5


@pytest.mark.redis
def test_given_two_processes_after_an_empty_restart_then_one_rebuilds_and_both_see_it(
    own_redis: OwnRedis,
) -> None:
    own_redis.flush()
    at = START
    answered = [
        PastEvent(EARLIER, PastKind.HIT, "p:c", "750000002", f"s{n}", True) for n in range(6)
    ]
    histories = [ListHistory(list(answered), delay=0.5) for _ in range(2)]
    guards = [_guard(own_redis, h, at) for h in histories]
    verdicts: list[str] = []

    def lookup(guard: Guard, n: int) -> None:
        verdicts.append(guard.admit(_ctx(at, f"x{n}")).code)

    threads = [threading.Thread(target=lookup, args=(g, n)) for n, g in enumerate(guards)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # 6 distinct people of a cap of 6: both refused, by the rebuilt count; one rebuild.
    assert verdicts == [GuardCode.DAILY_CAP, GuardCode.DAILY_CAP]
    assert sorted(h.reads for h in histories) == [0, 1]


@pytest.mark.redis
def test_given_another_process_rebuilding_too_long_then_lookups_fail_closed_uncounted(
    own_redis: OwnRedis,
) -> None:
    own_redis.flush()
    client = own_redis.client()
    try:
        client.set("tp:guard:restore:lock", "someone else", ex=60)
        guard = _guard(own_redis, ListHistory([]), START, wait_seconds=0.3)
        started = time.monotonic()
        admission = guard.admit(_ctx(START, "w1"))
        assert admission.code == GuardCode.UNAVAILABLE
        assert not admission.allowed
        assert time.monotonic() - started >= 0.3
        # Nothing counted: only the other process's lock is there.
        keys = [k.decode() for k in cast(list[bytes], client.keys("*"))]
        assert keys == ["tp:guard:restore:lock"]
        client.delete("tp:guard:restore:lock")
        assert guard.admit(_ctx(START, "w2")).allowed
    finally:
        client.close()


def test_the_memory_store_starts_without_its_epoch(tmp_path: Path) -> None:
    """A new process's in-process counters are empty: its first lookup rebuilds them."""
    history = ListHistory(
        [PastEvent(EARLIER, PastKind.HIT, "p:c", "750000002", f"s{n}", True) for n in range(6)]
    )
    store = MemoryCounterStore()
    restorer = Restorer(store, history, POLICY, lambda: START)
    guard = Guard(RestoringCounterStore(store, restorer), POLICY)
    assert guard.admit(_ctx(START, "m1")).code == GuardCode.DAILY_CAP
    assert history.reads == 1
    assert restorer.last is not None
    assert restorer.last.events == 6 + 6  # the day's pass, then the never-invoiced one


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
def store_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def _empty_store(kind: str, request: pytest.FixtureRequest, run: Run) -> CounterStore:
    """A store with nothing in it: in process, or the test run's Redis database flushed."""
    if kind == "memory":
        return MemoryCounterStore(clock=run.clock)
    db: RedisDatabase = request.getfixturevalue("redis_db")
    client = db.client()
    try:
        client.flushdb()
    finally:
        client.close()
    return RedisCounterStore.from_url(db.url, timeout_seconds=2)


def test_given_a_reinstated_principal_then_only_its_later_step_ups_are_rebuilt(
    store_kind: str, request: pytest.FixtureRequest
) -> None:
    """Given p:c past the soft cap, ignoring two step-ups, then reinstated, then ignoring
    a third (suspended again: three a day), when the store comes back empty, then its
    sliding window of ignored step-ups is rebuilt as the live one: the third alone (the
    reinstatement forgot the others), not three more stamps towards a suspension."""
    run = Run()
    live = _empty_store(store_kind, request, run)
    guard = Guard(live, POLICY)
    # 20 s apart (4 a minute at most): 5 people answered with proof, then step-ups.
    plan: list[Action] = [(2, 20_000, n, True, False, 0, None, False) for n in range(7)]
    plan.append((2, 20_000, None, False, False, 0, None, True))
    plan.append((2, 20_000, 7, True, False, 0, None, False))
    for action in plan:
        step(guard, run, action)
    kinds = [e.kind for e in run.events if e.kind is not PastKind.ALERT]
    assert kinds[5:] == [PastKind.STEP_UP] * 2 + [PastKind.REINSTATED, PastKind.REFUSED]
    window = live.recent("stepupw:p:c")
    assert window == [str(int(run.now.timestamp() * 1000))]

    rebuilt = _empty_store(store_kind, request, run)  # Redis: the same database, flushed
    history = ListHistory(list(run.events), sorted(run.suspended))
    Restorer(rebuilt, history, POLICY, lambda: run.now).ensure()
    assert rebuilt.has_flag(EPOCH_KEY)
    assert rebuilt.recent("stepupw:p:c") == window
