"""The French CSV helper: what a spreadsheet set to French opens right."""

from __future__ import annotations

import io
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from tierspayant.formats import french_csv
from tierspayant.formats.french_csv import Euros


@pytest.mark.parametrize(
    ("cents", "text"),
    [(0, "0,00"), (5, "0,05"), (123456, "1234,56"), (-1230, "-12,30"), (-5, "-0,05")],
)
def test_amounts_have_a_decimal_comma_and_no_thousands_separator(cents: int, text: str) -> None:
    assert french_csv.amount(cents) == text
    assert french_csv.cell(Euros(cents)) == text


def test_dates_are_day_month_year_and_times_are_in_paris() -> None:
    assert french_csv.cell(date(2026, 12, 6)) == "06/12/2026"
    # 23:30 UTC on 31 December is 00:30 on 1 January in Paris (winter time, UTC+1)
    assert french_csv.cell(datetime(2026, 12, 31, 23, 30, tzinfo=UTC)) == "01/01/2027 00:30"
    assert french_csv.cell(datetime(2026, 7, 1, 8, 5, tzinfo=UTC)) == "01/07/2026 10:05"


def test_other_values() -> None:
    assert french_csv.cell(None) == ""
    assert french_csv.cell(True) == "oui"
    assert french_csv.cell(False) == "non"
    assert french_csv.cell(42) == "42"
    assert french_csv.cell(Decimal("12.5")) == "12,5"
    assert french_csv.cell(Decimal("1E+2")) == "100"
    assert french_csv.cell("Pharmacie ; des Lilas") == "Pharmacie ; des Lilas"


@pytest.mark.parametrize("text", ["=1+1", "+33", "-2", "@SUM(A1)", "\tx", "\rx"])
def test_a_text_a_spreadsheet_would_run_as_a_formula_is_quoted(text: str) -> None:
    assert french_csv.cell(text) == f"'{text}"


def test_the_file_has_a_bom_semicolons_crlf_and_quotes_when_needed() -> None:
    data = french_csv.encoded(
        ("Facture", "Date des soins", "Montant"),
        [("F-1", date(2026, 2, 2), Euros(1050)), ("a;b", None, Euros(-5))],
    )
    assert data.startswith("\ufeff".encode())
    assert data.decode("utf-8") == (
        '\ufeffFacture;Date des soins;Montant\r\nF-1;02/02/2026;10,50\r\n"a;b";;-0,05\r\n'
    )
    assert french_csv.read(data) == [
        ["Facture", "Date des soins", "Montant"],
        ["F-1", "02/02/2026", "10,50"],
        ["a;b", "", "-0,05"],
    ]


def test_the_streaming_writer_counts_its_rows() -> None:
    out = io.StringIO(newline="")
    writer = french_csv.Writer(out, ("Ligne", "Message"))
    writer.row((1, "é"))
    writer.rows_of([(2, "à"), (3, "ç")])
    assert writer.rows == 3
    assert out.getvalue().count("\r\n") == 4
    assert french_csv.read(out.getvalue())[3] == ["3", "ç"]
