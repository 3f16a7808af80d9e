"""The guard's threshold table: its decisions against expectations worked out by hand.

Given random counts (and random policies), the admission's verdict and the observation's
signals are compared with the rules as ``docs/guard.md`` states them, written out here
one by one, not with the table's own evaluation. A stub counter store hands the guard the
counts, so every branch is reached in a few hundred examples.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import cast

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tierspayant.security.guard import (
    ActorKind,
    AdmitReading,
    Caps,
    CounterStore,
    Guard,
    GuardPolicy,
    LookupContext,
    LookupKeys,
    LookupOutcome,
    ObserveReading,
    StoreLimits,
    UnbilledCounts,
    UnbilledPlan,
    Verdict,
)
from tierspayant.security.guard.thresholds import (
    CAP_HARD,
    CAP_SOFT,
    THRESHOLDS,
    Comparison,
    Counter,
    Grade,
    Judged,
    Scope,
    Threshold,
    grade,
    row_of,
)

T0 = datetime(2025, 3, 10, 8, 0, tzinfo=UTC)
DOCS = Path(__file__).resolve().parents[3] / "docs" / "guard.md"


@dataclass
class StubStore:
    """Hands the guard fixed counts; every once-key is free and every hold is granted."""

    admission_counts: AdmitReading = field(default_factory=AdmitReading)
    observation_counts: ObserveReading = field(default_factory=ObserveReading)
    flags: list[str] = field(default_factory=list)
    # Overdue people of the principal and of the structure, and people awaiting an invoice.
    unbilled_counts: tuple[int, int, int] = (0, 0, 0)

    def unbilled(self, plan: UnbilledPlan) -> UnbilledCounts:
        overdue_p, overdue_s, pending = self.unbilled_counts
        return UnbilledCounts((pending, pending), (overdue_p, overdue_s), True)

    def hash_all(self, key: str) -> dict[str, str]:
        return {}

    def push_recent(self, key: str, value: str, keep: int, ttl_seconds: int) -> list[str]:
        return [value]

    def admit_lookup(self, *args: object) -> AdmitReading:
        overdue_p, overdue_s, pending = self.unbilled_counts
        return self.admission_counts._replace(
            pending=(pending, pending), overdue=(overdue_p, overdue_s), held=True
        )

    def observe_lookup(
        self,
        keys: LookupKeys,
        limits: StoreLimits,
        now_ms: int,
        token: str,
        no_proof: bool,
        outcome: str,
        subject: str | None,
        care_date: str | None,
        once_keys: tuple[str, ...],
        epoch_key: str | None = None,
    ) -> ObserveReading:
        return self.observation_counts._replace(once_set=(False,) * len(once_keys))

    def release_lookup(self, keys: LookupKeys, token: str) -> None:
        return None

    def step_up(self, *args: object) -> tuple[int, bool]:
        return 1, True

    def set_once(self, key: str, ttl_seconds: int) -> bool:
        return True

    def set_flag(self, key: str, ttl_seconds: int | None) -> None:
        self.flags.append(key)

    def claim(self, once_keys: Sequence[str], ttl_seconds: int, flag_key: str | None) -> list[bool]:
        if flag_key is not None:
            self.flags.append(flag_key)
        return [True] * len(once_keys)


def _policy(
    cap: int,
    soft_percent: int,
    watch: int,
    soft: int,
    extra: int,
    miss_soft: int,
    miss_extra: int,
    min_lookups: int,
    inv_min: int,
    inv_pct: int,
) -> GuardPolicy:
    return GuardPolicy(
        daily_caps={"gp": cap},
        soft_percent=soft_percent,
        no_proof_watch=watch,
        no_proof_soft=soft,
        no_proof_hard=soft + extra,
        miss_soft_percent=miss_soft,
        miss_hard_percent=min(100, miss_soft + miss_extra),
        miss_min_lookups=min_lookups,
        invoice_min_lookups=inv_min,
        invoice_min_percent=inv_pct,
    )


policies = st.builds(
    _policy,
    st.integers(1, 40),
    st.integers(1, 100),
    st.integers(1, 12),
    st.integers(1, 10),
    st.integers(0, 10),
    st.integers(1, 100),
    st.integers(0, 60),
    st.integers(1, 30),
    st.integers(0, 20),
    st.integers(0, 100),
)
# Hits, misses and misreads (scans that did not parse), newest first.
outcome_lists = st.lists(st.sampled_from("hmr"), max_size=30).map(tuple)


def context(*, with_proof: bool, stepped_up: bool = False) -> LookupContext:
    return LookupContext(
        "psc:alice", ActorKind.SOFTWARE, "750000001", "gp", with_proof, T0, stepped_up
    )


def over(part: int, whole: int, min_whole: int, percent: int) -> bool:
    return whole >= min_whole and part * 100 > percent * whole


def shares(outcomes: tuple[str, ...]) -> tuple[int, int, int, int]:
    """Misses among lookups (misreads are not lookups); misses and misreads among all,
    counted only when there is a misread."""
    misses, misreads = outcomes.count("m"), outcomes.count("r")
    mixed = misses + misreads if misreads else 0
    return misses, len(outcomes) - misreads, mixed, len(outcomes)


@settings(max_examples=400, deadline=None)
@given(
    policy=policies,
    seen=st.integers(0, 50),
    outcomes=outcome_lists,
    answered=st.integers(0, 25),
    with_proof=st.booleans(),
    stepped_up=st.booleans(),
    unbilled=st.tuples(st.integers(0, 60), st.integers(0, 60), st.integers(0, 40)),
)
def test_admission_decides_as_the_documented_rules(
    policy: GuardPolicy,
    seen: int,
    outcomes: tuple[str, ...],
    answered: int,
    with_proof: bool,
    stepped_up: bool,
    unbilled: tuple[int, int, int],
) -> None:
    # Given counts as the store would read them
    store = StubStore(
        AdmitReading(seen=seen, outcomes=outcomes, answered=answered),
        unbilled_counts=unbilled,
    )
    overdue_p, overdue_s, pending = unbilled
    suspended = False
    guard = Guard(cast(CounterStore, store), policy)
    cap = policy.daily_caps["gp"]
    soft = max(1, -(-cap * policy.soft_percent // 100))  # soft_percent of the cap, rounded up
    misses, lookups, mixed, entries = shares(outcomes)
    p = policy
    no_proof = not with_proof
    # Then, worked out by hand: hard limits first (in the documented order), then soft ones
    if seen >= cap:
        expected = (Verdict.DENY, "guard.daily_cap")
    elif no_proof and over(misses, lookups, p.miss_min_lookups, p.miss_hard_percent):
        expected = (Verdict.DENY, "guard.miss_ratio")
    elif no_proof and answered >= p.no_proof_hard:
        expected = (Verdict.DENY, "guard.no_proof_quota")
    # People answered without proof and never invoiced (more than 50): suspension; too
    # many awaiting an invoice (uncalibrated: 30): refusal; neither is waived by a step-up
    elif no_proof and max(overdue_p, overdue_s) >= 51:
        expected = (Verdict.DENY, "guard.unbilled")
        suspended = overdue_p >= 51  # the structure's own figure refuses only
    elif no_proof and pending >= p.unbilled_pending:
        expected = (Verdict.DENY, "guard.unbilled_pending")
    elif not stepped_up and seen >= soft:
        expected = (Verdict.STEP_UP, "guard.daily_cap_soft")
    elif (
        not stepped_up
        and no_proof
        and over(misses, lookups, p.miss_min_lookups, p.miss_soft_percent)
    ):
        expected = (Verdict.STEP_UP, "guard.miss_ratio_soft")
    elif (
        not stepped_up
        and no_proof
        and over(mixed, entries, p.miss_min_lookups, p.miss_soft_percent)
    ):
        expected = (Verdict.STEP_UP, "guard.misread_ratio_soft")
    elif not stepped_up and no_proof and answered >= p.no_proof_soft:
        expected = (Verdict.STEP_UP, "guard.no_proof_soft")
    elif not stepped_up and no_proof and max(overdue_p, overdue_s) >= 40:
        expected = (Verdict.STEP_UP, "guard.unbilled_soft")
    else:
        expected = (Verdict.ALLOW, "guard.ok")
    # When the guard admits the lookup
    admission = guard.admit(context(with_proof=with_proof, stepped_up=stepped_up))
    assert (admission.verdict, admission.code) == expected
    # Refusing at admission never suspends by itself, except for the never-billed bound
    assert store.flags == (["susp:psc:alice"] if suspended else [])


@settings(max_examples=400, deadline=None)
@given(
    policy=policies,
    hit=st.booleans(),
    with_proof=st.booleans(),
    seen=st.integers(0, 50),
    outcomes=outcome_lists,
    answered=st.integers(0, 25),
    checked=st.booleans(),
    looked=st.integers(0, 40),
    invoiced_share=st.integers(0, 100),
)
def test_observation_signals_as_the_documented_rules(
    policy: GuardPolicy,
    hit: bool,
    with_proof: bool,
    seen: int,
    outcomes: tuple[str, ...],
    answered: int,
    checked: bool,
    looked: int,
    invoiced_share: int,
) -> None:
    # Given the counts after the outcome is counted
    invoiced = looked * invoiced_share // 100
    counts = ObserveReading(outcomes, seen, answered, checked, looked, invoiced)
    store = StubStore(observation_counts=counts)
    guard = Guard(cast(CounterStore, store), policy)
    p = policy
    cap = p.daily_caps["gp"]
    soft = max(1, -(-cap * p.soft_percent // 100))
    misses, lookups, mixed, entries = shares(outcomes)
    no_proof = not with_proof
    # Then, worked out by hand, in the order the signals come out
    expected: list[str] = []
    if no_proof:
        if over(misses, lookups, p.miss_min_lookups, p.miss_hard_percent):
            expected.append("guard.miss_ratio")
        elif over(misses, lookups, p.miss_min_lookups, p.miss_soft_percent):
            expected.append("guard.miss_ratio_soft")
        # Misreads never suspend: the mixed share has a soft level only
        if over(mixed, entries, p.miss_min_lookups, p.miss_soft_percent):
            expected.append("guard.misread_ratio_soft")
    if hit:
        if seen >= cap:
            expected.append("guard.daily_cap")
        elif seen >= soft:
            expected.append("guard.daily_cap_soft")
        if no_proof:
            if answered >= p.no_proof_hard:
                expected.append("guard.no_proof_quota")
            elif answered >= p.no_proof_soft:
                expected.append("guard.no_proof_soft")
            elif answered >= p.no_proof_watch:
                expected.append("guard.no_proof_watch")
    if (
        checked
        and looked >= p.invoice_min_lookups
        and invoiced * 100 < p.invoice_min_percent * looked
    ):
        expected.append("guard.invoice_ratio")
    hard = {"guard.miss_ratio", "guard.daily_cap", "guard.no_proof_quota"}
    # When the guard observes the outcome
    outcome = LookupOutcome.hit("subject") if hit else LookupOutcome.miss()
    signals = guard.observe(context(with_proof=with_proof), outcome)
    assert [s.code for s in signals] == expected
    assert [s.hard for s in signals] == [code in hard for code in expected]
    assert store.flags == (["susp:psc:alice"] if hard & set(expected) else [])


@given(
    value=st.integers(0, 200_000),
    volume=st.integers(0, 100),
    limit=st.integers(1, 100_000),
)
def test_the_store_judged_and_paced_rows_as_documented(value: int, volume: int, limit: int) -> None:
    # Given a policy whose rates, pace and step-up limit are ``limit``
    policy = GuardPolicy(
        global_per_minute=limit,
        principal_per_minute=limit,
        structure_per_minute=limit,
        step_up_refusals_hard=limit,
        human_speed_median_ms=limit,
        human_speed_lookups=10,
    )
    for counter in (Counter.RATE_GLOBAL, Counter.RATE_PRINCIPAL, Counter.RATE_STRUCTURE):
        expected = Grade.HARD if value >= limit else Grade.NONE
        assert grade(row_of(counter), value, 0, policy) is expected
    assert grade(row_of(Counter.STEP_UPS), value, 0, policy) is (
        Grade.HARD if value >= limit else Grade.NONE
    )
    # A median below the limit over at least 10 lookups is a bot
    pace = Grade.HARD if volume >= 10 and value < limit else Grade.NONE
    assert grade(row_of(Counter.PACE), value, volume, policy) is pace


def test_a_row_naming_an_unknown_threshold_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown thresholds"):
        Threshold(
            "guard.x",
            Counter.DISTINCT,
            Comparison.AT_LEAST,
            Judged.HIT,
            Scope.STRUCTURE,
            hard="no_such_field",
            message="x",
        )
    with pytest.raises(ValueError, match="needs its code"):
        Threshold(
            "guard.x",
            Counter.DISTINCT,
            Comparison.AT_LEAST,
            Judged.HIT,
            Scope.STRUCTURE,
            hard="no_proof_hard",
            message="x",
            soft="no_proof_soft",
        )
    with pytest.raises(ValueError, match="at least one threshold"):
        Threshold(
            "guard.x",
            Counter.DISTINCT,
            Comparison.AT_LEAST,
            Judged.HIT,
            Scope.STRUCTURE,
            hard=None,
            message="x",
        )


def test_one_row_per_counter() -> None:
    counters = [r.counter for r in THRESHOLDS]
    assert sorted(counters) == sorted(set(counters)) == sorted(Counter)


def test_caps_rows_read_the_structures_caps() -> None:
    daily = row_of(Counter.DISTINCT)
    policy = GuardPolicy()
    caps = Caps(soft=8, hard=10, calibrated=True)
    assert [grade(daily, n, 0, policy, caps) for n in (7, 8, 9, 10)] == [
        Grade.NONE,
        Grade.SOFT,
        Grade.SOFT,
        Grade.HARD,
    ]
    with pytest.raises(ValueError, match="caps"):
        grade(daily, 1, 0, policy)


def _name(ref: str | None, code: str = "") -> str:
    if ref is None:
        return "–"
    return f"`{ref}` → `{code}`" if code else f"`{ref}`"


def doc_line(row: Threshold) -> str:
    """The row as ``docs/guard.md`` shows it."""
    return (
        f"| `{row.code}` | {row.counter.value} | {row.comparison.value} "
        f"| {_name(row.watch, row.watch_code)} | {_name(row.soft, row.soft_code)} "
        f"| {_name(row.hard)} | {_name(row.min_volume)} | {row.judged.value} "
        f"| {row.action.value if row.hard else '–'} |"
    )


def test_the_documentation_shows_every_row_of_the_table() -> None:
    text = DOCS.read_text(encoding="utf-8")
    missing = [doc_line(r) for r in THRESHOLDS if doc_line(r) not in text]
    assert missing == [], "docs/guard.md lacks these rows:\n" + "\n".join(missing)
    assert CAP_SOFT in text
    assert CAP_HARD in text
