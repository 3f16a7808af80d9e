"""The numbers of health professionals, their structures and the insurers.

RPPS, FINESS, numéro AM, SIREN, SIRET and numéro AMC. Corsica in FINESS and numéro AM,
and the shape of an AMC number, are choices explained in the package docstring.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from stdnum.exceptions import ValidationError
from stdnum.fr import siren as stdnum_siren
from stdnum.fr import siret as stdnum_siret

from tierspayant.domain.codes import IdentifierCode
from tierspayant.domain.errors import InvalidIdentifier
from tierspayant.domain.identifiers.common import (
    _CORSICA,
    _compact,
    _is_digits,
    luhn_is_valid,
)


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
    # 2A and 2B count as 20 in the check digit (see the package docstring).
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
