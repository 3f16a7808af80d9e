"""``/readyz`` through the real app, on SQLite and PostgreSQL: 200 naming each check when
the platform can serve, 503 naming the failed checks (and only their names) otherwise."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic import command
from fastapi.testclient import TestClient

from tests.conftest import services_required
from tests.integration.test_key_rotation import hsm  # noqa: F401 - the SoftHSM2 fixture
from tierspayant.api.app import create_app
from tierspayant.app.platform import Platform
from tierspayant.config import load_settings
from tierspayant.security.keys import Pkcs11Keyring
from tierspayant.store.db import alembic_config, make_engine, migrate
from tierspayant.store.health import head_revisions, ping_redis

BASE_CHECKS = {"database", "migrations", "keys", "audit_writer"}
CLOSED_PORT_REDIS = "redis://127.0.0.1:1/0"  # port 1: nothing listens there
LOCAL_REDIS = "redis://127.0.0.1:6379/0"


@pytest.fixture
def client(platform: Platform) -> Iterator[TestClient]:
    with TestClient(create_app(platform)) as built:
        yield built


def _with_redis(platform: Platform, url: str) -> None:
    platform.settings = dataclasses.replace(platform.settings, redis_url=url)


def test_given_a_platform_that_can_serve_then_200_naming_each_check(
    client: TestClient,
) -> None:
    answer = client.get("/readyz")
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"status": "ready", "checks": dict.fromkeys(BASE_CHECKS, "ok")}


def test_given_redis_on_a_closed_port_then_503_naming_redis_only(
    platform: Platform, client: TestClient
) -> None:
    _with_redis(platform, CLOSED_PORT_REDIS)
    answer = client.get("/readyz")
    assert answer.status_code == 503
    assert answer.json() == {
        "status": "not_ready",
        "checks": {**dict.fromkeys(BASE_CHECKS, "ok"), "redis": "failed"},
    }
    # Only the names: no host, port, error class or driver message.
    assert "6379" not in answer.text
    assert "127.0.0.1" not in answer.text
    assert "Error" not in answer.text


def test_given_a_reachable_redis_then_its_check_is_ok(
    platform: Platform, client: TestClient
) -> None:
    try:
        ping_redis(LOCAL_REDIS)
    except Exception as exc:  # noqa: BLE001
        if services_required():
            pytest.fail(f"Redis is not reachable: {exc}")
        pytest.skip(f"Redis is not reachable: {exc}")
    _with_redis(platform, LOCAL_REDIS)
    answer = client.get("/readyz")
    assert answer.status_code == 200, answer.text
    assert answer.json()["checks"]["redis"] == "ok"


def test_given_a_database_behind_its_head_migration_then_503_naming_migrations(
    platform: Platform, client: TestClient
) -> None:
    cfg = alembic_config(platform.engine.url.render_as_string(hide_password=False))
    with platform.engine.begin() as connection:
        cfg.attributes["connection"] = connection
        command.downgrade(cfg, "-1")
    try:
        answer = client.get("/readyz")
        assert answer.status_code == 503
        assert answer.json()["checks"] == {
            **dict.fromkeys(BASE_CHECKS, "ok"),
            "migrations": "failed",
        }
    finally:
        with platform.engine.begin() as connection:
            cfg.attributes["connection"] = connection
            command.upgrade(cfg, "heads")
    assert client.get("/readyz").status_code == 200
    assert head_revisions()


def test_given_a_missing_key_file_then_503_naming_keys(
    platform: Platform, client: TestClient
) -> None:
    keyring: Path = platform.settings.keyring_path
    aside = keyring.with_name("keyring.aside")
    keyring.rename(aside)
    try:
        answer = client.get("/readyz")
        assert answer.status_code == 503
        assert answer.json()["checks"] == {**dict.fromkeys(BASE_CHECKS, "ok"), "keys": "failed"}
        assert str(keyring) not in answer.text
    finally:
        aside.rename(keyring)
    assert client.get("/readyz").status_code == 200


def test_given_another_keyring_file_then_503_naming_keys(
    platform: Platform, client: TestClient, tmp_path: Path
) -> None:
    """A keyring that loads but is not the one of this database cannot unwrap its keys."""
    from tierspayant.security.keys import LocalKeyring

    keyring: Path = platform.settings.keyring_path
    aside = keyring.with_name("keyring.aside")
    keyring.rename(aside)
    LocalKeyring.create(keyring)
    try:
        assert client.get("/readyz").json()["checks"]["keys"] == "failed"
    finally:
        keyring.unlink()
        aside.rename(keyring)


def test_given_a_closed_audit_writer_then_503_naming_it(
    platform: Platform, client: TestClient
) -> None:
    platform.audit_writer.close()
    answer = client.get("/readyz")
    assert answer.status_code == 503
    assert answer.json()["checks"] == {
        **dict.fromkeys(BASE_CHECKS, "ok"),
        "audit_writer": "failed",
    }


def test_given_keks_in_an_hsm_then_keys_ok_while_it_unwraps_and_failed_once_it_cannot(
    hsm: Pkcs11Keyring,  # noqa: F811 - the imported fixture
    tmp_path: Path,
) -> None:
    """The HSM is asked as it is (no file to read again): ready while its KEK unwraps the
    database's data keys; once that KEK is gone (retired by hand), ``keys`` fails."""
    data_dir = tmp_path / "hsm-data"
    settings = load_settings(
        {
            "TIERSPAYANT_DATA_DIR": str(data_dir),
            "TIERSPAYANT_DATABASE_URL": f"sqlite:///{data_dir / 'tierspayant.sqlite3'}",
        }
    )
    engine = make_engine(settings.database_url)
    migrate(engine)
    platform = Platform(settings=settings, engine=engine, key_provider=hsm)
    try:
        platform.operator_keys()
        with TestClient(create_app(platform)) as client:
            assert client.get("/readyz").json()["checks"]["keys"] == "ok"
            wrapping = hsm.kek_id
            hsm.rotate()
            hsm.retire(wrapping)
            answer = client.get("/readyz")
            assert answer.status_code == 503
            assert answer.json()["checks"] == {
                **dict.fromkeys(BASE_CHECKS, "ok"),
                "keys": "failed",
            }
    finally:
        platform.close()
