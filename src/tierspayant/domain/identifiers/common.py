"""What every identifier family shares: normalisation, ASCII digits, the Luhn check digit.

See the package docstring for the normalisation every ``parse_*`` function applies.
"""

from __future__ import annotations

import re
from typing import Final

_WHITESPACE: Final = re.compile(r"\s+")
_DIGITS: Final = re.compile(r"[0-9]+")
_CORSICA: Final = frozenset({"2A", "2B"})


def _compact(value: str) -> str:
    """The value without any whitespace, upper-cased."""
    return _WHITESPACE.sub("", value).upper()


def _is_digits(value: str) -> bool:
    # str.isdigit() accepts Arabic-Indic and superscript digits; identifiers are ASCII.
    return _DIGITS.fullmatch(value) is not None


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
