"""The claims commands: import a claim file, adjudicate, decide a prior authorisation."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.conftest import SeededInsurer
from tests.integration.claims_world import build_world, drug, submission
from tierspayant.app.platform import Platform, utc_now
from tierspayant.cli.main import app
from tierspayant.domain.care import CareDomain
from tierspayant.domain.pricing import PricingLine
from tierspayant.formats.claims import ClaimRecord, FileCard, claim_json
from tierspayant.services.claims import get_claim
from tierspayant.services.prior_auth import PriorAuthRequest, get_prior_auth, request_prior_auth
from tierspayant.store.claims import latest_version


def test_the_claims_commands(
    platform: Platform,
    seed_insurer: Callable[..., SeededInsurer],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    world = build_world(platform, seed_insurer, tmp_path)
    # The commands open their own platform on the wall clock: so do the calls below.
    platform.clock = utc_now
    day = platform.today() - timedelta(days=3)
    monkeypatch.setenv("TIERSPAYANT_DATA_DIR", str(platform.settings.data_dir))
    monkeypatch.setenv("TIERSPAYANT_DATABASE_URL", platform.settings.database_url)
    monkeypatch.setenv("COLUMNS", "200")
    runner = CliRunner()

    def run(*args: str) -> tuple[int, str]:
        result = runner.invoke(app, list(args))
        return result.exit_code, result.output

    person = world.people[0]
    card = FileCard(person.card.amc_number, person.birth, person.card.nir, 1, None)
    good = ClaimRecord(1, card, submission(person, "CLI-1", drug(day=day)).content, False)
    path = tmp_path / "claims.jsonl"
    path.write_text(claim_json(good) + "\n{broken\n", encoding="utf-8")
    report = tmp_path / "errors.csv"

    code, out = run(
        "import", "claims", str(path), "--provider", world.provider.am_number,
        "--error-report", str(report),
    )  # fmt: skip
    assert code == 1, out  # one line refused
    assert "[file.json]" in out
    assert "ligne 2" in out
    assert "2;file.json;" in report.read_text(encoding="utf-8")
    assert run("import", "claims", str(path), "--provider", "123")[0] == 2

    code, out = run("adjudicate", "--insurer", world.insurer.amc_number)
    assert code == 0, out
    assert "1 factures, 1 lignes liquidées" in out
    with platform.engine.connect() as conn:
        stored = latest_version(conn, world.provider.id, "CLI-1")
    assert stored is not None
    assert get_claim(platform, world.principal, stored.id).amc_accepted_cents == 350

    stay = PricingLine("GHS0001", CareDomain.HOSP, "hospital_stay", 1, 300000, 300000)
    answer, _ = request_prior_auth(
        platform, world.principal, PriorAuthRequest(person.card, day, "cli-stay", (stay,))
    )
    assert answer.status == "pending"
    assert run("prior-auth", "decide", answer.agreement_number)[0] == 2
    code, out = run("prior-auth", "decide", answer.agreement_number, "--refuse")
    assert code == 2
    assert "[prior_auth.reason_required]" in out
    code, out = run(
        "prior-auth", "decide", answer.agreement_number, "--accept", "--reason", "programmé"
    )
    assert code == 0, out
    assert "granted" in out
    assert get_prior_auth(platform, world.principal, answer.agreement_number).status == "granted"
