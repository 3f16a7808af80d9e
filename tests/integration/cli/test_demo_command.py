"""``tierspayant demo --no-serve`` on a fresh data directory: the data set is made, its
import files do not outlive the import (no identity in clear left behind), the accounts it
prints work at once (the TOTP helper's code is not refused as stale or replayed), the
pharmacy of its pharmacist has paid and rejected invoices, the member paid lines; a
second run prints the same sample card and renews the accounts' credentials (the old ones
stop working, the reset is audited), refused outside the demo's own accounts."""

from __future__ import annotations

import dataclasses
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from tierspayant.app.platform import Platform, open_platform
from tierspayant.cli.main import app
from tierspayant.config import load_settings
from tierspayant.domain.identifiers import find_valid_nirs
from tierspayant.services import accounts
from tierspayant.services.errors import Forbidden, NotFound, Unauthenticated
from tierspayant.store.accounts_tables import accounts as account_rows
from tierspayant.store.claims_tables import claim_lines, claims
from tierspayant.store.ledger_tables import payment_lines, payments
from tierspayant.store.tables import audit_events, providers

SMALL = ["--beneficiaries", "45", "--providers", "6", "--claims", "24", "--no-serve"]
MEMBER = re.compile(
    r"identifiant\s+: (adherent\.\S+)\n\s+mot de passe\s+: (\S+)\n"
    r"\s+secret TOTP\s+: (\w+)\n\s+code TOTP\s+: (.+)"
)
PHARMACIST = re.compile(r"Pharmacien·ne titulaire \(.+\)\n.*\n\s+identifiant\s+: RPPS (\d{11})")


def sample_nir(output: str) -> str:
    found = re.search(r'"nir": "(\d{15})"', output)
    assert found is not None, output
    return found.group(1)


def member_login(output: str) -> tuple[str, str, str, str]:
    found = MEMBER.search(output)
    assert found is not None, output
    login, password, secret, command = found.groups()
    return login, password, secret, command


def helper_code(command: str) -> str:
    """Run the printed TOTP command as a person would, and read its code."""
    program, *args = command.split()
    assert program == sys.executable
    done = subprocess.run([program, *args], capture_output=True, text=True, check=True)
    found = re.fullmatch(r"(\d{6})  \(valable encore (\d+) s\)\n", done.stdout)
    assert found is not None, done.stdout
    assert int(found.group(2)) >= 10
    return found.group(1)


@pytest.fixture
def data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    data = tmp_path / "data"
    monkeypatch.setenv("TIERSPAYANT_DATA_DIR", str(data))
    monkeypatch.delenv("TIERSPAYANT_DATABASE_URL", raising=False)
    monkeypatch.setenv("COLUMNS", "300")
    return data


@pytest.fixture
def opened(data: Path) -> Iterator[list[Platform]]:
    """Platforms a test opens on the demo's data, once a run made it; closed after."""
    made: list[Platform] = []
    yield made
    for platform in made:
        platform.close()


def _open(opened: list[Platform]) -> Platform:
    opened.append(open_platform(load_settings()))
    return opened[-1]


def _login(platform: Platform, login: str, password: str, code: str) -> None:
    challenge = accounts.begin_login(platform, login, password)
    session = accounts.complete_mfa(platform, challenge.challenge_id, totp_code=code)
    accounts.logout(platform, session.token)


