"""``tierspayant doctor``: a sound configuration passes (exit 0); each problem gives one
French line saying what to fix, and the exit status is 1."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from alembic import command
from typer.testing import CliRunner

from tierspayant.app.platform import Platform, initialise
from tierspayant.cli.doctor_cmds import PROBLEMS_FOUND
from tierspayant.cli.main import app
from tierspayant.config import load_settings
from tierspayant.store.db import alembic_config, make_engine, migrate

PROBLEM = "problème "


@pytest.fixture
def configured(engine_name: str, tmp_path: Path, request: pytest.FixtureRequest) -> dict[str, str]:
    """The environment of an initialised platform (SQLite file or PostgreSQL database)."""
    if engine_name == "sqlite":
        data_dir = tmp_path / "data"
        url = f"sqlite:///{data_dir / 'tierspayant.sqlite3'}"
    else:
        url = request.getfixturevalue("postgres_url")
        data_dir = request.getfixturevalue("postgres_data_dir")
        data_dir.chmod(0o700)
    env = {"TIERSPAYANT_DATA_DIR": str(data_dir), "TIERSPAYANT_DATABASE_URL": url}
    platform: Platform = initialise(load_settings(env))
    platform.close()
    return env


def doctor(env: dict[str, str]) -> tuple[int, list[str]]:
    result = CliRunner().invoke(app, ["doctor"], env=env)
    lines = [line for line in result.output.splitlines() if line.startswith(PROBLEM)]
    return result.exit_code, lines


def test_given_a_sound_configuration_then_no_problem_and_exit_0(
    configured: dict[str, str],
) -> None:
    result = CliRunner().invoke(app, ["doctor"], env=configured)
    assert result.exit_code == 0, result.output
    assert "aucun problème" in result.output


def test_given_redis_on_a_closed_port_then_one_line_naming_redis(
    configured: dict[str, str],
) -> None:
    code, lines = doctor({**configured, "TIERSPAYANT_REDIS_URL": "redis://127.0.0.1:1/0"})
    assert code == PROBLEMS_FOUND
    assert len(lines) == 1
    assert "Redis (127.0.0.1:1) ne répond pas" in lines[0]
    assert "TIERSPAYANT_REDIS_URL" in lines[0]


def test_given_a_database_behind_its_head_then_one_line_saying_to_run_init(
    configured: dict[str, str],
) -> None:
    engine = make_engine(configured["TIERSPAYANT_DATABASE_URL"], pool=False)
    cfg = alembic_config(engine.url.render_as_string(hide_password=False))
    try:
        with engine.begin() as connection:
            cfg.attributes["connection"] = connection
            command.downgrade(cfg, "-1")
        code, lines = doctor(configured)
        assert code == PROBLEMS_FOUND
        assert len(lines) == 1
        assert "n'est pas à la dernière migration" in lines[0]
        assert "tierspayant init" in lines[0]
    finally:
        migrate(engine)
        engine.dispose()
    assert doctor(configured) == (0, [])


def test_given_a_missing_key_file_then_one_line_saying_to_restore_it(
    configured: dict[str, str],
) -> None:
    keyring = Path(configured["TIERSPAYANT_DATA_DIR"]) / "keyring.json"
    aside = keyring.with_name("keyring.aside")
    keyring.rename(aside)
    try:
        code, lines = doctor(configured)
    finally:
        aside.rename(keyring)
    assert code == PROBLEMS_FOUND
    assert len(lines) == 1
    assert f"Aucun trousseau en {keyring}" in lines[0]
    assert "restaurez-le" in lines[0]


def test_given_another_keyring_then_it_cannot_unwrap_the_database_keys(
    configured: dict[str, str], tmp_path: Path
) -> None:
    other = tmp_path / "other"
    other.mkdir(mode=0o700)
    initialise(load_settings({"TIERSPAYANT_DATA_DIR": str(other)})).close()
    code, lines = doctor({**configured, "TIERSPAYANT_KEYRING": str(other / "keyring.json")})
    assert code == PROBLEMS_FOUND
    assert len(lines) == 1
    assert "ne déchiffre pas les clés de cette base" in lines[0]


def test_given_open_permissions_then_one_line_each_with_the_chmod_to_run(
    configured: dict[str, str],
) -> None:
    data_dir = Path(configured["TIERSPAYANT_DATA_DIR"])
    keyring = data_dir / "keyring.json"
    data_dir.chmod(0o755)
    keyring.chmod(0o644)
    try:
        code, lines = doctor(configured)
    finally:
        data_dir.chmod(0o700)
        keyring.chmod(0o600)
    assert code == PROBLEMS_FOUND
    assert len(lines) == 2
    assert f"chmod 700 {data_dir}" in lines[0]
    assert f"chmod 600 {keyring}" in lines[1]


def test_given_an_unreachable_database_then_one_line_naming_it(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    initialise(load_settings({"TIERSPAYANT_DATA_DIR": str(data_dir)})).close()
    env = {
        "TIERSPAYANT_DATA_DIR": str(data_dir),
        "TIERSPAYANT_DATABASE_URL": "postgresql+psycopg://postgres@127.0.0.1:1/none",
    }
    code, lines = doctor(env)
    assert code == PROBLEMS_FOUND
    assert len(lines) == 1
    assert "ne répond pas" in lines[0]
    assert "TIERSPAYANT_DATABASE_URL" in lines[0]


def test_given_no_data_directory_then_it_says_to_run_init(tmp_path: Path) -> None:
    code, lines = doctor({"TIERSPAYANT_DATA_DIR": str(tmp_path / "absent")})
    assert code == PROBLEMS_FOUND
    assert lines
    assert all("tierspayant init" in line for line in lines)
    assert not (tmp_path / "absent").exists()  # the doctor creates nothing


def test_given_a_bad_setting_then_one_line_naming_the_variable(tmp_path: Path) -> None:
    code, lines = doctor({"TIERSPAYANT_DATA_DIR": str(tmp_path), "TIERSPAYANT_PORT": "huit"})
    assert code == PROBLEMS_FOUND
    assert len(lines) == 1
    assert "Le réglage TIERSPAYANT_PORT est invalide" in lines[0]


@pytest.mark.parametrize("portal_tls", ["0", "1"])
def test_given_a_server_listening_beyond_loopback_then_the_tls_line(
    configured: dict[str, str], portal_tls: str
) -> None:
    everywhere = "0.0.0.0"  # noqa: S104 - the configuration under test
    env = {**configured, "TIERSPAYANT_HOST": everywhere, "TIERSPAYANT_PORTAL_TLS": portal_tls}
    code, lines = doctor(env)
    assert code == PROBLEMS_FOUND
    assert len(lines) == 1
    assert everywhere in lines[0]
    assert "127.0.0.1" in lines[0]
    loopback = {**configured, "TIERSPAYANT_PORTAL_TLS": portal_tls}
    assert doctor(loopback) == (0, [])
    assert os.environ.get("TIERSPAYANT_HOST") is None
