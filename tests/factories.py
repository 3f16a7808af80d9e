"""Realistic French test data, built deterministically from a ``random.Random``.

The one place tests build identifiers. Every function takes the generator first so that a
test (or a hypothesis strategy via ``st.randoms()``) controls the sequence. Values are
invented: they have the right shape and check digits, and nothing more.

Check digits are computed here with code of their own, not with
``tierspayant.domain.identifiers``: when the factory and the validator agree, two
independent implementations agree, which is a test in itself.

Keep this top part free of Faker; Faker-based helpers go at the bottom.
"""

from __future__ import annotations

import random
import string

from tierspayant.domain.care import Sex

__all__ = [
    "CORSICA_DEPARTMENTS",
    "METROPOLITAN_DEPARTMENTS",
    "OVERSEAS_DEPARTMENTS",
    "digits",
    "luhn_digit",
    "make_am_number",
    "make_amc_number",
    "make_bic",
    "make_finess",
    "make_french_iban",
    "make_nir",
    "make_rpps",
    "make_siren",
    "make_siret",
]

# 01-95 without 20 (Corsica has been 2A/2B since 1976), then Corsica and overseas.
METROPOLITAN_DEPARTMENTS: tuple[str, ...] = tuple(f"{n:02d}" for n in range(1, 96) if n != 20)
CORSICA_DEPARTMENTS: tuple[str, ...] = ("2A", "2B")
OVERSEAS_DEPARTMENTS: tuple[str, ...] = ("971", "972", "973", "974", "976")
# INSEE country codes used after "99" in the NIR of people born abroad.
_BIRTH_COUNTRIES: tuple[str, ...] = ("109", "127", "131", "134", "139", "350", "351", "352")

_LUHN_DOUBLED = (0, 2, 4, 6, 8, 1, 3, 5, 7, 9)


def digits(rng: random.Random, count: int) -> str:
    """``count`` random ASCII digits (leading zeros possible)."""
    return "".join(rng.choice(string.digits) for _ in range(count))


def luhn_digit(body: str) -> str:
    """Luhn check digit of ``body`` (a table lookup, independent of the domain's)."""
    total = 0
    # With the check digit appended, the last digit of the body gets doubled.
    for index, char in enumerate(reversed(body)):
        total += _LUHN_DOUBLED[int(char)] if index % 2 == 0 else int(char)
    return str(-total % 10)


def _pick_department(rng: random.Random) -> str:
    roll = rng.random()
    if roll < 0.08:
        return rng.choice(CORSICA_DEPARTMENTS)
    if roll < 0.12:
        return rng.choice(("97", "98"))  # overseas, written on 2 digits in these numbers
    return rng.choice(METROPOLITAN_DEPARTMENTS)


def _luhn_with_department(rng: random.Random, department: str, middle: str) -> str:
    # Corsican numbers are written 2A/2B but checked as 20 (domain.identifiers docstring).
    checked = ("20" if department in CORSICA_DEPARTMENTS else department) + middle
    return department + middle + luhn_digit(checked)


# --------------------------------------------------------------------------- NIR


def _nir_key(body13: str) -> str:
    number = body13[:5] + {"2A": "19", "2B": "18"}.get(body13[5:7], body13[5:7]) + body13[7:]
    return f"{97 - int(number) % 97:02d}"


def make_nir(
    rng: random.Random,
    *,
    sex: Sex | None = None,
    year: int | None = None,
    month: int | None = None,
    department: str | None = None,
    provisional: bool = False,
) -> str:
    """A valid 15-character NIR (with key), compact.

    ``year`` may have 2 or 4 digits; ``month`` is 1-12 or a special code (20-42, 50-99);
    ``department`` is 2 characters (``"75"``, ``"2A"``), 3 for overseas (``"971"``) or
    ``"99"`` for born abroad. Left out, each is drawn at random, with Corsica, overseas
    and foreign births among them. ``provisional`` gives sex digit 7/8 (or 3/4).
    """
    chosen_sex = sex if sex is not None else rng.choice((Sex.MALE, Sex.FEMALE))
    male = chosen_sex is Sex.MALE
    if provisional:
        sex_digit = rng.choice(("7", "3")) if male else rng.choice(("8", "4"))
    else:
        sex_digit = "1" if male else "2"
    yy = (year if year is not None else rng.randint(1930, 2024)) % 100
    if month is None:
        month = rng.randint(1, 12) if rng.random() < 0.95 else rng.choice((20, 31, 42, 50, 99))
    if department is None:
        roll = rng.random()
        if roll < 0.08:
            department = rng.choice(CORSICA_DEPARTMENTS)
        elif roll < 0.12:
            department = rng.choice(OVERSEAS_DEPARTMENTS)
        elif roll < 0.16:
            department = "99"
        else:
            department = rng.choice(METROPOLITAN_DEPARTMENTS)
    if department == "99":
        place = "99" + rng.choice(_BIRTH_COUNTRIES)
    elif len(department) == 3:
        place = department + f"{rng.randint(1, 99):02d}"
    else:
        place = department + f"{rng.randint(1, 999):03d}"
    body = f"{sex_digit}{yy:02d}{month:02d}{place}{rng.randint(1, 999):03d}"
    assert len(body) == 13, body
    return body + _nir_key(body)


