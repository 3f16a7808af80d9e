"""Bank account identifiers: IBAN (with the French RIB key inside it) and BIC."""

from __future__ import annotations

import re
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

from tierspayant.domain.codes import IdentifierCode
from tierspayant.domain.errors import InvalidIdentifier
from tierspayant.domain.identifiers.common import _compact, _is_digits

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
