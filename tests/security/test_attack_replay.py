"""The February 2024 attack, replayed against the real app and a base of 10,000 people.

The attacker holds one valid provider login (provider software credentials, or a
professional's portal session) and the real identifiers of every beneficiary of the base
(NIR, rank, birth date, insurer: what the 2024 leak contained), but none of the cards. It
asks the rights check about each of them in turn, ignores every refusal, asks for a new
token when its token stops working, and gives up only when it cannot get one. Two paces:
bot speed (as fast as the app answers, the platform clock following the wall clock) and
human speed (20 to 40 s between lookups, on the platform clock).

What must hold (``docs/guard.md``, ``SECURITY.md``): at most 20 answers about people before
the principal is suspended; the principal suspended and its tokens dead; a security alert
recorded; the audit log naming exactly the people who were answered. The measured figures
are printed as one JSON line (run with ``-s``) and written to
``bench/results/attack_replay.json``.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, replace
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from tests.api.world import (
    NOW,
    TODAY,
    Person,
    ProviderAccount,
    World,
    add_provider_account,
    build_world,
    close_world,
)
from tests.factories import make_finess
from tests.integration.test_cards import canary_people
from tierspayant.security.audit import subject_pseudonym
from tierspayant.security.crypto import BlindIndexer
from tierspayant.security.identity import nir_index
from tierspayant.security.oidc import OidcIdentity
from tierspayant.services import accounts, canaries
from tierspayant.services.errors import ServiceError
from tierspayant.services.insurers import get_insurer
from tierspayant.store import audit
from tierspayant.store.beneficiaries import find_by_nir_index
from tierspayant.store.keys import insurer_scope
from tierspayant.store.security_tables import security_alerts
from tierspayant.store.tables import access_tokens, principals

BASE_PER_INSURER = 5_000  # two insurers: 10,000 people
MAX_ANSWERS = 20
ALERT_WITHIN = timedelta(seconds=60)
CANARY_WITHIN_S = 5.0
TAIL = 300  # lookups tried with the dead credentials after the attacker gives up
RESULTS = Path(__file__).resolve().parents[2] / "bench" / "results" / "attack_replay.json"

# The SQLite replay takes about 20 s; the PostgreSQL one half a minute more.
BASE_ENGINES = ["sqlite", pytest.param("postgres", marks=[pytest.mark.postgres, pytest.mark.slow])]


class WallClock:
    """Platform time that runs with the wall clock from ``start`` (bot speed)."""

    def __init__(self, start: datetime) -> None:
        self.start = start
        self.origin = time.perf_counter()

    def __call__(self) -> datetime:
        return self.start + timedelta(seconds=time.perf_counter() - self.origin)


class SteppedClock:
    """Platform time moved by the attacker between lookups (human speed)."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now


@dataclass
class Figures:
    """What one replay measured."""

    engine: str
    scenario: str
    requests: int = 0
    answers: int = 0  # 200 answers: the person is in the base
    covered_answers: int = 0  # answers saying the person is covered somewhere
    step_up_refusals: int = 0
    throttled: int = 0
    tokens_obtained: int = 1
    first_alert_after_s: float | None = None  # platform time, from the first lookup
    first_hard_alert_after_s: float | None = None
    alert_wall_latency_s: float | None = None  # wall time from the first lookup to the alert
    suspended_after_requests: int | None = None
    alert_codes: list[str] = field(default_factory=list)
    wall_seconds: float = 0.0


