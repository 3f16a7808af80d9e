"""``tierspayant accounts create|demo`` and ``demo.accounts``."""

from __future__ import annotations

import pyotp
import pytest
from typer.testing import CliRunner

from tests.web.world import AMC, World
from tierspayant.cli.main import app
from tierspayant.demo import accounts as portal_demo
from tierspayant.services import accounts


@pytest.fixture
def runner(world: World) -> CliRunner:
    return CliRunner(env={"TIERSPAYANT_DATA_DIR": str(world.platform.settings.data_dir)})


def test_create_staff_account_prints_the_totp_secret_once(world: World, runner: CliRunner) -> None:
    password = portal_demo.demo_password()
    result = runner.invoke(
        app,
        [
            "accounts",
            "create",
            "--kind",
            "insurer_staff",
            "--login",
            "cli@tilleuls.example",
            "--insurer",
            AMC,
        ],
        input=f"{password}\n{password}\n",
    )
    assert result.exit_code == 0, result.output
    assert "otpauth://totp/" in result.output
    secret = result.output.split("clé TOTP (affichée une seule fois) : ", 1)[1].split()[0]
    account = accounts.find_account(world.platform, "cli@tilleuls.example")
    assert account is not None
    assert account.has_totp
    # The secret works: a later code opens a session
    world.clock.advance(60)
    challenge = accounts.begin_login(world.platform, "cli@tilleuls.example", password)
    code = pyotp.TOTP(secret).at(world.clock())
    session = accounts.complete_mfa(world.platform, challenge.challenge_id, totp_code=code)
    assert session.principal.insurer_id == world.insurer_id


def test_create_refuses_an_unknown_kind_and_a_weak_password(runner: CliRunner) -> None:
    unknown = runner.invoke(app, ["accounts", "create", "--kind", "admin", "--login", "a@b.fr"])
    assert unknown.exit_code == 2
    assert "account.kind" in unknown.output
    weak = runner.invoke(
        app,
        ["accounts", "create", "--kind", "operator_staff", "--login", "op@operateur.example"],
        input="motdepasse123\nmotdepasse123\n",
    )
    assert weak.exit_code == 2


def test_demo_accounts_one_per_portal_then_nothing(world: World, runner: CliRunner) -> None:
    # The professional already has an account in this world: only staff and member logins
    first = runner.invoke(app, ["accounts", "demo"], terminal_width=200)
    assert first.exit_code == 0, first.output
    for path in ("/portail/assureur/", "/portail/securite/", "/portail/adherent/"):
        assert path in first.output
    login = f"gestion.{AMC}@demo.tierspayant.fr"
    assert login in first.output
    # A second run creates nothing (secrets cannot be shown again)
    assert portal_demo.create_demo_accounts(world.platform) == []
    again = runner.invoke(app, ["accounts", "demo"])
    assert "existent déjà" in again.output
    # Another domain: a full set, each with a password and a TOTP secret
    made = portal_demo.create_demo_accounts(world.platform, domain="demo.example")
    assert len(made) == 4
    assert all(a.password and a.totp_secret for a in made)
