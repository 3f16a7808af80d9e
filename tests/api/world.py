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

import csv
import json
import random
import secrets
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pyotp
import pytest
import yaml
from sqlalchemy import Connection

from tests.factories import make_am_number, make_finess, make_rpps, make_siret
from tierspayant.api.app import create_app
from tierspayant.app.platform import Platform, initialise
from tierspayant.config import load_settings
from tierspayant.demo.synthetic import write_beneficiaries_csv
from tierspayant.security.crypto import BlindIndexer
from tierspayant.security.identity import nir_index
from tierspayant.services import accounts, enrolment, insurers, providers
from tierspayant.store.beneficiaries import find_by_nir_index
from tierspayant.store.keys import insurer_scope

with warnings.catch_warnings():
    # Starlette warns that it prefers httpx2 to httpx; the client works the same.
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

ROOT = Path(__file__).resolve().parents[2]
CATALOGUES = ROOT / "src" / "tierspayant" / "reference" / "demo"
NOW = datetime(2026, 3, 16, 9, 0, tzinfo=UTC)  # a Monday, 10:00 in Paris
TODAY = NOW.date()
FILE_DATE = date(2026, 1, 1)
ACTOR = "test:api-world"
# The two insurers of every world: (catalogue file, AMC number printed on the card).
INSURER_FILES = ("mutuelle-des-tilleuls.yaml", "azur-assurances-sante.yaml")

RELAXED_GUARD: Mapping[str, object] = {
    "no_proof_soft": 100_000,
    "no_proof_hard": 100_000,
    "miss_soft_percent": 100,
    "miss_hard_percent": 100,
    "principal_per_minute": 1_000_000,
    "structure_per_minute": 1_000_000,
    "global_per_minute": 1_000_000,
    "daily_caps": {"pharmacy": 1_000_000, "gp": 1_000_000},
}
RELAXED_LIMITS = "auth.client=100000/minute"

ENGINE_PARAMS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


class Clock:
    """The platform's clock, moved by hand."""

    def __init__(self, start: datetime = NOW) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> datetime:
        self.now += timedelta(**delta)
        return self.now


@dataclass(frozen=True, slots=True)
class Person:
    """One beneficiary as the synthetic file has it (identity the card shows, and more)."""

    amc_number: str
    member_number: str
    nir: str
    birth_rank: int
    birth_date: date
    last_name: str
    first_name: str
    contract: str
    coverage_start: date
    coverage_end: date | None
    css: bool

    def covered_on(self, day: date) -> bool:
        return self.coverage_start <= day and (
            self.coverage_end is None or day <= self.coverage_end
        )

    def card(self, **changes: object) -> dict[str, object]:
        """The card block of a request, by NIR and rank, with ``changes`` applied."""
        card: dict[str, object] = {
            "amc_number": self.amc_number,
            "birth_date": self.birth_date.isoformat(),
            "nir": self.nir,
            "birth_rank": self.birth_rank,
        }
        card.update(changes)
        return card

    def identity_strings(self) -> tuple[str, ...]:
        """What must never appear in an answer about this person."""
        return (
            self.nir,
            self.nir[:13],
            self.birth_date.isoformat(),
            self.birth_date.strftime("%d/%m/%Y"),
            self.last_name,
            self.first_name,
        )


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
    with path.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle, delimiter=";"))
    return tuple(
        Person(
            amc_number=amc,
            member_number=row["member_number"],
            nir=row["nir"],
            birth_rank=int(row["birth_rank"]),
            birth_date=date.fromisoformat(row["birth_date"]),
            last_name=row["last_name"],
            first_name=row["first_name"],
            contract=row["contract"],
            coverage_start=date.fromisoformat(row["coverage_start"]),
            coverage_end=date.fromisoformat(row["coverage_end"]) if row["coverage_end"] else None,
            css=row["css"] == "1",
        )
        for row in rows
    )


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
    env = {"TIERSPAYANT_DATA_DIR": str(data_dir), "TIERSPAYANT_DATABASE_URL": url}
    if guard is not None:
        env["TIERSPAYANT_GUARD_POLICY"] = json.dumps(guard)
        env["TIERSPAYANT_RATE_LIMITS"] = RELAXED_LIMITS
    platform = initialise(load_settings(env))
    platform.clock = clock
    return platform, data_dir


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
        document = yaml.safe_load((CATALOGUES / name).read_text(encoding="utf-8"))
        amc = str(document["insurer"])
        insurers.add_insurer(platform, amc, str(document["name"]), "mutuelle", ACTOR)
        upload = insurers.upload_catalogue(platform, amc, document, ACTOR)
        path = files_dir / f"beneficiaries-{amc}.csv"
        write_beneficiaries_csv(
            path, count, seed=seed + index, contracts=upload.contracts, start=FILE_DATE
        )
        summary = enrolment.import_beneficiaries(
            platform, amc, path, mode="full", file_date=FILE_DATE, actor=ACTOR, workers=0
        )
        assert summary.rejected == 0
        files.append(path)
        people[amc] = read_people(path, amc)
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
    am = make_am_number(rng, 5 if category == "pharmacy" else 1)
    rpps = make_rpps(rng)
    provider = providers.add_provider(
        platform,
        providers.NewProvider(
            am_number=am,
            category=category,
            name=f"Test {category}",
            rpps=rpps,
            finess=finess,
            siret=siret,
            optam=optam,
        ),
        ACTOR,
    )
    for amc in amcs:
        providers.add_conventions(platform, am, amc, None, date(2025, 1, 1), ACTOR)
    credentials = providers.issue_client(platform, am, "logiciel de test", ACTOR)
    token = request_token(client, credentials.client_id, credentials.client_secret)
    return ProviderAccount(
        am_number=provider.am_number,
        category=category,
        structure=provider.structure,
        optam=optam,
        rpps=rpps,
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
    beneficiary_id: int | None = None
    with platform.engine.connect() as conn:
        if amc is not None or beneficiary is not None:
            insurer_id = insurers.get_insurer(conn, amc or beneficiary.amc_number).id  # type: ignore[union-attr]
        if beneficiary is not None:
            beneficiary_id = _beneficiary_id(platform, conn, beneficiary)
    login = f"{kind}.{secrets.token_hex(4)}@exemple.fr"
    accounts.create_account(
        platform, kind, login, STAFF_PASSWORD, actor=ACTOR,
        insurer_id=insurer_id, beneficiary_id=beneficiary_id,
    )  # fmt: skip
    challenge = accounts.begin_login(platform, login, STAFF_PASSWORD)
    enrolment = accounts.enrol_totp(platform, challenge.challenge_id)
    code = pyotp.TOTP(enrolment.secret).at(world.clock.now)
    done = accounts.confirm_totp(platform, challenge.challenge_id, str(code))
    return done.session.token


def _beneficiary_id(platform: Platform, conn: Connection, person: Person) -> int:
    insurer = insurers.get_insurer(conn, person.amc_number)
    keys = platform.keys.active(conn, insurer_scope(person.amc_number))
    index = nir_index(BlindIndexer(keys), person.nir, person.birth_rank)
    record = find_by_nir_index(conn, insurer.id, index)
    assert record is not None
    return int(record.id)
