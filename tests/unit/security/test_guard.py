"""The exfiltration guard, on in-process counters and on Redis (same tests, same answers).

Redis tests use the test run's own database of the local Redis (``redis_db``), flushed
before each test; they are skipped when the server is absent, or fail if
``TIERSPAYANT_REQUIRE_SERVICES=1``.
"""

from __future__ import annotations

import hashlib
import json
import random
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import cast

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from redis.backoff import NoBackoff
from redis.retry import Retry

from tests.factories import make_finess
from tests.support.guard_keys import lookup_keys, store_limits
from tests.support.services import RedisDatabase
from tierspayant.security.guard import (
    DEFAULT_DAILY_CAPS,
    ActorKind,
    Admission,
    CounterStore,
    CounterStoreUnavailable,
    Guard,
    GuardPolicy,
    GuardUnavailable,
    Level,
    LookupContext,
    LookupOutcome,
    MemoryCounterStore,
    ProofFault,
    RedisCounterStore,
    Signal,
    Verdict,
    calibrate,
    context_for,
    median_interval_ms,
    percentile_nearest_rank,
)
from tierspayant.security.principal import AuthStrength, Principal, PrincipalKind

RNG = random.Random(20240201)
PHARMACY = make_finess(RNG, department="75")
OTHER_PHARMACY = make_finess(RNG, department="69")
# Monday 10 March 2025, 09:00 in Paris.
T0 = datetime(2025, 3, 10, 8, 0, tzinfo=UTC)

StoreFactory = Callable[[], CounterStore]


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
def make_store(request: pytest.FixtureRequest) -> Iterator[StoreFactory]:
    """Builds fresh, empty counter stores of one kind (Redis: the run's database flushed)."""
    if request.param == "memory":
        yield MemoryCounterStore
        return
    db: RedisDatabase = request.getfixturevalue("redis_db")
    client = db.client()

    def fresh() -> CounterStore:
        client.flushdb()
        return RedisCounterStore(client)

    try:
        yield fresh
    finally:
        client.flushdb()
        client.close()


@pytest.fixture
def store(make_store: StoreFactory) -> CounterStore:
    return make_store()


def subject(i: int) -> str:
    """An audit pseudonym, as identification computes them (hex, no identity inside)."""
    return hashlib.sha256(f"beneficiary-{i}".encode()).hexdigest()[:32]


def ctx(
    at: datetime,
    *,
    principal: str = "client:lgo-pharma-1",
    kind: ActorKind = ActorKind.SOFTWARE,
    structure: str = PHARMACY,
    category: str = "pharmacy",
    with_proof: bool = False,
    stepped_up: bool = False,
) -> LookupContext:
    return LookupContext(principal, kind, structure, category, with_proof, at, stepped_up)


@dataclass
class Run:
    """What a scraper got: answers (hits returned), admissions, signals."""

    answers: int = 0
    lookups: int = 0
    admissions: list[Admission] = field(default_factory=list)
    signals: list[Signal] = field(default_factory=list)

    def codes(self, level: Level | None = None) -> list[str]:
        return [s.code for s in self.signals if level is None or s.level is level]

    @property
    def suspended(self) -> bool:
        return any(a.code == "guard.suspended" for a in self.admissions)


def scrape(
    guard: Guard,
    attempts: int,
    *,
    interval: timedelta,
    kind: ActorKind = ActorKind.SOFTWARE,
    stepped_up: bool = False,
    found: Callable[[int], bool] = lambda i: True,
    principal: str = "client:lgo-pharma-1",
    start: datetime = T0,
) -> Run:
    """A bot with one valid session and a list of real identifiers, no card proof.

    It ignores every refusal and keeps going, until the guard says it is suspended.
    """
    run = Run()
    for i in range(attempts):
        c = ctx(start + i * interval, kind=kind, stepped_up=stepped_up, principal=principal)
        admission = guard.admit(c)
        run.admissions.append(admission)
        run.signals += admission.signals
        if admission.code == "guard.suspended":
            break
        if not admission.allowed:
            continue
        run.lookups += 1
        outcome = LookupOutcome.hit(subject(i)) if found(i) else LookupOutcome.miss()
        run.signals += guard.observe(c, outcome)
        if found(i):
            run.answers += 1
    return run


class FixedHistory:
    def __init__(self, counts: Sequence[int]) -> None:
        self.counts = list(counts)
        self.calls: list[tuple[str, date, int]] = []

    def daily_distinct(self, structure: str, before: date, days: int) -> Sequence[int]:
        self.calls.append((structure, before, days))
        return self.counts


class BrokenHistory:
    def daily_distinct(self, structure: str, before: date, days: int) -> Sequence[int]:
        raise ConnectionError("database down")


# --------------------------------------------------------------------------- policy


def test_given_no_configuration_then_defaults_are_the_documented_ones() -> None:
    policy = GuardPolicy()
    assert (policy.no_proof_soft, policy.no_proof_hard) == (10, 20)
    assert policy.soft_percent == 80
    assert (policy.miss_min_lookups, policy.miss_window) == (10, 30)
    assert (policy.miss_soft_percent, policy.miss_hard_percent) == (30, 50)
    assert (policy.human_speed_lookups, policy.human_speed_median_ms) == (10, 2000)
    assert policy.revoked_proof_level is Level.HARD
    caps = policy.daily_caps
    assert caps["hospital"] > caps["pharmacy"] > caps["gp"] > caps["optician"]
    assert caps["audiologist"] < caps["optician"]
    assert set(caps) == set(DEFAULT_DAILY_CAPS)


