"""Shared fixtures: platforms on a real database, SQLite (a temporary file) and PostgreSQL.

The ``platform`` fixture runs each test once per engine. PostgreSQL tests get a database
created for their module and dropped after it; when the server cannot be reached they are
skipped, or fail if ``TIERSPAYANT_REQUIRE_SERVICES=1`` (CI). Redis tests get a database
of the local Redis for their test run alone (``redis_db``).
"""

from __future__ import annotations

import itertools
import json
import os
import socket
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError

from tests.support.services import REDIS_HOST, REDIS_PORT, RedisDatabase, reachable_redis
from tierspayant.app.platform import Platform, initialise
from tierspayant.config import load_settings
from tierspayant.store.db import make_engine, migrate
from tierspayant.store.keys import insurer_scope
from tierspayant.store.tables import catalogues, insurers

POSTGRES_SERVER_URL = os.environ.get(
    "TIERSPAYANT_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/"
)
ENGINES = ("sqlite", "postgres")


def services_required() -> bool:
    """CI sets TIERSPAYANT_REQUIRE_SERVICES=1: a missing server is then a failure."""
    return os.environ.get("TIERSPAYANT_REQUIRE_SERVICES") == "1"


def _admin_url() -> str:
    return POSTGRES_SERVER_URL.rstrip("/") + "/postgres"


@pytest.fixture(scope="session")
def postgres_template() -> Iterator[str | None]:
    """A database migrated to head once per test session, which each module's database
    copies (``CREATE DATABASE … TEMPLATE``): migrating an empty database takes ~3 s on
    PostgreSQL since the partitions of migration 0018, copying one a fraction of that.
    None when PostgreSQL is not reachable (the modules then skip or fail as before)."""
    name = f"tp_template_{uuid.uuid4().hex[:12]}"
    admin = create_engine(_admin_url(), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except OperationalError:
        admin.dispose()
        yield None
        return
    try:
        engine = make_engine(POSTGRES_SERVER_URL.rstrip("/") + f"/{name}", pool=False)
        try:
            migrate(engine)
        finally:
            engine.dispose()
        yield name
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(scope="module")
def postgres_url(postgres_template: str | None) -> Iterator[str]:
    """URL of a PostgreSQL database created for this test module (a copy of the migrated
    template), dropped after it."""
    name = f"tp_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(_admin_url(), isolation_level="AUTOCOMMIT")
    template = f' TEMPLATE "{postgres_template}"' if postgres_template else ""
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"{template}'))
    except OperationalError as exc:
        admin.dispose()
        message = f"PostgreSQL is not reachable at {POSTGRES_SERVER_URL}: {exc.orig}"
        if services_required():
            pytest.fail(message)
        pytest.skip(message)
    try:
        yield POSTGRES_SERVER_URL.rstrip("/") + f"/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(scope="module")
def postgres_data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One data directory (hence one keyring) per PostgreSQL database: the operator's data
    keys stored in that database are wrapped by this keyring."""
    return tmp_path_factory.mktemp("pg-data")


# The databases a test run may take, 15 first. Not 0 (a development server's own), nor 12
# and 14 (the benchmarks' defaults, which they flush).
REDIS_TEST_DBS = (15, 13, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1)
# A run that dies without giving its database back keeps it this long at most (sooner on
# this machine: a lock whose process is gone is taken over).
REDIS_LOCK_SECONDS = 6 * 3600
_GIVE_BACK = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""
_TAKE_OVER = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('SET', KEYS[1], ARGV[2], 'EX', tonumber(ARGV[3]))
end
return false
"""


def _abandoned(owner: str) -> bool:
    """Whether a lock's owner (``host:pid:nonce``) was a process of this machine that is
    gone."""
    host, _, rest = owner.partition(":")
    pid = rest.partition(":")[0]
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, another user's
        pass
    return False


def _take_redis_db(admin: redis.Redis, owner: str) -> int | None:
    for index in REDIS_TEST_DBS:
        key = f"tierspayant:test-db:{index}"
        if admin.set(key, owner, nx=True, ex=REDIS_LOCK_SECONDS):
            return index
        held = admin.get(key)
        if (
            isinstance(held, bytes)
            and _abandoned(held.decode())
            and admin.eval(_TAKE_OVER, 1, key, held, owner, REDIS_LOCK_SECONDS)
        ):
            return index
    return None


@pytest.fixture(scope="session")
def redis_db() -> Iterator[RedisDatabase]:
    """A database of the local Redis that no other test run uses meanwhile (each
    pytest-xdist worker is a run of its own), flushed when taken and when given back.

    The first of ``REDIS_TEST_DBS`` whose lock key ``tierspayant:test-db:<n>`` (database
    0) this run sets (``SET NX EX``), deleted at the end if still this run's. Skipped
    without Redis, or failed if ``TIERSPAYANT_REQUIRE_SERVICES=1``; so when every
    database is taken.
    """
    where = f"{REDIS_HOST}:{REDIS_PORT}"
    admin = reachable_redis(
        redis.Redis(host=REDIS_HOST, port=REDIS_PORT, socket_timeout=2, socket_connect_timeout=2),
        where,
    )
    owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex}"
    try:
        index = _take_redis_db(admin, owner)
        if index is None:
            message = f"every test database of the Redis at {where} is taken by another run"
            if services_required():
                pytest.fail(message)
            pytest.skip(message)
        db = RedisDatabase(index)
        client = db.client()
        try:
            client.flushdb()
            yield db
        finally:
            try:
                client.flushdb()
                client.close()
            finally:
                admin.eval(_GIVE_BACK, 1, f"tierspayant:test-db:{index}", owner)
    finally:
        admin.close()


