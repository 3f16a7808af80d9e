"""A world of real data behind the real app, for HTTP tests (fixtures in ``conftest.py``).

Two insurers with the example catalogues of ``src/tierspayant/reference/demo``, beneficiaries
imported through the enrolment service from a synthetic file (so the tests hold the card
data a provider would read: NIR, rank, birth date, member number), two providers of
different structures (a pharmacy under its FINESS, an OPTAM GP under its SIRET) with API
credentials, and access tokens obtained from ``POST /v1/oauth/token``.

Building a world takes well under a second for a few hundred beneficiaries, so it is
module-scoped: tests must not rely on another test's side effects. The platform's clock is
a :class:`Clock` the tests move by hand; it stays on :data:`NOW` unless a test moves it.

Functional worlds run a *relaxed* guard (quotas far above what a test uses): they test the
API, not the guard. ``tests/security/test_attack_replay.py`` builds its worlds with the
default policy.
"""

from __future__ import annotations

import json
import random
import secrets
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Connection

from tests.factories import make_finess, make_siret
from tests.support import world as core
from tests.support.world import CATALOGUES as CATALOGUES  # re-exported
from tests.support.world import Person as Person  # re-exported
from tests.support.world import beneficiary_id
from tierspayant.api.app import create_app
from tierspayant.app.platform import Platform
from tierspayant.services import insurers, providers

with warnings.catch_warnings():
    # Starlette warns that it prefers httpx2 to httpx; the client works the same.
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

ROOT = Path(__file__).resolve().parents[2]
NOW = datetime(2026, 3, 16, 9, 0, tzinfo=UTC)  # a Monday, 10:00 in Paris
TODAY = NOW.date()
FILE_DATE = date(2026, 1, 1)
ACTOR = "test:api-world"
# The two insurers of every world: (catalogue file, AMC number printed on the card).
INSURER_FILES = ("mutuelle-des-tilleuls.yaml", "azur-assurances-sante.yaml")

RELAXED_GUARD: Mapping[str, object] = {
    "no_proof_soft": 100_000,
    "no_proof_hard": 100_000,
    "unbilled_pending": 100_000,
    "unbilled_soft": 100_000,
    "unbilled_hard": 100_000,
    "miss_soft_percent": 100,
    "miss_hard_percent": 100,
    "principal_per_minute": 1_000_000,
    "structure_per_minute": 1_000_000,
    "global_per_minute": 1_000_000,
    "daily_caps": {"pharmacy": 1_000_000, "gp": 1_000_000},
}
RELAXED_LIMITS = "auth.client=100000/minute"

ENGINE_PARAMS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


class Clock(core.Clock):
    """The platform's clock, moved by hand; on :data:`NOW` until a test moves it."""

    def __init__(self, start: datetime = NOW) -> None:
        super().__init__(start)


@dataclass(frozen=True, slots=True)
class ProviderAccount:
    """A provider with API credentials and a live token."""

    am_number: str
    category: str
    structure: str
    optam: bool
    rpps: str
    client_id: str
    client_secret: str
    token: str

    @property
    def principal_id(self) -> str:
        return providers.client_principal_id(self.am_number, self.client_id)

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@dataclass
class World:
    """Everything a test needs to call the app as a provider would."""

    engine_name: str
    platform: Platform
    client: TestClient
    clock: Clock
    data_dir: Path
    people: dict[str, tuple[Person, ...]]  # by AMC number
    pharmacy: ProviderAccount
    gp: ProviderAccount
    files: list[Path] = field(default_factory=list)
    accounts: dict[str, ProviderAccount] = field(default_factory=dict)

    def account(self, category: str) -> ProviderAccount:
        """A provider of ``category`` (not OPTAM) under each insurer's convention for the
        domains it usually bills in, made on first use."""
        if category not in self.accounts:
            rng = random.Random(f"{self.engine_name}:{category}")
            self.accounts[category] = add_provider_account(
                self.platform,
                self.client,
                rng,
                category=category,
                siret=make_siret(rng),
                amcs=self.amc_numbers,
            )
        return self.accounts[category]

    @property
    def amc_numbers(self) -> tuple[str, ...]:
        return tuple(self.people)

    def everyone(self) -> Iterator[Person]:
        for group in self.people.values():
            yield from group

    def covered(self, amc: str | None = None, contract: str | None = None) -> Person:
        """A beneficiary covered today (and on the file date), with a unique rank-1 NIR."""
        for person in self.people[amc or self.amc_numbers[0]]:
            if contract is not None and person.contract != contract:
                continue
            if person.covered_on(TODAY) and person.covered_on(FILE_DATE) and not person.css:
                return person
        raise LookupError("no covered beneficiary in the world")

    def not_covered(self) -> Person:
        """A beneficiary whose coverage has ended before today."""
        for person in self.everyone():
            if person.coverage_end is not None and person.coverage_end < TODAY:
                return person
        raise LookupError("no former beneficiary in the world")

    def new_token(self, account: ProviderAccount) -> str:
        return request_token(self.client, account.client_id, account.client_secret)


