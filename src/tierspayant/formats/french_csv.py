"""CSV files for people, in the French format a spreadsheet opens right.

``;`` between fields, a decimal comma in amounts (``1234,56``: no thousands separator,
so that the spreadsheet reads a number), dates as ``06/12/2026`` (times in Paris, to the
minute), UTF-8 with a byte order mark (without it a spreadsheet reads the accents as
Windows-1252), ``\\r\\n`` line ends, and French column headers chosen by each writer.

A text cell that a spreadsheet would run as a formula (``=``, ``+``, ``-``, ``@``, a tab
or a carriage return first) is written with a leading apostrophe.

Machine files (SEPA, claim batch files, FHIR, the API, the remittance advice CSV that
provider software reads) keep their own formats: ``docs/formats/csv.md`` lists which file
is which.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import TextIO
from zoneinfo import ZoneInfo

BOM = "\ufeff"
SEPARATOR = ";"
LINE_END = "\r\n"
PARIS = ZoneInfo("Europe/Paris")
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


@dataclass(frozen=True, slots=True)
class Euros:
    """An amount cell, from integer cents: ``Euros(123456)`` is written ``1234,56``."""

    cents: int


Cell = str | int | Decimal | date | datetime | Euros | bool | None


def amount(cents: int) -> str:
    """Integer cents with a decimal comma (``-1234,5`` is never written: ``-12,35``)."""
    sign = "-" if cents < 0 else ""
    whole, part = divmod(abs(cents), 100)
    return f"{sign}{whole},{part:02d}"


def cell(value: Cell) -> str:
    """One value as a French spreadsheet reads it."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "oui" if value else "non"
    if isinstance(value, Euros):
        return amount(value.cents)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, Decimal):
        return format(value, "f").replace(".", ",")
    if isinstance(value, datetime):
        moment = value.astimezone(PARIS) if value.tzinfo is not None else value
        return moment.strftime("%d/%m/%Y %H:%M")
    if isinstance(value, date):
        return value.strftime("%d/%m/%Y")
    return f"'{value}" if value.startswith(_FORMULA_STARTS) else value


class Writer:
    """Writes a French CSV to ``out`` (opened with ``newline=""``): the byte order mark
    and the header at once, then one row per :meth:`row`."""

    def __init__(self, out: TextIO, header: Sequence[str]) -> None:
        out.write(BOM)
        self._csv = csv.writer(out, delimiter=SEPARATOR, lineterminator=LINE_END)
        self._csv.writerow(header)
        self.rows = 0

    def row(self, values: Sequence[Cell]) -> None:
        self._csv.writerow([cell(v) for v in values])
        self.rows += 1

    def rows_of(self, rows: Iterable[Sequence[Cell]]) -> None:
        for values in rows:
            self.row(values)


def write(out: TextIO, header: Sequence[str], rows: Iterable[Sequence[Cell]]) -> int:
    """Write a whole file; returns the number of rows (header excluded)."""
    writer = Writer(out, header)
    writer.rows_of(rows)
    return writer.rows


def text(header: Sequence[str], rows: Iterable[Sequence[Cell]]) -> str:
    """A whole file as text (BOM first)."""
    buffer = io.StringIO(newline="")
    write(buffer, header, rows)
    return buffer.getvalue()


def encoded(header: Sequence[str], rows: Iterable[Sequence[Cell]]) -> bytes:
    """A whole file as the bytes to send (UTF-8, BOM first)."""
    return text(header, rows).encode("utf-8")


def read(data: str | bytes) -> list[list[str]]:
    """The rows of a French CSV, header included (BOM dropped): for checks and tests."""
    body = data.decode("utf-8") if isinstance(data, bytes) else data
    body = body.removeprefix(BOM)
    return list(csv.reader(io.StringIO(body, newline=""), delimiter=SEPARATOR))
