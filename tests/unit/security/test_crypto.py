"""Field encryption (AES-256-GCM bound to the cell) and keyed blind indexes."""

from __future__ import annotations

import hashlib
import hmac
import unicodedata
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tierspayant.security.crypto import (
    BlindIndexer,
    DataKeys,
    DecryptionError,
    FieldCipher,
    KindIndexer,
    ciphertext_key_version,
    hmac_sha256_state,
    new_data_keys,
    row_aad,
    unwrap_data_keys,
    wrap_data_keys,
)
from tierspayant.security.keys import LocalKeyring, UnwrapError

KEYS = DataKeys(version=1, encryption_key=bytes(range(32)), index_key=bytes(range(32, 64)))
CIPHER = FieldCipher(KEYS)
AAD = row_aad(7, "beneficiaries", "a1b2c3", "nir")
NIR = "185057800608436"


@pytest.fixture
def keyring(tmp_path: Path) -> LocalKeyring:
    return LocalKeyring.create(tmp_path / "keyring.json")


# --- data keys ------------------------------------------------------------------------


def test_given_new_data_keys_then_both_keys_are_random_32_bytes_and_hidden_in_repr() -> None:
    keys = new_data_keys(3)

    assert keys.version == 3
    assert len(keys.encryption_key) == len(keys.index_key) == 32
    assert keys.encryption_key != keys.index_key
    assert new_data_keys(3).encryption_key != keys.encryption_key
    assert keys.encryption_key.hex() not in repr(keys)
    assert keys.index_key.hex() not in repr(keys)
    assert str(list(keys.index_key)) not in repr(keys)


def test_given_an_index_key_when_rotating_then_only_the_encryption_key_changes() -> None:
    rotated = new_data_keys(2, index_key=KEYS.index_key)

    assert rotated.index_key == KEYS.index_key
    assert rotated.encryption_key != KEYS.encryption_key
    assert BlindIndexer(rotated).index("nir_rank", NIR) == BlindIndexer(KEYS).index("nir_rank", NIR)


@pytest.mark.parametrize(
    ("version", "enc", "idx"),
    [(0, bytes(32), bytes(range(32))), (1, bytes(31), bytes(32)), (1, bytes(32), bytes(32))],
    ids=["version-0", "short-key", "same-keys"],
)
def test_given_invalid_data_keys_then_refused(version: int, enc: bytes, idx: bytes) -> None:
    with pytest.raises(ValueError, match=r"version|32 bytes|differ"):
        DataKeys(version, enc, idx)


def test_given_wrapped_data_keys_when_unwrapped_for_the_same_insurer_then_equal(
    keyring: LocalKeyring,
) -> None:
    keys = new_data_keys(4)
    blob = wrap_data_keys(keyring, "12345678", keys)

    assert keys.encryption_key not in blob
    assert unwrap_data_keys(keyring, "12345678", 4, blob) == keys


def test_given_wrapped_data_keys_when_moved_to_another_insurer_then_unwrap_fails(
    keyring: LocalKeyring,
) -> None:
    blob = wrap_data_keys(keyring, "12345678", new_data_keys(1))

    with pytest.raises(UnwrapError):
        unwrap_data_keys(keyring, "87654321", 1, blob)
    with pytest.raises(UnwrapError):
        unwrap_data_keys(keyring, "operator", 1, blob)


def test_given_wrapped_data_keys_when_relabelled_to_another_version_then_unwrap_fails(
    keyring: LocalKeyring,
) -> None:
    blob = wrap_data_keys(keyring, "12345678", new_data_keys(1))
    with pytest.raises(UnwrapError):
        unwrap_data_keys(keyring, "12345678", 2, blob)


def test_given_a_kek_rotation_then_data_keys_wrapped_before_still_unwrap(
    keyring: LocalKeyring,
) -> None:
    keys = new_data_keys(1)
    blob = wrap_data_keys(keyring, "operator", keys)
    keyring.rotate()
    assert unwrap_data_keys(keyring, "operator", 1, blob) == keys


