"""What a beneficiary file holds: its columns, modes and actions, a valid line, a rejected one.

Messages never contain a NIR, a name or a birth date: an error report is sent back to the
insurer and may be read by people who must not see identities (:func:`mask_identifiers`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date
from enum import StrEnum
from typing import Final

from tierspayant.domain.care import Quality, Sex
from tierspayant.domain.errors import DomainError

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
ERROR_REPORT_HEADER: Final = ("ligne", "code", "colonne", "message", "valeur", "explication")

# Anything that looks like a NIR or a long number: masked in every report message.
_LONG_NUMBER = re.compile(r"[0-9][0-9ABab]{9,}")
# A digest field separator that no validated field can contain (all reject control chars).
_SEP = "\x1f"


class ImportMode(StrEnum):
    """How a file relates to what the platform already holds."""

    FULL = "full"  # the file is the insurer's whole population on the file date
    INCREMENTAL = "incremental"  # the file holds changes only


class Action(StrEnum):
    """What an incremental line asks for."""

    ADD = "A"  # add, or update if the beneficiary exists
    REMOVE = "R"  # end the coverage of an existing beneficiary


class BeneficiaryFileError(DomainError):
    """The file as a whole cannot be read (no header, unknown columns): nothing is applied.

    ``details`` name the ``line`` (1: the header), the ``column`` (its name, or its
    position when the name itself is the fault) and the offending ``value``.
    """


# Cells that identify a person: an error shows them masked (see :func:`shown_value`).
PERSONAL_COLUMNS: Final = frozenset(
    {"member_number", "nir", "birth_date", "last_name", "first_name"}
)
_SHOWN_CHARS: Final = 40
_MASK: Final = "•"


def shown_value(column: str | None, raw: str) -> str:
    """A cell as an error report may show it: personal cells masked, long ones cut.

    A NIR keeps its first character and its length (``1••••••••••••••``), never more; a
    date keeps its separators (``••/••/••••``: the shape is what is wrong); a name or a
    member number keeps its first character and every character that is not a letter or
    a digit (the stray one is usually the fault). Other cells are shown as written, cut
    to 40 characters.
    """
    value = raw.strip()
    if column == "nir":
        return value[:1] + _MASK * (len(value) - 1)
    if column == "birth_date":
        return "".join(_MASK if c.isalnum() else c for c in value[:_SHOWN_CHARS])
    if column in PERSONAL_COLUMNS:
        head, rest = value[:1], value[1:_SHOWN_CHARS]
        return head + "".join(_MASK if c.isalnum() else c for c in rest)
    if len(value) > _SHOWN_CHARS:
        return f"{mask_identifiers(value[:_SHOWN_CHARS])}…"
    return mask_identifiers(value)


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
    # The offending cell as :func:`shown_value` shows it (personal data masked).
    value: str | None = None

    def public(self) -> LineError:
        """The same error without the identity fields (for summaries and screens)."""
        return LineError(
            self.line_no,
            self.code,
            mask_identifiers(self.message),
            self.column,
            value=self.value,
        )


def mask_identifiers(text: str) -> str:
    """Replace anything shaped like a NIR or a long number by a mask."""
    return _LONG_NUMBER.sub(lambda m: m.group()[:1] + "•" * (len(m.group()) - 1), text)


Cells = tuple[str, ...]  # the cells of one line, in the order of COLUMNS
RawRecord = tuple[int, Cells]  # (line number, cells): read but not yet validated
