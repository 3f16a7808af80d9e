"""A refused catalogue names the line of the file, the JSON path and the value at fault,
in French; the machine code and the English message stay those of the API."""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml

from tierspayant.domain.errors import CatalogueError
from tierspayant.formats.catalogue import parse_catalogue
from tierspayant.formats.catalogue_errors import explain

TEXT = """\
insurer: "75012345"
version: "2026-01"
contracts:
  - code: ESSENTIEL
    label: Essentiel
    responsable: false
    domains:
      MED: {tiers_payant: true, coverage_code: "100"}
    guarantees:
      - domain: MED
        family: "*"
        rate: "100"
        ceilings:
          - counter: med
            period: calendar_year
            amount: "150.00"
"""


def _refusal(text: str) -> CatalogueError:
    with pytest.raises(CatalogueError) as refused:
        parse_catalogue(text)
    return refused.value


def test_the_sample_is_valid() -> None:
    assert parse_catalogue(TEXT).contracts[0].code == "ESSENTIEL"


# (text replaced, by, code, path, line, value, French)
CASES = [
    ('rate: "100"', "rate: cent", "catalogue.wrong_type",
     "contracts[0].guarantees[0].rate", 12, "cent",
     'un pourcentage de la BR comme "200" est attendu'),
    ('rate: "100"', 'rate: "-5"', "catalogue.negative_amount",
     "contracts[0].guarantees[0].rate", 12, "-5", "montant négatif"),
    ('amount: "150.00"', 'amount: "150.005"', "catalogue.too_many_decimals",
     "contracts[0].guarantees[0].ceilings[0].amount", 16, "150.005", "plus de deux décimales"),
    ("period: calendar_year", "period: yearly", "catalogue.bad_period",
     "contracts[0].guarantees[0].ceilings[0].period", 15, "yearly", "période attendue"),
    ("domain: MED", "domain: MEDS", "catalogue.unknown_domain",
     "contracts[0].guarantees[0].domain", 10, "MEDS", "domaine de soins inconnu"),
    ("    responsable: false\n", "    responsable: false\n    responsible: true\n",
     "catalogue.unknown_key", "contracts[0].responsible", 7, "true", "clé inconnue"),
    ("responsable: false", "responsable: non", "catalogue.wrong_type",
     "contracts[0].responsable", 6, "non", "true ou false est attendu"),
    ("    label: Essentiel\n", "", "catalogue.missing_key",
     "contracts[0].label", 4, None, "clé obligatoire absente"),
    ('coverage_code: "100"', "coverage_code: 100", "catalogue.wrong_type",
     "contracts[0].domains.MED.coverage_code", 8, "100", "un texte non vide est attendu"),
]  # fmt: skip


@pytest.mark.parametrize(("old", "new", "code", "path", "line", "value", "french"), CASES)
def test_each_code_names_line_path_and_value(
    old: str, new: str, code: str, path: str, line: int, value: str | None, french: str
) -> None:
    assert old in TEXT
    error = _refusal(TEXT.replace(old, new, 1))
    assert (error.code, error.field) == (code, path)
    assert error.details.get("line") == line
    assert error.details.get("value") == value
    text = explain(error)
    assert text.startswith(f"ligne {line}, {path} : ")
    assert french in text
    if value is not None:
        assert text.endswith(f"(valeur « {value} »)")


def test_a_document_that_is_not_an_object_says_what_it_found() -> None:
    error = _refusal("- ESSENTIEL\n- CONFORT\n")
    assert error.code == "catalogue.wrong_type"
    assert error.message == "expected an object"  # the API's message is unchanged
    assert dict(error.details) == {"path": "(racine)", "line": 1, "value": "une liste"}
    assert explain(error) == (
        "ligne 1, (racine) : un objet est attendu (des clés et leurs valeurs) (trouvé : une liste)"
    )


def test_a_syntax_error_names_its_line_and_column() -> None:
    error = _refusal(TEXT.replace("label: Essentiel", "label: [Essentiel"))
    assert error.code == "catalogue.malformed"
    assert int(error.details["line"]) >= 5
    assert explain(error).startswith(f"ligne {error.details['line']}, colonne ")


def test_json_text_is_located_too() -> None:
    document: Any = yaml.safe_load(TEXT)
    document["contracts"][0]["guarantees"][0]["rate"] = True
    text = json.dumps(document, indent=2)
    error = _refusal(text)
    assert error.field == "contracts[0].guarantees[0].rate"
    expected = 1 + text.splitlines().index('          "rate": true,')
    assert error.details == {"path": error.field, "line": expected, "value": "true"}


def test_a_decoded_mapping_has_path_and_value_but_no_line() -> None:
    document: Any = yaml.safe_load(TEXT)
    document["contracts"][0]["code"] = "X" * 60 + "!"
    with pytest.raises(CatalogueError) as refused:
        parse_catalogue(document)
    assert "line" not in refused.value.details
    assert refused.value.details["value"] == "X" * 40 + "…"
