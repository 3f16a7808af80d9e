"""The sandbox for software makers, on SQLite and PostgreSQL, through the real app.

Given the sandbox built (twice), then its data are the same on every run (the export is
byte-identical, a second run adds nothing), every documented case gets from
``POST /v1/eligibility`` exactly the documented answer, and ``docs/sandbox.md`` shows the
cases as the code defines them. The command refuses an export inside the data directory.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from tierspayant.api.app import create_app
from tierspayant.app.platform import Platform
from tierspayant.cli.main import app as cli
from tierspayant.cli.sandbox import cases_markdown
from tierspayant.demo import sandbox
from tierspayant.demo.synthetic import nir_key

with warnings.catch_warnings():
    # Starlette prefers httpx2 to httpx; the client works the same.
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

DOC = Path(__file__).resolve().parents[2] / "docs" / "sandbox.md"


def answer_of(client: TestClient, token: str, case: sandbox.SandboxCase, day: str) -> Any:
    response = client.post(
        "/v1/eligibility",
        headers={"Authorization": f"Bearer {token}"},
        json={"card": case.card, "care_date": day, "domains": list(case.domains)},
    )
    body = response.json()
    if response.status_code != 200:
        return {"status": response.status_code, "code": body["error"]["code"]}
    rights = [
        [r["domain"], r["covered"], r["tiers_payant"], r["coverage_code"]] for r in body["rights"]
    ]
    return {"rights": rights, "engagement": "engagement_number" in body}


def test_given_the_sandbox_built_twice_then_same_data_and_the_documented_answers(
    platform: Platform, tmp_path: Path
) -> None:
    first = sandbox.build_sandbox(platform)
    sandbox.export_sandbox(tmp_path / "first.json")
    second = sandbox.build_sandbox(platform)
    sandbox.export_sandbox(tmp_path / "second.json")
    assert not second.created
    assert (tmp_path / "first.json").read_bytes() == (tmp_path / "second.json").read_bytes()
    assert first.client_id != second.client_id  # fresh credentials, same data
    people = sandbox.sandbox_data()["people"]
    assert [p["nir"] for p in people] == [
        "280059733001813",
        "112090796461546",
        "175020342423354",
        "290111630327036",
    ]
    assert all(p["nir"][13:] == nir_key(p["nir"][:13]) for p in people)
    client = TestClient(create_app(platform))
    token = client.post(
        "/v1/oauth/token",
        data={
            "grant_type": "client_credentials",
            "client_id": second.client_id,
            "client_secret": second.client_secret,
        },
    ).json()["access_token"]
    day = platform.today().isoformat()
    for case in sandbox.sandbox_cases():
        assert answer_of(client, token, case, day) == case.expected, case.key


def test_the_documentation_shows_the_cases_as_the_code_defines_them() -> None:
    text = DOC.read_text(encoding="utf-8")
    assert cases_markdown() in text
    for person in sandbox.sandbox_data()["people"]:
        assert person["nir"] in text
        assert person["member_number"] in text


def test_given_the_command_twice_then_the_same_export_and_none_inside_the_data_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data_dir = tmp_path / "data"
    monkeypatch.setenv("TIERSPAYANT_DATA_DIR", str(data_dir))
    monkeypatch.setenv("TIERSPAYANT_DATABASE_URL", f"sqlite:///{data_dir / 'tp.sqlite3'}")
    monkeypatch.setenv("COLUMNS", "250")
    runner = CliRunner()
    exports = []
    for run in (1, 2):
        target = tmp_path / f"export-{run}.json"
        result = runner.invoke(cli, ["sandbox", "--no-serve", "--export", str(target)])
        assert result.exit_code == 0, result.output
        assert "280059733001813" in result.output
        assert "client_secret=" in result.output
        exports.append(target.read_bytes())
    assert "déjà présent" in result.output
    assert exports[0] == exports[1]
    inside = runner.invoke(
        cli, ["sandbox", "--no-serve", "--export", str(data_dir / "sub" / "x.json")]
    )
    assert inside.exit_code == 2
    assert not (data_dir / "sub" / "x.json").exists()
