"""The beneficiary file an insurer sends: a documented CSV, read as a stream.

UTF-8, ``;`` separator, one header row naming the columns (any order), one beneficiary
per line. See ``docs/formats/beneficiaries.md`` for the columns, the modes and the error
codes. The reader never holds more than one line, and at most a bounded part of a very
long one: memory does not grow with the file.

One physical line is one record, whatever its quotes: a quoted field left open at the end
of its line is a rejected line, never a field that runs on and swallows the lines after
it (in a full file, the beneficiaries of swallowed lines would have been terminated).

Each line comes out either as a validated, normalised :class:`BeneficiaryLine` or as a
:class:`LineError` naming the line, the column and the reason. Messages never contain a
NIR, a name or a birth date: an error report is sent back to the insurer and may be read
by people who must not see identities.
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
import unicodedata
from collections.abc import Collection, Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta
from enum import StrEnum
from operator import itemgetter
from pathlib import Path
from types import TracebackType
from typing import IO, TYPE_CHECKING, Any, Final

from tierspayant.domain.care import Quality, Sex
from tierspayant.domain.codes import EnrolmentCode
from tierspayant.domain.errors import DomainError, InvalidIdentifier
from tierspayant.domain.identifiers import (
    nir_birth_year_month,
    nir_sex,
    parse_birth_rank,
    parse_nir_value,
)

if TYPE_CHECKING:
    import _csv

DELIMITER: Final = ";"
REQUIRED_COLUMNS: Final = (
    "member_number",
    "nir",
    "birth_rank",
    "birth_date",
    "last_name",
    "first_name",
    "sex",
    "quality",
    "contract",
    "coverage_start",
    "coverage_end",
)
OPTIONAL_COLUMNS: Final = ("css", "action")
COLUMNS: Final = REQUIRED_COLUMNS + OPTIONAL_COLUMNS
ERROR_REPORT_HEADER: Final = ("line", "code", "column", "message")

_MAX_NAME = 80
_MIN_BIRTH_YEAR = 1890
_NAME = re.compile(r"[^\W\d_](?:[^\W\d_]|[ '’.-])*")
_MEMBER_NUMBER = re.compile(r"[A-Z0-9][A-Z0-9./-]{0,29}")
# Anything that looks like a NIR or a long number: masked in every report message.
_LONG_NUMBER = re.compile(r"[0-9][0-9ABab]{9,}")
_QUALITIES = {q.value: q for q in Quality}
_SEXES = {s.value: s for s in Sex}
_FLAGS = {"": False, "0": False, "1": True}
# Birth ranks as nearly every file writes them; anything else goes to parse_birth_rank.
_RANKS: Final = {str(rank): rank for rank in range(1, 10)}
# A digest field separator that no validated field can contain (all reject control chars).
_SEP = "\x1f"
# No valid field comes near this length; a longer one is refused (line.field_too_large).
MAX_FIELD_CHARS: Final = 1024
# Lines are read at most this many characters at a time; a longer line is read in pieces
# and only its first _LONG_LINE_KEEP characters, compacted, are parsed (see _Lines).
# Together they stay within the csv module's default field limit (131,072 characters).
_PIECE: Final = 1 << 16
_LONG_LINE_KEEP: Final = 1 << 16
# A run of ordinary characters (not a separator, quote or line end) long enough to be an
# oversized field: compacted to MAX_FIELD_CHARS + 1 characters, still oversized.
_LONG_RUN = re.compile(f'[^{DELIMITER}"\r\n]{{{MAX_FIELD_CHARS + 2},}}')
# Flags of the line a record came from (see _Lines).
_UNCLOSED: Final = 1  # a quoted field was still open at the end of the line
_LONG: Final = 2  # the line is longer than MAX_FIELD_CHARS: a field may be oversized


class ImportMode(StrEnum):
    """How a file relates to what the platform already holds."""

    FULL = "full"  # the file is the insurer's whole population on the file date
    INCREMENTAL = "incremental"  # the file holds changes only


class Action(StrEnum):
    """What an incremental line asks for."""

    ADD = "A"  # add, or update if the beneficiary exists
    REMOVE = "R"  # end the coverage of an existing beneficiary


_ACTIONS = {"": Action.ADD, "A": Action.ADD, "R": Action.REMOVE}


class BeneficiaryFileError(DomainError):
    """The file as a whole cannot be read (no header, unknown columns): nothing is applied."""


@dataclass(frozen=True, slots=True)
class BeneficiaryLine:
    """One valid line, normalised. Identity fields are hidden from ``repr``."""

    line_no: int
    member_number: str = field(repr=False)
    nir: str = field(repr=False)  # 15 characters, key included
    birth_rank: int
    birth_date: date = field(repr=False)
    last_name: str = field(repr=False)
    first_name: str = field(repr=False)
    sex: Sex
    quality: Quality
    contract: str
    coverage_start: date
    coverage_end: date | None
    css: bool
    action: Action

    def fields(self) -> LineFields:
        """The line as the plain tuple :meth:`LineValidator.check` gives."""
        return (
            self.line_no,
            self.member_number,
            self.nir,
            self.birth_rank,
            self.birth_date,
            self.last_name,
            self.first_name,
            self.sex,
            self.quality,
            self.contract,
            self.coverage_start,
            self.coverage_end,
            self.css,
            self.action,
        )

    def canonical(self) -> bytes:
        """Every stored field in one unambiguous byte string (input of the row digest).

        The action is left out: a removal and an add that leave the same row are the same.
        """
        return canonical_fields(self.fields())


# A valid line as a plain tuple, in the order of BeneficiaryLine's fields: line_no,
# member_number, nir, birth_rank, birth_date, last_name, first_name, sex, quality,
# contract, coverage_start, coverage_end, css, action. Bulk imports use it rather than
# BeneficiaryLine, whose frozen construction costs more than the whole check of a line.
LineFields = tuple[
    int, str, str, int, date, str, str, Sex, Quality, str, date, date | None, bool, Action
]


def canonical_fields(fields: LineFields) -> bytes:
    """:meth:`BeneficiaryLine.canonical` of a line given as :data:`LineFields`.

    The bytes must never change: row digests of rows already stored are compared with
    them, and a change would make every line of the next file look modified.
    """
    (_, member, nir, rank, birth, last, first, sex, quality, contract, start, end, css, _) = fields
    return _SEP.join(
        (
            member,
            nir,
            str(rank),
            birth.isoformat(),
            last,
            first,
            sex._value_,  # the plain string, without the ``value`` property's cost
            quality._value_,
            contract,
            start.isoformat(),
            "" if end is None else end.isoformat(),
            "1" if css else "0",
        )
    ).encode("utf-8")


@dataclass(frozen=True, slots=True)
class LineError:
    """One rejected line: where, why, in which column. Never carries identity in clear.

    ``nir`` and ``birth_rank`` are set when those two columns were valid, so that a full
    import can keep (rather than terminate) the beneficiary of a line it had to reject.
    """

    line_no: int
    code: str
    message: str
    column: str | None = None
    nir: str | None = field(default=None, repr=False, compare=False)
    birth_rank: int | None = field(default=None, repr=False, compare=False)

    def public(self) -> LineError:
        """The same error without the identity fields (for summaries and screens)."""
        return LineError(self.line_no, self.code, mask_identifiers(self.message), self.column)


def mask_identifiers(text: str) -> str:
    """Replace anything shaped like a NIR or a long number by a mask."""
    return _LONG_NUMBER.sub(lambda m: m.group()[:1] + "•" * (len(m.group()) - 1), text)


def _normalise_name(value: str) -> str | None:
    if not value.isascii():
        value = unicodedata.normalize("NFC", value)
    name = " ".join(value.split())
    if not name or len(name) > _MAX_NAME or not _NAME.fullmatch(name):
        return None
    return name


def _parse_date(value: str) -> date | None:
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


class _HashingFile(io.RawIOBase):
    """A raw file that hashes (SHA-256) and counts every byte read through it."""

    def __init__(self, path: Path) -> None:
        self._file = path.open("rb", buffering=0)
        self.digest = hashlib.sha256()
        self.consumed = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        count = self._file.readinto(buffer)
        if count:
            view = memoryview(buffer)[:count]
            self.digest.update(view)
            self.consumed += count
        return count or 0

    def close(self) -> None:
        self._file.close()
        super().close()


def _shorten_run(match: re.Match[str]) -> str:
    return match.group()[: MAX_FIELD_CHARS + 1]


class _Lines:
    """The file's physical lines, as the csv reader pulls them: one record per line.

    The csv module lets a quoted field run on over line ends, so one stray ``"`` joins
    the following lines into a single field. The reader asks for another line only when
    a quoted field is still open at the end of the current one (:attr:`in_record` is
    then still set: the consumer clears it after each record). It is then handed a
    closing quote instead of the next line: the record ends on its own line, flagged
    ``_UNCLOSED``, and the next line starts a record of its own.

    A line longer than ``_PIECE`` characters is read in pieces, and a run of more than
    MAX_FIELD_CHARS + 1 ordinary characters is cut to that length (still too long to be
    valid); only the first ``_LONG_LINE_KEEP`` characters so compacted are kept. Memory
    stays flat with a line's length, no field reaches the csv module's limit, and the
    cells before (and, if short enough, after) an oversized field are still read.
    """

    __slots__ = ("_pushed", "_readline", "flags", "in_record", "line_no")

    def __init__(self, text: io.TextIOWrapper) -> None:
        self._readline = text.readline
        self._pushed: str | None = None
        self.line_no = 0  # of the line the current record comes from
        self.flags = 0
        self.in_record = False

    def __iter__(self) -> _Lines:
        return self

    def __next__(self) -> str:
        if self.in_record:
            # The csv reader wants more of a record begun on this line: close it here.
            self.in_record = False
            self.flags |= _UNCLOSED
            return '"'
        if self._pushed is None:
            line = self._readline(_PIECE)
        else:
            line, self._pushed = self._pushed, None
        if not line:
            raise StopIteration
        self.line_no += 1
        self.in_record = True
        if len(line) > MAX_FIELD_CHARS:
            self.flags = _LONG
            if len(line) == _PIECE:
                return self._long_line(line)
        else:
            self.flags = 0
        return line

    def _long_line(self, piece: str) -> str:
        """A line of ``_PIECE`` characters or more: read to its end, compacted, bounded."""
        kept = [_LONG_RUN.sub(_shorten_run, piece)]
        size = len(kept[0])
        while len(piece) == _PIECE and piece[-1] != "\n":
            if piece[-1] == "\r":
                # A line ending in a bare CR, or a CRLF that the piece size cut in two.
                after = self._readline(_PIECE)
                if after != "\n":
                    self._pushed = after or None
                break
            piece = self._readline(_PIECE)
            if size < _LONG_LINE_KEEP:
                part = _LONG_RUN.sub(_shorten_run, piece)
                kept.append(part)
                size += len(part)
        return "".join(kept)


def _identity(nir_raw: str, rank_raw: str) -> tuple[str, int] | None:
    """The NIR and birth rank of a line, if both can be read."""
    try:
        nir = parse_nir_value(nir_raw)
        rank = _RANKS.get(rank_raw) or parse_birth_rank(rank_raw)
    except InvalidIdentifier:
        return None
    return nir, rank


Cells = tuple[str, ...]  # the cells of one line, in the order of COLUMNS
RawRecord = tuple[int, Cells]  # (line number, cells): read but not yet validated


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
        """:meth:`__call__`, giving a valid line as a plain :data:`LineFields` tuple."""
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


class BeneficiaryReader:
    """Streams the lines of a beneficiary file, validated; use as a context manager.

    Iterating gives a :class:`BeneficiaryLine` or a :class:`LineError` per non-blank
    line. :meth:`records` gives the cells unvalidated, for callers that validate
    elsewhere (worker processes) with :attr:`validator`.
    """

    def __init__(
        self,
        path: Path,
        *,
        contracts: Collection[str],
        mode: ImportMode,
        file_date: date,
    ) -> None:
        self.path = path
        self.validator = LineValidator(contracts=contracts, mode=mode, file_date=file_date)
        self.size = 0
        self.columns: tuple[str, ...] = ()
        self._raw: _HashingFile | None = None
        self._text: io.TextIOWrapper | None = None

    def __enter__(self) -> BeneficiaryReader:
        self._raw = _HashingFile(self.path)
        try:
            self.size = self.path.stat().st_size
            # "replace" keeps a bad byte from aborting the whole file: the line holding it
            # is rejected instead (line.encoding).
            self._text = io.TextIOWrapper(
                io.BufferedReader(self._raw, 1 << 16),
                encoding="utf-8-sig",
                errors="replace",
                newline="",
            )
            self._lines = _Lines(self._text)
            self._csv = csv.reader(self._lines, delimiter=DELIMITER, strict=False)
            self._read_header()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the file (idempotent)."""
        if self._text is not None:
            self._text.close()
            self._text = None
        if self._raw is not None:
            self._raw.close()

    @property
    def bytes_read(self) -> int:
        """Bytes consumed so far (to within one read buffer): for a progress bar."""
        return 0 if self._raw is None else min(self._raw.consumed, self.size)

    def sha256(self) -> str:
        """Hex SHA-256 of the bytes read so far: of the whole file once iterated."""
        return hashlib.sha256().hexdigest() if self._raw is None else self._raw.digest.hexdigest()

    def _read_header(self) -> None:
        try:
            header = next(self._csv)
        except StopIteration:
            raise BeneficiaryFileError(
                EnrolmentCode.FILE_EMPTY, "the file is empty: a header row is required"
            ) from None
        self._lines.in_record = False
        if self._lines.flags & _UNCLOSED:
            raise BeneficiaryFileError(
                EnrolmentCode.FILE_HEADER_QUOTE, "the header row has a quoted name left open"
            )
        names = tuple(h.strip().lower() for h in header)
        unknown = [n for n in names if n not in COLUMNS]
        if unknown:
            shown = ", ".join(repr(n[:40]) for n in unknown[:5])
            raise BeneficiaryFileError(
                EnrolmentCode.FILE_HEADER_UNKNOWN_COLUMN,
                f"unknown column(s) in the header: {mask_identifiers(shown)}; "
                f"expected the columns {', '.join(COLUMNS)}",
            )
        if len(set(names)) != len(names):
            raise BeneficiaryFileError(
                EnrolmentCode.FILE_HEADER_DUPLICATE_COLUMN, "a column appears twice in the header"
            )
        missing = [c for c in REQUIRED_COLUMNS if c not in names]
        if missing:
            raise BeneficiaryFileError(
                EnrolmentCode.FILE_HEADER_MISSING_COLUMN, f"missing column(s): {', '.join(missing)}"
            )
        self.columns = names
        self._width = len(names)
        # Absent optional columns read an empty cell appended at index ``width``.
        self._pad = any(c not in names for c in OPTIONAL_COLUMNS)
        indexes = [names.index(c) if c in names else self._width for c in COLUMNS]
        self._pick = itemgetter(*indexes)
        self._nir_at = names.index("nir")
        self._rank_at = names.index("birth_rank")

    def records(self) -> Iterator[RawRecord | LineError]:
        """Each non-blank line as (line number, cells in COLUMNS order), unvalidated.

        A line that cannot be cut into the header's cells comes out as a
        :class:`LineError` (``line.quote``, ``line.field_too_large``, ``line.columns``,
        ``line.unreadable``), carrying the NIR and rank when those cells can be read.
        """
        reader = self._csv
        lines = self._lines
        width = self._width
        pad = self._pad
        pick = self._pick
        while True:
            try:
                row = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                # Only if the process lowered csv.field_size_limit below _LONG_LINE_KEEP.
                lines.in_record = False
                yield LineError(
                    lines.line_no,
                    EnrolmentCode.LINE_UNREADABLE,
                    f"the line cannot be read as CSV: {exc}",
                )
                continue
            lines.in_record = False
            if lines.flags:
                fault = self._fault(lines.line_no, row, lines.flags)
                if fault is not None:
                    yield fault
                    continue
            if len(row) != width:
                if not any(cell.strip() for cell in row):
                    continue  # blank line (a trailing one is common)
                yield self._line_error(
                    lines.line_no,
                    row,
                    EnrolmentCode.LINE_COLUMNS,
                    f"expected {width} columns separated by '{DELIMITER}', found {len(row)}",
                    None,
                )
                continue
            if pad:
                row.append("")
            yield lines.line_no, pick(row)

    def _fault(self, line_no: int, row: list[str], flags: int) -> LineError | None:
        """The error of a line flagged while read (oversized field, open quote), if any."""
        if flags & _LONG:
            for index, cell in enumerate(row):
                if len(cell) > MAX_FIELD_CHARS:
                    return self._line_error(
                        line_no,
                        row,
                        EnrolmentCode.LINE_FIELD_TOO_LARGE,
                        f"a field of more than {MAX_FIELD_CHARS:,} characters",
                        self._column_at(index),
                    )
        if flags & _UNCLOSED:
            return self._line_error(
                line_no,
                row,
                EnrolmentCode.LINE_QUOTE,
                "a quoted field is not closed on its line (a stray '\"'?): "
                "one line holds one beneficiary",
                self._column_at(len(row) - 1),
            )
        return None

    def _column_at(self, index: int) -> str | None:
        return self.columns[index] if 0 <= index < self._width else None

    def _line_error(
        self, line_no: int, row: list[str], code: str, message: str, column: str | None
    ) -> LineError:
        """A line rejected before validation, naming its beneficiary if NIR and rank read."""
        nir_at, rank_at = self._nir_at, self._rank_at
        if nir_at < len(row) and rank_at < len(row):
            # A cell cut short (the line's last) fails these checks: it names nobody.
            identity = _identity(row[nir_at], row[rank_at])
            if identity is not None:
                return LineError(line_no, code, message, column, *identity)
        return LineError(line_no, code, message, column)

    def __iter__(self) -> Iterator[BeneficiaryLine | LineError]:
        validate = self.validator
        for record in self.records():
            yield record if isinstance(record, LineError) else validate(*record)


class ErrorReportWriter:
    """Writes rejected lines as CSV ``line;code;column;message``, identities masked.

    With ``path=None`` it only counts. Use as a context manager.
    """

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.count = 0
        self._file: IO[str] | None = None
        self._writer: _csv.Writer | None = None

    def __enter__(self) -> ErrorReportWriter:
        if self.path is not None:
            self._file = self.path.open("w", encoding="utf-8", newline="")
            self._writer = csv.writer(self._file, delimiter=DELIMITER, lineterminator="\n")
            self._writer.writerow(ERROR_REPORT_HEADER)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def write(self, error: LineError) -> None:
        """Append one rejected line."""
        self.count += 1
        if self._writer is not None:
            self._writer.writerow(
                (error.line_no, error.code, error.column or "", mask_identifiers(error.message))
            )

    def close(self) -> None:
        """Flush and close the report (idempotent)."""
        if self._file is not None:
            self._file.close()
            self._file = None
            self._writer = None
