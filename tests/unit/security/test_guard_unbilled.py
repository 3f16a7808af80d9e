"""People answered without card proof and never invoiced, on both counter stores.

The sliding windows of ``guard.unbilled`` and ``guard.unbilled_pending``, invoices that
clear them (late ones included), the care dates that count as people, the step-ups
ignored per day and over 30 days, and a step-up satisfied only when one was asked.
Decisions read the timestamps stored in the data, so a simulated clock drives Redis too.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.support.guard_keys import lookup_keys, store_limits
from tests.support.services import RedisDatabase
from tierspayant.security.guard import (
    ActorKind,
    CounterStore,
    Guard,
    GuardPolicy,
    LookupContext,
    LookupOutcome,
    MemoryCounterStore,
    RedisCounterStore,
    Verdict,
    calibrate,
)
from tierspayant.security.guard.counters import (
    ANSWERED_BY_KEEP,
    UnbilledPlan,
    answered_by,
    answered_by_add,
)

T0 = datetime(2025, 3, 10, 8, 0, tzinfo=UTC)
PHARMACY = "750044444"
# Only the never-invoiced rules bind: the daily quota without proof is out of the way.
WIDE = GuardPolicy(no_proof_soft=10_000, no_proof_hard=10_000, no_proof_watch=10_000)


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
def store(request: pytest.FixtureRequest) -> Iterator[CounterStore]:
    if request.param == "memory":
        yield MemoryCounterStore()
        return
    db: RedisDatabase = request.getfixturevalue("redis_db")
    client = db.client()
    client.flushdb()
    try:
        yield RedisCounterStore(client, prefix="tp:unbilled-test:")
    finally:
        client.flushdb()
        client.close()


def ctx(
    at: datetime,
    *,
    principal: str = "psc:phished",
    stepped_up: bool = True,
    with_proof: bool = False,
    care_date: date | None = None,
) -> LookupContext:
    return LookupContext(
        principal,
        ActorKind.SOFTWARE,
        PHARMACY,
        "pharmacy",
        with_proof,
        at,
        stepped_up,
        care_date=care_date,
    )


def look(guard: Guard, c: LookupContext, subject: str) -> str:
    admission = guard.admit(c)
    if admission.allowed:
        signals = guard.observe(c, LookupOutcome.hit(subject))
        return "suspended" if any(s.hard for s in signals) else "answered"
    return admission.code


def test_a_scraper_that_steps_up_gets_at_most_the_stated_bound(store: CounterStore) -> None:
    # Given a scraper able to satisfy every step-up, one new person every 10 minutes
    guard = Guard(store, WIDE)
    answered: list[datetime] = []
    codes: list[str] = []
    at = T0
    while at < T0 + timedelta(days=60):
        result = look(guard, ctx(at), f"person-{len(answered)}")
        if result == "answered":
            answered.append(at)
        else:
            codes.append(result)
        if result == "guard.suspended" or guard.suspended("psc:phished"):
            break
        at += timedelta(minutes=10)
    # Then: 30 people awaiting an invoice stop it (refused, not suspended) until they are
    # overdue 7 days later; above 50 overdue it is suspended, with at most 50 + 30 people
    assert len(answered) <= WIDE.unbilled_hard - 1 + WIDE.unbilled_pending
    assert codes[0] == "guard.unbilled_pending"
    assert "guard.unbilled" in codes
    assert guard.suspended("psc:phished")
    assert answered[-1] - answered[0] < timedelta(days=15)


def test_a_scraper_that_cannot_step_up_is_asked_at_40_overdue(store: CounterStore) -> None:
    guard = Guard(store, WIDE)
    for i in range(30):
        assert look(guard, ctx(T0 + timedelta(minutes=i), stepped_up=False), f"p{i}") == (
            "answered"
        )
    # Seven days later the 30 are overdue; 10 more, then the 41st asks for step-up
    later = T0 + timedelta(days=7, minutes=1)
    for i in range(10):
        assert look(guard, ctx(later + timedelta(minutes=i), stepped_up=False), f"q{i}") == (
            "answered"
        )
    later += timedelta(days=7, hours=1)
    admission = guard.admit(ctx(later, stepped_up=False))
    assert (admission.verdict, admission.code) == (Verdict.STEP_UP, "guard.unbilled_soft")
    pending, mine, ours = guard.unbilled(ctx(later))
    assert (pending, mine, ours) == (0, 40, 40)


def test_invoiced_people_never_count_even_when_the_invoice_lags(store: CounterStore) -> None:
    guard = Guard(store, WIDE)
    for i in range(25):
        at = T0 + timedelta(minutes=i)
        assert look(guard, ctx(at, principal="psc:counter"), f"p{i}") == "answered"
    # 20 invoiced the next day, 3 nine days later (after the grace: they leave the
    # overdue people), 2 never
    for i in range(20):
        guard.record_invoice(PHARMACY, f"p{i}", T0.date())
    assert guard.unbilled(ctx(T0 + timedelta(days=1), principal="psc:counter")) == (5, 0, 0)
    after_grace = T0 + timedelta(days=8)
    assert guard.unbilled(ctx(after_grace, principal="psc:counter")) == (0, 5, 5)
    for i in range(20, 23):
        guard.record_invoice(PHARMACY, f"p{i}", (T0 + timedelta(days=1)).date())
    assert guard.unbilled(ctx(after_grace, principal="psc:counter")) == (0, 2, 2)
    # And after 30 days even the never-invoiced ones leave the window
    assert guard.unbilled(ctx(T0 + timedelta(days=31), principal="psc:counter")) == (0, 0, 0)


def test_an_invoice_for_care_before_the_lookup_does_not_clear_it(store: CounterStore) -> None:
    guard = Guard(store, WIDE)
    assert look(guard, ctx(T0), "p") == "answered"
    guard.record_invoice(PHARMACY, "p", (T0 - timedelta(days=5)).date())
    assert guard.unbilled(ctx(T0 + timedelta(days=8))) == (0, 1, 1)


def test_many_accounts_of_one_structure_are_refused_together(store: CounterStore) -> None:
    guard = Guard(store, WIDE)
    for i in range(51):
        c = ctx(T0 + timedelta(minutes=i), principal=f"psc:user-{i % 3}")
        # The structure's pending people reach 30 first
        result = look(guard, c, f"p{i}")
        assert result == ("answered" if i < 30 else "guard.unbilled_pending"), i
    for i in range(21):
        c = ctx(T0 + timedelta(days=7, minutes=i + 1), principal=f"psc:user-{i % 3}")
        assert look(guard, c, f"q{i}") == "answered", i
    # 51 overdue for the structure, 17 for each account: refused, nobody suspended
    late = T0 + timedelta(days=14, minutes=30)
    assert look(guard, ctx(late, principal="psc:user-0"), "r") == "guard.unbilled"
    assert not guard.suspended("psc:user-0")
    # A lookup with the card still works
    assert look(guard, ctx(late, principal="psc:user-0", with_proof=True), "r") == "answered"


def test_each_care_date_beyond_the_second_counts_as_a_person(store: CounterStore) -> None:
    guard = Guard(
        store,
        GuardPolicy(no_proof_watch=100, no_proof_soft=100, no_proof_hard=100, unbilled_pending=100),
    )
    for day in range(40):
        care = T0.date() + timedelta(days=day)
        c = ctx(T0 + timedelta(minutes=day), care_date=care)
        assert look(guard, c, "same-person") == "answered"
    # 1 person + 38 dates beyond the second
    assert store.count_distinct(f"np:{PHARMACY}:2025-03-10") == 39
    assert guard.unbilled(ctx(T0 + timedelta(hours=1)))[0] == 39
    # The same date again costs nothing more
    c = ctx(T0 + timedelta(hours=2), care_date=T0.date() + timedelta(days=39))
    assert look(guard, c, "same-person") == "answered"
    assert store.count_distinct(f"np:{PHARMACY}:2025-03-10") == 39


def test_step_ups_ignored_once_an_hour_suspend_within_the_day(store: CounterStore) -> None:
    guard = Guard(store, GuardPolicy(no_proof_soft=1, no_proof_hard=20))
    assert look(guard, ctx(T0, stepped_up=False), "p0") == "answered"
    codes = [
        guard.admit(ctx(T0 + timedelta(hours=h, minutes=1), stepped_up=False)).code
        for h in range(10)
    ]
    assert codes[:9] == ["guard.no_proof_soft"] * 9
    assert codes[9] == "guard.step_up_ignored"
    assert guard.suspended("psc:phished")


def test_step_ups_ignored_once_a_day_suspend_within_20_days(store: CounterStore) -> None:
    guard = Guard(store, GuardPolicy(no_proof_soft=1, no_proof_hard=20))
    codes = []
    for day in range(25):
        at = T0 + timedelta(days=day)
        look(guard, ctx(at, stepped_up=False), f"p{day}")
        codes.append(guard.admit(ctx(at + timedelta(minutes=1), stepped_up=False)).code)
        if guard.suspended("psc:phished"):
            break
    assert codes[-1] == "guard.step_up_ignored"
    assert len(codes) == 20


def test_a_login_satisfies_a_step_up_only_when_one_was_asked(store: CounterStore) -> None:
    guard = Guard(store, GuardPolicy(no_proof_soft=1, no_proof_hard=20))
    assert guard.record_step_up("psc:phished", T0) is None  # nothing asked: just a login
    assert look(guard, ctx(T0, stepped_up=False), "p0") == "answered"
    assert guard.admit(ctx(T0 + timedelta(minutes=1), stepped_up=False)).code == (
        "guard.no_proof_soft"
    )
    until = guard.record_step_up("psc:phished", T0 + timedelta(minutes=2))
    assert until == T0 + timedelta(minutes=17)
    assert look(guard, ctx(T0 + timedelta(minutes=3), stepped_up=False), "p1") == "answered"
    # 15 minutes later the soft limit asks again
    assert guard.admit(ctx(T0 + timedelta(minutes=18), stepped_up=False)).verdict is (
        Verdict.STEP_UP
    )
    # A step-up asked more than a day ago is not what a login answers
    assert guard.record_step_up("psc:phished", T0 + timedelta(days=2)) is None


def test_allowances_without_proof_are_calibrated_on_what_the_structure_invoices() -> None:
    policy = GuardPolicy()
    # A pharmacy that invoiced 140 of the people it looked up each day for four weeks may
    # answer 105 a day without card proof (half of 1.5 x its p95), and have as many
    # awaiting an invoice; the early warning is off for it
    caps = calibrate(policy, "pharmacy", [150] * 28, [140] * 27 + [400])
    assert (caps.no_proof_soft, caps.no_proof_hard, caps.pending) == (84, 105, 105)
    assert caps.no_proof_watch == 105
    # Six days are not a history: the defaults hold
    caps = calibrate(policy, "pharmacy", [150] * 6, [140] * 6)
    assert (caps.no_proof_watch, caps.no_proof_soft, caps.no_proof_hard, caps.pending) == (
        2,
        10,
        20,
        30,
    )
    # A structure that invoices little never gets less than the defaults
    caps = calibrate(policy, "pharmacy", [150] * 28, [3] * 28)
    assert (caps.no_proof_hard, caps.pending) == (20, 30)


# Random runs of the operations on the never-invoiced people, the same on both stores: a
# lookup without proof admitted (its slots held) or observed (its holds released, the
# person counted), an invoice, the figures read. The memory store walks its sets through
# time-ordered heaps, Redis through sorted sets; every count must agree, whatever the
# order of answers, invoices and re-answers.
_SUBJECTS = [f"b{i}" for i in range(6)]
_OPS = st.lists(
    st.tuples(
        st.sampled_from(["check", "answer", "invoice", "count"]),
        st.sampled_from(_SUBJECTS),
        st.integers(min_value=0, max_value=3_000),  # ms after the previous operation
        st.integers(min_value=-2_000, max_value=500),  # invoice care time vs now
    ),
    max_size=40,
)
_KEYS = lookup_keys("x", "y")  # scopes p:x and s:y
_LIMITS = store_limits(
    grace_ms=2_000,
    unbilled_window_ms=6_000,
    slack_ms=100,
    overdue_limit=4,
    hold_ms=50,
    unbilled_ttl=600,
)


def _run_unbilled(store: CounterStore, ops: list[tuple[str, str, int, int]]) -> list[object]:
    now = 1_000_000
    seen: list[object] = []
    keys, limits = _KEYS, _LIMITS
    for index, (op, subject, step, care_offset) in enumerate(ops):
        now += step
        if op == "check":
            reading = store.admit_lookup(keys, limits, now, f"t{index}", False, True, 3, 10**6)
            seen.append((reading.pending, reading.overdue, reading.held))
        elif op == "answer":
            store.observe_lookup(keys, limits, now, f"t{index - 1}", True, "h", subject, None, ())
        elif op == "invoice":
            store.unbilled_invoice(
                keys.scopes[1], keys.bill, keys.by, subject, now + care_offset, 100, 600
            )
        else:
            plan = UnbilledPlan(
                scopes=keys.scopes,
                bill_key=keys.bill,
                now_ms=now,
                grace_ms=limits.grace_ms,
                window_ms=limits.unbilled_window_ms,
                slack_ms=limits.slack_ms,
                overdue_limit=limits.overdue_limit,
                pending_limit=3,
                token="",
                hold_ms=limits.hold_ms,
                ttl_seconds=limits.unbilled_ttl,
                reserve=False,
            )
            counts = store.unbilled(plan)
            seen.append((counts.pending, counts.overdue, counts.reserved))
    return seen


@pytest.mark.redis
@settings(max_examples=300, deadline=None)
@given(ops=_OPS)
def test_memory_and_redis_stores_agree_on_every_unbilled_count(
    redis_db: RedisDatabase, ops: list[tuple[str, str, int, int]]
) -> None:
    client = redis_db.client()
    try:
        client.flushdb()
        expected = _run_unbilled(RedisCounterStore(client, prefix="tp:unbilled-prop:"), ops)
        assert _run_unbilled(MemoryCounterStore(), ops) == expected
    finally:
        client.flushdb()
        client.close()


def test_an_invoice_clears_its_person_for_every_colleague_who_answered_them(
    store: CounterStore,
) -> None:
    """A human checks rights at the counter, the pharmacy's software account answers the
    same person again, and the invoice comes after the grace, once the human's people have
    been judged overdue: the person is invoiced for both. Keeping only the last principal
    to answer left them never invoiced for the first, whose count then grew towards a
    suspension with every shared patient invoiced late."""
    guard = Guard(store, WIDE)
    for i in range(12):
        at = T0 + timedelta(minutes=2 * i)
        assert look(guard, ctx(at, principal="psc:counter"), f"p{i}") == "answered"
        later = at + timedelta(minutes=1)
        assert look(guard, ctx(later, principal="software:lgo"), f"p{i}") == "answered"
    after_grace = T0 + timedelta(days=8)
    # A lookup of each after the grace: their scopes are swept, the 12 are overdue.
    assert look(guard, ctx(after_grace, principal="psc:counter"), "q0") == "answered"
    assert look(guard, ctx(after_grace, principal="software:lgo"), "q1") == "answered"
    assert guard.unbilled(ctx(after_grace, principal="psc:counter"))[1] == 12
    for i in range(12):
        guard.record_invoice(PHARMACY, f"p{i}", T0.date())
    later = after_grace + timedelta(minutes=5)
    assert guard.unbilled(ctx(later, principal="psc:counter"))[1] == 0
    assert guard.unbilled(ctx(later, principal="software:lgo"))[1] == 0


def test_the_principals_who_answered_a_person_are_kept_once_the_latest_last() -> None:
    value = None
    for scope in ["p:a", "p:b", "p:a", "p:c"]:
        value = answered_by_add(value, scope)
    assert answered_by(value) == ["p:b", "p:a", "p:c"]
    for n in range(40):
        value = answered_by_add(value, f"p:{n}")
    assert answered_by(value) == [f"p:{n}" for n in range(24, 40)]
    assert len(answered_by(value)) == ANSWERED_BY_KEEP
