"""The ``tierspayant`` command line on a fresh data directory (SQLite, local keyring):
each refusal is a coded message and a non-zero exit, and leaves stored data unchanged."""

from __future__ import annotations

import re
import shutil
from datetime import date
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from tierspayant.cli.main import app
from tierspayant.demo.synthetic import write_beneficiaries_csv

ROOT = Path(__file__).resolve().parents[3]
CATALOGUE = ROOT / "src" / "tierspayant" / "reference" / "demo" / "mutuelle-des-tilleuls.yaml"
AMC = "75012345"
PHARMACY_AM = "752234567"
PHARMACY_FINESS = "750012346"


def invoke(cli: CliRunner, *args: str) -> tuple[int, str]:
    result = cli.invoke(app, list(args))
    return result.exit_code, result.output


def test_given_init_twice_then_the_second_changes_nothing(cli: CliRunner) -> None:
    code, out = invoke(cli, "init")
    assert code == 0
    assert "trousseau" in out


def test_given_an_insurer_and_its_catalogue_then_both_are_listed(cli: CliRunner) -> None:
    assert invoke(cli, "insurers", "add", "--amc", AMC, "--name", "Mutuelle des Tilleuls")[0] == 0
    code, out = invoke(cli, "insurers", "catalogue", str(CATALOGUE), "--insurer", AMC)
    assert code == 0, out
    assert "catalogue version 1 enregistré" in out
    code, out = invoke(cli, "insurers", "catalogue", str(CATALOGUE), "--insurer", AMC)
    assert "inchangé" in out
    code, out = invoke(cli, "insurers", "list")
    assert AMC in out


def test_given_a_duplicate_or_bad_insurer_then_a_coded_refusal(cli: CliRunner) -> None:
    assert invoke(cli, "insurers", "add", "--amc", AMC, "--name", "A")[0] == 0
    code, out = invoke(cli, "insurers", "add", "--amc", AMC, "--name", "B")
    assert code == 4  # conflict: the insurer exists
    assert "[insurer." in out
    code, out = invoke(cli, "insurers", "add", "--amc", "12AB", "--name", "C")
    assert code == 2
    assert "erreur" in out


def test_given_a_catalogue_breaking_the_responsable_rules_then_refused_with_the_rule(
    cli: CliRunner, tmp_path: Path
) -> None:
    assert invoke(cli, "insurers", "add", "--amc", AMC, "--name", "Mutuelle")[0] == 0
    document = yaml.safe_load(CATALOGUE.read_text(encoding="utf-8"))
    document["contracts"][0]["covers_participation"] = True
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(document, allow_unicode=True), encoding="utf-8")
    code, out = invoke(cli, "insurers", "catalogue", str(bad), "--insurer", AMC)
    assert code == 2
    assert "catalogue.responsable.covers_participation" in out
    _, listed = invoke(cli, "insurers", "list")
    assert AMC in listed  # the insurer is intact, and no catalogue version was stored:
    code, out = invoke(cli, "insurers", "catalogue", str(CATALOGUE), "--insurer", AMC)
    assert "catalogue version 1 enregistré" in out


def test_given_a_catalogue_with_a_bad_value_then_line_path_and_value_in_french(
    cli: CliRunner, tmp_path: Path
) -> None:
    assert invoke(cli, "insurers", "add", "--amc", AMC, "--name", "Mutuelle")[0] == 0
    document = yaml.safe_load(CATALOGUE.read_text(encoding="utf-8"))
    document["contracts"][0]["guarantees"][0]["rate"] = "cent"
    text = yaml.safe_dump(document, allow_unicode=True, sort_keys=False)
    line = 1 + next(n for n, row in enumerate(text.splitlines()) if "rate: cent" in row)
    bad = tmp_path / "taux.yaml"
    bad.write_text(text, encoding="utf-8")
    code, out = invoke(cli, "insurers", "catalogue", str(bad), "--insurer", AMC)
    assert code == 2
    flat = " ".join(out.split())
    assert (
        f"[catalogue.wrong_type] ligne {line}, contracts[0].guarantees[0].rate : un "
        'pourcentage de la BR comme "200" est attendu (valeur « cent »)'
    ) in flat