@pytest.fixture(params=[*ENGINES[:1], pytest.param("postgres", marks=pytest.mark.postgres)])
def engine_name(request: pytest.FixtureRequest) -> str:
    """The database engine a test runs on."""
    return str(request.param)


@pytest.fixture
def platform(
    engine_name: str, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[Platform]:
    """An initialised platform on SQLite (fresh file) or PostgreSQL (module database)."""
    if engine_name == "sqlite":
        data_dir = tmp_path / "data"
        url = f"sqlite:///{data_dir / 'tierspayant.sqlite3'}"
    else:
        url = request.getfixturevalue("postgres_url")
        data_dir = request.getfixturevalue("postgres_data_dir")
    settings = load_settings(
        {"TIERSPAYANT_DATA_DIR": str(data_dir), "TIERSPAYANT_DATABASE_URL": url}
    )
    built = initialise(settings)
    try:
        yield built
    finally:
        built.close()


@dataclass(frozen=True, slots=True)
class SeededInsurer:
    id: int
    amc_number: str
    contracts: tuple[str, ...]


_amc_numbers = itertools.count(int(uuid.uuid4().int % 10**6) * 1000)


@pytest.fixture
def seed_insurer() -> Callable[..., SeededInsurer]:
    """Creates an insurer with its data keys and, unless told not to, a catalogue naming
    ``contracts`` (only the contract codes: enough for enrolment)."""

    def make(
        platform: Platform,
        contracts: Sequence[str] = ("ESSENTIEL", "CONFORT"),
        *,
        with_catalogue: bool = True,
    ) -> SeededInsurer:
        amc = f"{next(_amc_numbers) % 10**9:09d}"
        now = platform.now()
        with platform.engine.begin() as conn:
            insurer_id = conn.execute(
                insurers.insert()
                .values(amc_number=amc, name=f"Mutuelle {amc}", kind="mutuelle", created_at=now)
                .returning(insurers.c.id)
            ).scalar_one()
            platform.keys.create(conn, insurer_scope(amc), now)
            if with_catalogue:
                document = json.dumps(
                    {"insurer": amc, "contracts": [{"code": code} for code in contracts]},
                    sort_keys=True,
                    separators=(",", ":"),
                )
                conn.execute(
                    catalogues.insert().values(
                        insurer_id=insurer_id,
                        version=1,
                        document=document,
                        digest="0" * 64,
                        uploaded_at=now,
                        uploaded_by="test",
                    )
                )
        return SeededInsurer(int(insurer_id), amc, tuple(contracts))

    return make
