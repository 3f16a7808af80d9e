"""The physical lines of a beneficiary file, as the csv reader pulls them.

One physical line is one record, whatever its quotes: a quoted field left open at the end
of its line is a rejected line, never a field that runs on and swallows the lines after
it (in a full file, the beneficiaries of swallowed lines would have been terminated). A
very long line is read in bounded pieces: memory does not grow with the file.
"""

from __future__ import annotations

import hashlib
import io
import re
from pathlib import Path
from typing import Any, Final, Protocol

from tierspayant.formats.beneficiaries.model import DELIMITER

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


class LineSource(Protocol):
    """Where :class:`_Lines` reads: a text file opened with ``newline=""``, or the like."""

    def readline(self, size: int, /) -> str:
        """The next line, ``size`` characters at most."""
        ...


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

    def __init__(self, text: LineSource) -> None:
        self._readline = text.readline
        self._pushed: str | None = None
        self.line_no = 0  # of the line the current record comes from
        self.flags = 0
        self.in_record = False

    def __iter__(self) -> _Lines:
        return self

    def take_pushed(self) -> str:
        """Text read past the last line handed out (after a long line ending in a bare
        CR), which the next line starts with; forgotten here."""
        pushed, self._pushed = self._pushed or "", None
        return pushed

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
