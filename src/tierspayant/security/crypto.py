"""Envelope encryption of identity fields, and keyed blind indexes for exact-match lookups.

Each insurer (and the operator) has *data keys*: an encryption key (AES-256-GCM over the
identity columns) and an index key (HMAC-SHA256 blind indexes). They are stored only
wrapped by a KEK (:mod:`tierspayant.security.keys`) and exist in clear only in memory.

Field ciphertext layout (integers big-endian)::

    0x01 | data-key version (4 bytes) | nonce (12) | AES-256-GCM ciphertext+tag (16)

The 5-byte header is part of the associated data together with the row identity
(:func:`row_aad`), so a ciphertext moved to another row or column, or relabelled with
another key version, fails to decrypt.

Nonces are random (96 bits). NIST SP 800-38D bounds random-nonce GCM to 2**32
encryptions per key (collision chance below 2**-32): at 5 fields per beneficiary that is
over 800 full re-encryptions of a 1-million-member insurer. Imports skip unchanged rows
(``row_digest``) and the encryption key is rotated far more often than that.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import struct
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from tierspayant import metrics
from tierspayant.domain.codes import PlatformCode
from tierspayant.security import SecurityError
from tierspayant.security.keys import KeyProvider, UnwrapError, derive_key

DATA_KEY_BYTES = 32
FIELD_FORMAT = 0x01
NONCE_BYTES = 12
TAG_BYTES = 16
INDEX_BYTES = 16
_HEADER = struct.Struct(">BI")  # format byte, data-key version
_HEADER_BYTES = _HEADER.size
_MIN_BLOB = _HEADER_BYTES + NONCE_BYTES + TAG_BYTES
_SCOPE_LABEL = re.compile(r"[A-Za-z0-9_.-]{1,40}")
_KIND = re.compile(r"[a-z0-9_]{1,40}")


class DecryptionError(SecurityError):
    """A field ciphertext is malformed, was tampered with, or does not belong here."""


@dataclass(frozen=True, slots=True)
class DataKeys:
    """One version of a scope's data keys, in clear (memory only; the repr hides them)."""

    version: int
    encryption_key: bytes = field(repr=False)
    index_key: bytes = field(repr=False)

    def __post_init__(self) -> None:
        if not 1 <= self.version <= 0xFFFFFFFF:
            raise ValueError("data-key version must fit in 32 bits and start at 1")
        if len(self.encryption_key) != DATA_KEY_BYTES or len(self.index_key) != DATA_KEY_BYTES:
            raise ValueError("data keys must be 32 bytes each")
        if hmac.compare_digest(self.encryption_key, self.index_key):
            raise ValueError("the encryption key and the index key must differ")

    def derive(self, purpose: str) -> bytes:
        """A 32-byte key for one other ``purpose`` (e.g. ``"audit.subject"``), via HKDF.

        Derived from the index key because the result must stay stable when only the
        encryption key is rotated (audit pseudonyms, import digests).
        """
        return _derived(self.index_key, purpose)


@lru_cache(maxsize=1024)
def _derived(index_key: bytes, purpose: str) -> bytes:
    # HKDF is deterministic: the hot path (audit pseudonyms, canary marks) derives the same
    # few keys on every request, and the inputs already live in this process's memory.
    return derive_key(index_key, purpose)


def new_data_keys(version: int, *, index_key: bytes | None = None) -> DataKeys:
    """Fresh random data keys for ``version``.

    Pass the previous version's ``index_key`` to rotate the encryption key alone: blind
    indexes then stay valid and no row needs re-indexing.
    """
    return DataKeys(
        version=version,
        encryption_key=os.urandom(DATA_KEY_BYTES),
        index_key=os.urandom(DATA_KEY_BYTES) if index_key is None else index_key,
    )


def _wrap_context(scope_label: str, version: int) -> bytes:
    if not _SCOPE_LABEL.fullmatch(scope_label):
        raise ValueError("scope label must be 1-40 characters among letters, digits, _ . -")
    return f"tierspayant.dek.v1|{scope_label}|{version}".encode("ascii")


def wrap_data_keys(provider: KeyProvider, insurer_amc: str, keys: DataKeys) -> bytes:
    """Wrap ``keys`` with the provider's active KEK, bound to the insurer and the version.

    ``insurer_amc`` is the scope label: an insurer's AMC number, or ``"operator"``.
    """
    context = _wrap_context(insurer_amc, keys.version)
    try:
        return provider.wrap(keys.encryption_key + keys.index_key, context)
    except Exception:
        metrics.KEY_PROVIDER_ERRORS.labels("wrap").inc()
        raise


