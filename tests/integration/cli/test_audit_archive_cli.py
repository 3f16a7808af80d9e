"""``tierspayant audit archiver`` on the embedded database: a coded refusal in French
(archiving needs the log partitioned by month, on PostgreSQL) and nothing written."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from tierspayant.cli.main import app


def test_a_malformed_month_is_refused(cli: CliRunner, tmp_path: Path) -> None:
    result = cli.invoke(
        app, ["audit", "archiver", "--mois", "2026-13", "--dossier", str(tmp_path / "a")]
    )
    assert result.exit_code != 0
    assert "AAAA-MM" in result.output
    assert not (tmp_path / "a").exists()


def test_archiving_on_the_embedded_database_is_refused(cli: CliRunner, tmp_path: Path) -> None:
    result = cli.invoke(
        app, ["audit", "archiver", "--mois", "2026-01", "--dossier", str(tmp_path / "a")]
    )
    assert result.exit_code == 4, result.output  # a conflict with the database's state
    assert "PostgreSQL" in result.output
    assert not (tmp_path / "a").exists()


def test_the_help_is_in_french(cli: CliRunner) -> None:
    result = cli.invoke(app, ["audit", "archiver", "--help"])
    assert result.exit_code == 0
    assert "Archiver un mois du journal" in result.output