def test_given_overrides_when_loaded_from_mapping_then_only_named_values_change() -> None:
    policy = GuardPolicy.from_mapping(
        {"no_proof_soft": "5", "no_proof_hard": 8, "daily_caps": {"optician": "12"}}
    )
    assert (policy.no_proof_soft, policy.no_proof_hard) == (5, 8)
    assert policy.daily_caps["optician"] == 12
    assert policy.daily_caps["pharmacy"] == DEFAULT_DAILY_CAPS["pharmacy"]
    assert policy.principal_per_minute == GuardPolicy().principal_per_minute


def test_given_json_when_loaded_then_level_and_timezone_are_parsed() -> None:
    text = json.dumps({"revoked_proof_level": "soft", "timezone": "America/Cayenne"})
    policy = GuardPolicy.from_json(text)
    assert policy.revoked_proof_level is Level.SOFT
    assert policy.timezone == "America/Cayenne"


@pytest.mark.parametrize(
    ("overrides", "says"),
    [
        ({"no_proof_hrad": 20}, r"unknown guard settings \['no_proof_hrad'\]"),  # a typo
        ({"daily_caps": {"pharmacie": 10}}, r"unknown provider categories \['pharmacie'\]"),
        ({"daily_caps": {"pharmacy": 0}}, "every cap must be a positive integer"),
        ({"no_proof_soft": 30, "no_proof_hard": 20}, "need 1 <= no_proof_soft <= no_proof_hard"),
        (
            {"miss_soft_percent": 60, "miss_hard_percent": 50},
            "miss_soft_percent must not exceed miss_hard_percent",
        ),
        ({"soft_percent": 0}, "soft_percent must be between 1 and 100"),
        ({"principal_per_minute": "many"}, "principal_per_minute must be an integer, got 'many'"),
        ({"principal_per_minute": True}, "principal_per_minute must be an integer, got True"),
        ({"timezone": "Mars/Olympus"}, "unknown timezone 'Mars/Olympus'"),
        ({"miss_min_lookups": 40}, "need 1 <= miss_min_lookups <= miss_window"),
    ],
)
def test_given_bad_settings_when_loaded_then_refused_with_what_is_wrong(
    overrides: dict[str, object], says: str
) -> None:
    with pytest.raises(ValueError, match=says):
        GuardPolicy.from_mapping(overrides)


def test_given_a_json_array_when_loaded_then_refused() -> None:
    with pytest.raises(ValueError, match="JSON object"):
        GuardPolicy.from_json("[1, 2]")


def test_percentile_is_nearest_rank() -> None:
    assert percentile_nearest_rank([5], 95) == 5
    assert percentile_nearest_rank(list(range(1, 21)), 95) == 19
    assert percentile_nearest_rank(list(range(1, 29)), 95) == 27
    assert percentile_nearest_rank([3, 1, 2], 50) == 2
    with pytest.raises(ValueError, match="no values"):
        percentile_nearest_rank([], 95)


def test_given_no_or_short_history_then_cap_is_the_profession_default() -> None:
    policy = GuardPolicy()
    assert calibrate(policy, "pharmacy", []).hard == 800
    assert calibrate(policy, "pharmacy", [2000] * 6).hard == 800  # fewer than 7 days
    assert calibrate(policy, "unknown-kind", []).hard == policy.default_daily_cap
    caps = calibrate(policy, "pharmacy", [])
    assert (caps.soft, caps.calibrated) == (640, False)


def test_given_busy_history_then_cap_is_one_and_a_half_p95() -> None:
    history = [900] * 26 + [1000, 5000]  # one exceptional day is ignored by the p95
    caps = calibrate(GuardPolicy(), "pharmacy", history)
    assert caps.hard == 1500
    assert caps.soft == 1200
    assert caps.calibrated


def test_given_quiet_history_then_cap_never_falls_below_the_default() -> None:
    caps = calibrate(GuardPolicy(), "optician", [3] * 28)
    assert caps.hard == DEFAULT_DAILY_CAPS["optician"]


def test_given_more_than_28_days_then_only_the_last_28_count() -> None:
    history = [5000] * 10 + [100] * 28
    assert calibrate(GuardPolicy(), "pharmacy", history).hard == 800


def test_median_interval() -> None:
    assert median_interval_ms([0, 1000, 2000, 10_000]) == 1000
    assert median_interval_ms([3000, 0]) == 3000
    with pytest.raises(ValueError, match="two events"):
        median_interval_ms([1])


def test_context_for_a_portal_user_is_human_and_a_client_is_software() -> None:
    user = Principal("psc:8100000001", PrincipalKind.PROVIDER_USER, AuthStrength.AAL2, 7)
    client = Principal(
        "client:abc", PrincipalKind.PROVIDER_CLIENT, AuthStrength.AAL2, 7, "751234567", PHARMACY
    )
    assert context_for(user, category="gp", with_proof=False, at=T0).kind is ActorKind.HUMAN
    c = context_for(client, category="pharmacy", with_proof=True, at=T0, stepped_up=True)
    assert (c.kind, c.structure, c.with_proof, c.stepped_up) == (
        ActorKind.SOFTWARE,
        PHARMACY,
        True,
        True,
    )
    # No FINESS nor AM number: a short stable key of its own, within 20 characters.
    alone = context_for(user, category="gp", with_proof=False, at=T0).structure
    assert alone.startswith("p:")
    assert len(alone) <= 20
    assert alone == context_for(user, category="gp", with_proof=False, at=T0).structure