def test_the_demo_leaves_no_identity_in_clear_and_its_accounts_work_on_every_run(
    data: Path, opened: list[Platform]
) -> None:
    first = CliRunner().invoke(app, ["demo", *SMALL])
    assert first.exit_code == 0, first.output
    assert "45 bénéficiaires" in first.output
    assert "Comptes de démonstration" in first.output
    nir = sample_nir(first.output)

    files = [path for path in data.rglob("*") if path.is_file()]
    assert any(path.suffix == ".sqlite3" for path in files)
    assert not [path for path in files if path.name.startswith("beneficiaries")]
    for path in files:
        text = path.read_bytes().decode("latin-1")
        assert nir not in text, path
        assert find_valid_nirs(text, isolated=True) == [], path

    # The member logs in at once with the printed password and the helper's code.
    login, password, _, command = member_login(first.output)
    demo = _open(opened)
    _login(demo, login, password, helper_code(command))

    again = CliRunner().invoke(app, ["demo", *SMALL])
    assert again.exit_code == 0, again.output
    assert "déjà présentes" in again.output
    assert "nouveaux mots de passe" in again.output
    assert sample_nir(again.output) == nir
    login_2, password_2, secret_2, command_2 = member_login(again.output)
    assert login_2 == login
    assert password_2 != password
    assert secret_2 in command_2
    # The old password no longer works; the new one, with the helper's code, does.
    with pytest.raises(Unauthenticated):
        accounts.begin_login(demo, login, password)
    _login(demo, login, password_2, helper_code(command_2))
    with demo.engine.connect() as conn:
        resets = conn.execute(
            select(func.count())
            .select_from(audit_events)
            .where(audit_events.c.action == "account.demo_reset")
        ).scalar_one()
    assert resets == 4  # insurer staff, two operators, the member
    assert PHARMACIST.search(again.output) is not None


def test_the_pharmacist_has_paid_and_rejected_invoices_and_the_member_paid_lines(
    data: Path, opened: list[Platform]
) -> None:
    made = CliRunner().invoke(app, ["demo", *SMALL])
    assert made.exit_code == 0, made.output
    found = PHARMACIST.search(made.output)
    assert found is not None, made.output
    rpps = found.group(1)
    demo = _open(opened)
    with demo.engine.connect() as conn:
        # The professional has no login: the account is found by its RPPS.
        provider_id = conn.execute(
            select(account_rows.c.provider_id).where(account_rows.c.rpps == rpps)
        ).scalar_one()
        category = conn.execute(
            select(providers.c.category).where(providers.c.id == provider_id)
        ).scalar_one()
        statuses: dict[str | None, int] = dict(
            conn.execute(
                select(claim_lines.c.reason_code, func.count())
                .select_from(claim_lines.join(claims, claims.c.id == claim_lines.c.claim_id))
                .where(claims.c.provider_id == provider_id, claim_lines.c.status == "rejected")
                .group_by(claim_lines.c.reason_code)
            ).all()
        )
        paid = conn.execute(
            select(func.count()).select_from(payments).where(payments.c.provider_id == provider_id)
        ).scalar_one()
        member = conn.execute(
            select(account_rows.c.beneficiary_id).where(account_rows.c.kind == "member")
        ).scalar_one()
        member_paid = conn.execute(
            select(func.count())
            .select_from(payment_lines.join(claims, claims.c.id == payment_lines.c.claim_id))
            .where(claims.c.beneficiary_id == member)
        ).scalar_one()
    assert category == "pharmacy"
    assert set(statuses) == {"rights.none", "amounts.amo_above_rate"}, statuses
    assert paid >= 1
    assert member_paid >= 1


def test_the_reset_is_refused_outside_the_demo_accounts(data: Path, opened: list[Platform]) -> None:
    made = CliRunner().invoke(app, ["demo", *SMALL])
    assert made.exit_code == 0, made.output
    demo = _open(opened)
    with pytest.raises(Forbidden) as outside:
        accounts.reset_demo_credentials(demo, "gestion@mutuelle.example", actor="test")
    assert outside.value.code == "account.demo_only"
    with pytest.raises(NotFound):
        accounts.reset_demo_credentials(demo, "personne@demo.tierspayant.fr", actor="test")
    # The same demo login on a platform of another database (not the embedded demo one)
    sqlite_settings = demo.settings
    demo.settings = dataclasses.replace(
        sqlite_settings, database_url="postgresql+psycopg://postgres@127.0.0.1:5432/elsewhere"
    )
    try:
        with pytest.raises(Forbidden) as elsewhere:
            accounts.reset_demo_credentials(demo, "securite.1@demo.tierspayant.fr", actor="test")
    finally:
        demo.settings = sqlite_settings
    assert elsewhere.value.code == "account.demo_only"