def unwrap_data_keys(
    provider: KeyProvider, insurer_amc: str, version: int, blob: bytes
) -> DataKeys:
    """Unwrap the data keys of ``insurer_amc`` at ``version``.

    Raises :class:`~tierspayant.security.keys.UnwrapError` if the blob was made for
    another insurer or version, or was altered.
    """
    try:
        plain = provider.unwrap(blob, _wrap_context(insurer_amc, version))
    except Exception:
        metrics.KEY_PROVIDER_ERRORS.labels("unwrap").inc()
        raise
    if len(plain) != 2 * DATA_KEY_BYTES:
        raise UnwrapError(
            PlatformCode.KEYRING_BAD_BLOB, "unwrapped data keys have the wrong length"
        )
    return DataKeys(version, plain[:DATA_KEY_BYTES], plain[DATA_KEY_BYTES:])


def row_aad(insurer_id: int, table: str, row_key: str, column: str) -> bytes:
    """Associated data naming one cell: insurer, table, row key and column.

    Each part is length-prefixed (2 bytes), so no two different cells produce the same
    bytes. Written out flat because it runs once per encrypted field on bulk imports.
    """
    i = str(insurer_id).encode("ascii")
    t = table.encode("utf-8")
    r = row_key.encode("utf-8")
    c = column.encode("utf-8")
    return b"".join(
        (
            b"tp.cell.v1",
            len(i).to_bytes(2, "big"),
            i,
            len(t).to_bytes(2, "big"),
            t,
            len(r).to_bytes(2, "big"),
            r,
            len(c).to_bytes(2, "big"),
            c,
        )
    )


def ciphertext_key_version(blob: bytes) -> int:
    """The data-key version a field ciphertext was made with (to pick the keys)."""
    if len(blob) < _MIN_BLOB or blob[0] != FIELD_FORMAT:
        raise DecryptionError(PlatformCode.CRYPTO_BAD_CIPHERTEXT, "not a field ciphertext")
    version: int = _HEADER.unpack_from(blob)[1]
    return version


class FieldCipher:
    """Encrypts and decrypts identity fields with one version of a scope's data keys.

    Build one per (scope, version) and reuse it: the AES key schedule is done once.
    Safe to share between threads.
    """

    __slots__ = ("_aead", "_header", "version")

    def __init__(self, keys: DataKeys) -> None:
        self.version = keys.version
        self._aead = AESGCM(keys.encryption_key)
        self._header = _HEADER.pack(FIELD_FORMAT, keys.version)

    def encrypt(self, plaintext: str, aad: bytes) -> bytes:
        """Seal ``plaintext`` (UTF-8) with a fresh random nonce, bound to ``aad``."""
        nonce = os.urandom(NONCE_BYTES)
        header = self._header
        return header + nonce + self._aead.encrypt(nonce, plaintext.encode("utf-8"), header + aad)

    def encrypt_many(self, items: Sequence[tuple[str, bytes]]) -> list[bytes]:
        """:meth:`encrypt` each ``(plaintext, aad)``, drawing all nonces in one system call
        (bulk imports seal five fields per row)."""
        nonces = os.urandom(NONCE_BYTES * len(items))
        header = self._header
        seal = self._aead.encrypt
        out: list[bytes] = []
        append = out.append
        start = 0
        for plaintext, aad in items:
            nonce = nonces[start : start + NONCE_BYTES]
            start += NONCE_BYTES
            append(header + nonce + seal(nonce, plaintext.encode("utf-8"), header + aad))
        return out

    def bulk_parts(self) -> tuple[bytes, Callable[[bytes, bytes, bytes], bytes]]:
        """The header and the AES-GCM seal call, for loops that inline :meth:`encrypt`.

        ``header + nonce + seal(nonce, plaintext_utf8, header + aad)`` is exactly what
        :meth:`encrypt` returns for that nonce; the caller must draw every nonce from
        ``os.urandom`` (96 random bits) and never reuse one.
        """
        return self._header, self._aead.encrypt

    def decrypt(self, blob: bytes, aad: bytes) -> str:
        """Open a ciphertext made by :meth:`encrypt` with the same ``aad``."""
        if len(blob) < _MIN_BLOB or blob[0] != FIELD_FORMAT:
            raise DecryptionError(PlatformCode.CRYPTO_BAD_CIPHERTEXT, "not a field ciphertext")
        header = blob[:_HEADER_BYTES]
        if header != self._header:
            raise DecryptionError(
                PlatformCode.CRYPTO_KEY_VERSION_MISMATCH,
                f"ciphertext is under data-key version {ciphertext_key_version(blob)}, "
                f"this cipher holds version {self.version}",
            )
        nonce = blob[_HEADER_BYTES : _HEADER_BYTES + NONCE_BYTES]
        try:
            plain = self._aead.decrypt(nonce, blob[_HEADER_BYTES + NONCE_BYTES :], header + aad)
        except InvalidTag as exc:
            # Deliberately vague: tampering and a wrong row/column look the same.
            raise DecryptionError(
                PlatformCode.CRYPTO_DECRYPT_FAILED, "ciphertext does not authenticate"
            ) from exc
        return plain.decode("utf-8")


