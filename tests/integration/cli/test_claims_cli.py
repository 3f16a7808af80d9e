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


def test_a_claim_file_is_held_to_the_configured_ceilings_and_names_each_rule(
    platform: Platform,
    seed_insurer: Callable[..., SeededInsurer],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given an operator who lowered the pharmacy line ceiling to 50.00 EUR
    world = build_world(platform, seed_insurer, tmp_path)
    platform.clock = utc_now
    day = platform.today() - timedelta(days=3)
    monkeypatch.setenv("TIERSPAYANT_DATA_DIR", str(platform.settings.data_dir))
    monkeypatch.setenv("TIERSPAYANT_DATABASE_URL", platform.settings.database_url)
    monkeypatch.setenv("TIERSPAYANT_AMOUNT_CEILINGS", "PHAR=5000/20000")
    monkeypatch.setenv("COLUMNS", "300")
    person = world.people[0]
    card = FileCard(person.card.amc_number, person.birth, person.card.nir, 1, None)

    def line(number: str, br: int) -> str:
        content = submission(person, number, drug(day=day, br=br)).content
        return claim_json(ClaimRecord(1, card, content, False))

    # and a file: a 40.00 EUR box (read), a 60.00 EUR one (above the configured ceiling),
    # the 10^10 cents, a negative amount, a line that is not UTF-8
    negative = line("CLI-C4", 1000).replace('"amc_requested_cents":', '"amc_requested_cents":-')
    path = tmp_path / "claims.jsonl"
    path.write_bytes(
        "\n".join(
            [line("CLI-C1", 4000), line("CLI-C2", 6000), line("CLI-C3", 10**10), negative]
        ).encode()
        + b"\n"
        + line("CLI-C5", 1000).replace("CLI-C5", "CLI-C\u00e9").encode("latin-1")
        + b"\n"
    )
    report = tmp_path / "errors.csv"

    # When the file is imported
    result = CliRunner().invoke(
        app,
        ["import", "claims", str(path), "--provider", world.provider.am_number,
         "--error-report", str(report)],
    )  # fmt: skip

    # Then four lines are refused, each with the code and the field of its rule
    assert result.exit_code == 1, result.output
    rows = report.read_text(encoding="utf-8").splitlines()
    assert [r.split(";")[:2] for r in rows[1:]] == [
        ["2", "claim.line_ceiling"],
        ["3", "claim.line_ceiling"],
        ["4", "claim.negative"],
        ["5", "line.encoding"],
    ]
    out = result.output
    assert "lines[0].br_cents: 60.00 EUR is above the ceiling of a PHAR line, 50.00 EUR" in out
    assert "lines[0].br_cents: 100000000.00 EUR is above the ceiling" in out
    assert "lines[0].amc_requested_cents: an amount in cents may not be negative" in out
    assert "the line is not UTF-8 text" in out
    # and the one within the ceiling was received
    with platform.engine.connect() as conn:
        assert latest_version(conn, world.provider.id, "CLI-C1") is not None
        assert latest_version(conn, world.provider.id, "CLI-C2") is None
