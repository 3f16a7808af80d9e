"""Quotas survive a restart of their store (issue 13, point 4): SQLite and PostgreSQL.

Given a pharmacy whose daily cap of distinct people is 8 (soft alert at 7), checking the
rights of 12 people one after the other without card proof: without any restart the 2nd
raises the early warning, the 7th the soft alert, the 8th the hard one (suspension), and
every later lookup is refused. When the guard's store restarts empty just before the 8th
lookup (a Redis the test started itself, ``--save "" --appendonly no``, killed and
started again; or the process and its in-process store), the counters are rebuilt from
the audit log before the 8th is counted: the same answers, the same alerts at the same
lookups, none twice (the early warning is not raised again). Without the rebuild the
hard alert would come 7 lookups later, past the 12 people (the finding: 28 people in a
day).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from tests.api.world import RELAXED_GUARD
from tests.conftest import SeededInsurer
from tests.integration.claims_world import NOW, World, build_world
from tests.support.own_redis import OwnRedis
from tests.support.services import RedisDatabase
from tests.unit.security.test_guard_restore import state
from tierspayant.app.platform import Platform, initialise, open_platform
from tierspayant.config import Settings, load_settings
from tierspayant.domain.care import CareDomain
from tierspayant.domain.codes import AuthCode, GuardCode
from tierspayant.security.guard import GuardPolicy, MemoryCounterStore, Restorer, history_start
from tierspayant.security.principal import AuthStrength, Principal, PrincipalKind
from tierspayant.services.alerts import reinstate_principal, suspend_principal
from tierspayant.services.eligibility import RightsCheck, check_rights
from tierspayant.services.errors import ServiceError
from tierspayant.services.lookup import CardProof
from tierspayant.store.lookup_history import AuditLookupHistory
from tierspayant.store.security_tables import security_alerts

CAP, PEOPLE, RESTART_BEFORE = 8, 12, 7
ALICE = Principal("staff:alice", PrincipalKind.OPERATOR_STAFF, AuthStrength.AAL2)
BOB = Principal("staff:bob", PrincipalKind.OPERATOR_STAFF, AuthStrength.AAL2)
EXPECTED_ANSWERS = ["ok"] * CAP + [GuardCode.SUSPENDED] * (PEOPLE - CAP)
# (lookup index, alert code): the early warning at 2 people answered without card proof
# (once a day), the soft alert at 7 distinct people (80 % of 8, rounded up), the hard one
# at 8.
EXPECTED_ALERTS = [
    (1, "guard.no_proof_watch"),
    (6, "guard.daily_cap_soft"),
    (7, GuardCode.DAILY_CAP),
]


@pytest.fixture(scope="module")
def own_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OwnRedis]:
    server = OwnRedis(tmp_path_factory.mktemp("redis"))
    try:
        yield server
    finally:
        server.kill()


def _settings(
    engine_name: str,
    tmp_path: Path,
    request: pytest.FixtureRequest,
    pending: int | None = None,
    **env: str,
) -> Settings:
    policy = dict(RELAXED_GUARD)
    policy["daily_caps"] = {"pharmacy": CAP}
    if pending is not None:
        policy["unbilled_pending"] = pending
    if engine_name == "sqlite":
        data_dir = tmp_path / "data"
        url = f"sqlite:///{data_dir / 'tierspayant.sqlite3'}"
    else:
        url = request.getfixturevalue("postgres_url")
        data_dir = request.getfixturevalue("postgres_data_dir")
    base = {
        "TIERSPAYANT_DATA_DIR": str(data_dir),
        "TIERSPAYANT_DATABASE_URL": url,
        "TIERSPAYANT_GUARD_POLICY": json.dumps(policy),
    }
    return load_settings({**base, **env})


def _world(
    platform: Platform, seed_insurer: Callable[..., SeededInsurer], tmp_path: Path
) -> tuple[World, Principal]:
    world = build_world(platform, seed_insurer, tmp_path, people=PEOPLE)
    # Stepped up: the soft level alerts without asking for step-up, so every lookup runs
    # until the hard level.
    return world, replace(world.principal, strength=AuthStrength.AAL3)


def _lookup(platform: Platform, principal: Principal, world: World, person: int) -> str:
    check = RightsCheck(world.people[person].card, NOW.date(), (CareDomain.PHAR,))
    try:
        check_rights(platform, principal, check)
    except ServiceError as refused:
        return refused.code
    return "ok"


def _alert_codes(platform: Platform) -> list[str]:
    with platform.engine.connect() as conn:
        rows = conn.execute(select(security_alerts.c.code).order_by(security_alerts.c.id))
        return [str(code) for code in rows.scalars()]


def _timeline(
    platform: Platform, principal: Principal, world: World, restart: Callable[[], Platform] | None
) -> tuple[list[str], list[tuple[int, str]]]:
    answers: list[str] = []
    alerts: list[tuple[int, str]] = []
    for person in range(PEOPLE):
        if restart is not None and person == RESTART_BEFORE:
            platform = restart()
        before = len(_alert_codes(platform))
        answers.append(_lookup(platform, principal, world, person))
        alerts += [(person, code) for code in _alert_codes(platform)[before:]]
    return answers, alerts


@pytest.mark.redis
@pytest.mark.parametrize("restart", ["none", "redis"])
def test_given_redis_restarted_empty_near_the_cap_then_refused_and_alerted_at_the_same_count(
    engine_name: str,
    restart: str,
    own_redis: OwnRedis,
    tmp_path: Path,
    request: pytest.FixtureRequest,
    seed_insurer: Callable[..., SeededInsurer],
) -> None:
    own_redis.flush()
    platform = initialise(
        _settings(engine_name, tmp_path, request, TIERSPAYANT_REDIS_URL=own_redis.url)
    )
    try:
        world, principal = _world(platform, seed_insurer, tmp_path)

        def restart_redis() -> Platform:
            starts = own_redis.starts
            own_redis.restart()
            assert own_redis.starts == starts + 1
            return platform

        answers, alerts = _timeline(
            platform, principal, world, restart_redis if restart == "redis" else None
        )
        assert answers == EXPECTED_ANSWERS
        assert alerts == EXPECTED_ALERTS
        guard = platform.guard
        assert guard is not None
        restorer: Any = guard.counters.restorer  # type: ignore[attr-defined]
        if restart == "redis":
            # Rebuilt once, from the 8 answers of the audit log, before the 9th was counted.
            assert restorer.last.events >= RESTART_BEFORE
            client = own_redis.client()
            try:
                assert client.exists("tp:guard:epoch") == 1
            finally:
                client.close()
    finally:
        platform.close()


@pytest.mark.redis
def test_given_redis_down_then_lookups_fail_closed_and_after_an_empty_restart_still_refused(
    engine_name: str,
    own_redis: OwnRedis,
    tmp_path: Path,
    request: pytest.FixtureRequest,
    seed_insurer: Callable[..., SeededInsurer],
) -> None:
    """Down: 503 ``guard.unavailable``, nothing answered. Back empty: the principal
    suspended at the cap is still refused (its suspension is in the database)."""
    own_redis.flush()
    platform = initialise(
        _settings(engine_name, tmp_path, request, TIERSPAYANT_REDIS_URL=own_redis.url)
    )
    try:
        world, principal = _world(platform, seed_insurer, tmp_path)
        answers = [_lookup(platform, principal, world, person) for person in range(CAP)]
        assert answers == ["ok"] * CAP
        own_redis.kill()
        try:
            assert _lookup(platform, principal, world, CAP) == GuardCode.UNAVAILABLE
        finally:
            own_redis.start()
        assert _lookup(platform, principal, world, CAP) == GuardCode.SUSPENDED
        # Another pharmacy of the same platform starts again from its own count.
        other = world.add_provider("other")[1]
        assert _lookup(platform, other, world, 0) == "ok"
    finally:
        platform.close()


def test_given_the_process_restarted_then_its_in_process_counters_are_rebuilt(
    engine_name: str,
    tmp_path: Path,
    request: pytest.FixtureRequest,
    seed_insurer: Callable[..., SeededInsurer],
) -> None:
    """No Redis: the counters live in the process; a new process rebuilds them from the
    audit log at its first lookup, so a restart does not reset the day either."""
    settings = _settings(engine_name, tmp_path, request)
    first = initialise(settings)
    platforms = [first]
    try:
        world, principal = _world(first, seed_insurer, tmp_path)

        def new_process() -> Platform:
            platforms[-1].close()
            reopened = open_platform(settings, clock=platforms[-1].clock)
            platforms.append(reopened)
            return reopened

        answers, alerts = _timeline(first, principal, world, new_process)
        assert answers == EXPECTED_ANSWERS
        assert alerts == EXPECTED_ALERTS
        assert len(platforms) == 2
    finally:
        platforms[-1].close()


def test_the_rebuild_reads_from_the_judged_day_on() -> None:
    """The window read: from local midnight ``invoice_lag_days`` back (the day the
    invoice ratio judges), which also covers the last 24 hours."""
    policy = GuardPolicy()
    start = history_start(policy, NOW)
    assert start.isoformat() == "2026-11-27T00:00:00+01:00"
    assert (NOW - start).days >= 1


@pytest.mark.parametrize("reinstated", [False, True])
def test_the_counters_rebuilt_from_the_database_equal_the_live_ones(
    engine_name: str,
    reinstated: bool,
    tmp_path: Path,
    request: pytest.FixtureRequest,
    seed_insurer: Callable[..., SeededInsurer],
) -> None:
    """Through the real services and the real audit log: a miss, a misread scan, hits,
    then step-up requests past the soft cap (the principal is not stepped up); or those,
    then the principal suspended and reinstated by two operators, then one more step-up
    request (the reinstatement forgot the earlier ones). The counters rebuilt from the
    database equal the guard's own, key by key."""
    platform = initialise(_settings(engine_name, tmp_path, request))
    try:
        world, _ = _world(platform, seed_insurer, tmp_path)
        principal = world.principal
        nobody = replace(world.people[0].card, birth_date=date(1999, 1, 1))
        check = RightsCheck(nobody, NOW.date(), (CareDomain.PHAR,))
        assert check_rights(platform, principal, check) is not None  # a miss, same answer
        with pytest.raises(ServiceError) as misread:
            check_rights(platform, principal, check, CardProof("TP1:cut-sh"))
        assert misread.value.code == "card.misread"
        answers = [_lookup(platform, principal, world, person) for person in range(9)]
        assert answers == ["ok"] * 7 + [AuthCode.STEP_UP_REQUIRED] * 2
        guard = platform.guard
        assert guard is not None
        if reinstated:
            with platform.engine.begin() as conn:
                suspend_principal(platform, conn, principal.id, "guard.canary")
            reinstate_principal(platform, principal.id, ALICE, BOB)
            assert _lookup(platform, principal, world, 9) == AuthCode.STEP_UP_REQUIRED
            assert len(guard.counters.recent(f"stepupw:{principal.id}")) == 1
        live = guard.counters.store  # type: ignore[attr-defined]
        rebuilt = MemoryCounterStore()
        restorer = Restorer(
            rebuilt, AuditLookupHistory(platform.engine), guard.policy, platform.now
        )
        report = restorer.rebuild()
        # 9 answers or step-ups, the miss, the misread; the early warning, the soft alert
        # (on PostgreSQL the module's database also holds the other tests' events).
        assert report.events >= 9 + 1 + 1 + 2
        ours = (principal.id, world.provider.structure)

        def own(counters: dict[str, Any]) -> dict[str, Any]:
            return {k: v for k, v in counters.items() if any(name in k for name in ours)}

        assert own(state(rebuilt, platform.now())) == own(state(live, platform.now()))
        assert len(own(state(live, platform.now()))) >= 8
        assert rebuilt.count_distinct(f"seen:{world.provider.structure}:{NOW.date()}") == 7
    finally:
        platform.close()