def test_given_a_scope_label_with_separators_then_refused(keyring: LocalKeyring) -> None:
    with pytest.raises(ValueError, match="scope label"):
        wrap_data_keys(keyring, "1234|5678", KEYS)


# --- field cipher ---------------------------------------------------------------------


@settings(max_examples=300)
@given(plaintext=st.text(), aad=st.binary(max_size=200))
def test_given_any_unicode_text_when_sealed_then_it_opens_to_the_same_text(
    plaintext: str, aad: bytes
) -> None:
    blob = CIPHER.encrypt(plaintext, aad)
    assert CIPHER.decrypt(blob, aad) == plaintext
    assert ciphertext_key_version(blob) == 1
    # Format byte + version + nonce + tag: 33 bytes of overhead, no more.
    assert len(blob) == len(plaintext.encode("utf-8")) + 33


def test_given_one_plaintext_sealed_twice_then_ciphertexts_differ() -> None:
    assert CIPHER.encrypt(NIR, AAD) != CIPHER.encrypt(NIR, AAD)


def test_given_a_ciphertext_then_the_plaintext_is_not_visible_in_it() -> None:
    assert NIR.encode() not in CIPHER.encrypt(NIR, AAD)


def test_given_a_ciphertext_when_any_single_byte_is_flipped_then_decryption_fails() -> None:
    blob = CIPHER.encrypt(NIR, AAD)
    for position in range(len(blob)):
        for flip in (0x01, 0x80):
            tampered = bytearray(blob)
            tampered[position] ^= flip
            with pytest.raises(DecryptionError):
                CIPHER.decrypt(bytes(tampered), AAD)


@settings(max_examples=200)
@given(
    plaintext=st.text(max_size=40),
    position=st.integers(min_value=0),
    flip=st.integers(min_value=1, max_value=255),
)
def test_given_any_byte_modification_then_decryption_fails(
    plaintext: str, position: int, flip: int
) -> None:
    blob = bytearray(CIPHER.encrypt(plaintext, AAD))
    blob[position % len(blob)] ^= flip
    with pytest.raises(DecryptionError):
        CIPHER.decrypt(bytes(blob), AAD)


def test_given_a_truncated_or_extended_ciphertext_then_decryption_fails() -> None:
    blob = CIPHER.encrypt(NIR, AAD)
    for broken in (blob[:-1], blob[:20], b"", blob + b"\x00"):
        with pytest.raises(DecryptionError):
            CIPHER.decrypt(broken, AAD)


@pytest.mark.parametrize(
    "other_aad",
    [
        row_aad(8, "beneficiaries", "a1b2c3", "nir"),  # another insurer
        row_aad(7, "beneficiaries", "ffffff", "nir"),  # another row
        row_aad(7, "beneficiaries", "a1b2c3", "last_name"),  # another column
        row_aad(7, "providers", "a1b2c3", "nir"),  # another table
        b"",
    ],
    ids=["insurer", "row", "column", "table", "empty"],
)
def test_given_a_ciphertext_moved_to_another_cell_then_decryption_fails(
    other_aad: bytes,
) -> None:
    blob = CIPHER.encrypt(NIR, AAD)
    with pytest.raises(DecryptionError) as caught:
        CIPHER.decrypt(blob, other_aad)
    assert caught.value.code == "crypto.decrypt_failed"
    assert NIR not in str(caught.value)


def test_given_another_insurers_keys_then_decryption_fails() -> None:
    other = FieldCipher(DataKeys(1, bytes(range(1, 33)), bytes(range(40, 72))))
    with pytest.raises(DecryptionError):
        other.decrypt(CIPHER.encrypt(NIR, AAD), AAD)


