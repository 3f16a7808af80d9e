"""The guard's daily figures reach ``guard_daily``: by the nightly job inside ``serve`` and
by ``tierspayant guard daily-figures``; the calibration then reads them."""

from __future__ import annotations

import hashlib
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from tests.support.services import RedisDatabase
from tierspayant.app.platform import Platform, initialise
from tierspayant.cli.main import app
from tierspayant.config import load_settings
from tierspayant.jobs.guard_figures import GuardFiguresWorker
from tierspayant.security.guard import ActorKind, Guard, LookupContext, LookupOutcome
from tierspayant.services import guard_figures
from tierspayant.services.errors import Unavailable
from tierspayant.store.guard_figures import GuardDailyHistory
from tierspayant.store.security_tables import guard_daily

PHARMACY = "750712184"
LAB = "690000880"
# Monday 10 March 2025, 09:00 in Paris; the next day's 00:30 in Paris is 23:30 UTC.
MONDAY = datetime(2025, 3, 10, 8, 0, tzinfo=UTC)


def pseudonym(i: int) -> str:
    return hashlib.sha256(f"person-{i}".encode()).hexdigest()[:32]


def look_up(guard: Guard, structure: str, category: str, at: datetime, people: range) -> None:
    """One answered lookup with card proof per person, 30 s apart."""
    for n, i in enumerate(people):
        when = at + timedelta(seconds=30 * n)
        ctx = LookupContext(
            f"user:{structure}", ActorKind.SOFTWARE, structure, category, True, when
        )
        assert guard.admit(ctx).allowed
        guard.observe(ctx, LookupOutcome.hit(pseudonym(i)))


def rows(platform: Platform, day: date) -> list[tuple[str, str, date, int, int]]:
    """The recorded figures of ``day`` (the PostgreSQL database is shared by the module)."""
    query = select(guard_daily).where(guard_daily.c.day == day)
    with platform.engine.connect() as conn:
        found = conn.execute(query.order_by(guard_daily.c.structure)).all()
    return [
        (r.structure, r.category, r.day, r.distinct_lookups, r.distinct_invoiced) for r in found
    ]


def test_the_nightly_job_records_yesterday_once_and_the_calibration_reads_it(
    platform: Platform,
) -> None:
    clock = [MONDAY]
    platform.clock = lambda: clock[0]
    guard = platform.guard
    assert guard is not None
    look_up(guard, PHARMACY, "pharmacy", MONDAY, range(12))
    look_up(guard, PHARMACY, "pharmacy", MONDAY + timedelta(hours=2), range(5))  # same people
    look_up(guard, LAB, "laboratory", MONDAY, range(100, 103))
    for i in (1, 2, 3, 500):  # 500 was never looked up: not in the common count
        guard.record_invoice(PHARMACY, pseudonym(i), date(2025, 3, 10))

    worker = GuardFiguresWorker(platform, interval=60)
    sunday = worker.run_once()  # during Monday, the last complete day is Sunday: no one
    assert sunday is not None
    assert (sunday.day, sunday.structures) == (date(2025, 3, 9), 0)
    assert rows(platform, date(2025, 3, 9)) == []
    clock[0] = datetime(2025, 3, 10, 23, 30, tzinfo=UTC)  # 00:30 on Tuesday in Paris
    done = worker.run_once()
    assert done is not None
    assert (done.day, done.structures, done.distinct_lookups) == (date(2025, 3, 10), 2, 15)
    assert rows(platform, date(2025, 3, 10)) == [
        (LAB, "laboratory", date(2025, 3, 10), 3, 0),
        (PHARMACY, "pharmacy", date(2025, 3, 10), 12, 3),
    ]
    clock[0] += timedelta(minutes=10)
    assert worker.run_once() is None  # the same night: not recorded again

    history = guard.history
    assert history is not None
    assert list(history.daily_distinct(PHARMACY, date(2025, 3, 11), 28)) == [12]


def test_recording_a_day_again_replaces_its_figures(platform: Platform) -> None:
    monday = MONDAY + timedelta(days=7)
    platform.clock = lambda: monday
    guard = platform.guard
    assert guard is not None
    look_up(guard, PHARMACY, "pharmacy", monday, range(4))
    first = guard_figures.record_daily_figures(platform, monday.date())
    look_up(guard, PHARMACY, "pharmacy", monday + timedelta(hours=1), range(4, 6))
    second = guard_figures.record_daily_figures(platform, monday.date())
    assert (first.distinct_lookups, second.distinct_lookups) == (4, 6)
    assert rows(platform, monday.date()) == [(PHARMACY, "pharmacy", monday.date(), 6, 0)]


def test_without_a_guard_the_roll_up_says_so(platform: Platform) -> None:
    platform.settings = replace(platform.settings, guard_enabled=False)
    with pytest.raises(Unavailable) as refused:
        guard_figures.record_daily_figures(platform, date(2025, 3, 10))
    assert refused.value.code == "guard.disabled"
    assert GuardFiguresWorker(platform).run_once() is None


@pytest.mark.redis
def test_the_command_records_what_the_serving_processes_counted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, redis_db: RedisDatabase
) -> None:
    """Counts made by a server process in Redis are recorded by a separate command."""
    client = redis_db.client()
    client.flushdb()
    monkeypatch.setenv("TIERSPAYANT_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("TIERSPAYANT_DATABASE_URL", raising=False)
    monkeypatch.setenv("TIERSPAYANT_REDIS_URL", redis_db.url)
    monkeypatch.setenv("COLUMNS", "200")
    try:
        server = initialise(load_settings())
        server.clock = lambda: MONDAY
        assert server.guard is not None
        look_up(server.guard, PHARMACY, "pharmacy", MONDAY, range(7))
        server.close()

        result = CliRunner().invoke(app, ["guard", "daily-figures", "--day", "2025-03-10"])
        assert result.exit_code == 0, result.output
        assert "2025-03-10 : 1 structures enregistrées, 7 personnes consultées" in result.output
        reader = initialise(load_settings())
        try:
            assert rows(reader, date(2025, 3, 10)) == [
                (PHARMACY, "pharmacy", date(2025, 3, 10), 7, 0)
            ]
        finally:
            reader.close()

        bad = CliRunner().invoke(app, ["guard", "daily-figures", "--day", "10/03/2025"])
        assert bad.exit_code == 2
    finally:
        client.flushdb()
        client.close()


def test_late_invoices_count_when_the_day_is_recorded_again(platform: Platform) -> None:
    # Given a structure of its own (the PostgreSQL database is shared by the module)
    structure = "750799999"
    monday = MONDAY + timedelta(days=14)
    platform.clock = lambda: monday
    guard = platform.guard
    assert guard is not None
    look_up(guard, structure, "pharmacy", monday, range(200, 210))
    guard.record_invoice(structure, pseudonym(200), monday.date())
    guard_figures.record_daily_figures(platform, monday.date())
    assert rows(platform, monday.date())[-1][3:] == (10, 1)
    # When five more invoices for Monday's care arrive on Wednesday
    for i in range(201, 206):
        guard.record_invoice(structure, pseudonym(i), monday.date())
    guard_figures.record_daily_figures(platform, monday.date() + timedelta(days=2))
    # Then recording Wednesday records Monday again, late invoices included, and the
    # calibration of the allowances without card proof reads them
    assert [r[3:] for r in rows(platform, monday.date()) if r[0] == structure] == [(10, 6)]
    history = GuardDailyHistory(platform.engine)
    assert list(history.daily_invoiced(structure, monday.date() + timedelta(days=3), 28)) == [6]
    assert isinstance(guard.history, GuardDailyHistory)  # what the platform's guard reads
