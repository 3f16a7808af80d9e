"""A year of a legitimate pharmacy and of patient scrapers, on a simulated clock.

The guard runs with its default policy on the in-process counter store, whose clock is
the simulated one; the nightly roll-up of daily figures feeds the calibration history as
``serve`` does (``services.guard_figures``: yesterday, and the day ``invoice_lag_days``
before it again for late invoices). Nothing sleeps: a year takes a few seconds.

- The pharmacy checks 110-160 people a day, six days a week, 30 % of them without our
  card proof; 98 % are invoiced 0 to 5 days later. It is never refused, never stepped up,
  never suspended.
- A scraper holding one valid login and a list of real people looks one up at bot speed
  (1 s), at human speed (20 s) or every 30 s, around the clock, without card proof. It is
  suspended with fewer people than the stated bound (``docs/guard.md``): at most
  ``unbilled_hard - 1 + unbilled_pending`` (80 with the defaults) never-billed people, in
  any 30-day window and over the year.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

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
    Signal,
    Verdict,
)

PARIS = ZoneInfo("Europe/Paris")
START = date(2025, 1, 6)  # a Monday
YEAR = 365
POLICY = GuardPolicy()
BOUND = POLICY.unbilled_hard - 1 + POLICY.unbilled_pending


class Clock:
    """The simulated time, read by the counter store for its times to live."""

    def __init__(self) -> None:
        self.now = datetime.combine(START, time(0), PARIS)

    def seconds(self) -> float:
        return self.now.timestamp()


@dataclass
class History:
    """``guard_daily`` in memory: (distinct looked up, of them invoiced) per structure and day."""

    days: dict[str, dict[date, tuple[int, int]]] = field(default_factory=dict)

    def record(self, guard: Guard, day: date) -> None:
        for late in (day - timedelta(days=guard.policy.invoice_lag_days), day):
            for f in guard.day_summary(late):
                figures = (f.distinct_lookups, f.distinct_invoiced)
                self.days.setdefault(f.structure, {})[f.day] = figures

    def _read(self, structure: str, before: date, days: int, index: int) -> Sequence[int]:
        recorded = self.days.get(structure, {})
        return [
            recorded[d][index]
            for d in sorted(recorded)
            if before - timedelta(days=days) <= d < before
        ]

    def daily_distinct(self, structure: str, before: date, days: int) -> Sequence[int]:
        return self._read(structure, before, days, 0)

    def daily_invoiced(self, structure: str, before: date, days: int) -> Sequence[int]:
        return self._read(structure, before, days, 1)


def new_guard(store: CounterStore | None = None) -> tuple[Guard, Clock, History]:
    clock = Clock()
    history = History()
    counters = store if store is not None else MemoryCounterStore(clock.seconds)
    return Guard(counters, POLICY, history), clock, history


@dataclass
class Pharmacy:
    lookups: int = 0
    without_proof: int = 0
    invoiced: int = 0
    refused: list[str] = field(default_factory=list)
    signals: list[Signal] = field(default_factory=list)
    max_pending: int = 0
    max_unbilled: int = 0


def run_pharmacy(structure: str = "750011111") -> Pharmacy:
    rng = random.Random(2024)
    guard, clock, history = new_guard()
    # The pharmacy was on the platform before: four weeks of figures already recorded.
    for back in range(1, 29):
        seen = rng.randint(110, 160)
        history.days.setdefault(structure, {})[START - timedelta(days=back)] = (
            seen,
            seen * 98 // 100,
        )
    out = Pharmacy()
    invoices: dict[date, list[tuple[str, date]]] = {}
    people = [f"regular-{i}" for i in range(2500)]
    for offset in range(YEAR):
        day = START + timedelta(days=offset)
        clock.now = datetime.combine(day, time(0, 5), PARIS)
        history.record(guard, day - timedelta(days=1))  # the nightly roll-up
        clock.now = datetime.combine(day, time(8), PARIS)
        for subject, care_day in invoices.pop(day, []):  # yesterday's late invoices
            guard.record_invoice(structure, subject, care_day)
            out.invoiced += 1
        if day.weekday() == 6:
            continue  # closed on Sundays
        count = rng.randint(110, 160)
        step = timedelta(seconds=10 * 3600 // count)
        clock.now = datetime.combine(day, time(9), PARIS)
        today: list[str] = []
        for i in range(count):
            clock.now += step
            subject = rng.choice(people) if rng.random() < 0.85 else f"new-{offset}-{i}"
            with_proof = rng.random() >= 0.30
            ctx = LookupContext(
                f"psc:counter-{i % 2}",
                ActorKind.HUMAN,
                structure,
                "pharmacy",
                with_proof,
                clock.now.astimezone(UTC),
            )
            admission = guard.admit(ctx)
            out.lookups += 1
            out.without_proof += not with_proof
            if not admission.allowed:
                out.refused.append(admission.code)
                continue
            out.signals += admission.signals
            out.signals += guard.observe(ctx, LookupOutcome.hit(subject))
            if rng.random() < 0.98:
                lag = rng.choices([0, 1, 2, 3, 5], weights=[60, 25, 10, 3, 2])[0]
                due = day + timedelta(days=lag)
                if due.weekday() == 6:
                    due += timedelta(days=1)
                if lag == 0:
                    today.append(subject)
                else:
                    invoices.setdefault(due, []).append((subject, day))
            if not with_proof and i % 20 == 0:
                pending, mine, ours = guard.unbilled(ctx)
                out.max_pending = max(out.max_pending, pending)
                out.max_unbilled = max(out.max_unbilled, mine, ours)
        clock.now = datetime.combine(day, time(20), PARIS)
        for subject in today:
            guard.record_invoice(structure, subject, day)
            out.invoiced += 1
    return out


def test_a_year_of_a_legitimate_pharmacy_is_never_refused_nor_suspended() -> None:
    run = run_pharmacy()
    share = run.without_proof * 100 // run.lookups
    print(
        f"\npharmacy: {run.lookups} lookups in a year, {share} % without card proof,"
        f" {run.invoiced} invoices; at most {run.max_pending} people awaiting an invoice,"
        f" {run.max_unbilled} never invoiced in 30 days; signals {[s.code for s in run.signals]}"
    )
    assert run.lookups > 35_000
    assert 27 <= share <= 33
    assert run.refused == []
    assert [s for s in run.signals if s.hard] == []
    assert run.max_pending < POLICY.unbilled_pending * 4  # calibrated above the default
    assert run.max_unbilled < POLICY.unbilled_soft


@dataclass
class Scrape:
    answered: set[str] = field(default_factory=set)
    per_day: dict[date, int] = field(default_factory=dict)
    first_alert: timedelta | None = None
    suspended: timedelta | None = None
    codes: list[str] = field(default_factory=list)

    def in_30_days(self, start: date) -> int:
        return sum(n for d, n in self.per_day.items() if start <= d < start + timedelta(days=30))

    @property
    def worst_30_days(self) -> int:
        return max((self.in_30_days(d) for d in self.per_day), default=0)


def run_scraper(
    pace: timedelta,
    *,
    kind: ActorKind,
    ignores_step_up: bool = False,
    stepped_up: bool = False,
    started: time = time(23, 40),
    store: CounterStore | None = None,
) -> Scrape:
    """A scraper of one fresh pharmacy account, around the clock for a year: a new real
    person at each lookup, without card proof. At a step-up it stops until the next local
    midnight (unless it ignores it and goes on); refused, it retries an hour later."""
    guard, clock, _ = new_guard(store)
    out = Scrape()
    begin = datetime.combine(START, started, PARIS)
    clock.now = begin
    end = begin + timedelta(days=YEAR)
    n = 0
    while clock.now < end and out.suspended is None:
        ctx = LookupContext(
            "psc:phished",
            kind,
            "750099999",
            "pharmacy",
            False,
            clock.now.astimezone(UTC),
            stepped_up,
        )
        admission = guard.admit(ctx)
        signals = list(admission.signals)
        if admission.allowed:
            n += 1
            subject = f"real-person-{n}"
            signals += guard.observe(ctx, LookupOutcome.hit(subject))
            out.answered.add(subject)
            local_day = clock.now.astimezone(PARIS).date()
            out.per_day[local_day] = out.per_day.get(local_day, 0) + 1
        if signals and out.first_alert is None:
            out.first_alert = clock.now - begin
        out.codes += [s.code for s in signals]
        if any(s.hard for s in signals) or admission.code == "guard.suspended":
            out.suspended = clock.now - begin
        elif admission.verdict is Verdict.STEP_UP and not ignores_step_up:
            tomorrow = clock.now.astimezone(PARIS).date() + timedelta(days=1)
            clock.now = datetime.combine(tomorrow, time(0), PARIS)
        elif admission.verdict is Verdict.DENY:
            clock.now += timedelta(hours=1)
        else:
            clock.now += pace
    return out


def _report(name: str, run: Scrape) -> str:
    return (
        f"{name}: {len(run.answered)} people before suspension"
        f" (worst 30 days {run.worst_30_days}), first alert after {run.first_alert},"
        f" suspended after {run.suspended}"
    )


def test_patient_scrapers_are_suspended_within_the_stated_bound() -> None:
    runs = {
        "bot speed (1 s, ignores step-up)": run_scraper(
            timedelta(seconds=1), kind=ActorKind.SOFTWARE, ignores_step_up=True
        ),
        "human speed (20 s, stops at each step-up)": run_scraper(
            timedelta(seconds=20), kind=ActorKind.HUMAN
        ),
        "30 s pace (stops at each step-up)": run_scraper(
            timedelta(seconds=30), kind=ActorKind.HUMAN
        ),
        "30 s pace, step-up satisfied": run_scraper(
            timedelta(seconds=30), kind=ActorKind.HUMAN, stepped_up=True
        ),
        "30 s pace from noon": run_scraper(
            timedelta(seconds=30), kind=ActorKind.HUMAN, started=time(12)
        ),
    }
    print()
    for name, run in runs.items():
        print(_report(name, run))
    for name, run in runs.items():
        assert run.suspended is not None, name
        assert run.suspended < timedelta(days=31), name
        assert len(run.answered) <= BOUND, name
        assert run.worst_30_days <= BOUND, name
        assert run.first_alert is not None, name
        assert run.first_alert < timedelta(minutes=2), name
    # The first no-proof lookups alert at once; a bot is stopped within the day's quota.
    assert len(runs["bot speed (1 s, ignores step-up)"].answered) <= POLICY.no_proof_soft
    assert runs["30 s pace, step-up satisfied"].codes[-1] == "guard.no_proof_quota"


@pytest.mark.redis
def test_on_redis_the_patient_scraper_is_suspended_within_the_bound_too(
    redis_db: RedisDatabase,
) -> None:
    client = redis_db.client()
    client.flushdb()
    try:
        runs = {
            "bot speed": run_scraper(
                timedelta(seconds=1),
                kind=ActorKind.SOFTWARE,
                ignores_step_up=True,
                store=RedisCounterStore(client, prefix="tp:scraper-bot:"),
            ),
            "30 s pace": run_scraper(
                timedelta(seconds=30),
                kind=ActorKind.HUMAN,
                store=RedisCounterStore(client, prefix="tp:scraper-30s:"),
            ),
        }
    finally:
        client.flushdb()
        client.close()
    print()
    for name, run in runs.items():
        print("redis, " + _report(name, run))
    # The same figures as in process: the decisions read the times stored in the data
    assert len(runs["bot speed"].answered) == 10
    assert len(runs["30 s pace"].answered) == 69
    for run in runs.values():
        assert run.suspended is not None
        assert len(run.answered) <= BOUND
