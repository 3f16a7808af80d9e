"""The NIR (numéro d'inscription au répertoire) and the birth rank that goes with it.

``2A`` counts as 19 and ``2B`` as 18 in the key (see the package docstring).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from tierspayant.domain.care import Sex
from tierspayant.domain.codes import IdentifierCode
from tierspayant.domain.errors import InvalidIdentifier
from tierspayant.domain.identifiers.common import _CORSICA, _compact, _is_digits

NIR_LENGTH: Final = 15
_NIR_SEX_DIGITS: Final = frozenset("123478")
_NIR_PROVISIONAL_SEX_DIGITS: Final = frozenset("3478")
_NIR_MALE_DIGITS: Final = frozenset("137")
# 2A/2B are replaced by these in the 13-digit number the key is computed on.
_NIR_CORSICA_KEY_VALUE: Final = {"2A": "19", "2B": "18"}


def _nir_month_ok(month: int) -> bool:
    # 01-12 real months; 20-42 and 50-99 are used when the month is unknown or for
    # numbers registered from incomplete civil status records.
    return 1 <= month <= 12 or 20 <= month <= 42 or 50 <= month <= 99


def _nir_body_number(body13: str) -> int:
    department = body13[5:7]
    if department in _NIR_CORSICA_KEY_VALUE:
        body13 = body13[:5] + _NIR_CORSICA_KEY_VALUE[department] + body13[7:]
    return int(body13)


def _nir_format_ok(value: str) -> bool:
    """Shape of 13 or 15 characters: digits, with 2A/2B allowed as the département."""
    return (
        _is_digits(value[:5])
        and (_is_digits(value[5:7]) or value[5:7] in _CORSICA)
        and _is_digits(value[7:])
    )


def nir_key(body13: str) -> int:
    """The key (1..97) of the 13 first characters of a NIR: 97 − (number mod 97).

    ``2A`` counts as 19 and ``2B`` as 18. Spaces are ignored, letters may be lower case.
    """
    body = _compact(body13)
    if len(body) != 13:
        raise InvalidIdentifier(
            IdentifierCode.NIR_LENGTH, "the body of a NIR has 13 characters", field="nir"
        )
    if not _nir_format_ok(body):
        raise InvalidIdentifier(
            IdentifierCode.NIR_FORMAT,
            "a NIR is made of digits, with 2A or 2B allowed as the département",
            field="nir",
        )
    return 97 - _nir_body_number(body) % 97


def _nir_problem(value: str) -> tuple[IdentifierCode, str] | None:
    """The (code, message) of the first rule a compact NIR breaks, or None when valid."""
    if not value:
        return IdentifierCode.NIR_EMPTY, "the NIR is empty"
    if len(value) != NIR_LENGTH:
        return (
            IdentifierCode.NIR_LENGTH,
            f"a NIR has 15 characters (13 and a 2-digit key), not {len(value)}",
        )
    if not _nir_format_ok(value):
        return (
            IdentifierCode.NIR_FORMAT,
            "a NIR is made of digits, with 2A or 2B allowed as the département",
        )
    if value[0] not in _NIR_SEX_DIGITS:
        return IdentifierCode.NIR_SEX, "the first digit of a NIR (sex) must be 1, 2, 3, 4, 7 or 8"
    if not _nir_month_ok(int(value[3:5])):
        return IdentifierCode.NIR_MONTH, "the month of a NIR must be 01-12, 20-42 or 50-99"
    if value[5:7] == "00":
        return IdentifierCode.NIR_DEPARTMENT, "the département of a NIR cannot be 00"
    if int(value[13:]) != 97 - _nir_body_number(value[:13]) % 97:
        return IdentifierCode.NIR_KEY, "the key of the NIR does not match its 13 first characters"
    return None


@dataclass(frozen=True, slots=True, repr=False)
class Nir:
    """A valid NIR (numéro d'inscription au répertoire), 15 characters, no spaces.

    ``str()`` and ``repr()`` give the masked form, so that a NIR formatted into a log line
    or an error by mistake does not leak; read ``.value`` explicitly for the full number.
    """

    value: str

    def __post_init__(self) -> None:
        problem = _nir_problem(self.value)
        if problem is not None:
            raise InvalidIdentifier(problem[0], problem[1], field="nir")

    @property
    def sex(self) -> Sex:
        """Sex as coded in the first digit (1, 3, 7 male; 2, 4, 8 female)."""
        return nir_sex(self.value)

    @property
    def birth_year_2digits(self) -> int:
        """The two last digits of the birth year (the century is not in the NIR)."""
        return int(self.value[1:3])

    @property
    def birth_month(self) -> int | None:
        """Birth month 1..12, or None when the NIR codes an unknown month (20-42, 50-99)."""
        month = int(self.value[3:5])
        return month if month <= 12 else None

    @property
    def department(self) -> str:
        """Département of birth: 2 characters (``75``, ``2A``), 3 for overseas (``971``).

        ``99`` means born abroad (the next 3 digits are then the country code).
        """
        head = self.value[5:7]
        return self.value[5:8] if head in ("97", "98") else head

    @property
    def is_provisional(self) -> bool:
        """True for provisional numbers (sex digit 3, 4, 7 or 8)."""
        return self.value[0] in _NIR_PROVISIONAL_SEX_DIGITS

    def masked(self) -> str:
        """Sex and birth year only, the rest starred: ``"1 85 ** ** *** *** **"``.

        This is the only form of a NIR that may appear on screens, in errors and logs.
        Sex and year alone are shared by hundreds of thousands of people.
        """
        return f"{self.value[0]} {self.value[1:3]} ** ** *** *** **"

    def __str__(self) -> str:
        return self.masked()

    def __repr__(self) -> str:
        return f"Nir({self.masked()!r})"


def parse_nir(value: str) -> Nir:
    """Validate a NIR (spaces allowed, 2A/2B in any case) and return it normalised.

    Codes: ``nir.empty``, ``nir.length``, ``nir.format``, ``nir.sex``, ``nir.month``,
    ``nir.department``, ``nir.key``.
    """
    return Nir(_compact(value))


# A NIR already written as it is stored: 15 ASCII characters, nothing to compact.
_NIR_COMPACT: Final = re.compile(r"[1-478][0-9]{4}(?:[0-9]{2}|2[AB])[0-9]{8}")


def parse_nir_value(value: str) -> str:
    """``parse_nir(value).value``, faster on the common input: an already compact NIR.

    Bulk imports validate millions of NIRs that are nearly all written compact: those are
    checked here with one pattern and integer arithmetic, without building a :class:`Nir`.
    Anything else (spaces, lower case, any invalid value) goes through :func:`parse_nir`,
    so the accepted values, the result and the error codes are exactly the same.
    """
    if _NIR_COMPACT.fullmatch(value) is not None:
        month = int(value[3:5])
        department = value[5:7]
        if (1 <= month <= 12 or 20 <= month <= 42 or 50 <= month <= 99) and department != "00":
            if department == "2A":
                body = int(value[:5] + "19" + value[7:13])
            elif department == "2B":
                body = int(value[:5] + "18" + value[7:13])
            else:
                body = int(value[:13])
            if int(value[13:]) == 97 - body % 97:
                return value
    return parse_nir(value).value


def nir_sex(value: str) -> Sex:
    """Sex coded in the first digit of a valid compact NIR (see :attr:`Nir.sex`)."""
    return Sex.MALE if value[0] in _NIR_MALE_DIGITS else Sex.FEMALE


def nir_birth_year_month(value: str) -> tuple[int, int | None]:
    """Two last digits of the birth year and month (None if unknown) of a valid compact NIR
    (see :attr:`Nir.birth_year_2digits` and :attr:`Nir.birth_month`)."""
    month = int(value[3:5])
    return int(value[1:3]), (month if month <= 12 else None)


BIRTH_RANK_MIN: Final = 1
BIRTH_RANK_MAX: Final = 9


def parse_birth_rank(value: int | str) -> int:
    """Validate a rang de naissance (1..9; separates twins sharing a parent's NIR).

    Codes: ``birth_rank.empty``, ``birth_rank.format``, ``birth_rank.range``.
    """
    if isinstance(value, bool):
        raise InvalidIdentifier(
            IdentifierCode.BIRTH_RANK_FORMAT, "the birth rank is a whole number", field="birth_rank"
        )
    if isinstance(value, str):
        text = value.strip()
        if not text:
            raise InvalidIdentifier(
                IdentifierCode.BIRTH_RANK_EMPTY, "the birth rank is empty", field="birth_rank"
            )
        if not _is_digits(text):
            raise InvalidIdentifier(
                IdentifierCode.BIRTH_RANK_FORMAT,
                "the birth rank is a whole number",
                field="birth_rank",
            )
        # A long string cannot be in range; do not convert it (int() of huge text is slow).
        rank = int(text) if len(text) <= 2 else BIRTH_RANK_MAX + 1
    else:
        rank = value
    if not BIRTH_RANK_MIN <= rank <= BIRTH_RANK_MAX:
        raise InvalidIdentifier(
            IdentifierCode.BIRTH_RANK_RANGE,
            "the birth rank must be between 1 and 9",
            field="birth_rank",
        )
    return rank
