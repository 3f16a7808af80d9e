"""A refusal that knows where a file went wrong adds ``line``, ``column``, ``path`` and
``value`` to the API's standard error body; the code and message stay the same, and an
error without details answers exactly as before."""

from __future__ import annotations

import warnings
from datetime import date
from pathlib import Path

from fastapi import FastAPI

from tierspayant.api.errors import install_error_handlers
from tierspayant.domain.errors import CatalogueError
from tierspayant.formats.beneficiaries import BeneficiaryReader, ImportMode
from tierspayant.formats.catalogue import parse_catalogue

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient


def _app(tmp_path: Path) -> TestClient:
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/catalogue")
    def catalogue() -> None:
        parse_catalogue("- not\n- an object\n")

    @app.get("/beneficiaries")
    def beneficiaries() -> None:
        path = tmp_path / "b.csv"
        path.write_text("member_number;nir;birth_rank;naissance\n", encoding="utf-8")
        with BeneficiaryReader(
            path, contracts=(), mode=ImportMode.FULL, file_date=date(2026, 1, 1)
        ):
            pass

    @app.get("/plain")
    def plain() -> None:
        raise CatalogueError("catalogue.no_contracts", "a catalogue needs a contract")

    return TestClient(app)


def test_file_errors_carry_their_location_and_value(tmp_path: Path) -> None:
    client = _app(tmp_path)
    assert client.get("/catalogue").json() == {
        "error": {
            "code": "catalogue.wrong_type",
            "message": "expected an object",
            "path": "(racine)",
            "line": 1,
            "value": "une liste",
        }
    }
    body = client.get("/beneficiaries").json()["error"]
    assert body["code"] == "file.header.unknown_column"
    assert (body["line"], body["column"], body["value"]) == (1, 4, "naissance")


def test_an_error_without_details_answers_as_before(tmp_path: Path) -> None:
    answer = _app(tmp_path).get("/plain")
    assert answer.status_code == 422
    assert answer.json() == {
        "error": {"code": "catalogue.no_contracts", "message": "a catalogue needs a contract"}
    }
