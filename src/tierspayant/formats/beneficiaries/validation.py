"""The check of one line's cells: each value parsed and normalised, the columns compared."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Collection
from dataclasses import replace
from datetime import date, timedelta
from typing import Final

from tierspayant.domain.care import Quality, Sex
from tierspayant.domain.codes import EnrolmentCode
from tierspayant.domain.errors import InvalidIdentifier
from tierspayant.domain.identifiers import (
    nir_birth_year_month,
    nir_sex,
    parse_birth_rank,
    parse_nir_value,
)
from tierspayant.formats.beneficiaries.model import (
    COLUMNS,
    Action,
    BeneficiaryLine,
    Cells,
    ImportMode,
    LineError,
    LineFields,
    shown_value,
)

_MAX_NAME = 80
_MIN_BIRTH_YEAR = 1890
_NAME = re.compile(r"[^\W\d_](?:[^\W\d_]|[ '’.-])*")
_MEMBER_NUMBER = re.compile(r"[A-Z0-9][A-Z0-9./-]{0,29}")
_QUALITIES = {q.value: q for q in Quality}
_SEXES = {s.value: s for s in Sex}
_FLAGS = {"": False, "0": False, "1": True}
# Birth ranks as nearly every file writes them; anything else goes to parse_birth_rank.
_RANKS: Final = {str(rank): rank for rank in range(1, 10)}

_ACTIONS = {"": Action.ADD, "A": Action.ADD, "R": Action.REMOVE}


def _normalise_name(value: str) -> str | None:
    if (
        value.isalpha()
        and len(value) <= _MAX_NAME
        and (value.isascii() or unicodedata.is_normalized("NFC", value))
    ):
        return value  # the common case: one word of letters, already what the rest gives
    if not value.isascii():
        value = unicodedata.normalize("NFC", value)
    name = " ".join(value.split())
    if not name or len(name) > _MAX_NAME or not _NAME.fullmatch(name):
        return None
    return name


# Dates already parsed (a file repeats birth and coverage dates a lot), bounded.
_DATES: dict[str, date] = {}
_DATES_KEPT: Final = 50_000


def _parse_date(value: str) -> date | None:
    known = _DATES.get(value)
    if known is not None:
        return known
    parsed = _read_date(value)
    if parsed is not None and len(_DATES) < _DATES_KEPT:
        _DATES[value] = parsed
    return parsed


def _read_date(value: str) -> date | None:
    # date.fromisoformat also takes "20240131" and week dates since 3.11: insist on the
    # one documented shape.
    value = value.strip()
    if len(value) != 10 or value[4] != "-" or value[7] != "-":
        return None
    try:
        parsed = date.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.year >= _MIN_BIRTH_YEAR else None


def _nir_birth_matches(nir: str, birth_date: date) -> bool:
    """Year and month coded in the (valid, compact) NIR agree with the birth date.

    When the NIR codes an unknown month (20-42, 50-99) only the year is compared.
    """
    year, month = nir_birth_year_month(nir)
    if year != birth_date.year % 100:
        return False
    return month is None or month == birth_date.month


def _identity(nir_raw: str, rank_raw: str) -> tuple[str, int] | None:
    """The NIR and birth rank of a line, if both can be read."""
    try:
        nir = parse_nir_value(nir_raw)
        rank = _RANKS.get(rank_raw) or parse_birth_rank(rank_raw)
    except InvalidIdentifier:
        return None
    return nir, rank


def _rejected(
    line_no: int, nir: str, rank: int, code: str, message: str, column: str | None
) -> LineError:
    """A rejected line whose NIR and rank were valid (see LineError)."""
    return LineError(line_no, code, message, column, nir, rank)


class LineValidator:
    """Validates and normalises the cells of one line.

    ``contracts`` are the contract codes of the insurer's catalogue; ``file_date`` is the
    date the file describes (removal lines without an end date end the day before it).
    Holds no file: it can be sent to worker processes.
    """

    __slots__ = ("_default_end", "contracts", "file_date", "mode")

    def __init__(self, *, contracts: Collection[str], mode: ImportMode, file_date: date) -> None:
        self.contracts = frozenset(contracts)
        self.mode = mode
        self.file_date = file_date
        self._default_end = file_date - timedelta(days=1)

    def __call__(self, line_no: int, cells: Cells) -> BeneficiaryLine | LineError:
        """The line, validated and normalised, or the first reason to reject it."""
        checked = self.check(line_no, cells)
        if isinstance(checked, LineError):
            return checked
        return BeneficiaryLine(*checked)

    def check(self, line_no: int, cells: Cells) -> LineFields | LineError:
        """:meth:`__call__`, giving a valid line as a plain :data:`LineFields` tuple.

        A rejected line carries the cell of the column it names, as
        :func:`~tierspayant.formats.beneficiaries.model.shown_value` shows it.
        """
        checked = self._check(line_no, cells)
        if isinstance(checked, LineError) and checked.column in COLUMNS:
            cell = cells[COLUMNS.index(checked.column)]
            return replace(checked, value=shown_value(checked.column, cell))
        return checked

    def _check(self, line_no: int, cells: Cells) -> LineFields | LineError:
        (
            member_raw,
            nir_raw,
            rank_raw,
            birth_raw,
            last_raw,
            first_raw,
            sex_raw,
            quality_raw,
            contract_raw,
            start_raw,
            end_raw,
            css_raw,
            action_raw,
        ) = cells
        # NIR and rank first: once they are known, a rejected line still names its
        # beneficiary (internally) so that a full import does not terminate them.
        try:
            nir = parse_nir_value(nir_raw)
        except InvalidIdentifier as exc:
            return LineError(line_no, f"line.{exc.code}", exc.message, "nir")
        rank_or_none = _RANKS.get(rank_raw)
        if rank_or_none is None:
            try:
                rank = parse_birth_rank(rank_raw)
            except InvalidIdentifier as exc:
                return LineError(line_no, f"line.{exc.code}", exc.message, "birth_rank")
        else:
            rank = rank_or_none

        member_number = member_raw.strip().upper()
        if not _MEMBER_NUMBER.fullmatch(member_number):
            return _rejected(
                line_no,
                nir,
                rank,
                EnrolmentCode.LINE_MEMBER_NUMBER,
                "member number: 1 to 30 letters, digits, '.', '/' or '-'",
                "member_number",
            )
        birth_date = _parse_date(birth_raw)
        if birth_date is None:
            return _rejected(
                line_no,
                nir,
                rank,
                EnrolmentCode.LINE_DATE,
                "birth date: expected a date YYYY-MM-DD",
                "birth_date",
            )
        if "\ufffd" in last_raw or "\ufffd" in first_raw:
            return _rejected(
                line_no, nir, rank, EnrolmentCode.LINE_ENCODING, "the line is not valid UTF-8", None
            )
        last_name = _normalise_name(last_raw)
        if last_name is None:
            return _rejected(
                line_no,
                nir,
                rank,
                EnrolmentCode.LINE_NAME,
                "last name: 1 to 80 letters, spaces, ' . -",
                "last_name",
            )
        first_name = _normalise_name(first_raw)
        if first_name is None:
            return _rejected(
                line_no,
                nir,
                rank,
                EnrolmentCode.LINE_NAME,
                "first name: 1 to 80 letters, spaces, ' . -",
                "first_name",
            )
        sex = _SEXES.get(sex_raw.strip().upper())
        if sex is None:
            return _rejected(
                line_no, nir, rank, EnrolmentCode.LINE_SEX, "sex: expected M or F", "sex"
            )
        quality = _QUALITIES.get(quality_raw.strip().lower())
        if quality is None:
            return _rejected(
                line_no,
                nir,
                rank,
                EnrolmentCode.LINE_QUALITY,
                "quality: expected member, spouse, child or other",
                "quality",
            )
        contract = contract_raw.strip()
        if contract not in self.contracts:
            return _rejected(
                line_no,
                nir,
                rank,
                EnrolmentCode.LINE_UNKNOWN_CONTRACT,
                "contract: not a contract code of the insurer's current catalogue",
                "contract",
            )
        coverage_start = _parse_date(start_raw)
        if coverage_start is None:
            return _rejected(
                line_no,
                nir,
                rank,
                EnrolmentCode.LINE_DATE,
                "coverage start: expected a date YYYY-MM-DD",
                "coverage_start",
            )
        coverage_end: date | None = None
        if end_raw and not end_raw.isspace():
            coverage_end = _parse_date(end_raw)
            if coverage_end is None:
                return _rejected(
                    line_no,
                    nir,
                    rank,
                    EnrolmentCode.LINE_DATE,
                    "coverage end: expected a date YYYY-MM-DD or nothing",
                    "coverage_end",
                )
        css = _FLAGS.get(css_raw.strip())
        if css is None:
            return _rejected(
                line_no, nir, rank, EnrolmentCode.LINE_CSS, "css: expected 0, 1 or nothing", "css"
            )
        action = _ACTIONS.get(action_raw.strip().upper())
        if action is None:
            return _rejected(
                line_no,
                nir,
                rank,
                EnrolmentCode.LINE_ACTION,
                "action: expected A (add/update), R (remove) or nothing",
                "action",
            )
        if action is Action.REMOVE:
            if self.mode is ImportMode.FULL:
                return _rejected(
                    line_no,
                    nir,
                    rank,
                    EnrolmentCode.LINE_ACTION,
                    "action R belongs to incremental files: a full file simply omits a "
                    "beneficiary to end their coverage",
                    "action",
                )
            if coverage_end is None:
                coverage_end = max(self._default_end, coverage_start)
        # Consistency between columns. Adults (member, spouse) carry their own NIR; a child
        # may still be registered under a parent's, so theirs is not compared.
        own_nir = quality is Quality.MEMBER or quality is Quality.SPOUSE
        if own_nir and nir_sex(nir) is not sex:
            return _rejected(
                line_no,
                nir,
                rank,
                EnrolmentCode.LINE_NIR_SEX_MISMATCH,
                "the NIR's first digit does not match the sex",
                "sex",
            )
        if own_nir and not _nir_birth_matches(nir, birth_date):
            return _rejected(
                line_no,
                nir,
                rank,
                EnrolmentCode.LINE_NIR_BIRTH_MISMATCH,
                "the year or month coded in the NIR does not match the birth date",
                "birth_date",
            )
        if birth_date > self.file_date:
            return _rejected(
                line_no,
                nir,
                rank,
                EnrolmentCode.LINE_BIRTH_FUTURE,
                "the birth date is after the file date",
                "birth_date",
            )
        if birth_date > coverage_start:
            return _rejected(
                line_no,
                nir,
                rank,
                EnrolmentCode.LINE_BIRTH_AFTER_COVERAGE,
                "coverage cannot start before the beneficiary's birth",
                "coverage_start",
            )
        if coverage_end is not None and coverage_end < coverage_start:
            return _rejected(
                line_no,
                nir,
                rank,
                EnrolmentCode.LINE_COVERAGE_ORDER,
                "coverage ends before it starts",
                "coverage_end",
            )
        return (
            line_no,
            member_number,
            nir,
            rank,
            birth_date,
            last_name,
            first_name,
            sex,
            quality,
            contract,
            coverage_start,
            coverage_end,
            css,
            action,
        )