def test_contexts_and_outcomes_refuse_incomplete_values() -> None:
    with pytest.raises(ValueError, match="timezone"):
        ctx(datetime(2025, 3, 10, 9, 0))
    with pytest.raises(ValueError, match="principal"):
        ctx(T0, principal="")
    with pytest.raises(ValueError, match="subject"):
        LookupOutcome.hit("")


def test_signal_figures_cannot_be_changed() -> None:
    signal = Signal(Level.SOFT, "guard.x", "m", T0, "p", "s", {"n": 1})
    with pytest.raises(TypeError):
        signal.figures["n"] = 2  # type: ignore[index]


# --------------------------------------------------------------------------- counter stores


def test_windows_count_until_full_then_count_nothing(store: CounterStore) -> None:
    keys, limits = ["a", "b"], [5, 3]
    results = [store.hit_windows(keys, limits, 1000 + i, 60_000, f"m{i}") for i in range(5)]
    assert results == [-1, -1, -1, 1, 1]
    # "a" was not counted while "b" was full: it holds 3 events, so exactly 2 more fit.
    assert [store.hit_windows(["a"], [5], 1010, 60_000, f"n{i}") for i in range(3)] == [-1, -1, 0]
    # A minute later every event has slid out of both windows.
    assert store.hit_windows(keys, limits, 1002 + 60_000, 60_000, "late") == -1
    assert store.hit_windows(["b"], [1], 1003 + 60_000, 60_000, "later") == 0


def test_recent_lists_keep_the_newest(store: CounterStore) -> None:
    for i in range(5):
        kept = store.push_recent("r", str(i), 3, 60)
    assert kept == ["4", "3", "2"]
    assert store.recent("r") == ["4", "3", "2"]
    assert store.recent("absent") == []


def test_distinct_sets_count_each_member_once(store: CounterStore) -> None:
    assert [store.add_distinct("s", m, 60) for m in "abca"] == [1, 2, 3, 3]
    store.add_distinct("t", "b", 60)
    store.add_distinct("t", "z", 60)
    assert store.count_distinct("s") == 3
    assert store.count_distinct("none") == 0
    assert store.count_common("s", "t") == 1
    assert store.count_common("s", "none") == 0


def test_reservations_share_the_quota_with_the_set(store: CounterStore) -> None:
    # The daily no-proof quota (3) counts the people answered and the live holds alike.
    keys, limits = lookup_keys(), store_limits(hold_ms=1000)
    store.add_distinct(keys.answered, "x", 60)

    def admit(token: str, now_ms: int) -> tuple[bool, tuple[int, ...]]:
        reading = store.admit_lookup(keys, limits, now_ms, token, False, True, 100, 3)
        # The never-invoiced slots are free here: the daily slot decides, held or full.
        assert reading.held is not reading.quota_full
        return reading.held, reading.pending

    assert admit("t1", 0) == (True, (0, 0))
    assert admit("t2", 10) == (True, (1, 1))
    assert admit("t3", 20) == (False, (2, 2))  # 1 answered + 2 held
    store.release_lookup(keys, "t1")
    # t3 gave its never-invoiced slots back when the quota was full, t1 both of its own.
    assert admit("t3", 30) == (True, (1, 1))
    # Holds lapse when never released: t2 ends at 1010, t3 at 1030.
    assert admit("t4", 1009)[0] is False
    assert admit("t4", 1010) == (True, (1, 1))
    assert admit("t5", 1011)[0] is False


def test_flags_once_counters_hashes_and_delete(store: CounterStore) -> None:
    assert not store.has_flag("f")
    store.set_flag("f", None)
    assert store.has_flag("f")
    assert store.set_once("o", 60)
    assert not store.set_once("o", 60)
    assert [store.incr("c", 60) for _ in range(3)] == [1, 2, 3]
    store.hash_set("h", "x", "1", 60)
    store.hash_set("h", "y", "2", 60)
    assert store.hash_all("h") == {"x": "1", "y": "2"}
    store.delete("f", "o", "c", "h", "never-there")
    assert not store.has_flag("f")
    assert store.set_once("o", 60)
    assert store.incr("c", 60) == 1
    assert store.hash_all("h") == {}
    store.delete()


def test_memory_store_forgets_keys_after_their_time_to_live() -> None:
    now = [100.0]
    store = MemoryCounterStore(clock=lambda: now[0])
    store.add_distinct("s", "a", 10)
    store.set_flag("forever", None)
    now[0] += 11
    assert store.count_distinct("s") == 0
    assert store.has_flag("forever")


@pytest.mark.redis
def test_redis_keys_are_prefixed_and_expire(redis_db: RedisDatabase) -> None:
    client = redis_db.client()
    try:
        client.flushdb()
        store = RedisCounterStore(client)
        store.add_distinct(f"seen:{PHARMACY}:2025-03-10", subject(1), 3600)
        keys = [k.decode() for k in cast(list[bytes], client.keys("*"))]
        assert keys == [f"tp:guard:seen:{PHARMACY}:2025-03-10"]
        ttl = client.ttl(keys[0])
        assert isinstance(ttl, int)
        assert 0 < ttl <= 3600
    finally:
        client.flushdb()
        client.close()


