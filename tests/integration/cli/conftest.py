"""What the CLI tests share: a CLI on a fresh embedded platform."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from tierspayant.cli.main import app


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    """A CLI runner on a fresh data directory (SQLite), ``tierspayant init`` done."""
    monkeypatch.setenv("TIERSPAYANT_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("TIERSPAYANT_DATABASE_URL", raising=False)
    monkeypatch.setenv("COLUMNS", "200")
    runner = CliRunner()
    assert runner.invoke(app, ["init"]).exit_code == 0
    return runner