@dataclass
class Attacker:
    """One valid login and a list of identifiers; ignores refusals until locked out."""

    world: World
    login: Callable[[], str | None]  # a new bearer token, or None once refused
    advance: Callable[[], None]  # what passes between two lookups
    token: str = ""
    answered: list[Person] = field(default_factory=list)
    moments: list[tuple[datetime, float]] = field(default_factory=list)  # (platform, wall)

    def lookup(self, person: Person) -> Any:
        body = {"card": person.card(), "care_date": TODAY.isoformat(), "domains": ["PHAR", "MED"]}
        return self.world.client.post(
            "/v1/eligibility", json=body, headers={"Authorization": f"Bearer {self.token}"}
        )

    def run(self, people: list[Person], figures: Figures) -> None:
        started = time.perf_counter()
        token = self.login()
        assert token is not None
        self.token = token
        for person in people:
            self.advance()
            self.moments.append((self.world.platform.now(), time.perf_counter()))
            response = self.lookup(person)
            figures.requests += 1
            code = _code(response)
            if response.status_code == 200:
                self.answered.append(person)
                figures.answers += 1
                figures.covered_answers += any(r["covered"] for r in response.json()["rights"])
            elif code == "auth.step_up_required":
                figures.step_up_refusals += 1  # a bot cannot step up: it keeps going
            elif response.status_code == 429:
                figures.throttled += 1
            elif response.status_code == 401:
                fresh = self.login()  # expired, or revoked: try to log in again
                if fresh is None:
                    break
                figures.tokens_obtained += 1
                self.token = fresh
        figures.wall_seconds = round(time.perf_counter() - started, 3)


def _code(response: Any) -> str | None:
    try:
        return str(response.json()["error"]["code"])
    except (ValueError, KeyError, TypeError):
        return None


# --------------------------------------------------------------------------- the base

_measured: list[Figures] = []


@pytest.fixture(scope="module", params=BASE_ENGINES)
def base(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[World]:
    """10,000 beneficiaries and the default guard (``guard=None``: no override)."""
    started = time.perf_counter()
    world = build_world(
        str(request.param), request, tmp_path_factory, count=BASE_PER_INSURER, guard=None
    )
    built = {"engine": world.engine_name, "people": sum(map(len, world.people.values()))}
    print(json.dumps({"base": built, "built_s": round(time.perf_counter() - started, 1)}))
    try:
        yield world
    finally:
        close_world(world)


@pytest.fixture(scope="module", autouse=True)
def report() -> Iterator[None]:
    """Write every replay's figures once the module is done."""
    yield
    if _measured:
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(
            json.dumps([asdict(f) for f in _measured], indent=2) + "\n", encoding="utf-8"
        )


def leaked_list(world: World, seed: int) -> list[Person]:
    """Every identifier of the base, in the attacker's order."""
    people = list(world.everyone())
    random.Random(seed).shuffle(people)
    assert len(people) >= 10_000
    return people


def fresh_provider(world: World, seed: int) -> ProviderAccount:
    """A new pharmacy of its own (quotas are per structure)."""
    rng = random.Random(seed)
    return add_provider_account(
        world.platform, world.client, rng, category="pharmacy",
        finess=make_finess(rng), amcs=world.amc_numbers,
    )  # fmt: skip


def software_login(world: World, account: ProviderAccount) -> Callable[[], str | None]:
    def login() -> str | None:
        response = world.client.post(
            "/v1/oauth/token",
            data={"grant_type": "client_credentials", "client_id": account.client_id,
                  "client_secret": account.client_secret},
        )  # fmt: skip
        return str(response.json()["access_token"]) if response.status_code == 200 else None

    return login


def portal_login(world: World, account: ProviderAccount) -> tuple[Callable[[], str | None], str]:
    """Pro Santé Connect logins of the pharmacy's professional (a phished e-CPS), and the
    principal they open sessions for."""

    def session() -> accounts.Session:
        identity = OidcIdentity(
            issuer="https://psc.example", sub=f"psc-{account.rpps}", rpps=account.rpps,
            acr="eidas2", amr=("mfa",), auth_time=world.platform.now(),
        )  # fmt: skip
        return accounts.login_oidc(world.platform, identity)

    def login() -> str | None:
        try:
            return session().token
        except ServiceError:
            return None

    return login, session().principal.id


# --------------------------------------------------------------------------- checks


def pseudonyms(world: World, people: list[Person]) -> set[str]:
    """Audit pseudonyms of ``people``, recomputed from the base as identification does."""
    key = world.platform.operator_keys().derive("audit.subject")
    found: set[str] = set()
    with world.platform.engine.connect() as conn:
        for person in people:
            insurer = get_insurer(conn, person.amc_number)
            keys = world.platform.keys.active(conn, insurer_scope(person.amc_number))
            index = nir_index(BlindIndexer(keys), person.nir, person.birth_rank)
            record = find_by_nir_index(conn, insurer.id, index)
            assert record is not None
            found.add(subject_pseudonym(key, person.amc_number, str(record.id)))
    return found


def audited_disclosures(world: World, principal: str) -> list[str]:
    with world.platform.engine.connect() as conn:
        return [
            event.subject
            for event in audit.iter_events(conn)
            if event.actor == principal
            and event.action == "eligibility.check"
            and event.decision in ("hit", "hit_not_covered")
            and event.subject is not None
        ]


def alerts_of(world: World, principal: str) -> list[Any]:
    with world.platform.engine.connect() as conn:
        return list(
            conn.execute(
                select(security_alerts)
                .where(security_alerts.c.principal == principal)
                .order_by(security_alerts.c.id)
            )
        )


def principal_status(world: World, principal: str) -> str | None:
    with world.platform.engine.connect() as conn:
        status = conn.execute(
            select(principals.c.status).where(principals.c.id == principal)
        ).scalar_one_or_none()
    return None if status is None else str(status)


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=NOW.tzinfo)


