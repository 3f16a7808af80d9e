"""The sealed key export: opens with its passphrase only, and any alteration is refused."""

from __future__ import annotations

import base64
import json

import pytest

from tierspayant.security.key_export import (
    KeyBundle,
    KeyExportError,
    open_sealed,
    seal,
)

FAST = 2**14  # the lowest cost accepted: enough for tests, the default is 2**17
PASSPHRASE = "correct horse battery staple"
KEYRING = b'{"format": "tierspayant.keyring", "version": 1}\n'
CHECKPOINT_KEY = base64.b64encode(bytes(range(32))) + b"\n"


def _sealed() -> bytes:
    return seal(KeyBundle(KEYRING, CHECKPOINT_KEY), PASSPHRASE, scrypt_n=FAST)


def test_a_sealed_export_opens_with_its_passphrase_and_holds_the_files() -> None:
    sealed = _sealed()
    # The content is not readable without the passphrase
    assert b"tierspayant.keyring" not in sealed
    assert CHECKPOINT_KEY.strip() not in sealed
    # The header says how the key was derived
    header = json.loads(sealed)
    assert header["kdf"]["name"] == "scrypt"
    assert header["kdf"]["n"] == FAST
    assert len(base64.b64decode(header["kdf"]["salt"])) == 16
    assert header["cipher"] == "AES-256-GCM"
    # And it opens back to the same bytes
    opened = open_sealed(sealed, PASSPHRASE)
    assert opened.keyring == KEYRING
    assert opened.checkpoint_key == CHECKPOINT_KEY


def test_two_exports_of_the_same_keys_differ() -> None:
    assert _sealed() != _sealed()  # a fresh salt and nonce each time


def test_a_wrong_passphrase_is_refused() -> None:
    with pytest.raises(KeyExportError) as refused:
        open_sealed(_sealed(), PASSPHRASE + "!")
    assert refused.value.code == "key_export.refused"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("created_at", "2020-01-01T00:00:00+00:00"),
        ("nonce", base64.b64encode(b"\x00" * 12).decode()),
        ("kdf", {"name": "scrypt", "n": 2**15, "r": 8, "p": 1, "salt": "AAAAAAAAAAAAAAAAAAAAAA=="}),
    ],
)
def test_an_altered_header_is_refused(field: str, value: object) -> None:
    document = json.loads(_sealed())
    document[field] = value
    with pytest.raises(KeyExportError) as refused:
        open_sealed(json.dumps(document).encode(), PASSPHRASE)
    assert refused.value.code == "key_export.refused"


def test_an_altered_ciphertext_is_refused() -> None:
    document = json.loads(_sealed())
    raw = bytearray(base64.b64decode(document["ciphertext"]))
    raw[len(raw) // 2] ^= 0x01
    document["ciphertext"] = base64.b64encode(bytes(raw)).decode()
    with pytest.raises(KeyExportError) as refused:
        open_sealed(json.dumps(document).encode(), PASSPHRASE)
    assert refused.value.code == "key_export.refused"


@pytest.mark.parametrize(
    "change",
    [
        {"kdf": {"name": "scrypt", "n": 2**30, "r": 8, "p": 1, "salt": "AAAAAAAAAAAAAAAAAAAAAA=="}},
        {"kdf": {"name": "scrypt", "n": 3000, "r": 8, "p": 1, "salt": "AAAAAAAAAAAAAAAAAAAAAA=="}},
        {"kdf": {"name": "pbkdf2"}},
        {"format": "something.else"},
        {"version": 2},
        {"cipher": "AES-128-CBC"},
        {"ciphertext": "not base64!"},
    ],
)
def test_a_header_outside_the_accepted_values_is_malformed_and_not_obeyed(
    change: dict[str, object],
) -> None:
    # A header asking for 2^30 scrypt rounds would take minutes and gigabytes: refused
    document = {**json.loads(_sealed()), **change}
    with pytest.raises(KeyExportError) as refused:
        open_sealed(json.dumps(document).encode(), PASSPHRASE)
    assert refused.value.code == "key_export.malformed"


@pytest.mark.parametrize("raw", [b"", b"not json", b"[]", b"\xff\xfe"])
def test_a_file_that_is_not_an_export_is_malformed(raw: bytes) -> None:
    with pytest.raises(KeyExportError) as refused:
        open_sealed(raw, PASSPHRASE)
    assert refused.value.code == "key_export.malformed"


def test_a_short_passphrase_is_refused_at_export() -> None:
    with pytest.raises(KeyExportError) as refused:
        seal(KeyBundle(KEYRING), "too short", scrypt_n=FAST)
    assert refused.value.code == "key_export.passphrase"


def test_an_export_without_checkpoint_key_opens_without_one() -> None:
    sealed = seal(KeyBundle(KEYRING), PASSPHRASE, scrypt_n=FAST)
    assert open_sealed(sealed, PASSPHRASE).checkpoint_key is None