def test_given_a_malformed_catalogue_file_then_a_syntax_error(
    cli: CliRunner, tmp_path: Path
) -> None:
    assert invoke(cli, "insurers", "add", "--amc", AMC, "--name", "Mutuelle")[0] == 0
    bad = tmp_path / "bad.yaml"
    bad.write_text("contracts: [unclosed", encoding="utf-8")
    code, out = invoke(cli, "insurers", "catalogue", str(bad), "--insurer", AMC)
    assert code == 2
    assert "file.syntax" in out


def test_given_a_provider_then_credentials_are_issued_once(cli: CliRunner) -> None:
    code, out = invoke(
        cli, "providers", "add", "--am", PHARMACY_AM, "--category", "pharmacy",
        "--name", "Pharmacie des Lilas", "--finess", PHARMACY_FINESS,
    )  # fmt: skip
    assert code == 0, out
    code, out = invoke(cli, "tokens", "issue", "--provider", PHARMACY_AM)
    assert code == 0, out
    assert "tpc_" in out
    assert "tpcs_" in out


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--am", "752234568", "--category", "pharmacy", "--name", "X"], "am"),
        (["--am", PHARMACY_AM, "--category", "wizard", "--name", "X"], "provider.category"),
        (
            ["--am", PHARMACY_AM, "--category", "pharmacy", "--name", "X", "--iban", "FR76"],
            "iban",
        ),
    ],
    ids=["bad-am-key", "bad-category", "bad-iban"],
)
def test_given_a_bad_provider_then_a_coded_refusal(
    cli: CliRunner, args: list[str], expected: str
) -> None:
    code, out = invoke(cli, "providers", "add", *args)
    assert code == 2
    assert f"[{expected}" in out


def test_given_a_convention_with_a_bad_date_then_a_coded_refusal(cli: CliRunner) -> None:
    assert invoke(cli, "insurers", "add", "--amc", AMC, "--name", "Mutuelle")[0] == 0
    invoke(cli, "providers", "add", "--am", PHARMACY_AM, "--category", "pharmacy", "--name", "P")
    code, out = invoke(
        cli, "providers", "convention", "--am", PHARMACY_AM, "--insurer", AMC,
        "--valid-from", "2026-02-30",
    )  # fmt: skip
    assert code == 2
    assert "valid_from" in out
    code, out = invoke(cli, "providers", "convention", "--am", PHARMACY_AM, "--insurer", AMC)
    assert code == 0
    assert "PHAR" in out


def test_given_a_beneficiary_file_with_bad_lines_then_they_are_reported_and_rerun_is_idle(
    cli: CliRunner, tmp_path: Path
) -> None:
    assert invoke(cli, "insurers", "add", "--amc", AMC, "--name", "Mutuelle")[0] == 0
    assert invoke(cli, "insurers", "catalogue", str(CATALOGUE), "--insurer", AMC)[0] == 0
    made = write_beneficiaries_csv(
        tmp_path / "b.csv",
        400,
        seed=3,
        contracts=["ESSENTIEL", "EQUILIBRE"],
        bad_line_ratio=0.05,
        start=date(2026, 1, 1),
    )
    report = tmp_path / "errors.csv"
    args = ["import", "beneficiaries", str(made.path), "--insurer", AMC, "--mode", "full"]
    code, out = invoke(cli, *args, "--file-date", "2026-06-01", "--errors", str(report))
    assert code == 1  # some lines were refused
    lines = report.read_text(encoding="utf-8").splitlines()
    assert len(lines) == made.bad_lines + 1  # header + one line per refused line
    code, again = invoke(cli, *args, "--file-date", "2026-06-01")
    assert re.search(r"ajoutés\s+│\s+0 │", again), again
    assert re.search(rf"inchangés\s+│\s+{400 - made.bad_lines} │", again), again
    code, out = invoke(cli, "audit", "verify")
    assert code == 0
    assert "chaîne d'audit intacte" in out