# A scraper without card proof that never invoices: 3 people may await an invoice, so
# the 4th lookup is refused (``guard.unbilled_pending``), and so is every later one; the
# store comes back empty after the 2nd.
PENDING, SCRAPED, EMPTIED_BEFORE = 3, 6, 2
EXPECTED_SCRAPE = ["ok"] * PENDING + [GuardCode.UNBILLED_PENDING] * (SCRAPED - PENDING)


def _scrape(
    platform: Platform, principal: Principal, world: World, empty: Callable[[], Platform] | None
) -> list[str]:
    answers: list[str] = []
    for person in range(SCRAPED):
        if empty is not None and person == EMPTIED_BEFORE:
            platform = empty()
        answers.append(_lookup(platform, principal, world, person))
    return answers


@pytest.mark.redis
@pytest.mark.parametrize("flush", ["none", "flushdb"])
def test_given_redis_emptied_then_a_scraper_is_refused_at_the_same_never_invoiced_count(
    engine_name: str,
    flush: str,
    redis_db: RedisDatabase,
    tmp_path: Path,
    request: pytest.FixtureRequest,
    seed_insurer: Callable[..., SeededInsurer],
) -> None:
    """The people answered without card proof and not invoiced are rebuilt from the
    audit log with the other counters: an empty Redis gives no fresh budget."""
    client = redis_db.client()
    try:
        client.flushdb()
        settings = _settings(
            engine_name, tmp_path, request, PENDING, TIERSPAYANT_REDIS_URL=redis_db.url
        )
        platform = initialise(settings)
        try:
            world, principal = _world(platform, seed_insurer, tmp_path)

            def emptied() -> Platform:
                client.flushdb()  # this run's own database only
                assert client.dbsize() == 0
                return platform

            answers = _scrape(platform, principal, world, emptied if flush != "none" else None)
            assert answers == EXPECTED_SCRAPE
            if flush != "none":
                assert client.exists("tp:guard:epoch") == 1
        finally:
            platform.close()
    finally:
        client.close()


def test_given_a_new_process_then_a_scraper_is_refused_at_the_same_never_invoiced_count(
    engine_name: str,
    tmp_path: Path,
    request: pytest.FixtureRequest,
    seed_insurer: Callable[..., SeededInsurer],
) -> None:
    """No Redis: the process and its in-process counters restart; the never-invoiced
    people are rebuilt at the first lookup of the new process."""
    settings = _settings(engine_name, tmp_path, request, PENDING)
    platforms = [initialise(settings)]
    try:
        world, principal = _world(platforms[0], seed_insurer, tmp_path)

        def new_process() -> Platform:
            platforms[-1].close()
            reopened = open_platform(settings, clock=platforms[-1].clock)
            platforms.append(reopened)
            return reopened

        assert _scrape(platforms[0], principal, world, new_process) == EXPECTED_SCRAPE
        assert len(platforms) == 2
    finally:
        platforms[-1].close()
