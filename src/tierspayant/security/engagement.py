"""Sealing engagement numbers: self-verifying, encrypted, printable, with a key id.

An engagement number is issued on the hot path (every covered rights check) and must
bind without a database write, so it carries everything it binds, sealed with
AES-SIV (RFC 5297, deterministic authenticated encryption): the synthetic IV is a keyed
MAC of the header and the plaintext, and the plaintext is encrypted under it. Anyone can
read the kind; only the platform can read, forge or alter the rest. Deterministic: the
same answer gives the same number (a retried check, a re-adjudication see one number).

Text form (upper case; dashes and spaces ignored when read)::

    ENG1-<kind>-<base32 of: key version (4) | SIV (16) | ciphertext>

``ENG1`` is the format version and ``<kind>`` a letter (``R`` rights, ``C`` calculation
later). The format version, the kind and the key version are associated data: changing
any of them breaks the seal. The key is derived (HKDF) from the operator's index data
key of that version (:class:`tierspayant.security.crypto.DataKeys`), which the keyring or
the HSM wraps: rotating the operator's index key rotates the engagement key, and numbers
sealed under an earlier version still open while that version is kept.
"""

from __future__ import annotations

import base64
import binascii
import struct
from functools import lru_cache

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESSIV

from tierspayant.domain.codes import EngagementCode
from tierspayant.security import SecurityError
from tierspayant.security.crypto import DataKeys

FORMAT = "ENG1"
PURPOSES = ("engagement.siv.mac", "engagement.siv.enc")  # two halves of an AES-256-SIV key
_VERSION = struct.Struct(">I")
_AD = b"tierspayant.engagement\x00"
SIV_BYTES = 16
MAX_TEXT = 160  # longest number read (a rights number is about 100 characters)
_KINDS = frozenset("RC")
_B32_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"


class EngagementSealError(SecurityError):
    """The number is malformed or does not open under the named key (one code for all)."""

    def __init__(self, message: str) -> None:
        super().__init__(EngagementCode.INVALID, message)


@lru_cache(maxsize=16)
def _siv(mac_key: bytes, enc_key: bytes) -> AESSIV:
    return AESSIV(mac_key + enc_key)


def _cipher(keys: DataKeys) -> AESSIV:
    return _siv(keys.derive(PURPOSES[0]), keys.derive(PURPOSES[1]))


def _associated(kind: str, key_version: bytes) -> bytes:
    return _AD + FORMAT.encode("ascii") + b"\x00" + kind.encode("ascii") + key_version


@lru_cache(maxsize=64)
def _sealing(kind: str, keys: DataKeys) -> tuple[AESSIV, bytes, list[bytes], str]:
    """What sealing under ``keys`` repeats for every number: the cipher, the packed key
    version, the associated data and the text's head (a covered rights check seals one)."""
    version = _VERSION.pack(keys.version)
    return _cipher(keys), version, [_associated(kind, version)], f"{FORMAT}-{kind}-"


_B32_PAIRS = tuple(a + b for a in _B32_ALPHABET for b in _B32_ALPHABET)


def b32_text(data: bytes) -> str:
    """``base64.b32encode(data)`` without its padding, as text (the standard library's
    loops in Python over 5-byte groups; this reads the bytes as one integer and takes
    10 bits at a time)."""
    size = len(data)
    pad = -size % 5
    value = int.from_bytes(data + bytes(pad), "big")
    pairs = _B32_PAIRS
    text = "".join(
        [pairs[(value >> shift) & 0x3FF] for shift in range((size + pad) * 8 - 10, -1, -10)]
    )
    return text[: -(-size * 8 // 5)]


def seal(kind: str, plaintext: bytes, keys: DataKeys) -> str:
    """The printable number of ``plaintext`` of ``kind``, sealed under ``keys``."""
    if kind not in _KINDS:
        raise ValueError(f"unknown engagement kind {kind!r}")
    cipher, version, associated, head = _sealing(kind, keys)
    return head + b32_text(version + cipher.encrypt(plaintext, associated))


def parse(text: str) -> tuple[str, int, bytes]:
    """(kind, key version, sealed bytes) of a number, before it is opened."""
    if not isinstance(text, str) or len(text) > MAX_TEXT:
        raise EngagementSealError("not an engagement number")
    cleaned = text.replace(" ", "").upper()
    head, sep, rest = cleaned.partition("-")
    kind, sep2, body = rest.partition("-")
    if head != FORMAT or not sep or not sep2 or kind not in _KINDS:
        raise EngagementSealError("not an engagement number")
    body = body.replace("-", "")
    if len(body) % 8 in (1, 3, 6):  # lengths base32 never produces
        raise EngagementSealError("not an engagement number")
    padding = -len(body) % 8
    try:
        raw = base64.b32decode(body + "=" * padding)
    except (binascii.Error, ValueError):
        raise EngagementSealError("not an engagement number") from None
    if base64.b32encode(raw).decode("ascii").rstrip("=") != body:
        # Non-canonical trailing bits: another text for the same bytes is refused.
        raise EngagementSealError("not an engagement number")
    if len(raw) <= _VERSION.size + SIV_BYTES:
        raise EngagementSealError("not an engagement number")
    (version,) = _VERSION.unpack(raw[: _VERSION.size])
    if version == 0:
        raise EngagementSealError("not an engagement number")
    return kind, version, raw[_VERSION.size :]


def open_sealed(kind: str, sealed: bytes, keys: DataKeys) -> bytes:
    """The plaintext of a parsed number, checked under ``keys`` (its named version)."""
    try:
        return _cipher(keys).decrypt(sealed, [_associated(kind, _VERSION.pack(keys.version))])
    except InvalidTag:
        raise EngagementSealError("the engagement number does not verify") from None
