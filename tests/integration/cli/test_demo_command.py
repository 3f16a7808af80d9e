"""``tierspayant demo --no-serve`` on a fresh data directory: the data set is made, its
import files do not outlive the import (no identity in clear left behind), and a second
run prints the same sample card, made again from the generator."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tierspayant.cli.main import app
from tierspayant.domain.identifiers import find_valid_nirs

SMALL = ["--beneficiaries", "45", "--providers", "6", "--claims", "24", "--no-serve"]


def sample_nir(output: str) -> str:
    found = re.search(r'"nir": "(\d{15})"', output)
    assert found is not None, output
    return found.group(1)


def test_the_demo_leaves_no_identity_in_clear_and_reprints_its_sample_card(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = tmp_path / "data"
    monkeypatch.setenv("TIERSPAYANT_DATA_DIR", str(data))
    monkeypatch.delenv("TIERSPAYANT_DATABASE_URL", raising=False)
    monkeypatch.setenv("COLUMNS", "300")
    first = CliRunner().invoke(app, ["demo", *SMALL])
    assert first.exit_code == 0, first.output
    assert "45 beneficiaries" in first.output
    nir = sample_nir(first.output)

    files = [path for path in data.rglob("*") if path.is_file()]
    assert any(path.suffix == ".sqlite3" for path in files)
    assert not [path for path in files if path.name.startswith("beneficiaries")]
    for path in files:
        text = path.read_bytes().decode("latin-1")
        assert nir not in text, path
        assert find_valid_nirs(text, isolated=True) == [], path

    again = CliRunner().invoke(app, ["demo", *SMALL])
    assert again.exit_code == 0, again.output
    assert "already present" in again.output
    assert sample_nir(again.output) == nir