# --------------------------------------------------------------------------- providers


def make_rpps(rng: random.Random) -> str:
    """A valid RPPS number: 11 digits starting with 1 (as RPPS-born numbers do), Luhn."""
    body = "1" + digits(rng, 9)
    return body + luhn_digit(body)


def make_finess(rng: random.Random, *, department: str | None = None) -> str:
    """A valid FINESS number (département, 6 digits, Luhn), sometimes Corsican (2A/2B)."""
    return _luhn_with_department(rng, department or _pick_department(rng), digits(rng, 6))


def make_am_number(
    rng: random.Random, category: str | int | None = None, *, department: str | None = None
) -> str:
    """A valid numéro AM: département 2, profession category 1, order 5, Luhn key."""
    category_digit = str(category) if category is not None else rng.choice(string.digits)
    if len(category_digit) != 1 or not category_digit.isdigit():
        raise ValueError("the category of a numéro AM is one digit")
    middle = category_digit + digits(rng, 5)
    return _luhn_with_department(rng, department or _pick_department(rng), middle)


def make_siren(rng: random.Random) -> str:
    """A valid SIREN (9 digits, Luhn), never one of La Poste (356000000)."""
    while True:
        body = rng.choice("123456789") + digits(rng, 7)
        siren = body + luhn_digit(body)
        if siren != "356000000":
            return siren


def make_siret(rng: random.Random) -> str:
    """A valid SIRET: a valid SIREN, a 4-digit establishment number, Luhn over all 14."""
    body = make_siren(rng) + digits(rng, 4)
    return body + luhn_digit(body)


# --------------------------------------------------------------------------- bank


def _iban_check_digits(country: str, bban: str) -> str:
    # ISO 13616: move the country and "00" to the end, letters as 10..35, then 98 − mod 97.
    rearranged = bban + country + "00"
    numeric = "".join(str(int(char, 36)) for char in rearranged)
    return f"{98 - int(numeric) % 97:02d}"


# Letters of an account count as digits: A/J → 1, B/K/S → 2, … I/R/Z → 9.
_RIB_LETTER_VALUES = {letter: str(i % 9 + 1) for i, letter in enumerate("ABCDEFGHIJKLMNOPQR")}
_RIB_LETTER_VALUES |= {letter: str(i + 2) for i, letter in enumerate("STUVWXYZ")}


def _rib_key(bank: str, branch: str, account: str) -> str:
    numeric = "".join(_RIB_LETTER_VALUES.get(char, char) for char in account)
    return f"{97 - (89 * int(bank) + 15 * int(branch) + 3 * int(numeric)) % 97:02d}"


def make_french_iban(rng: random.Random, *, letters_in_account: bool = False) -> str:
    """A valid French IBAN, compact: FR, check digits, bank 5, branch 5, account 11, RIB key.

    With digits only in the account the check digits are always 76; ``letters_in_account``
    puts a letter in the account number, as some banks do, which changes them.
    """
    bank, branch = digits(rng, 5), digits(rng, 5)
    account = digits(rng, 11)
    if letters_in_account:
        position = rng.randrange(11)
        account = account[:position] + rng.choice(string.ascii_uppercase) + account[position + 1 :]
    bban = bank + branch + account + _rib_key(bank, branch, account)
    return "FR" + _iban_check_digits("FR", bban) + bban


def make_bic(rng: random.Random, *, branch: bool | None = None) -> str:
    """A well-formed French BIC: bank 4 letters, FR, location 2, optional branch 3."""
    bank = "".join(rng.choice(string.ascii_uppercase) for _ in range(4))
    # A location whose second character is 0 marks a test BIC; avoid it.
    location = rng.choice(string.ascii_uppercase) + rng.choice(string.ascii_uppercase + "123456789")
    with_branch = rng.random() < 0.5 if branch is None else branch
    suffix = rng.choice(("XXX", "".join(rng.choice(string.ascii_uppercase) for _ in range(3))))
    return bank + "FR" + location + (suffix if with_branch else "")


# --------------------------------------------------------------------------- insurers


def make_amc_number(rng: random.Random, *, length: int | None = None) -> str:
    """A numéro AMC as printed on the card: 8 digits mostly, sometimes 9 or 10."""
    size = length if length is not None else rng.choice((8, 8, 8, 9, 10))
    return digits(rng, size)