def test_given_an_unknown_insurer_then_the_import_is_refused(
    cli: CliRunner, tmp_path: Path
) -> None:
    made = write_beneficiaries_csv(tmp_path / "b.csv", 5, seed=1, contracts=["ESSENTIEL"])
    code, out = invoke(cli, "import", "beneficiaries", str(made.path), "--insurer", "99999999")
    assert code == 2
    assert "[insurer.unknown]" in out


def test_given_no_data_dir_then_commands_explain_what_to_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TIERSPAYANT_DATA_DIR", str(tmp_path / "empty"))
    monkeypatch.delenv("TIERSPAYANT_DATABASE_URL", raising=False)
    result = CliRunner().invoke(app, ["insurers", "list"])
    assert result.exit_code == 6  # not initialised
    assert "init" in result.output
    shutil.rmtree(tmp_path / "empty", ignore_errors=True)


def test_given_a_full_file_ending_many_coverages_then_the_command_asks_for_the_count(
    cli: CliRunner, tmp_path: Path
) -> None:
    assert invoke(cli, "insurers", "add", "--amc", AMC, "--name", "Mutuelle")[0] == 0
    assert invoke(cli, "insurers", "catalogue", str(CATALOGUE), "--insurer", AMC)[0] == 0
    made = write_beneficiaries_csv(
        tmp_path / "b.csv", 200, seed=4, contracts=["ESSENTIEL"], start=date(2026, 1, 1)
    )
    full = ["import", "beneficiaries", "--insurer", AMC, "--mode", "full"]
    day = ["--file-date", "2026-06-01"]
    assert invoke(cli, *full, str(made.path), *day)[0] == 0
    # The same file without its last 20 lines: 20 of 200 would end, over 2 %.
    cut = tmp_path / "cut.csv"
    cut.write_text("".join(made.path.read_text().splitlines(keepends=True)[:-20]))

    code, out = invoke(cli, *full, str(cut), *day)
    assert code == 2
    assert "mettrait fin à la couverture de 20 bénéficiaires sur 200" in out
    assert "relancez avec --confirm-terminations 20" in out
    code, out = invoke(cli, *full, str(cut), *day, "--confirm-terminations", "-1")
    assert code == 2  # refused by the option itself
    code, out = invoke(cli, *full, str(cut), *day, "--confirm-terminations", "20")
    assert code == 0, out
    assert re.search(r"radiés\s+│\s+20 │", out), out


def test_given_a_one_beneficiary_grant_then_reveal_prints_the_masked_identity(
    cli: CliRunner, tmp_path: Path
) -> None:
    assert invoke(cli, "insurers", "add", "--amc", AMC, "--name", "Mutuelle")[0] == 0
    assert invoke(cli, "insurers", "catalogue", str(CATALOGUE), "--insurer", AMC)[0] == 0
    made = write_beneficiaries_csv(
        tmp_path / "b.csv", 3, seed=8, contracts=["ESSENTIEL"], start=date(2026, 1, 1)
    )
    args = ["import", "beneficiaries", str(made.path), "--insurer", AMC, "--mode", "full"]
    assert invoke(cli, *args)[0] == 0
    with made.path.open(encoding="utf-8") as handle:
        first = handle.read().splitlines()[1].split(";")
    header = made.path.read_text(encoding="utf-8").splitlines()[0].split(";")
    person = dict(zip(header, first, strict=True))
    code, out = invoke(
        cli, "breakglass", "request", "--as", "operator:alice",
        "--reason", "ticket 4711: member asks", "--scope", "beneficiary",
        "--insurer", AMC, "--beneficiary", "1", "--hours", "1",
    )  # fmt: skip
    assert code == 0, out
    grant = re.search(r"accès (\d+)", out)
    assert grant is not None, out
    # Another operator cannot use it; its holder sees the name and a masked NIR
    code, out = invoke(cli, "breakglass", "reveal", grant.group(1), "--as", "operator:bob")
    assert code == 2
    assert person["last_name"] not in out
    code, out = invoke(cli, "breakglass", "reveal", grant.group(1), "--as", "operator:alice")
    assert code == 0, out
    assert f"{person['last_name']} {person['first_name']}" in out
    assert person["nir"] not in out
    assert "** ** *** *** **" in out
