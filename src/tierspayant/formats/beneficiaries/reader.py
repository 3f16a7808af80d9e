"""The beneficiary file read as a stream of validated lines, and the report of rejected ones."""

from __future__ import annotations

import csv
import hashlib
import io
import re
from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass
from datetime import date
from operator import itemgetter
from pathlib import Path
from types import TracebackType
from typing import IO, Final

from tierspayant.domain.codes import EnrolmentCode
from tierspayant.formats import french_csv
from tierspayant.formats.beneficiaries.french import explain
from tierspayant.formats.beneficiaries.lines import (
    _LONG,
    _UNCLOSED,
    MAX_FIELD_CHARS,
    _HashingFile,
    _Lines,
)
from tierspayant.formats.beneficiaries.model import (
    COLUMNS,
    DELIMITER,
    ERROR_REPORT_HEADER,
    OPTIONAL_COLUMNS,
    REQUIRED_COLUMNS,
    BeneficiaryFileError,
    BeneficiaryLine,
    ImportMode,
    LineError,
    RawRecord,
    mask_identifiers,
    shown_value,
)
from tierspayant.formats.beneficiaries.validation import LineValidator, _identity


def _header_details(position: int, value: str) -> dict[str, str | int]:
    """Where a fault of the header row is: line 1, the column's position, its name."""
    return {"line": 1, "column": position, "value": value}


_EOL: Final = re.compile("\r\n|\r|\n")  # the line ends of the reader's lines (newline="")
_BLOCK: Final = 1 << 18  # characters read at a time by BeneficiaryReader.pieces
# A line longer than this (characters) is cut by BeneficiaryReader.pieces itself.
_LONG_TEXT: Final = 1 << 20


@dataclass(frozen=True, slots=True)
class TextLines:
    """Whole physical lines of a file, as read, the first of them numbered ``first_line``."""

    first_line: int
    text: str


# What BeneficiaryReader.pieces gives: lines still to cut, or a line already cut.
Piece = TextLines | RawRecord | LineError


class _Chained:
    """``readline(limit)`` over some text already read, then the rest of a text file:
    what :class:`_Lines` needs to read one very long line where the pieces stopped."""

    __slots__ = ("_buffer", "_eof", "_text")

    def __init__(self, head: str, text: io.TextIOWrapper) -> None:
        self._buffer = head
        self._text = text
        self._eof = False

    def readline(self, limit: int, /) -> str:
        """The next line, or its first ``limit`` characters (as ``TextIOWrapper`` does)."""
        while True:
            buffer = self._buffer
            match = _EOL.search(buffer, 0, min(limit, len(buffer)))
            if match is not None and (
                self._eof or match.end() < len(buffer) or not buffer.endswith("\r")
            ):
                line = buffer[: match.end()]
            elif len(buffer) >= limit:
                line = buffer[:limit]
            elif self._eof:
                line = buffer
            else:
                more = self._text.read(_BLOCK)
                self._eof = not more
                self._buffer += more
                continue
            self._buffer = buffer[len(line) :]
            return line

    def rest(self) -> str:
        """The text read ahead and not handed out yet."""
        rest, self._buffer = self._buffer, ""
        return rest