# --------------------------------------------------------------------------- the attack


def test_given_bot_without_proof_ignoring_step_up_then_at_most_10_answers_then_suspended(
    store: CounterStore,
) -> None:
    guard = Guard(store)
    run = scrape(guard, 10_000, interval=timedelta(milliseconds=50))
    assert run.answers == 10
    assert run.suspended
    assert "guard.step_up_ignored" in run.codes(Level.HARD)
    assert "guard.no_proof_soft" in run.codes(Level.SOFT)
    # Suspended within seconds of the first lookup.
    first_hard = next(s for s in run.signals if s.hard)
    assert first_hard.at - T0 < timedelta(seconds=5)


def test_given_bot_that_can_step_up_then_exactly_20_answers_then_suspended(
    store: CounterStore,
) -> None:
    guard = Guard(store)
    run = scrape(guard, 10_000, interval=timedelta(milliseconds=50), stepped_up=True)
    assert run.answers == 20
    assert run.suspended
    hard = [s for s in run.signals if s.hard]
    assert [s.code for s in hard] == ["guard.no_proof_quota"]
    assert hard[0].figures == {"answered": 20, "hard": 20}
    assert guard.suspended("client:lgo-pharma-1")


def test_given_portal_user_at_bot_speed_then_suspended_before_the_10th_lookup(
    store: CounterStore,
) -> None:
    guard = Guard(store)
    run = scrape(guard, 10_000, interval=timedelta(milliseconds=300), kind=ActorKind.HUMAN)
    assert run.lookups == 9
    assert run.codes(Level.HARD) == ["guard.human_speed"]
    assert run.suspended


def test_given_portal_user_at_human_speed_then_at_most_20_answers_and_alert_within_60s(
    store: CounterStore,
) -> None:
    guard = Guard(store)
    run = scrape(
        guard, 10_000, interval=timedelta(seconds=4), kind=ActorKind.HUMAN, stepped_up=True
    )
    assert run.answers == 20
    assert run.suspended
    assert run.signals[0].at - T0 <= timedelta(seconds=60)  # the soft alert at 10 answers


def test_given_random_real_nirs_then_misses_trigger_enumeration_suspension(
    store: CounterStore,
) -> None:
    # Most NIRs of the population are not members of this insurer: 1 in 4 matches.
    guard = Guard(store)
    run = scrape(guard, 10_000, interval=timedelta(seconds=1), found=lambda i: i % 4 == 0)
    assert run.codes(Level.HARD) == ["guard.miss_ratio"]
    assert run.lookups == 10  # the first window large enough to judge
    assert run.answers <= 3
    assert run.suspended


def test_given_a_third_of_misses_then_step_up_is_asked(store: CounterStore) -> None:
    guard = Guard(store)
    for i in range(10):
        c = ctx(T0 + timedelta(minutes=i))
        assert guard.admit(c).allowed
        guard.observe(c, LookupOutcome.miss() if i % 3 == 0 else LookupOutcome.hit(subject(i)))
    admission = guard.admit(ctx(T0 + timedelta(minutes=11)))
    assert (admission.verdict, admission.code) == (Verdict.STEP_UP, "guard.miss_ratio_soft")
    # Card-proven lookups are not enumeration: they go through.
    assert guard.admit(ctx(T0 + timedelta(minutes=12), with_proof=True)).allowed


# --------------------------------------------------------------------------- misreads


def misread(guard: Guard, at: datetime, principal: str = "client:lgo-pharma-1") -> None:
    """A scanned card proof that did not parse: counted, and never a signal."""
    assert guard.reject_proof(ctx(at, principal=principal), ProofFault.MISREAD) == []


def test_given_any_number_of_misreads_in_a_row_then_never_a_signal_nor_a_suspension(
    store: CounterStore,
) -> None:
    guard = Guard(store)
    # Given 9 misreads in a row: the next lookup without card is answered as usual
    for i in range(9):
        misread(guard, T0 + timedelta(seconds=i))
    c = ctx(T0 + timedelta(seconds=10))
    assert guard.admit(c).allowed
    assert guard.observe(c, LookupOutcome.hit(subject(1))) == [
        # 9 misreads in 10 entries: the security team hears of it, once a day
        Signal(
            Level.SOFT,
            "guard.misread_ratio_soft",
            "many misreads and unmatched lookups without card proof",
            c.at,
            c.principal_id,
            PHARMACY,
            {"misses_and_misreads": 9, "lookups_and_misreads": 10, "soft_percent": 30},
        )
    ]
    # Given many more, for hours: the next lookup without card asks for step-up, no more
    for i in range(500):
        misread(guard, T0 + timedelta(seconds=20 + 5 * i))
    later = T0 + timedelta(hours=1)
    asked = guard.admit(ctx(later))
    assert (asked.verdict, asked.code) == (Verdict.STEP_UP, "guard.misread_ratio_soft")
    stepped = ctx(later, stepped_up=True)
    assert guard.admit(stepped).allowed
    assert all(not s.hard for s in guard.observe(stepped, LookupOutcome.hit(subject(2))))
    # And a card scanned right goes through; nobody is suspended
    assert guard.admit(ctx(later, with_proof=True)).allowed
    assert not guard.suspended("client:lgo-pharma-1")