def request_token(client: TestClient, client_id: str, client_secret: str) -> str:
    response = client.post(
        "/v1/oauth/token",
        data={
            "grant_type": "client_credentials",
            "client_id": client_id,
            "client_secret": client_secret,
        },
    )
    assert response.status_code == 200, response.text
    token = response.json()["access_token"]
    assert isinstance(token, str)
    return token


def read_people(path: Path, amc: str) -> tuple[Person, ...]:
    return core.read_people(path, amc)


def open_platform_for(
    engine_name: str,
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    *,
    guard: Mapping[str, object] | None,
    clock: Clock,
) -> tuple[Platform, Path]:
    """A fresh platform on SQLite (new file) or on the module's PostgreSQL database."""
    if engine_name == "sqlite":
        data_dir = tmp_path_factory.mktemp("world") / "data"
        url = f"sqlite:///{data_dir / 'tierspayant.sqlite3'}"
    else:
        url = request.getfixturevalue("postgres_url")
        data_dir = request.getfixturevalue("postgres_data_dir")
    env = {}
    if guard is not None:
        env["TIERSPAYANT_GUARD_POLICY"] = json.dumps(guard)
        env["TIERSPAYANT_RATE_LIMITS"] = RELAXED_LIMITS
    return core.open_platform(data_dir, url=url, env=env, clock=clock), data_dir


def build_world(
    engine_name: str,
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    *,
    count: int = 300,
    guard: Mapping[str, object] | None = RELAXED_GUARD,
    seed: int = 20260316,
) -> World:
    """Insurers, catalogues, ``count`` beneficiaries per insurer, two providers, tokens."""
    clock = Clock()
    platform, data_dir = open_platform_for(
        engine_name, request, tmp_path_factory, guard=guard, clock=clock
    )
    files_dir = tmp_path_factory.mktemp("files")
    people: dict[str, tuple[Person, ...]] = {}
    files: list[Path] = []
    for index, name in enumerate(INSURER_FILES):
        insurer = core.add_insurer(platform, CATALOGUES / name, actor=ACTOR)
        amc = insurer.amc_number
        path = files_dir / f"beneficiaries-{amc}.csv"
        people[amc] = core.enrol(
            platform, amc, count, seed + index, insurer.contracts, FILE_DATE, path=path, actor=ACTOR
        )
        files.append(path)
    client = TestClient(create_app(platform), raise_server_exceptions=False)
    rng = random.Random(seed)
    pharmacy = add_provider_account(
        platform, client, rng, category="pharmacy", finess=make_finess(rng), amcs=tuple(people)
    )
    gp = add_provider_account(
        platform, client, rng, category="gp", siret=make_siret(rng), optam=True, amcs=tuple(people)
    )
    return World(engine_name, platform, client, clock, data_dir, people, pharmacy, gp, files)


def add_provider_account(
    platform: Platform,
    client: TestClient,
    rng: random.Random,
    *,
    category: str,
    amcs: tuple[str, ...],
    finess: str | None = None,
    siret: str | None = None,
    optam: bool = False,
) -> ProviderAccount:
    """Register a provider under every insurer's convention and get it a token."""
    provider = core.add_provider(
        platform, rng, category, amcs=amcs, rpps=True, finess=finess or False,
        siret=siret or False, optam=optam, actor=ACTOR,
    )  # fmt: skip
    assert provider.rpps is not None
    credentials = providers.issue_client(platform, provider.am_number, "logiciel de test", ACTOR)
    token = request_token(client, credentials.client_id, credentials.client_secret)
    return ProviderAccount(
        am_number=provider.am_number,
        category=category,
        structure=provider.structure,
        optam=optam,
        rpps=provider.rpps,
        client_id=credentials.client_id,
        client_secret=credentials.client_secret,
        token=token,
    )


def close_world(world: World) -> None:
    world.client.close()
    world.platform.close()


def error_code(response: Any) -> str:
    """The stable code of an error answer (fails the test on another shape)."""
    body = response.json()
    assert set(body) == {"error"}, body
    code = body["error"]["code"]
    assert isinstance(code, str)
    return code


STAFF_PASSWORD = "cheval bleu mardi pluie"


def staff_session(
    world: World,
    kind: str,
    *,
    amc: str | None = None,
    beneficiary: Person | None = None,
) -> str:
    """A portal session token (usable as a bearer token) of a new staff or member account.

    ``kind`` is an ``AccountKind`` value; insurer staff need ``amc``, members the
    ``beneficiary`` they are. The second factor is a TOTP enrolled on the spot.
    """
    platform = world.platform
    insurer_id: int | None = None
    member_id: int | None = None
    with platform.engine.connect() as conn:
        if amc is not None or beneficiary is not None:
            insurer_id = insurers.get_insurer(conn, amc or beneficiary.amc_number).id  # type: ignore[union-attr]
        if beneficiary is not None:
            member_id = beneficiary_id(platform, beneficiary, conn)
    login = f"{kind}.{secrets.token_hex(4)}@exemple.fr"
    return core.add_account(
        platform, kind, login, STAFF_PASSWORD, actor=ACTOR,
        insurer_id=insurer_id, beneficiary_id=member_id, session=True,
    )  # fmt: skip


def _beneficiary_id(platform: Platform, conn: Connection, person: Person) -> int:
    return beneficiary_id(platform, person, conn)
