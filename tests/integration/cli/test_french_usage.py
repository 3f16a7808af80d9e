"""What the command line says when it is misused, in French (usage line, help option,
usage errors) and its refusals by their French sentence."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from tierspayant.cli.french_usage import french_sentence
from tierspayant.cli.main import app


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--bogus"], "Option inconnue : --bogus."),
        (["insurers", "add", "--amc"], "L'option '--amc' attend une valeur."),
        (["insurers", "add", "--name", "x"], "L'option '--amc' est obligatoire."),
        (["insurers", "nope"], "Commande inconnue : 'nope'."),
        (["import", "beneficiaries"], "L'argument"),
    ],
)
def test_a_usage_error_is_said_in_french_with_status_2(
    cli: CliRunner, args: list[str], expected: str
) -> None:
    result = cli.invoke(app, args)
    assert result.exit_code == 2
    assert expected in result.output
    for english in ("No such", "Missing", "requires an argument", "Usage:"):
        assert english not in result.output


def test_the_help_option_and_usage_line_are_in_french(cli: CliRunner) -> None:
    shown = cli.invoke(app, ["insurers", "add", "--help"])
    assert shown.exit_code == 0
    assert "Utilisation : " in shown.output
    assert "insurers add [OPTIONS]" in shown.output
    assert "Afficher cette aide et quitter." in shown.output
    assert "Show this message" not in shown.output


def test_a_refusal_prints_its_code_and_french_sentence(cli: CliRunner) -> None:
    first = cli.invoke(app, ["insurers", "add", "--amc", "12345678", "--name", "Mutuelle A"])
    assert first.exit_code == 0
    again = cli.invoke(app, ["insurers", "add", "--amc", "12345678", "--name", "Mutuelle A"])
    assert again.exit_code != 0
    assert "[insurer.exists] Cet organisme existe déjà." in again.output
    short = cli.invoke(app, ["insurers", "add", "--amc", "1", "--name", "Mutuelle B"])
    assert "[amc_number.length] Le numéro AMC compte 8 à 10 chiffres." in short.output


@pytest.mark.parametrize(
    ("english", "french"),
    [
        ("Value 'x' is not a valid integer.", "la valeur 'x' n'est pas valide (integer attendu)"),
        ("'z' is not one of 'a', 'b'.", "'z' n'est pas l'une des valeurs 'a', 'b'"),
        ("File '/nowhere' does not exist.", "'/nowhere' n'existe pas"),
        ("Got unexpected extra argument (x)", "argument en trop : x"),
        # A sentence of an unknown shape keeps what it says
        ("Something new happened.", "Something new happened."),
    ],
)
def test_click_sentences_and_their_french(english: str, french: str) -> None:
    assert french_sentence(english) == french