def normalise_index_value(value: str) -> str:
    """Unicode NFC and surrounding whitespace removed: how a value is indexed.

    Callers normalise the meaning of a value (upper case, date format…) before this; this
    step only makes equal-looking strings index equally.
    """
    return unicodedata.normalize("NFC", value).strip()


class MacState(Protocol):
    """A keyed HMAC-SHA256 state (``hmac.HMAC`` or OpenSSL's): copy, feed, finish."""

    def copy(self) -> MacState: ...

    def update(self, data: bytes, /) -> None: ...

    def digest(self) -> bytes: ...


def hmac_sha256_state(key: bytes) -> MacState:
    """A keyed HMAC-SHA256 state to :meth:`~MacState.copy` once per message.

    Same results as ``hmac.new(key, digestmod=hashlib.sha256)``; with OpenSSL (always, in
    practice) a copy and a digest cost a third of what the ``hmac`` module's wrapper does,
    which matters at four MACs per line of a bulk import.
    """
    try:  # OpenSSL's own HMAC object: copying it skips the Python wrapper of hmac.HMAC.
        from _hashlib import hmac_new
    except ImportError:  # pragma: no cover - a CPython built without OpenSSL
        return hmac.new(key, digestmod=hashlib.sha256)
    state: MacState = hmac_new(key, digestmod="sha256")
    return state


class BlindIndexer:
    """Keyed exact-match indexes: ``HMAC-SHA256(index_key, kind 0x00 value)[:16]``.

    Keyed, because the NIR space is small (about 10**13 plausible values): a plain hash
    would be reversed by enumeration in hours; without the key, an index reveals nothing.

    Truncation to 128 bits: an accidental collision between two of n distinct values has
    probability about n**2 / 2**129 — about 1.5e-23 for 100 million values in one scope —
    and the unique constraint on the index column would refuse it rather than merge two
    people. Forging a value that matches a given index without the key costs 2**128.

    ``kind`` separates the index families ("nir_rank", "member_birth", "family"…): the same
    string indexed under two kinds gives unrelated results. Another scope's index key gives
    unrelated indexes too, so indexes cannot be joined across insurers.
    """

    __slots__ = ("_base",)

    def __init__(self, keys: DataKeys) -> None:
        # Copying a keyed HMAC state is faster than re-keying for each value.
        self._base = hmac.new(keys.index_key, digestmod=hashlib.sha256)

    def index(self, kind: str, value: str) -> bytes:
        """The 16-byte blind index of ``value`` in the family ``kind``."""
        if not _KIND.fullmatch(kind):
            raise ValueError("index kind must be 1-40 characters among a-z, 0-9, _")
        mac = self._base.copy()
        mac.update(kind.encode("ascii") + b"\x00" + normalise_index_value(value).encode("utf-8"))
        return mac.digest()[:INDEX_BYTES]


class KindIndexer:
    """:meth:`BlindIndexer.index` for one ``kind``: the fast path of bulk imports.

    Gives exactly the same bytes (the kind and its separator are fed to the keyed state
    once, up front; the value is normalised the same way, skipping NFC for ASCII text,
    which it leaves unchanged).
    """

    __slots__ = ("_state",)

    def __init__(self, keys: DataKeys, kind: str) -> None:
        if not _KIND.fullmatch(kind):
            raise ValueError("index kind must be 1-40 characters among a-z, 0-9, _")
        state = hmac_sha256_state(keys.index_key)
        state.update(kind.encode("ascii") + b"\x00")
        self._state = state

    def index(self, value: str) -> bytes:
        """The 16-byte blind index of ``value`` in this indexer's kind."""
        if not value.isascii():
            value = unicodedata.normalize("NFC", value)
        mac = self._state.copy()
        mac.update(value.strip().encode("utf-8"))
        return mac.digest()[:INDEX_BYTES]
