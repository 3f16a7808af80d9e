"""Password policy for staff and members: length bounds, common passwords, identity words.

Follows NIST SP 800-63B (5.1.1.2) and the CNIL recommendation on passwords (2022): a
minimum length, no composition rules (they push users to ``Azerty123!``), and a refusal
list of passwords known to be common or breached. The list is packaged
(``data/common_passwords.txt``) because this process cannot reach the network to ask a
breach service, and must not send password material outside anyway.

A bare list lookup is easy to dodge with ``Soleil2024!``; the check therefore compares
several *normalised forms* of the candidate with the list: lower case without accents,
without leading or trailing digits and symbols, with common letter-for-digit
substitutions undone (``p@ssw0rd``), and with a repeated unit collapsed
(``soleilsoleil``).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator, Sequence
from functools import cache
from importlib import resources

from tierspayant.domain.codes import AuthCode
from tierspayant.domain.errors import DomainError

MIN_LENGTH = 12
MAX_LENGTH = 128  # bounds the work of the hash and the size of the login form
# A base shorter than this is not compared with the list: three-letter words would refuse
# too many good passwords that merely start or end with them.
_MIN_BASE = 4
_MIN_DISTINCT = 5
_MIN_IDENTITY_WORD = 4

_EDGE = re.compile(r"^[\W\d_]+|[\W\d_]+$")
_TOKENS = re.compile(r"[^\W_]+")
# Substitutions people use to "strengthen" a word; "1" stands for both i and l.
_LEET_I = str.maketrans("0134578@$!|€", "oieastbasile")
_LEET_L = str.maketrans("0134578@$!|€", "oleastbasile")
# Keyboard rows and ordered runs: a password that is a piece of one is not a password.
_SEQUENCES = (
    "abcdefghijklmnopqrstuvwxyz",
    "0123456789",
    "azertyuiop",
    "qsdfghjklm",
    "wxcvbn",
    "qwertyuiop",
    "asdfghjkl",
    "zxcvbnm",
    "1234567890azertyuiopqsdfghjklmwxcvbn",
    "1234567890qwertyuiopasdfghjklzxcvbnm",
)


class PasswordPolicyError(DomainError):
    """A new password breaks the policy; ``code`` says which rule."""


@cache
def common_passwords() -> frozenset[str]:
    """The packaged refusal list (lower case, no accents), loaded once."""
    text = (
        resources.files("tierspayant.security")
        .joinpath("data/common_passwords.txt")
        .read_text(encoding="utf-8")
    )
    return frozenset(
        line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")
    )


def fold(text: str) -> str:
    """Lower case, compatibility-normalised, accents removed (``Élodie`` → ``elodie``)."""
    decomposed = unicodedata.normalize("NFKD", text.strip().lower())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def _unit(text: str) -> str:
    """The shortest unit ``text`` repeats (``abcabc`` → ``abc``), else ``text``."""
    size = len(text)
    for width in range(1, size // 2 + 1):
        if size % width == 0 and text[:width] * (size // width) == text:
            return text[:width]
    return text


def _forms(folded: str) -> Iterator[str]:
    """The normalised forms of a folded password that are compared with the list."""
    for variant in {folded, folded.translate(_LEET_I), folded.translate(_LEET_L)}:
        for form in (variant, _EDGE.sub("", variant)):
            yield form
            yield _unit(form)
            yield form.replace(" ", "").replace("-", "").replace(".", "").replace("_", "")


def _is_sequence(folded: str) -> bool:
    compact = folded.replace(" ", "")
    # Three copies so that a run wrapping around (``7890123…``) is found too.
    return any(compact in seq * 3 or compact in seq[::-1] * 3 for seq in _SEQUENCES)


def is_common(password: str) -> bool:
    """Whether ``password`` is, or is a trivial variant of, a common password."""
    folded = fold(password)
    if len(set(folded)) < _MIN_DISTINCT or _is_sequence(folded):
        return True
    if len(_EDGE.sub("", folded)) < _MIN_BASE:
        # Only digits and symbols around a stub: a date, a phone number, a PIN.
        return True
    listed = common_passwords()
    return any(len(form) >= _MIN_BASE and form in listed for form in _forms(folded))


def _identity_tokens(context_words: Sequence[str]) -> set[str]:
    tokens: set[str] = set()
    for word in context_words:
        folded = fold(word)
        if len(folded) >= _MIN_IDENTITY_WORD:
            tokens.add(folded)
        # "jean.dupont@mutuelle-exemple.fr" → jean, dupont, mutuelle, exemple
        tokens.update(t for t in _TOKENS.findall(folded) if len(t) >= _MIN_IDENTITY_WORD)
    return tokens


def check_password_policy(password: str, *, context_words: Sequence[str] = ()) -> None:
    """Refuse a new password that breaks the policy, raising :class:`PasswordPolicyError`.

    Codes: ``password.too_short`` (fewer than 12 characters), ``password.too_long`` (more
    than 128), ``password.common`` (on the refusal list, a variant of an entry, a keyboard
    run, too few distinct characters, or digits and symbols only), and
    ``password.contains_identity`` (contains one of ``context_words`` or a part of one of
    at least 4 characters: login, e-mail, names, the insurer's name, the service name).
    """
    length = len(unicodedata.normalize("NFKC", password))
    if length < MIN_LENGTH:
        raise PasswordPolicyError(
            AuthCode.PASSWORD_TOO_SHORT,
            f"the password must have at least {MIN_LENGTH} characters",
            field="password",
        )
    if length > MAX_LENGTH:
        raise PasswordPolicyError(
            AuthCode.PASSWORD_TOO_LONG,
            f"the password must have at most {MAX_LENGTH} characters",
            field="password",
        )
    folded = fold(password)
    candidates = {folded, folded.translate(_LEET_I), folded.translate(_LEET_L)}
    for token in _identity_tokens(context_words):
        if any(token in candidate for candidate in candidates):
            raise PasswordPolicyError(
                AuthCode.PASSWORD_CONTAINS_IDENTITY,
                "the password must not contain your name, login or the service's name",
                field="password",
            )
    if is_common(password):
        raise PasswordPolicyError(
            AuthCode.PASSWORD_COMMON,
            "this password is too common or too easy to guess; choose another one, for "
            "example a sentence of several unrelated words",
            field="password",
        )
