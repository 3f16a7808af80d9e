"""Every error of a beneficiary file names its line, its column and the offending value
(masked when it identifies a person), in French; the machine code stays the same."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from stdnum.fr import nir as stdnum_nir

from tierspayant.formats import french_csv
from tierspayant.formats.beneficiaries import (
    BeneficiaryFileError,
    BeneficiaryReader,
    ErrorReportWriter,
    ImportMode,
    LineError,
    explain,
    explain_file,
    shown_value,
)

HEADER = (
    "member_number;nir;birth_rank;birth_date;last_name;first_name;sex;quality;contract;"
    "coverage_start;coverage_end;css;action"
)
CONTRACTS = frozenset({"ESSENTIEL"})
FILE_DATE = date(2025, 3, 1)


def _nir(sex: str, birth: date) -> str:
    body = f"{'1' if sex == 'M' else '2'}{birth.year % 100:02d}{birth.month:02d}69123789"
    return body + stdnum_nir.calc_check_digits(body)


NIR = _nir("F", date(1979, 11, 2))
GOOD = f"B0042;{NIR};1;1979-11-02;Lefèvre;Claire;F;member;ESSENTIEL;2024-01-01;;0;A"


def _with(column: str, value: str) -> str:
    cells = GOOD.split(";")
    cells[HEADER.split(";").index(column)] = value
    return ";".join(cells)


def _errors(tmp_path: Path, *lines: str, header: str = HEADER) -> list[LineError]:
    path = tmp_path / "beneficiaires.csv"
    path.write_text("\n".join((header, *lines)) + "\n", encoding="utf-8")
    mode = ImportMode.INCREMENTAL
    with BeneficiaryReader(path, contracts=CONTRACTS, mode=mode, file_date=FILE_DATE) as reader:
        found = [item for item in reader if isinstance(item, LineError)]
    return found


# (column, bad cell, code, value shown, French reason)
CASES = [
    ("member_number", "B00 42", "line.member_number", "B•• ••", "numéro d'adhérent attendu"),
    ("nir", NIR[:-1] + "0", "line.nir.key", NIR[0] + "•" * 14, "la clé du NIR"),
    ("nir", NIR[:10], "line.nir.length", NIR[0] + "•" * 9, "le NIR compte 15 caractères"),
    ("birth_rank", "x", "line.birth_rank.format", "x", "rang de naissance attendu"),
    ("birth_date", "02/11/1979", "line.date", "••/••/••••", "date attendue au format AAAA-MM-JJ"),
    ("birth_date", "1979-12-02", "line.nir_birth_mismatch", "••••-••-••", "mois de naissance"),
    ("last_name", "Lef3vre", "line.name", "L••••••", "nom attendu"),
    ("first_name", "Cl@ire", "line.name", "C•@•••", "nom attendu"),
    ("sex", "Z", "line.sex", "Z", "sexe attendu : M ou F"),
    ("sex", "M", "line.nir_sex_mismatch", "M", "premier chiffre du NIR"),
    ("quality", "époux", "line.quality", "époux", "qualité attendue"),
    ("contract", "PREMIUM", "line.unknown_contract", "PREMIUM", "catalogue en vigueur"),
    ("coverage_start", "2024-13-01", "line.date", "2024-13-01", "AAAA-MM-JJ"),
    ("coverage_end", "2023-01-01", "line.coverage_order", "2023-01-01", "la fin de couverture"),
    ("css", "oui", "line.css", "oui", "indicateur CSS attendu"),
    ("action", "X", "line.action", "X", "action attendue"),
]


@pytest.mark.parametrize(("column", "cell", "code", "value", "reason"), CASES)
def test_each_line_code_names_line_column_and_value(
    tmp_path: Path, column: str, cell: str, code: str, value: str, reason: str
) -> None:
    # Given a file whose third line (second beneficiary) has one bad cell
    (error,) = _errors(tmp_path, GOOD.replace("B0042", "B0041"), _with(column, cell))

    # Then the error keeps its code and says where, what and which value, in French
    assert (error.line_no, error.code, error.column, error.value) == (3, code, column, value)
    text = explain(error)
    assert text.startswith(f"ligne 3, colonne « {column} » : ")
    assert reason in text
    assert text.endswith(f"(valeur « {value} »)")
    for identity in (NIR, "Lefèvre", "Claire"):
        assert identity not in text


def test_a_line_with_too_few_columns_says_how_many_it_has(tmp_path: Path) -> None:
    (error,) = _errors(tmp_path, "B0042;1;2")
    assert (error.code, error.column, error.value) == ("line.columns", None, "3")
    assert explain(error) == (
        "ligne 2 : autant de colonnes que l'en-tête attendues, séparées par « ; » ; "
        "3 colonnes trouvées"
    )


def test_an_oversized_cell_is_cut_and_an_open_quote_named(tmp_path: Path) -> None:
    errors = _errors(tmp_path, _with("contract", "Z" * 2000), _with("action", '"A'))
    assert [(e.line_no, e.code, e.column) for e in errors] == [
        (2, "line.field_too_large", "contract"),
        (3, "line.quote", "action"),
    ]
    assert errors[0].value == "Z" * 40 + "…"
    assert "ligne 2, colonne « contract » : valeur de plus de 1 024 caractères" in explain(
        errors[0]
    )


def test_an_empty_cell_is_said_empty(tmp_path: Path) -> None:
    (error,) = _errors(tmp_path, _with("sex", ""))
    assert explain(error) == "ligne 2, colonne « sex » : sexe attendu : M ou F (valeur vide)"


@pytest.mark.parametrize(
    ("header", "code", "details", "french"),
    [
        (
            HEADER.replace("birth_date", "date_naissance"),
            "file.header.unknown_column",
            {"line": 1, "column": 4, "value": "date_naissance"},
            "ligne 1 (en-tête), colonne 4 « date_naissance » : colonne inconnue",
        ),
        (
            HEADER + ";sex",
            "file.header.duplicate_column",
            {"line": 1, "column": 14, "value": "sex"},
            "ligne 1 (en-tête), colonne 14 « sex » : colonne présente deux fois",
        ),
        (
            HEADER.replace(";quality", ""),
            "file.header.missing_column",
            {"line": 1, "column": "quality", "value": "quality"},
            "colonne(s) obligatoire(s) absente(s) : quality",
        ),
    ],
)
def test_a_bad_header_names_the_column_and_its_position(
    tmp_path: Path, header: str, code: str, details: dict[str, object], french: str
) -> None:
    with pytest.raises(BeneficiaryFileError) as refused:
        _errors(tmp_path, GOOD, header=header)
    assert refused.value.code == code
    assert dict(refused.value.details) == details
    assert french in explain_file(refused.value)
    assert "Rien n'a été appliqué." in explain_file(refused.value)


def test_a_header_that_is_a_data_line_does_not_echo_a_nir(tmp_path: Path) -> None:
    with pytest.raises(BeneficiaryFileError) as refused:
        _errors(tmp_path, GOOD, header=f"{NIR};{HEADER}")
    assert NIR not in explain_file(refused.value)
    assert NIR not in str(dict(refused.value.details))


def test_the_error_report_carries_value_and_french_explanation(tmp_path: Path) -> None:
    report = tmp_path / "rejets.csv"
    with ErrorReportWriter(report) as writer:
        for error in _errors(tmp_path, _with("birth_date", "1979/11/02"), _with("nir", "X")):
            writer.write(error)
    rows = french_csv.read(report.read_bytes())
    assert rows[0] == ["ligne", "code", "colonne", "message", "valeur", "explication"]
    assert rows[1][4:] == [
        "••••/••/••",
        "ligne 2, colonne « birth_date » : date attendue au format AAAA-MM-JJ "
        "(par exemple 1984-03-27) (valeur « ••••/••/•• »)",
    ]
    assert rows[2][:3] == ["3", "line.nir.length", "nir"]
    assert NIR not in report.read_text(encoding="utf-8")


@pytest.mark.parametrize(
    ("column", "raw", "shown"),
    [
        ("nir", "2791169123789 42", "2•••••••••••••••"),
        ("birth_date", "1979-11-02", "••••-••-••"),
        ("last_name", "De La Tour", "D• •• ••••"),
        ("member_number", "ADH-00012", "A••-•••••"),
        ("contract", "CONFORT", "CONFORT"),
        ("coverage_start", "2791169123789", "2••••••••••••"),
    ],
)
def test_personal_cells_are_masked_and_long_numbers_too(column: str, raw: str, shown: str) -> None:
    assert shown_value(column, raw) == shown