class RecordCutter:
    """Cuts lines into records (line number, cells in COLUMNS order) for a header's
    columns. Holds no file: it can be sent to worker processes, which cut the
    :class:`TextLines` of :meth:`BeneficiaryReader.pieces` with :meth:`expand`."""

    __slots__ = ("_nir_at", "_pad", "_pick", "_rank_at", "_width", "columns")

    def __init__(self, columns: tuple[str, ...]) -> None:
        self.columns = columns
        self._width = len(columns)
        # Absent optional columns read an empty cell appended at index ``width``.
        self._pad = any(c not in columns for c in OPTIONAL_COLUMNS)
        indexes = [columns.index(c) if c in columns else self._width for c in COLUMNS]
        self._pick = itemgetter(*indexes)
        self._nir_at = columns.index("nir")
        self._rank_at = columns.index("birth_rank")

    def __reduce__(self) -> tuple[type[RecordCutter], tuple[tuple[str, ...]]]:
        return RecordCutter, (self.columns,)

    def expand(self, pieces: Iterable[Piece]) -> list[RawRecord | LineError]:
        """The records of ``pieces``, in order: what :meth:`BeneficiaryReader.records`
        gives for the same lines."""
        records: list[RawRecord | LineError] = []
        for piece in pieces:
            if isinstance(piece, TextLines):
                lines = _Lines(io.StringIO(piece.text, newline=""))
                lines.line_no = piece.first_line - 1
                records.extend(
                    self.records(lines, csv.reader(lines, delimiter=DELIMITER, strict=False))
                )
            else:
                records.append(piece)
        return records

    def one(self, lines: _Lines, reader: Iterator[list[str]]) -> RawRecord | LineError | None:
        """The record of the next line (None: a blank line, or the end)."""
        return next(self.records(lines, reader, once=True), None)

    def records(
        self, lines: _Lines, reader: Iterator[list[str]], once: bool = False
    ) -> Iterator[RawRecord | LineError]:
        """The records of the lines ``reader`` cuts (``once``: of its next line only)."""
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
                if once:
                    return
                continue
            lines.in_record = False
            if lines.flags:
                fault = self._fault(lines.line_no, row, lines.flags)
                if fault is not None:
                    yield fault
                    if once:
                        return
                    continue
            if len(row) != width:
                if not any(cell.strip() for cell in row):
                    if once:
                        return
                    continue  # blank line (a trailing one is common)
                yield self._line_error(
                    lines.line_no,
                    row,
                    EnrolmentCode.LINE_COLUMNS,
                    f"expected {width} columns separated by '{DELIMITER}', found {len(row)}",
                    None,
                    str(len(row)),
                )
                if once:
                    return
                continue
            if pad:
                row.append("")
            yield lines.line_no, pick(row)
            if once:
                return

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
                        shown_value(self._column_at(index), cell),
                    )
        if flags & _UNCLOSED:
            return self._line_error(
                line_no,
                row,
                EnrolmentCode.LINE_QUOTE,
                "a quoted field is not closed on its line (a stray '\"'?): "
                "one line holds one beneficiary",
                self._column_at(len(row) - 1),
                shown_value(self._column_at(len(row) - 1), row[-1]) if row else None,
            )
        return None

    def _column_at(self, index: int) -> str | None:
        return self.columns[index] if 0 <= index < self._width else None

    def _line_error(
        self,
        line_no: int,
        row: list[str],
        code: str,
        message: str,
        column: str | None,
        value: str | None = None,
    ) -> LineError:
        """A line rejected before validation, naming its beneficiary if NIR and rank read."""
        nir_at, rank_at = self._nir_at, self._rank_at
        if nir_at < len(row) and rank_at < len(row):
            # A cell cut short (the line's last) fails these checks: it names nobody.
            identity = _identity(row[nir_at], row[rank_at])
            if identity is not None:
                return LineError(line_no, code, message, column, *identity, value=value)
        return LineError(line_no, code, message, column, value=value)


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
                EnrolmentCode.FILE_HEADER_QUOTE,
                "the header row has a quoted name left open",
                details=_header_details(len(header), shown_value(None, header[-1])),
            )
        names = tuple(h.strip().lower() for h in header)
        for position, name in enumerate(names, start=1):
            if name not in COLUMNS:
                unknown = [n for n in names if n not in COLUMNS]
                shown = ", ".join(repr(n[:40]) for n in unknown[:5])
                raise BeneficiaryFileError(
                    EnrolmentCode.FILE_HEADER_UNKNOWN_COLUMN,
                    f"unknown column(s) in the header: {mask_identifiers(shown)}; "
                    f"expected the columns {', '.join(COLUMNS)}",
                    details=_header_details(position, shown_value(None, header[position - 1])),
                )
        for position, name in enumerate(names, start=1):
            if names.index(name) != position - 1:
                raise BeneficiaryFileError(
                    EnrolmentCode.FILE_HEADER_DUPLICATE_COLUMN,
                    f"the column {name} appears twice in the header",
                    details=_header_details(position, name),
                )
        missing = [c for c in REQUIRED_COLUMNS if c not in names]
        if missing:
            raise BeneficiaryFileError(
                EnrolmentCode.FILE_HEADER_MISSING_COLUMN,
                f"missing column(s): {', '.join(missing)}",
                details={"line": 1, "column": missing[0], "value": ", ".join(missing)},
            )
        self.columns = names
        self.cutter = RecordCutter(names)

    def records(self) -> Iterator[RawRecord | LineError]:
        """Each non-blank line as (line number, cells in COLUMNS order), unvalidated.

        A line that cannot be cut into the header's cells comes out as a
        :class:`LineError` (``line.quote``, ``line.field_too_large``, ``line.columns``,
        ``line.unreadable``), carrying the NIR and rank when those cells can be read.
        """
        return self.cutter.records(self._lines, self._csv)

    def pieces(self, lines_per_piece: int) -> Iterator[list[Piece]]:
        """The rest of the file as lists of about ``lines_per_piece`` physical lines, for
        :meth:`RecordCutter.expand` to cut (in a worker process) into what
        :meth:`records` gives, line numbers included.

        The lines travel as text (:class:`TextLines`), found by a scan for line ends
        (``\\n``, ``\\r\\n`` or a bare ``\\r``, as the reader's lines end): no per-line
        parsing here. A line longer than ``_LONG_TEXT`` characters is cut here instead,
        by the reader's own bounded reading, and travels as its record: memory stays flat
        with a line's length. Use either this or :meth:`records`, not both.
        """
        if self._text is None:
            return
        text = self._text
        cutter = self.cutter
        pending = self._lines.take_pushed()  # text read after the header, if any
        first = self._lines.line_no + 1  # line number of pending's first line
        out: list[Piece] = []  # the piece being filled
        in_out = 0  # lines in ``out``
        counted = 0  # complete lines at the head of ``pending``
        scanned = 0  # where the scan of ``pending`` stopped (after its last line end)
        eof = False
        while not eof:
            data = text.read(_BLOCK)
            eof = not data
            pending += data
            # A bare CR at the end may be half of a CRLF: wait for the next character.
            limit = len(pending) - (not eof and pending.endswith("\r"))
            cut = 0  # end of the text already handed to ``out``
            for match in _EOL.finditer(pending, scanned, limit):
                counted += 1
                scanned = match.end()
                if in_out + counted >= lines_per_piece:
                    out.append(TextLines(first, pending[cut:scanned]))
                    yield out
                    first += counted
                    out, in_out, counted, cut = [], 0, 0, scanned
            if cut:
                pending, scanned = pending[cut:], scanned - cut
            if eof:
                if pending:
                    counted += scanned < len(pending)  # a last line without its line end
                    out.append(TextLines(first, pending))
                    in_out += counted
                break
            if len(pending) - scanned > _LONG_TEXT:
                # A very long line: hand over the lines before it, then read it here.
                if counted:
                    out.append(TextLines(first, pending[:scanned]))
                    first += counted
                    in_out += counted
                chained = _Chained(pending[scanned:], text)
                lines = _Lines(chained)
                lines.line_no = first - 1
                record = cutter.one(lines, csv.reader(lines, delimiter=DELIMITER, strict=False))
                if record is not None:
                    out.append(record)
                in_out += 1
                first += 1
                pending = lines.take_pushed() + chained.rest()
                counted = scanned = 0
                if in_out >= lines_per_piece:
                    yield out
                    out, in_out = [], 0
        if out:
            yield out

    def __iter__(self) -> Iterator[BeneficiaryLine | LineError]:
        validate = self.validator
        for record in self.records():
            yield record if isinstance(record, LineError) else validate(*record)


class ErrorReportWriter:
    """Writes rejected lines as a French CSV ``ligne;code;colonne;message;valeur;explication``,
    identities masked (the value as :func:`shown_value` shows it, the explanation in
    French).

    With ``path=None`` it only counts. Use as a context manager.
    """

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.count = 0
        self._file: IO[str] | None = None
        self._writer: french_csv.Writer | None = None

    def __enter__(self) -> ErrorReportWriter:
        if self.path is not None:
            self._file = self.path.open("w", encoding="utf-8", newline="")
            # Read by the insurer's staff: a French CSV (formats/french_csv.py).
            self._writer = french_csv.Writer(self._file, ERROR_REPORT_HEADER)
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
            self._writer.row(
                (
                    error.line_no,
                    error.code,
                    error.column or "",
                    mask_identifiers(error.message),
                    error.value or "",
                    explain(error),
                )
            )

    def close(self) -> None:
        """Flush and close the report (idempotent)."""
        if self._file is not None:
            self._file.close()
            self._file = None
            self._writer = None
