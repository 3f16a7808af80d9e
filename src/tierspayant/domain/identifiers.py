"""French healthcare identifiers: validate, normalise, or refuse with a precise code.

Every ``parse_*`` function takes what a person or a file gave us and returns the
normalised value, or raises :class:`InvalidIdentifier` whose ``code`` says exactly what
is wrong (``nir.month``, ``rpps.check_digit``…). Codes are stable: callers and tests
match on them. Messages never repeat the submitted value, because it may be a NIR and
errors end up in logs and on screens.

Normalisation is the same everywhere: whitespace (spaces, tabs, non-breaking spaces) is
removed and letters are upper-cased. Anything else that is not part of the identifier
(dots, dashes) is refused rather than guessed at.

Choices made where the rules are not written down in one place:

- **Corsica in FINESS and numéro AM**: the département is written ``2A``/``2B`` (or the
  older ``20``). For the Luhn check, ``2A`` and ``2B`` count as ``20``, so that a number
  keeps its key whichever way its département is written. We found no public statement
  of the rule; this is the reading we apply and test.
- **Corsica in the NIR**: ``2A`` counts as 19 and ``2B`` as 18 when computing the key
  (INSEE rule, as in python-stdnum). ``20`` is still valid: people born in Corsica before
  1976 keep it.
- **AMC number**: 8 to 10 digits, no check digit (see :func:`parse_amc_number`).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from stdnum import bic as stdnum_bic
from stdnum import iban as stdnum_iban
from stdnum import numdb
from stdnum.exceptions import (
    InvalidChecksum,
    InvalidComponent,
    InvalidFormat,
    InvalidLength,
    ValidationError,
)
from stdnum.fr import siren as stdnum_siren
from stdnum.fr import siret as stdnum_siret

from tierspayant.domain.care import Sex
from tierspayant.domain.codes import IdentifierCode
from tierspayant.domain.errors import InvalidIdentifier

__all__ = [
    "AMC_NUMBER_MAX_LENGTH",
    "AMC_NUMBER_MIN_LENGTH",
    "BIRTH_RANK_MAX",
    "BIRTH_RANK_MIN",
    "NIR_LENGTH",
    "Nir",
    "find_valid_nirs",
    "french_rib_key",
    "is_french_iban",
    "luhn_check_digit",
    "luhn_is_valid",
    "nir_birth_year_month",
    "nir_key",
    "nir_sex",
    "parse_am_number",
    "parse_amc_number",
    "parse_bic",
    "parse_birth_rank",
    "parse_finess",
    "parse_iban",
    "parse_nir",
    "parse_nir_value",
    "parse_rpps",
    "parse_siren",
    "parse_siret",
]

_WHITESPACE: Final = re.compile(r"\s+")
_DIGITS: Final = re.compile(r"[0-9]+")
_CORSICA: Final = frozenset({"2A", "2B"})


def _compact(value: str) -> str:
    """The value without any whitespace, upper-cased."""
    return _WHITESPACE.sub("", value).upper()


def _is_digits(value: str) -> bool:
    # str.isdigit() accepts Arabic-Indic and superscript digits; identifiers are ASCII.
    return _DIGITS.fullmatch(value) is not None


# --------------------------------------------------------------------------- Luhn


def _luhn_sum(digits: str) -> int:
    total = 0
    # From the right, every second digit (starting with the one left of the last) is
    # doubled and its digits added: 2·d − 9 when 2·d > 9.
    for position, char in enumerate(reversed(digits)):
        digit = ord(char) - 48
        if position % 2 == 1:
            digit = digit * 2 - 9 if digit >= 5 else digit * 2
        total += digit
    return total


def luhn_is_valid(digits: str) -> bool:
    """True when ``digits`` (ASCII digits only, check digit last) passes the Luhn test."""
    return _is_digits(digits) and _luhn_sum(digits) % 10 == 0


def luhn_check_digit(body: str) -> str:
    """The Luhn check digit to append to ``body`` (ASCII digits, may be empty)."""
    if body and not _is_digits(body):
        raise ValueError("a Luhn body is made of ASCII digits only")
    return str((10 - _luhn_sum(body + "0") % 10) % 10)


# --------------------------------------------------------------------------- NIR

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


# Separators a formatted NIR may carry between its groups ("1 85 05 75 123 456 78").
_SEP: Final = r"[ \u00a0\u202f.\-]?"
_NIR_SHAPE: Final = (
    rf"[1-478]{_SEP}[0-9]{{2}}{_SEP}[0-9]{{2}}{_SEP}"
    # Metropolitan (2-character département, 3-digit commune) or overseas (3 + 2).
    rf"(?:(?:[0-9]{{2}}|2[ABab]){_SEP}[0-9]{{3}}|[0-9]{{3}}{_SEP}[0-9]{{2}})"
    rf"{_SEP}[0-9]{{3}}{_SEP}[0-9]{{2}}"
)
# A lookahead matches at every position, so overlapping candidates are all tried: a NIR
# glued to other digits is still found.
_NIR_ANYWHERE: Final = re.compile(rf"(?=({_NIR_SHAPE}))")
_NIR_ISOLATED: Final = re.compile(rf"(?<![0-9A-Za-z])(?=({_NIR_SHAPE})(?![0-9A-Za-z]))")
_NIR_SEPARATORS: Final = re.compile(r"[ \u00a0\u202f.\-]")


def find_valid_nirs(text: str, *, isolated: bool = False) -> list[str]:
    """Every valid NIR in ``text``, compact and upper case, in order of position.

    Finds NIRs written compact or with separators (space, non-breaking space, dot, dash)
    between their groups. By default a NIR is found even when glued to letters or digits
    (as in a database page, where columns follow each other without separators); every
    15-digit window is then tried, and about one random window in 200 passes all the
    checks, so long runs of digits give false positives. ``isolated=True`` only accepts
    NIRs not touching a letter or digit, which suits hex or base64 text. The same NIR
    found at several places is listed each time. Decode bytes as latin-1 to scan them.
    """
    pattern = _NIR_ISOLATED if isolated else _NIR_ANYWHERE
    found: list[str] = []
    for match in pattern.finditer(text):
        candidate = _NIR_SEPARATORS.sub("", match.group(1)).upper()
        if _nir_problem(candidate) is None:
            found.append(candidate)
    return found


# --------------------------------------------------------------------------- birth rank

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


# --------------------------------------------------------------------------- RPPS, FINESS, AM


def _require_length(value: str, kind: str, label: str, length: int) -> None:
    if not value:
        raise InvalidIdentifier(
            IdentifierCode(f"{kind}.empty"), f"the {label} is empty", field=kind
        )
    if len(value) != length:
        raise InvalidIdentifier(
            IdentifierCode(f"{kind}.length"),
            f"a {label} has {length} characters, not {len(value)}",
            field=kind,
        )


def parse_rpps(value: str) -> str:
    """Validate an RPPS number: 11 digits, the last a Luhn check digit over all 11.

    Codes: ``rpps.empty``, ``rpps.length``, ``rpps.format``, ``rpps.check_digit``.
    """
    number = _compact(value)
    _require_length(number, "rpps", "RPPS number", 11)
    if not _is_digits(number):
        raise InvalidIdentifier(
            IdentifierCode.RPPS_FORMAT, "an RPPS number is made of digits", field="rpps"
        )
    if not luhn_is_valid(number):
        raise InvalidIdentifier(
            IdentifierCode.RPPS_CHECK_DIGIT,
            "the check digit of the RPPS number is wrong",
            field="rpps",
        )
    return number


def _department_prefixed(value: str, kind: str, label: str, length: int) -> str:
    """Shared rules of FINESS and numéro AM: département (digits, 2A, 2B) + digits + Luhn."""
    number = _compact(value)
    _require_length(number, kind, label, length)
    department = number[:2]
    if not (_is_digits(department) or department in _CORSICA) or not _is_digits(number[2:]):
        raise InvalidIdentifier(
            IdentifierCode(f"{kind}.format"),
            f"a {label} is made of digits, with 2A or 2B allowed as the département",
            field=kind,
        )
    if department == "00":
        raise InvalidIdentifier(
            IdentifierCode(f"{kind}.department"),
            f"the département of a {label} cannot be 00",
            field=kind,
        )
    # 2A and 2B count as 20 in the check digit (see the module docstring).
    digits = ("20" if department in _CORSICA else department) + number[2:]
    if not luhn_is_valid(digits):
        raise InvalidIdentifier(
            IdentifierCode(f"{kind}.check_digit"),
            f"the check digit of the {label} is wrong",
            field=kind,
        )
    return number


def parse_finess(value: str) -> str:
    """Validate a FINESS number: département (2: digits, 2A, 2B), 6 digits, Luhn digit.

    Codes: ``finess.empty``, ``finess.length``, ``finess.format``, ``finess.department``,
    ``finess.check_digit``.
    """
    return _department_prefixed(value, "finess", "FINESS number", 9)


def parse_am_number(value: str) -> str:
    """Validate a provider's numéro AM: département 2, category 1, order 5, Luhn key 1.

    The département may be 2A/2B as in FINESS. Codes: ``am_number.empty``,
    ``am_number.length``, ``am_number.format``, ``am_number.department``,
    ``am_number.check_digit``.
    """
    return _department_prefixed(value, "am_number", "numéro AM", 9)


# --------------------------------------------------------------------------- SIREN, SIRET


def _digits_with_stdnum(
    value: str, kind: str, label: str, length: int, validate: Callable[[str], str]
) -> str:
    number = _compact(value)
    _require_length(number, kind, label, length)
    if not _is_digits(number):
        raise InvalidIdentifier(
            IdentifierCode(f"{kind}.format"), f"a {label} is made of digits", field=kind
        )
    try:
        validate(number)
    except ValidationError:
        # Length and characters were checked above: only the check digit is left (for
        # SIRET, the Luhn of the SIRET or of its SIREN, or La Poste's digit-sum rule).
        raise InvalidIdentifier(
            IdentifierCode(f"{kind}.check_digit"),
            f"the check digit of the {label} is wrong",
            field=kind,
        ) from None
    return number


def parse_siren(value: str) -> str:
    """Validate a SIREN (9 digits, Luhn). Codes: ``siren.empty|length|format|check_digit``."""
    return _digits_with_stdnum(value, "siren", "SIREN", 9, stdnum_siren.validate)


def parse_siret(value: str) -> str:
    """Validate a SIRET (14 digits: SIREN + NIC, Luhn; La Poste exception handled).

    Codes: ``siret.empty``, ``siret.length``, ``siret.format``, ``siret.check_digit``.
    """
    return _digits_with_stdnum(value, "siret", "SIRET", 14, stdnum_siret.validate)


# --------------------------------------------------------------------------- IBAN, BIC

_IBAN_HEAD: Final = re.compile(r"[A-Z]{2}[0-9]{2}[A-Z0-9]+")
_IBAN_STRUCTURE_PART: Final = re.compile(r"(\d+)!?[nac]")
_IBAN_DB: Final = numdb.get("iban")
# Countries whose BBAN is a French RIB (bank 5, branch 5, account 11, key 2).
_RIB_COUNTRIES: Final = frozenset({"FR", "MC"})
# RIB letters: A-I → 1-9, J-R → 1-9, S-Z → 2-9 (a gap so that S maps like Z does).
_RIB_LETTERS: Final = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "12345678912345678923456789")


def french_rib_key(bank: str, branch: str, account: str) -> str:
    """The 2-digit RIB key of a French account: 97 − ((89·bank + 15·branch + 3·account) mod 97).

    Letters in the account number count as digits (A-I 1-9, J-R 1-9, S-Z 2-9).
    """
    if not (_is_digits(bank) and _is_digits(branch)):
        raise ValueError("bank and branch codes are digits")
    numeric_account = account.upper().translate(_RIB_LETTERS)
    if not _is_digits(numeric_account):
        raise ValueError("an account number is made of letters and digits")
    total = 89 * int(bank) + 15 * int(branch) + 3 * int(numeric_account)
    return f"{97 - total % 97:02d}"


def _iban_length(country: str) -> int | None:
    info = _IBAN_DB.info(country)
    structure = info[0][1].get("bban") if info else None
    if not structure:
        return None
    return 4 + sum(int(n) for n in _IBAN_STRUCTURE_PART.findall(structure))


def is_french_iban(iban: str) -> bool:
    """True when the (already normalised) IBAN is a French one (country code FR)."""
    return iban.startswith("FR")


def parse_iban(value: str) -> str:
    """Validate an IBAN and return it compact, upper case (``FR7630006000011234567890189``).

    For French and Monaco IBANs the RIB key of the BBAN is checked too. Codes:
    ``iban.empty``, ``iban.format``, ``iban.country``, ``iban.length``, ``iban.checksum``,
    ``iban.rib_key``.
    """
    number = _compact(value)
    if not number:
        raise InvalidIdentifier(IdentifierCode.IBAN_EMPTY, "the IBAN is empty", field="iban")
    if not _IBAN_HEAD.fullmatch(number):
        raise InvalidIdentifier(
            IdentifierCode.IBAN_FORMAT,
            "an IBAN is a country code, 2 check digits, then letters and digits",
            field="iban",
        )
    expected = _iban_length(number[:2])
    if expected is None:
        raise InvalidIdentifier(
            IdentifierCode.IBAN_COUNTRY, "unknown IBAN country code", field="iban"
        )
    if len(number) != expected:
        raise InvalidIdentifier(
            IdentifierCode.IBAN_LENGTH,
            f"an IBAN of this country has {expected} characters, not {len(number)}",
            field="iban",
        )
    try:
        stdnum_iban.validate(number)
    except InvalidChecksum:
        raise InvalidIdentifier(
            IdentifierCode.IBAN_CHECKSUM, "the check digits of the IBAN are wrong", field="iban"
        ) from None
    except ValidationError:
        raise InvalidIdentifier(
            IdentifierCode.IBAN_FORMAT, "the account part of the IBAN is malformed", field="iban"
        ) from None
    if number[:2] in _RIB_COUNTRIES:
        bank, branch, account, key = number[4:9], number[9:14], number[14:25], number[25:]
        if french_rib_key(bank, branch, account) != key:
            raise InvalidIdentifier(
                IdentifierCode.IBAN_RIB_KEY, "the RIB key inside the IBAN is wrong", field="iban"
            )
    return number


def parse_bic(value: str) -> str:
    """Validate a BIC (8 or 11 characters) and return it upper case.

    Codes: ``bic.empty``, ``bic.length``, ``bic.format``, ``bic.country``.
    """
    number = _compact(value)
    if not number:
        raise InvalidIdentifier(IdentifierCode.BIC_EMPTY, "the BIC is empty", field="bic")
    try:
        stdnum_bic.validate(number)
    except InvalidLength:
        raise InvalidIdentifier(
            IdentifierCode.BIC_LENGTH,
            f"a BIC has 8 or 11 characters, not {len(number)}",
            field="bic",
        ) from None
    except InvalidComponent:
        raise InvalidIdentifier(
            IdentifierCode.BIC_COUNTRY, "unknown BIC country code", field="bic"
        ) from None
    except (InvalidFormat, ValidationError):
        raise InvalidIdentifier(
            IdentifierCode.BIC_FORMAT,
            "a BIC is 4 letters (bank), 2 letters (country), 2 letters or digits "
            "(location) and an optional 3 (branch)",
            field="bic",
        ) from None
    return number


# --------------------------------------------------------------------------- AMC number

AMC_NUMBER_MIN_LENGTH: Final = 8
AMC_NUMBER_MAX_LENGTH: Final = 10


def parse_amc_number(value: str) -> str:
    """Validate the complementary insurer's number (numéro AMC) printed on the card.

    Accepted: 8 to 10 digits, leading zeros kept, no check digit. This is our choice, not
    a published rule: the numbers we know of are 8 or 9 digits (some insurers print their
    SIREN), and 10 leaves room for a prefixed form. The number only routes a request, so a
    wrong one is caught later as an unknown insurer, not here.

    Codes: ``amc_number.empty``, ``amc_number.length``, ``amc_number.format``.
    """
    number = _compact(value)
    if not number:
        raise InvalidIdentifier(
            IdentifierCode.AMC_NUMBER_EMPTY, "the AMC number is empty", field="amc_number"
        )
    if not AMC_NUMBER_MIN_LENGTH <= len(number) <= AMC_NUMBER_MAX_LENGTH:
        raise InvalidIdentifier(
            IdentifierCode.AMC_NUMBER_LENGTH,
            f"an AMC number has 8 to 10 digits, not {len(number)} characters",
            field="amc_number",
        )
    if not _is_digits(number):
        raise InvalidIdentifier(
            IdentifierCode.AMC_NUMBER_FORMAT, "an AMC number is made of digits", field="amc_number"
        )
    return number