def test_given_a_rotated_data_key_then_blobs_name_their_version_and_each_cipher_opens_its_own() -> (
    None
):
    old_blob = CIPHER.encrypt(NIR, AAD)
    new_cipher = FieldCipher(new_data_keys(2, index_key=KEYS.index_key))
    new_blob = new_cipher.encrypt(NIR, AAD)

    assert ciphertext_key_version(old_blob) == 1
    assert ciphertext_key_version(new_blob) == 2
    with pytest.raises(DecryptionError) as caught:
        new_cipher.decrypt(old_blob, AAD)
    assert caught.value.code == "crypto.key_version_mismatch"
    # The version pick is what makes rotation without downtime work: old rows still open.
    ciphers = {1: CIPHER, 2: new_cipher}
    for blob in (old_blob, new_blob):
        assert ciphers[ciphertext_key_version(blob)].decrypt(blob, AAD) == NIR


def test_given_a_blob_relabelled_with_another_version_then_it_does_not_open() -> None:
    # Even a cipher holding the right key refuses a header that was edited.
    v2_same_key = FieldCipher(DataKeys(2, KEYS.encryption_key, KEYS.index_key))
    blob = bytearray(CIPHER.encrypt(NIR, AAD))
    blob[1:5] = (2).to_bytes(4, "big")
    with pytest.raises(DecryptionError) as caught:
        v2_same_key.decrypt(bytes(blob), AAD)
    assert caught.value.code == "crypto.decrypt_failed"


def test_given_not_a_ciphertext_then_version_lookup_refuses() -> None:
    with pytest.raises(DecryptionError) as caught:
        ciphertext_key_version(b"\x02" + bytes(40))
    assert caught.value.code == "crypto.bad_ciphertext"


# --- row identity ---------------------------------------------------------------------

_part = st.text(max_size=12)


@given(
    first=st.tuples(st.integers(0, 10**9), _part, _part, _part),
    second=st.tuples(st.integers(0, 10**9), _part, _part, _part),
)
def test_given_two_different_cells_then_their_aad_differ(
    first: tuple[int, str, str, str], second: tuple[int, str, str, str]
) -> None:
    if first != second:
        assert row_aad(*first) != row_aad(*second)
    else:
        assert row_aad(*first) == row_aad(*second)


def test_given_parts_that_concatenate_alike_then_aad_still_differ() -> None:
    assert row_aad(1, "t", "ab", "c") != row_aad(1, "t", "a", "bc")
    assert row_aad(11, "t", "a", "c") != row_aad(1, "1t", "a", "c")


# --- blind indexes --------------------------------------------------------------------


def test_blind_index_known_answer() -> None:
    expected = hmac.new(KEYS.index_key, b"nir_rank\x00" + f"{NIR}|1".encode(), hashlib.sha256)
    assert BlindIndexer(KEYS).index("nir_rank", f"{NIR}|1") == expected.digest()[:16]


def test_given_one_value_then_index_is_deterministic_16_bytes_and_keyed() -> None:
    indexer = BlindIndexer(KEYS)
    first = indexer.index("nir_rank", f"{NIR}|1")

    assert len(first) == 16
    assert first == BlindIndexer(KEYS).index("nir_rank", f"{NIR}|1")
    # A plain hash of the value (what a thief could recompute) is not the index.
    assert first != hashlib.sha256(f"{NIR}|1".encode()).digest()[:16]
    assert first != indexer.index("nir_rank", f"{NIR}|2")


def test_given_two_insurers_then_indexes_of_one_person_cannot_be_joined() -> None:
    other_insurer = BlindIndexer(new_data_keys(1))
    assert BlindIndexer(KEYS).index("nir_rank", NIR) != other_insurer.index("nir_rank", NIR)


def test_given_one_value_under_two_kinds_then_indexes_differ() -> None:
    indexer = BlindIndexer(KEYS)
    assert indexer.index("nir_rank", "ABC|2001-02-03") != indexer.index(
        "member_birth", "ABC|2001-02-03"
    )