def verify(world: World, attacker: Attacker, principal: str, figures: Figures) -> None:
    """The assertions every replay shares; fills in the alert figures."""
    assert figures.covered_answers <= MAX_ANSWERS
    assert figures.answers <= MAX_ANSWERS
    assert principal_status(world, principal) == "suspended"
    # Exactly the people answered are in the audit log, each once.
    disclosed = audited_disclosures(world, principal)
    assert sorted(disclosed) == sorted(pseudonyms(world, attacker.answered))
    # The alert: recorded, hard, at the lookup that crossed the line.
    alerts = alerts_of(world, principal)
    assert alerts, "no security alert recorded"
    assert any(a.level == "hard" for a in alerts)
    figures.alert_codes = [str(a.code) for a in alerts]
    first_at, first_wall = attacker.moments[0]
    alert_at = _aware(alerts[0].at)
    hard_at = _aware(next(a.at for a in alerts if a.level == "hard"))
    figures.first_alert_after_s = round((alert_at - first_at).total_seconds(), 3)
    figures.first_hard_alert_after_s = round((hard_at - first_at).total_seconds(), 3)
    walls = [wall for at, wall in attacker.moments if at <= alert_at]
    figures.alert_wall_latency_s = round(walls[-1] - first_wall, 3)
    figures.suspended_after_requests = len([at for at, _ in attacker.moments if at <= hard_at])
    # The alert is raised by the very lookup that crossed a threshold, never later.
    assert any(abs((alert_at - at).total_seconds()) < 1 for at, _ in attacker.moments)


def dead_credentials(world: World, attacker: Attacker, people: list[Person]) -> None:
    """After the attacker gave up: its last token is refused, and a new one too."""
    statuses = {attacker.lookup(person).status_code for person in people[:TAIL]}
    assert statuses == {401}
    assert attacker.login() is None


def finish(figures: Figures) -> None:
    _measured.append(figures)
    print(json.dumps({"attack_replay": asdict(figures)}))


# --------------------------------------------------------------------------- replays


def test_bot_speed_with_provider_software_credentials(base: World) -> None:
    world = base
    previous = world.platform.clock
    world.platform.clock = WallClock(NOW + timedelta(hours=1))
    try:
        account = fresh_provider(world, 1)
        attacker = Attacker(world, software_login(world, account), advance=lambda: None)
        people = leaked_list(world, 1)
        figures = Figures(world.engine_name, "bot_speed_software")
        attacker.run(people, figures)
        verify(world, attacker, account.principal_id, figures)
        assert figures.first_alert_after_s is not None
        assert figures.first_alert_after_s <= ALERT_WITHIN.total_seconds()
        assert figures.alert_wall_latency_s is not None
        assert figures.alert_wall_latency_s <= ALERT_WITHIN.total_seconds()
        with world.platform.engine.connect() as conn:
            live = conn.execute(
                select(access_tokens.c.token_digest).where(
                    access_tokens.c.principal == account.principal_id,
                    access_tokens.c.revoked_at.is_(None),
                )
            ).all()
        assert live == []
        dead_credentials(world, attacker, people[figures.requests :])
    finally:
        world.platform.clock = previous
    finish(figures)