def test_given_misses_and_misreads_mixed_then_step_up_at_the_miss_soft_share(
    store: CounterStore,
) -> None:
    guard = Guard(store)
    # Given 2 misses and 6 hits (25 %: below the 30 % soft share) and 2 misreads
    outcomes = ["m", "h", "h", "r", "h", "m", "h", "r", "h", "h"]
    for i, kind in enumerate(outcomes):
        at = T0 + timedelta(minutes=i)
        if kind == "r":
            misread(guard, at)
            continue
        c = ctx(at)
        assert guard.admit(c).allowed
        guard.observe(c, LookupOutcome.miss() if kind == "m" else LookupOutcome.hit(subject(i)))
    # Then misses and misreads make 40 % of 10: the rule fires, at its documented share
    admission = guard.admit(ctx(T0 + timedelta(minutes=11)))
    assert (admission.verdict, admission.code) == (Verdict.STEP_UP, "guard.misread_ratio_soft")


def test_given_a_scraper_hiding_misses_among_misreads_then_it_is_suspended(
    store: CounterStore,
) -> None:
    # A bot enumerating NIRs (1 in 4 matches) that sends a garbage scan after each lookup
    guard = Guard(store)
    run = Run()
    for i in range(2000):
        at = T0 + timedelta(seconds=2 * i)
        misread(guard, at + timedelta(seconds=1))
        c = ctx(at)
        admission = guard.admit(c)
        run.admissions.append(admission)
        run.signals += admission.signals
        if admission.code == "guard.suspended":
            break
        if admission.allowed:
            found = i % 4 == 0
            run.signals += guard.observe(
                c, LookupOutcome.hit(subject(i)) if found else LookupOutcome.miss()
            )
            run.answers += found
    # It cannot step up: the real misses suspend it, misreads or not
    assert run.suspended
    assert run.codes(Level.HARD) in (["guard.miss_ratio"], ["guard.step_up_ignored"])
    assert run.answers <= 3


@pytest.mark.parametrize(("misses", "suspended"), [(6, True), (2, False)])
def test_given_misreads_then_real_misses_are_neither_diluted_nor_added_to(
    store: CounterStore, misses: int, suspended: bool
) -> None:
    guard = Guard(store)
    # Given 9 lookups (too few to judge), then 20 misreads
    for i in range(9):
        c = ctx(T0 + timedelta(minutes=i))
        assert guard.admit(c).allowed
        guard.observe(c, LookupOutcome.miss() if i < misses - 1 else LookupOutcome.hit(subject(i)))
    for i in range(20):
        misread(guard, T0 + timedelta(minutes=10, seconds=i))
    # When a 10th lookup (stepped up: the misreads asked for it) misses
    c = ctx(T0 + timedelta(minutes=20), stepped_up=True)
    assert guard.admit(c).allowed
    signals = guard.observe(c, LookupOutcome.miss())
    # Then the suspension rule reads the 10 lookups alone: 6 misses suspend, 20 misreads
    # in the window notwithstanding; 2 misses do not, 20 misreads notwithstanding
    assert [s.code for s in signals if s.hard] == (["guard.miss_ratio"] if suspended else [])
    assert guard.suspended("client:lgo-pharma-1") is suspended


# --------------------------------------------------------------------------- no-proof quota


def test_given_card_proof_then_the_no_proof_quota_is_untouched(store: CounterStore) -> None:
    guard = Guard(store)
    for i in range(100):
        c = ctx(T0 + timedelta(seconds=2 * i), with_proof=True)
        assert guard.admit(c).allowed
        assert guard.observe(c, LookupOutcome.hit(subject(i))) == []
    assert guard.admit(ctx(T0 + timedelta(minutes=10))).allowed


def test_given_quota_used_up_then_other_principals_of_the_structure_are_denied(
    store: CounterStore,
) -> None:
    guard = Guard(store)
    scrape(guard, 100, interval=timedelta(seconds=3), stepped_up=True)
    colleague = ctx(T0 + timedelta(hours=1), principal="client:lgo-pharma-2", stepped_up=True)
    admission = guard.admit(colleague)
    assert (admission.verdict, admission.code) == (Verdict.DENY, "guard.no_proof_quota")
    assert not admission.throttled
    # With the card scanned, the colleague works normally; another pharmacy is unaffected.
    assert guard.admit(ctx(T0 + timedelta(hours=1), principal="x", with_proof=True)).allowed
    other = LookupContext("y", ActorKind.SOFTWARE, OTHER_PHARMACY, "pharmacy", False, T0)
    assert guard.admit(other).allowed


def test_given_a_new_day_then_the_no_proof_quota_is_renewed(store: CounterStore) -> None:
    guard = Guard(store)
    scrape(guard, 100, interval=timedelta(seconds=3), stepped_up=True, principal="a")
    # 23:30 in Paris is still the same day; 00:30 is the next one.
    late = datetime(2025, 3, 10, 22, 30, tzinfo=UTC)
    assert guard.admit(ctx(late, principal="b", stepped_up=True)).code == "guard.no_proof_quota"
    assert guard.admit(ctx(late + timedelta(hours=1), principal="b", stepped_up=True)).allowed


