"""``tierspayant containment``: propose, approve, lift, status, in French, with coded
exits (2 refused as given, 3 unknown switch, 4 nothing waits), on a fresh SQLite
data directory."""

from __future__ import annotations

import re

from typer.testing import CliRunner

from tierspayant.cli.main import app


def run(cli: CliRunner, *args: str) -> tuple[int, str]:
    result = cli.invoke(app, ["containment", *args])
    return result.exit_code, result.output


def test_two_operators_switch_a_structure_and_lift_it(cli: CliRunner) -> None:
    # When a first operator proposes card-proof-only mode for one structure
    code, out = run(
        cli, "propose", "--scope", "structure:750012346", "--mode", "card_proof_only",
        "--reason", "identifiants hameçonnés", "--as", "operator:alice",
    )  # fmt: skip
    assert code == 0, out
    assert "bascule proposée" in out
    assert "structure 750012346, carte obligatoire" in out
    switch_id = re.search(r"n° (\d+)", out).group(1)  # type: ignore[union-attr]
    # Then they cannot approve it themselves (exit 2, French message, code)
    code, out = run(cli, "approve", switch_id, "--as", "operator:alice")
    assert code == 2
    assert "[containment.second_operator_required]" in out
    assert "Un second opérateur, différent de celui qui a proposé, doit approuver." in out
    code, out = run(cli, "status")
    assert "proposée" in out
    assert "0 bascule(s) en vigueur" in out
    # When a second operator approves
    code, out = run(cli, "approve", switch_id, "--as", "operator:bob")
    assert code == 0, out
    assert "bascule en vigueur" in out
    # Then the status shows it in force with both names
    code, out = run(cli, "status")
    assert code == 0
    line = next(row for row in out.splitlines() if "750012346" in row)
    assert "en vigueur" in line
    assert "operator:alice" in line
    assert "operator:bob" in line
    assert "1 bascule(s) en vigueur" in out
    # And approving again finds nothing waiting (exit 4)
    code, out = run(cli, "approve", switch_id, "--as", "operator:carol")
    assert code == 4
    assert "[containment.not_waiting]" in out
    # When bob proposes the lift and alice approves it
    code, out = run(cli, "lift", switch_id, "--reason", "comptes révoqués", "--as", "operator:bob")
    assert code == 0, out
    assert "levée proposée" in out
    assert "en vigueur, levée proposée" in run(cli, "status")[1]
    assert run(cli, "approve", switch_id, "--as", "operator:bob")[0] == 2
    code, out = run(cli, "approve", switch_id, "--as", "operator:alice")
    assert code == 0, out
    assert "bascule levée" in out
    code, out = run(cli, "status")
    assert "0 bascule(s) en vigueur" in out


def test_refusals_are_coded_and_in_french(cli: CliRunner) -> None:
    code, out = run(
        cli, "propose", "--scope", "category:plombier", "--mode", "off",
        "--reason", "un motif suffisant", "--as", "operator:alice",
    )  # fmt: skip
    assert code == 2
    assert "[containment.scope] Périmètre invalide." in out
    code, out = run(
        cli, "propose", "--scope", "platform", "--mode", "closed",
        "--reason", "un motif suffisant", "--as", "operator:alice",
    )  # fmt: skip
    assert code == 2
    assert "[containment.mode]" in out
    code, out = run(
        cli, "propose", "--scope", "platform", "--mode", "off", "--reason", "court",
        "--as", "operator:alice",
    )  # fmt: skip
    assert code == 2
    assert "[containment.reason]" in out
    code, out = run(
        cli, "propose", "--scope", "platform", "--mode", "off", "--reason", "un motif suffisant",
        "--as", "provider:1",
    )  # fmt: skip
    assert code == 2
    assert "Réservé aux opérateurs." in out
    code, out = run(cli, "approve", "999", "--as", "operator:bob")
    assert code == 3
    assert "Bascule inconnue." in out
    code, out = run(cli, "lift", "999", "--reason", "un motif suffisant", "--as", "operator:bob")
    assert code == 3


def test_the_help_is_in_french(cli: CliRunner) -> None:
    code, out = run(cli, "--help")
    assert code == 0
    assert "Confinement sans interruption" in out
    code, out = run(cli, "propose", "--help")
    assert "Proposer une bascule" in out
    assert "carte obligatoire" in out