def test_bot_speed_with_a_phished_portal_session(base: World) -> None:
    world = base
    previous = world.platform.clock
    world.platform.clock = WallClock(NOW + timedelta(hours=2))
    try:
        account = fresh_provider(world, 2)
        login, principal = portal_login(world, account)
        attacker = Attacker(world, login, advance=lambda: None)
        people = leaked_list(world, 2)
        figures = Figures(world.engine_name, "bot_speed_portal")
        attacker.run(people, figures)
        verify(world, attacker, principal, figures)
        assert "guard.human_speed" in figures.alert_codes
        assert figures.answers < 10  # suspended before the 10th lookup
        assert figures.first_alert_after_s is not None
        assert figures.first_alert_after_s <= ALERT_WITHIN.total_seconds()
        dead_credentials(world, attacker, people[figures.requests :])
    finally:
        world.platform.clock = previous
    finish(figures)


@pytest.mark.parametrize(
    ("scenario", "portal", "pace"),
    [
        pytest.param("human_speed_portal", True, (20, 40), id="portal-20-40s"),
        pytest.param("human_speed_software", False, (20, 40), id="software-20-40s"),
        pytest.param("fast_typist_portal", True, (3, 5), id="portal-3-5s"),
    ],
)
def test_human_speed(base: World, scenario: str, portal: bool, pace: tuple[int, int]) -> None:
    world = base
    previous = world.platform.clock
    hour = {"human_speed_portal": 3, "human_speed_software": 4, "fast_typist_portal": 5}
    clock = SteppedClock(NOW + timedelta(hours=hour[scenario]))
    world.platform.clock = clock
    rng = random.Random(hour[scenario])

    def advance() -> None:
        clock.now += timedelta(seconds=rng.uniform(*pace))

    try:
        account = fresh_provider(world, 10 + hour[scenario])
        if portal:
            login, principal = portal_login(world, account)
        else:
            login, principal = software_login(world, account), account.principal_id
        attacker = Attacker(world, login, advance=advance)
        people = leaked_list(world, hour[scenario])
        figures = Figures(world.engine_name, scenario)
        attacker.run(people, figures)
        verify(world, attacker, principal, figures)
        assert figures.first_hard_alert_after_s is not None
        # Suspended within the first few dozen lookups, whatever the pace.
        assert figures.suspended_after_requests is not None
        assert figures.suspended_after_requests <= 2 * MAX_ANSWERS
        # The security team hears of it within a minute at any pace: the early warning
        # (``guard.no_proof_watch``) fires at the second person answered without a card.
        assert figures.first_alert_after_s is not None
        assert figures.first_alert_after_s <= ALERT_WITHIN.total_seconds()
        dead_credentials(world, attacker, people[figures.requests :])
    finally:
        world.platform.clock = previous
    finish(figures)


def test_bot_speed_with_a_list_holding_canaries(base: World) -> None:
    """A list taken from a copy of the database holds canaries: the first one looked up
    suspends the principal, within seconds of that lookup."""
    world = base
    previous = world.platform.clock
    world.platform.clock = WallClock(NOW + timedelta(hours=6))
    try:
        amc = world.amc_numbers[0]
        canaries.plant(world.platform, amc, 10, "test:attack-replay")
        planted = [
            replace(
                world.people[amc][0], nir=c.nir, birth_rank=c.birth_rank,
                birth_date=date.fromisoformat(c.birth_date), member_number=c.member_number,
            )
            for c in canary_people(world.platform, amc)
        ]  # fmt: skip
        people = leaked_list(world, 6)
        people[4:4] = planted[:1]  # the fifth lookup is a canary
        account = fresh_provider(world, 6)
        attacker = Attacker(world, software_login(world, account), advance=lambda: None)
        figures = Figures(world.engine_name, "bot_speed_with_canaries")
        attacker.run(people, figures)
        verify(world, attacker, account.principal_id, figures)
        assert "guard.canary" in figures.alert_codes
        assert figures.suspended_after_requests == 5
        assert figures.answers <= 5
        assert figures.alert_wall_latency_s is not None
        canary_wall = attacker.moments[4][1] - attacker.moments[0][1]
        assert figures.alert_wall_latency_s - canary_wall < CANARY_WITHIN_S
        dead_credentials(world, attacker, people[figures.requests :])
    finally:
        world.platform.clock = previous
    finish(figures)
