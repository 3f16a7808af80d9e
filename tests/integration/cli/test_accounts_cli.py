"""``tierspayant accounts unlock`` and ``accounts recovery-codes`` on both engines, through
the real command line against the test's database (real clock: codes are computed for it).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import timedelta

import pyotp
import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from tests.conftest import SeededInsurer
from tierspayant.app.platform import Platform
from tierspayant.cli.main import app
from tierspayant.services import accounts
from tierspayant.services.errors import ServiceError, TooManyRequests, Unauthenticated
from tierspayant.store.tables import audit_events, metadata

PASSWORD = "cheval bleu mardi pluie"
WRONG = "pas du tout le bon mot de passe"


@pytest.fixture
def runner(platform: Platform, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    metadata.create_all(platform.engine)
    monkeypatch.setenv("TIERSPAYANT_DATA_DIR", str(platform.settings.data_dir))
    monkeypatch.setenv("TIERSPAYANT_DATABASE_URL", platform.settings.database_url)
    monkeypatch.setenv("COLUMNS", "200")
    return CliRunner()


@pytest.fixture
def insurer(platform: Platform, seed_insurer: Callable[..., SeededInsurer]) -> SeededInsurer:
    return seed_insurer(platform, with_catalogue=False)


def _staff(platform: Platform, insurer: SeededInsurer) -> tuple[str, str, tuple[str, ...]]:
    """A staff account with TOTP: its login, TOTP secret and recovery codes."""
    login = f"agent.{uuid.uuid4().hex[:8]}@mutuelle.example"
    accounts.create_account(
        platform,
        accounts.AccountKind.INSURER_STAFF,
        login,
        PASSWORD,
        actor="operator/staff:admin",
        insurer_id=insurer.id,
    )
    challenge = accounts.begin_login(platform, login, PASSWORD)
    setup = accounts.enrol_totp(platform, challenge.challenge_id)
    code = pyotp.TOTP(setup.secret).at(platform.now())
    done = accounts.confirm_totp(platform, challenge.challenge_id, code)
    accounts.logout(platform, done.session.token)
    return login, setup.secret, done.recovery_codes


def _actions(platform: Platform, action: str) -> list[tuple[str, str]]:
    with platform.engine.connect() as conn:
        rows = conn.execute(
            select(audit_events.c.actor, audit_events.c.detail).where(
                audit_events.c.action == action
            )
        ).all()
    return [(str(r.actor), str(r.detail)) for r in rows]


def test_given_a_locked_account_when_unlocked_by_the_cli_then_the_password_opens_again(
    platform: Platform, insurer: SeededInsurer, runner: CliRunner
) -> None:
    login, _, codes = _staff(platform, insurer)
    policy = accounts.auth_policy(platform.settings)
    for _ in range(policy.max_failed_logins):
        with pytest.raises(ServiceError):
            accounts.begin_login(platform, login, WRONG)
    with pytest.raises(TooManyRequests):
        accounts.begin_login(platform, login, PASSWORD)

    result = runner.invoke(app, ["accounts", "unlock", "--login", login])

    assert result.exit_code == 0, result.output
    account = accounts.find_account(platform, login)
    assert account is not None
    assert f"compte déverrouillé : {account.principal_id} (était verrouillé" in result.output
    assert account.failed_logins == 0
    assert account.locked_until is None
    challenge = accounts.begin_login(platform, login, PASSWORD)
    accounts.complete_mfa(platform, challenge.challenge_id, recovery_code=codes[0])
    unlocks = [a for a, d in _actions(platform, "account.unlock") if account.principal_id in d]
    assert unlocks == ["operator:cli"]


def test_given_an_unknown_login_then_unlock_refuses_in_french(
    platform: Platform, runner: CliRunner
) -> None:
    before = len(_actions(platform, "account.unlock"))
    result = runner.invoke(app, ["accounts", "unlock", "--login", "personne@nulle.example"])
    assert result.exit_code == 3  # not found
    assert "[account.unknown] aucun compte ne porte cet identifiant" in result.output
    assert len(_actions(platform, "account.unlock")) == before


def test_given_a_full_login_then_new_recovery_codes_replace_the_old_ones(
    platform: Platform, insurer: SeededInsurer, runner: CliRunner
) -> None:
    login, secret, old_codes = _staff(platform, insurer)
    # The step after the one used at set-up: a code of the same step would be a replay.
    code = pyotp.TOTP(secret).at(platform.now() + timedelta(seconds=30))

    result = runner.invoke(
        app, ["accounts", "recovery-codes", "--login", login], input=f"{PASSWORD}\n{code}\n"
    )

    assert result.exit_code == 0, result.output
    assert "affichés une seule fois" in result.output
    new_codes = [
        line.strip() for line in result.output.splitlines() if line.startswith("  ") and "-" in line
    ]
    assert len(new_codes) == 10
    assert not set(new_codes) & set(old_codes)
    # The old codes no longer open a session; a new one does, once.
    challenge = accounts.begin_login(platform, login, PASSWORD)
    with pytest.raises(Unauthenticated):
        accounts.complete_mfa(platform, challenge.challenge_id, recovery_code=old_codes[1])
    session = accounts.complete_mfa(platform, challenge.challenge_id, recovery_code=new_codes[0])
    account = accounts.find_account(platform, login)
    assert account is not None
    assert session.account_id == account.id
    renewals = [a for a, _ in _actions(platform, "account.recovery_codes")]
    assert renewals.count(account.principal_id) == 1
    # The CLI's own session was closed behind it: only the one opened just now is live.
    assert accounts.logout_everywhere(platform, account.id) == 1


def test_given_a_wrong_second_factor_then_no_new_codes(
    platform: Platform, insurer: SeededInsurer, runner: CliRunner
) -> None:
    login, _, old_codes = _staff(platform, insurer)

    result = runner.invoke(
        app, ["accounts", "recovery-codes", "--login", login], input=f"{PASSWORD}\n000000\n"
    )

    assert result.exit_code == 2
    assert "[auth.mfa_failed] identifiant, mot de passe ou code refusé" in result.output
    account = accounts.find_account(platform, login)
    assert account is not None
    assert account.failed_logins == 1
    renewals = [a for a, _ in _actions(platform, "account.recovery_codes")]
    assert account.principal_id not in renewals
    challenge = accounts.begin_login(platform, login, PASSWORD)
    accounts.complete_mfa(platform, challenge.challenge_id, recovery_code=old_codes[0])


def test_given_an_account_without_second_factor_then_recovery_codes_refused(
    platform: Platform, insurer: SeededInsurer, runner: CliRunner
) -> None:
    login = f"nouveau.{uuid.uuid4().hex[:8]}@mutuelle.example"
    accounts.create_account(
        platform,
        accounts.AccountKind.INSURER_STAFF,
        login,
        PASSWORD,
        actor="operator/staff:admin",
        insurer_id=insurer.id,
    )
    result = runner.invoke(
        app, ["accounts", "recovery-codes", "--login", login], input=f"{PASSWORD}\n"
    )
    assert result.exit_code == 2
    assert "auth.mfa_enrolment_required" in result.output
    assert "n'a pas encore de second facteur" in result.output
