"""Client credentials, access tokens and human passwords."""

from __future__ import annotations

import base64
import hashlib
import unicodedata

import pytest
from argon2 import PasswordHasher

from tierspayant.security.secrets import (
    hash_password,
    hash_secret,
    needs_rehash,
    new_access_token,
    new_client_credentials,
    token_digest,
    verify_password,
    verify_secret,
)


def _random_bytes(url_safe: str) -> int:
    return len(base64.urlsafe_b64decode(url_safe + "=" * (-len(url_safe) % 4)))


def test_given_new_credentials_then_prefixed_url_safe_and_secret_has_256_bits() -> None:
    client_id, secret = new_client_credentials()

    assert client_id.startswith("tpc_")
    assert secret.startswith("tpcs_")
    assert len(client_id) <= 64  # fits api_clients.client_id
    assert _random_bytes(secret.removeprefix("tpcs_")) >= 32
    assert all(c.isalnum() or c in "-_" for c in secret)


def test_given_many_credentials_then_all_distinct() -> None:
    pairs = [new_client_credentials() for _ in range(200)]
    assert len({cid for cid, _ in pairs}) == 200
    assert len({secret for _, secret in pairs}) == 200


def test_given_a_secret_then_only_its_digest_verifies() -> None:
    _, secret = new_client_credentials()
    digest = hash_secret(secret)

    assert len(digest) == 32
    assert secret.encode() not in digest
    assert verify_secret(secret, digest)
    assert not verify_secret(secret + "x", digest)
    assert not verify_secret(secret[:-1], digest)
    assert not verify_secret(secret, digest[:-1] + bytes([digest[-1] ^ 1]))
    assert not verify_secret(secret, b"")


def test_given_one_string_then_secret_and_token_digests_are_domain_separated() -> None:
    value = "tpat_same-string"
    assert hash_secret(value) != token_digest(value)
    assert token_digest(value) != hashlib.sha256(value.encode()).digest()


def test_given_new_access_tokens_then_prefixed_random_and_digest_is_stable() -> None:
    token = new_access_token()

    assert token.startswith("tpat_")
    assert _random_bytes(token.removeprefix("tpat_")) >= 32
    assert token != new_access_token()
    assert token_digest(token) == token_digest(token)
    assert len(token_digest(token)) == 32
    assert token_digest(token) != token_digest(new_access_token())


def test_given_a_password_then_argon2id_hash_verifies_only_that_password() -> None:
    stored = hash_password("Tr0ub4dor&3 horse")

    assert stored.startswith("$argon2id$v=19$m=65536,t=3,p=4$")
    assert "Tr0ub4dor" not in stored
    assert verify_password(stored, "Tr0ub4dor&3 horse")
    assert not verify_password(stored, "Tr0ub4dor&3 horsE")
    assert not needs_rehash(stored)
    assert hash_password("Tr0ub4dor&3 horse") != stored  # salted


def test_given_a_password_typed_with_decomposed_accents_then_it_still_verifies() -> None:
    stored = hash_password(unicodedata.normalize("NFC", "Hélène-1987!"))
    assert verify_password(stored, unicodedata.normalize("NFD", "Hélène-1987!"))


def test_given_a_hash_with_weaker_parameters_then_rehash_is_needed_but_it_verifies() -> None:
    weak = PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1).hash("old password")

    assert needs_rehash(weak)
    assert verify_password(weak, "old password")


@pytest.mark.parametrize("garbage", ["", "not a hash", "$argon2id$v=19$m=1$broken"])
def test_given_a_malformed_hash_then_verification_fails_and_rehash_is_needed(
    garbage: str,
) -> None:
    assert not verify_password(garbage, "anything")
    assert needs_rehash(garbage)


def test_given_an_empty_password_then_refused() -> None:
    with pytest.raises(ValueError, match="empty"):
        hash_password("")
