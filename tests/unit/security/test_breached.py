"""Password policy: length bounds, refusal list and its variants, identity words."""

from __future__ import annotations

import pytest

from tierspayant.domain.errors import DomainError
from tierspayant.security.breached import (
    MAX_LENGTH,
    MIN_LENGTH,
    PasswordPolicyError,
    check_password_policy,
    common_passwords,
    fold,
    is_common,
)

GOOD = "cheval bleu mardi pluie"


def _code(password: str, context: tuple[str, ...] = ()) -> str | None:
    try:
        check_password_policy(password, context_words=context)
    except PasswordPolicyError as exc:
        return exc.code
    return None


def test_given_packaged_list_then_large_lower_case_and_holds_french_bases() -> None:
    listed = common_passwords()
    assert len(listed) >= 1000
    assert {"azerty", "motdepasse", "soleil", "doudou", "marseille", "mutuelle"} <= listed
    assert {"password", "qwerty", "iloveyou"} <= listed
    assert all(entry == fold(entry) for entry in listed)


def test_given_policy_error_then_it_is_a_domain_error_on_the_password_field() -> None:
    with pytest.raises(DomainError) as caught:
        check_password_policy("court")
    assert caught.value.code == "password.too_short"
    assert caught.value.field == "password"


@pytest.mark.parametrize(
    ("password", "code"),
    [
        ("a" * 0, "password.too_short"),
        ("Cheval-bleu", "password.too_short"),  # 11 characters
        ("cheval-bleu!", None),  # 12 characters, not common
        ("é" * 6 + "cheval", None),  # counted in characters, not bytes
        ("x" * (MAX_LENGTH + 1), "password.too_long"),
    ],
)
def test_length_bounds(password: str, code: str | None) -> None:
    assert _code(password) == code


def test_given_long_passphrase_at_the_maximum_then_accepted() -> None:
    words = "tortue vole sur la lune pendant que le facteur sifflote une chanson de marin "
    passphrase = (words * 3)[:MAX_LENGTH]
    assert len(passphrase) == MAX_LENGTH
    assert _code(passphrase) is None
    assert (MIN_LENGTH, MAX_LENGTH) == (12, 128)


@pytest.mark.parametrize(
    "password",
    [
        "motdepasse12",
        "Motdepasse2024!",
        "MOTDEPASSE2025",
        "Azertyuiop123",
        "azerty123456",
        "Soleil2024!!!",
        "123Soleil2024!",
        "soleilsoleil",
        "P@ssw0rd2024!",
        "Marseille13013",
        "iloveyou1234",
        "Mutuelle2026!",
        "123456789012",
        "07 12 34 56 78",
        "aaaaaaaaaaaa",
        "abababababab",
        "abcdefghijklm",
        "qsdfghjklmwxc",
        "0987654321098",
    ],
)
def test_given_common_password_or_trivial_variant_then_refused(password: str) -> None:
    assert _code(password) == "password.common"


def test_given_two_listed_words_joined_then_accepted() -> None:
    # The list is matched whole, so passphrases made of common words stay possible.
    assert _code("Doudou&Loulou") is None
    assert _code("Doudou2024") == "password.too_short"


@pytest.mark.parametrize(
    "password",
    [
        GOOD,
        "Ornithorynque-Violet-42",
        "J3-suis-L@-pour-toi",
        "la pharmacie du coin ferme tard",
        "Tr0ub4dor&3xyz",
        "7Hx!92@#kq01",
    ],
)
def test_given_uncommon_password_then_accepted(password: str) -> None:
    assert _code(password) is None
    assert not is_common(password)


@pytest.mark.parametrize(
    ("password", "context"),
    [
        ("Dupont-cheval-bleu-42", ("jean.dupont@mutuelle-exemple.fr",)),
        ("cheval-bleu-JEAN-1975", ("jean.dupont@mutuelle-exemple.fr",)),
        ("Mutuelle-Exemple-cheval", ("jean.dupont@mutuelle-exemple.fr",)),
        ("elodie-cheval-bleu", ("Élodie Martin",)),
        ("3lodie-cheval-bleu", ("Élodie",)),
        ("cheval-bleu-tierspayant", ("tierspayant",)),
    ],
)
def test_given_password_containing_identity_then_refused(
    password: str, context: tuple[str, ...]
) -> None:
    assert _code(password, context) == "password.contains_identity"


def test_given_short_identity_parts_then_not_used_against_the_password() -> None:
    # "eve" and "li" are too short to be meaningful inside another word.
    assert _code("leveque-cheval-bleu-lila", ("eve.li@example.fr",)) is None


def test_given_same_password_without_context_then_accepted() -> None:
    assert _code("Dupont-cheval-bleu-42") is None