def test_given_kind_and_value_boundaries_then_no_ambiguity() -> None:
    indexer = BlindIndexer(KEYS)
    assert indexer.index("family", "x") != indexer.index("famil", "yx")


def test_given_composed_and_decomposed_accents_or_padding_then_same_index() -> None:
    indexer = BlindIndexer(KEYS)
    composed = unicodedata.normalize("NFC", "Hélène")
    decomposed = unicodedata.normalize("NFD", "Hélène")
    assert composed != decomposed
    assert indexer.index("name", composed) == indexer.index("name", f"  {decomposed} ")


@pytest.mark.parametrize("kind", ["", "NIR", "nir rank", "nir\x00rank", "é"])
def test_given_a_malformed_kind_then_refused(kind: str) -> None:
    with pytest.raises(ValueError, match="kind"):
        BlindIndexer(KEYS).index(kind, NIR)


def test_given_data_keys_when_deriving_purpose_keys_then_stable_and_distinct() -> None:
    audit = KEYS.derive("audit.subject")
    assert audit == DataKeys(2, bytes(32), KEYS.index_key).derive("audit.subject")
    assert audit not in (KEYS.index_key, KEYS.encryption_key, KEYS.derive("import.row_digest"))


# --- bulk fast paths ------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(
    kind=st.sampled_from(["nir_rank", "member_birth", "family", "name"]),
    value=st.text(max_size=40) | st.text(alphabet=" \t\u00a0e\u0301\u00e9AZ09|-", max_size=12),
)
def test_given_any_value_then_the_kind_indexer_gives_the_blind_indexers_bytes(
    kind: str, value: str
) -> None:
    assert KindIndexer(KEYS, kind).index(value) == BlindIndexer(KEYS).index(kind, value)


def test_given_a_kind_indexer_then_it_is_keyed_and_separates_kinds() -> None:
    assert KindIndexer(KEYS, "family").index("A1") != KindIndexer(KEYS, "famil").index("yA1")
    assert KindIndexer(KEYS, "family").index("A1") != KindIndexer(new_data_keys(1), "family").index(
        "A1"
    )
    with pytest.raises(ValueError, match="kind"):
        KindIndexer(KEYS, "Family")


@given(key=st.binary(min_size=1, max_size=80), messages=st.lists(st.binary(), max_size=4))
def test_given_a_keyed_state_then_each_copy_gives_the_hmac_modules_digest(
    key: bytes, messages: list[bytes]
) -> None:
    state = hmac_sha256_state(key)
    for message in messages:
        mac = state.copy()
        mac.update(message)
        assert mac.digest() == hmac.new(key, message, hashlib.sha256).digest()


@given(items=st.lists(st.tuples(st.text(max_size=30), st.binary(max_size=40)), max_size=12))
def test_given_many_fields_sealed_at_once_then_each_opens_alone_with_a_fresh_nonce(
    items: list[tuple[str, bytes]],
) -> None:
    blobs = CIPHER.encrypt_many(items)
    assert [CIPHER.decrypt(blob, aad) for blob, (_, aad) in zip(blobs, items, strict=True)] == [
        text for text, _ in items
    ]
    assert len({blob[5:17] for blob in blobs}) == len(blobs)


@given(
    text=st.text(max_size=30), aad=st.binary(max_size=40), nonce=st.binary(min_size=12, max_size=12)
)
def test_given_the_bulk_parts_then_an_inlined_seal_is_what_encrypt_makes(
    text: str, aad: bytes, nonce: bytes
) -> None:
    """Loops that inline the seal (bulk imports) produce the very layout decrypt reads."""
    header, seal = CIPHER.bulk_parts()
    blob = header + nonce + seal(nonce, text.encode(), header + aad)
    assert CIPHER.decrypt(blob, aad) == text
    assert len(blob) == len(CIPHER.encrypt(text, aad))
    with pytest.raises(DecryptionError):
        CIPHER.decrypt(blob, aad + b"x")