def test_given_repeated_checks_of_one_patient_then_they_count_once(store: CounterStore) -> None:
    guard = Guard(store)
    for i in range(50):
        c = ctx(T0 + timedelta(minutes=i))
        assert guard.admit(c).allowed, i
        assert guard.observe(c, LookupOutcome.hit(subject(1))) == []


def test_given_concurrent_admissions_then_held_slots_stop_the_21st(store: CounterStore) -> None:
    guard = Guard(store)
    admitted = []
    for i in range(30):
        c = ctx(T0 + timedelta(milliseconds=10 * i), principal=f"worker-{i}", stepped_up=True)
        if guard.admit(c).allowed:
            admitted.append(c)
    assert len(admitted) == 20
    for i, c in enumerate(admitted):
        guard.observe(c, LookupOutcome.hit(subject(i)))
    assert store.count_distinct(f"np:{PHARMACY}:2025-03-10") == 20


def test_given_parallel_workers_then_no_more_than_20_answers_without_proof(
    store: CounterStore,
) -> None:
    guard = Guard(store, GuardPolicy(principal_per_minute=10_000, structure_per_minute=10_000))
    answered: list[str] = []
    lock = threading.Lock()

    def worker(w: int) -> None:
        for i in range(15):
            c = ctx(T0 + timedelta(seconds=i), principal=f"worker-{w}", stepped_up=True)
            if guard.admit(c).allowed:
                guard.observe(c, LookupOutcome.hit(subject(w * 100 + i)))
                with lock:
                    answered.append(c.lookup_id)

    threads = [threading.Thread(target=worker, args=(w,)) for w in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(answered) == 20
    assert store.count_distinct(f"np:{PHARMACY}:2025-03-10") == 20


def test_given_an_abandoned_lookup_then_its_slot_is_freed(store: CounterStore) -> None:
    guard = Guard(store, GuardPolicy(no_proof_soft=1, no_proof_hard=1))
    first = ctx(T0, principal="a")
    assert guard.admit(first).allowed
    blocked = guard.admit(ctx(T0 + timedelta(seconds=1), principal="b"))
    assert blocked.code == "guard.no_proof_quota"
    assert blocked.retry_after == 30
    guard.abandon(first)
    assert guard.admit(ctx(T0 + timedelta(seconds=2), principal="b")).allowed


def test_given_a_lookup_that_never_reports_then_its_hold_lapses(store: CounterStore) -> None:
    guard = Guard(store, GuardPolicy(no_proof_soft=1, no_proof_hard=1))
    assert guard.admit(ctx(T0, principal="a")).allowed
    assert not guard.admit(ctx(T0 + timedelta(seconds=29), principal="b")).allowed
    assert guard.admit(ctx(T0 + timedelta(seconds=31), principal="b")).allowed


# --------------------------------------------------------------------------- daily caps


def test_given_small_cap_then_step_up_at_80_percent_and_suspension_at_the_cap(
    store: CounterStore,
) -> None:
    guard = Guard(store, GuardPolicy(daily_caps={"optician": 10}))

    def look(i: int, *, stepped_up: bool = False) -> tuple[Admission, list[Signal]]:
        c = ctx(T0 + timedelta(minutes=i), category="optician", with_proof=True)
        if stepped_up:
            c = ctx(c.at, category="optician", with_proof=True, stepped_up=True)
        admission = guard.admit(c)
        signals = guard.observe(c, LookupOutcome.hit(subject(i))) if admission.allowed else []
        return admission, signals

    for i in range(7):
        assert look(i)[0].allowed
    admission, signals = look(7)
    assert admission.allowed
    assert [s.code for s in signals] == ["guard.daily_cap_soft"]
    admission, _ = look(8)
    assert (admission.verdict, admission.code) == (Verdict.STEP_UP, "guard.daily_cap_soft")
    assert look(8, stepped_up=True)[0].allowed
    admission, signals = look(9, stepped_up=True)
    assert admission.allowed
    assert [(s.level, s.code) for s in signals] == [(Level.HARD, "guard.daily_cap")]
    assert signals[0].figures == {"distinct": 10, "cap": 10}
    other = ctx(T0 + timedelta(hours=1), principal="o", category="optician", with_proof=True)
    denied = guard.admit(other)
    assert denied.code == "guard.daily_cap"


def test_given_history_then_the_cap_is_calibrated_and_asked_once_a_day(
    store: CounterStore,
) -> None:
    history = FixedHistory([20] * 28)
    guard = Guard(store, GuardPolicy(daily_caps={"optician": 10}), history)
    for i in range(23):
        c = ctx(T0 + timedelta(minutes=i), category="optician", with_proof=True)
        assert guard.admit(c).verdict is not Verdict.DENY
        guard.observe(c, LookupOutcome.hit(subject(i)))
    assert guard.caps(PHARMACY, "optician", date(2025, 3, 10)).hard == 30
    assert history.calls == [(PHARMACY, date(2025, 3, 10), 28)]


def test_given_history_failing_then_the_profession_default_applies(store: CounterStore) -> None:
    guard = Guard(store, history=BrokenHistory())
    assert guard.caps(PHARMACY, "pharmacy", date(2025, 3, 10)).hard == 800
    assert guard.admit(ctx(T0, with_proof=True)).allowed


# --------------------------------------------------------------------------- rates


def test_given_too_many_lookups_a_minute_then_throttled_and_later_allowed(
    store: CounterStore,
) -> None:
    guard = Guard(store, GuardPolicy(principal_per_minute=5))
    results = [guard.admit(ctx(T0 + timedelta(seconds=i), with_proof=True)) for i in range(7)]
    assert [a.allowed for a in results] == [True] * 5 + [False] * 2
    assert results[5].code == "guard.rate"
    assert results[5].throttled
    assert results[5].retry_after == 60
    assert [s.code for s in results[5].signals] == ["guard.rate"]
    assert results[6].signals == ()  # one signal an hour, not one per refusal
    assert guard.admit(ctx(T0 + timedelta(seconds=61), with_proof=True)).allowed


def test_given_many_principals_then_structure_and_global_limits_apply(
    store: CounterStore,
) -> None:
    policy = GuardPolicy(structure_per_minute=4, global_per_minute=6)
    guard = Guard(store, policy)
    codes = [guard.admit(ctx(T0, principal=f"p{i}", with_proof=True)).code for i in range(5)]
    assert codes == ["guard.ok"] * 4 + ["guard.structure_rate"]
    other = [
        guard.admit(
            LookupContext(f"q{i}", ActorKind.SOFTWARE, OTHER_PHARMACY, "pharmacy", True, T0)
        ).code
        for i in range(3)
    ]
    assert other == ["guard.ok", "guard.ok", "guard.global_rate"]


# --------------------------------------------------------------------------- canaries, proofs


def test_given_a_canary_lookup_then_hard_signal_and_next_lookup_denied(
    store: CounterStore,
) -> None:
    guard = Guard(store)
    c = ctx(T0, with_proof=True)
    assert guard.admit(c).allowed
    signals = guard.observe(c, LookupOutcome.canary(subject(999)))
    assert [(s.level, s.code) for s in signals] == [(Level.HARD, "guard.canary")]
    assert guard.suspended(c.principal_id)
    assert guard.admit(ctx(T0 + timedelta(seconds=1))).code == "guard.suspended"


def test_given_forged_proof_then_hard_and_revoked_follows_policy(store: CounterStore) -> None:
    guard = Guard(store)
    forged = guard.reject_proof(ctx(T0, principal="a"), ProofFault.FORGED)
    assert [(s.level, s.code) for s in forged] == [(Level.HARD, "guard.proof_forged")]
    assert guard.suspended("a")
    lenient = Guard(store, GuardPolicy(revoked_proof_level=Level.SOFT))
    revoked = lenient.reject_proof(ctx(T0, principal="b"), ProofFault.REVOKED)
    assert [(s.level, s.code) for s in revoked] == [(Level.SOFT, "guard.proof_revoked")]
    assert not lenient.suspended("b")
    strict = guard.reject_proof(ctx(T0, principal="c"), ProofFault.REVOKED)
    assert strict[0].hard


# --------------------------------------------------------------------------- step-up


def test_given_step_up_ignored_then_suspended_after_the_tenth_refusal(
    store: CounterStore,
) -> None:
    guard = Guard(store, GuardPolicy(no_proof_soft=1, no_proof_hard=20))
    c = ctx(T0)
    guard.admit(c)
    guard.observe(c, LookupOutcome.hit(subject(0)))
    verdicts = [guard.admit(ctx(T0 + timedelta(minutes=1 + i))) for i in range(10)]
    assert [a.verdict for a in verdicts] == [Verdict.STEP_UP] * 9 + [Verdict.DENY]
    assert verdicts[-1].code == "guard.step_up_ignored"
    assert [s.code for s in verdicts[-1].signals] == ["guard.step_up_ignored"]
    assert guard.suspended(c.principal_id)


def test_clearing_a_suspension_forgets_pace_and_misses(store: CounterStore) -> None:
    guard = Guard(store)
    run = scrape(guard, 100, interval=timedelta(seconds=1), found=lambda i: False)
    assert run.suspended
    guard.clear_suspension("client:lgo-pharma-1")
    assert not guard.suspended("client:lgo-pharma-1")
    assert guard.admit(ctx(T0 + timedelta(hours=1))).allowed


# --------------------------------------------------------------------------- invoices


def _looked_up(guard: Guard, day: datetime, count: int) -> None:
    for i in range(count):
        c = ctx(day + timedelta(seconds=30 * i), with_proof=True, principal=f"w{i % 7}")
        assert guard.admit(c).allowed
        guard.observe(c, LookupOutcome.hit(subject(i)))


def test_given_few_invoices_two_days_later_then_a_soft_alert_once(store: CounterStore) -> None:
    guard = Guard(store)
    _looked_up(guard, T0, 60)
    for i in range(5):
        guard.record_invoice(PHARMACY, subject(i), date(2025, 3, 10))
    guard.record_invoice(PHARMACY, subject(500), date(2025, 3, 10))  # not looked up
    two_days_later = ctx(T0 + timedelta(days=2), with_proof=True)
    guard.admit(two_days_later)
    signals = guard.observe(two_days_later, LookupOutcome.hit(subject(1)))
    assert [(s.level, s.code) for s in signals] == [(Level.SOFT, "guard.invoice_ratio")]
    assert signals[0].figures == {
        "day": "2025-03-10",
        "looked_up": 60,
        "invoiced": 5,
        "min_percent": 10,
    }
    again = ctx(T0 + timedelta(days=2, minutes=5), with_proof=True)
    guard.admit(again)
    assert guard.observe(again, LookupOutcome.hit(subject(2))) == []


def test_given_enough_invoices_then_no_alert(store: CounterStore) -> None:
    guard = Guard(store)
    _looked_up(guard, T0, 60)
    for i in range(6):
        guard.record_invoice(PHARMACY, subject(i), date(2025, 3, 10))
    c = ctx(T0 + timedelta(days=2), with_proof=True)
    guard.admit(c)
    assert guard.observe(c, LookupOutcome.hit(subject(1))) == []


def test_day_summary_gives_each_active_structure(store: CounterStore) -> None:
    guard = Guard(store)
    _looked_up(guard, T0, 12)
    guard.record_invoice(PHARMACY, subject(3), date(2025, 3, 10))
    summary = guard.day_summary(date(2025, 3, 10))
    assert [
        (f.structure, f.category, f.distinct_lookups, f.distinct_invoiced) for f in summary
    ] == [(PHARMACY, "pharmacy", 12, 1)]
    assert guard.day_summary(date(2025, 3, 11)) == []


# --------------------------------------------------------------------------- no identity out


def test_signals_carry_counts_never_subjects(store: CounterStore) -> None:
    guard = Guard(store)
    run = scrape(guard, 200, interval=timedelta(seconds=3), stepped_up=True)
    text = json.dumps([[s.code, s.message, dict(s.figures)] for s in run.signals])
    assert run.signals
    assert not any(subject(i) in text for i in range(200))


# --------------------------------------------------------------------------- fail closed


@pytest.fixture
def dead_redis() -> Iterator[RedisCounterStore]:
    """A store whose Redis is gone: nothing listens on port 9, and no retry is made."""
    client = redis.Redis(
        host="127.0.0.1",
        port=9,
        socket_connect_timeout=0.2,
        socket_timeout=0.2,
        retry=Retry(NoBackoff(), 0),
    )
    try:
        yield RedisCounterStore(client)
    finally:
        client.close()


def test_given_redis_down_then_admit_denies_with_guard_unavailable(
    dead_redis: RedisCounterStore,
) -> None:
    guard = Guard(dead_redis)
    admission = guard.admit(ctx(T0, with_proof=True))
    assert (admission.verdict, admission.code) == (Verdict.DENY, "guard.unavailable")
    with pytest.raises(GuardUnavailable):
        guard.observe(ctx(T0), LookupOutcome.hit(subject(1)))
    with pytest.raises(GuardUnavailable):
        guard.suspended("p")
    with pytest.raises(GuardUnavailable):
        guard.mark_suspended("p")
    with pytest.raises(GuardUnavailable):
        guard.record_invoice(PHARMACY, subject(1), date(2025, 3, 10))
    with pytest.raises(GuardUnavailable):
        guard.day_summary(date(2025, 3, 10))
    with pytest.raises(CounterStoreUnavailable):
        dead_redis.count_distinct("x")


def test_given_redis_down_then_canaries_and_forged_proofs_still_signal(
    dead_redis: RedisCounterStore,
) -> None:
    guard = Guard(dead_redis)
    assert guard.observe(ctx(T0), LookupOutcome.canary(subject(1)))[0].code == "guard.canary"
    assert guard.reject_proof(ctx(T0), ProofFault.FORGED)[0].hard
    guard.abandon(ctx(T0))  # does not raise: the hold lapses by itself


# --------------------------------------------------------------------------- properties


def _mostly(percent: int) -> st.SearchStrategy[bool]:
    return st.integers(min_value=0, max_value=99).map(lambda n: n < percent)


# Attack-like runs (mostly found, mostly without proof, often stepped up) with honest
# lookups mixed in, so that the quota is actually reached in most examples.
steps = st.lists(
    st.tuples(
        _mostly(80),  # found
        st.integers(min_value=0, max_value=60),  # which beneficiary (repeats happen)
        _mostly(15),  # with card proof
        _mostly(70),  # stepped up
        st.integers(min_value=1, max_value=6),  # principal
        st.integers(min_value=0, max_value=5000),  # milliseconds since the previous lookup
    ),
    min_size=20,
    max_size=150,
)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(steps=steps)
def test_for_any_interleaving_no_proof_answers_never_exceed_the_hard_quota(
    make_store: StoreFactory, steps: list[tuple[bool, int, bool, bool, int, int]]
) -> None:
    store = make_store()
    guard = Guard(store)
    at = T0
    answered_without_proof: set[str] = set()
    suspended: set[str] = set()
    for found, who, with_proof, stepped_up, principal, gap_ms in steps:
        at += timedelta(milliseconds=gap_ms)
        c = ctx(at, principal=f"p{principal}", with_proof=with_proof, stepped_up=stepped_up)
        admission = guard.admit(c)
        if c.principal_id in suspended:
            assert admission.code == "guard.suspended"
        if not admission.allowed:
            continue
        outcome = LookupOutcome.hit(subject(who)) if found else LookupOutcome.miss()
        signals = guard.observe(c, outcome)
        if found and not with_proof:
            answered_without_proof.add(subject(who))
        assert len(answered_without_proof) <= 20
        if any(s.hard for s in signals) or any(s.hard for s in admission.signals):
            suspended.add(c.principal_id)
