"""The signed payload of a tiers payant card's 2D code: encode, sign, decode, verify.

Pure cryptography, no database: provider software can run the same steps offline with
the insurer's published public keys. The byte layout is documented in ``docs/cards.md``;
in short (integers big-endian)::

    version 0x01 | AMC length (1) | AMC digits (8-10) | key id (8) | serial (10)
    | valid from (2) | valid until (2) | family binding (16) | card secret (16)
    | Ed25519 signature (64) over DOMAIN + all the bytes before it

Dates are days since 2000-01-01. The text form is ``TP1:`` followed by the base45
encoding (RFC 9285) of those bytes: base45 uses only the QR code's alphanumeric
characters, so the code stays small (about 200 characters, a version 9 QR at level M).

The payload names no person: the family binding is a keyed digest only the platform can
recompute, and the card secret is random (the platform keeps only its digest).
"""

from __future__ import annotations

import base64
import hashlib
import struct
from dataclasses import dataclass, field
from datetime import date, timedelta

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)

from tierspayant.domain.codes import CardCode
from tierspayant.security import SecurityError

VERSION = 0x01
PREFIX = "TP1:"
DOMAIN = b"tierspayant.card.v1\x00"  # signed before the payload: no cross-protocol reuse
# Signed before the harmonised card's DataMatrix text (formats/harmonised_card.py): the
# same key signs both, and neither signature can pass for the other.
HARMONISED_DOMAIN = b"tierspayant.card.harmonised.v1\x00"
KEY_ID_BYTES = 8
SERIAL_BYTES = 10
BINDING_BYTES = 16
SECRET_BYTES = 16
SIGNATURE_BYTES = 64
EPOCH = date(2000, 1, 1)
_DATES = struct.Struct(">HH")
_B45 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:"
_B45_VALUE = {c: i for i, c in enumerate(_B45)}
MAX_TEXT = 400  # longest text form accepted (a v1 payload is about 200 characters)


class CardProofError(SecurityError):
    """The 2D code is malformed or its signature does not verify."""

    def __init__(self, message: str) -> None:
        super().__init__(CardCode.PROOF_INVALID, message)


# --------------------------------------------------------------------------- base45


def b45encode(data: bytes) -> str:
    """RFC 9285 base45: two bytes become three characters, a last odd byte two."""
    out = []
    for i in range(0, len(data) - 1, 2):
        n = data[i] * 256 + data[i + 1]
        e, rest = divmod(n, 45 * 45)
        d, c = divmod(rest, 45)
        out.append(_B45[c] + _B45[d] + _B45[e])
    if len(data) % 2:
        d, c = divmod(data[-1], 45)
        out.append(_B45[c] + _B45[d])
    return "".join(out)


def b45decode(text: str) -> bytes:
    """Inverse of :func:`b45encode`; refuses any text it would not have produced."""
    if len(text) % 3 == 1:
        raise CardProofError("base45 text has an impossible length")
    try:
        values = [_B45_VALUE[c] for c in text]
    except KeyError:
        raise CardProofError("character outside the base45 alphabet") from None
    out = bytearray()
    for i in range(0, len(values), 3):
        chunk = values[i : i + 3]
        if len(chunk) == 3:
            n = chunk[0] + chunk[1] * 45 + chunk[2] * 45 * 45
            if n > 0xFFFF:
                raise CardProofError("base45 triplet out of range")
            out += n.to_bytes(2, "big")
        else:
            n = chunk[0] + chunk[1] * 45
            if n > 0xFF:
                raise CardProofError("base45 pair out of range")
            out.append(n)
    return bytes(out)


# --------------------------------------------------------------------------- keys


def new_signing_key() -> Ed25519PrivateKey:
    """A fresh Ed25519 card-signing key."""
    return Ed25519PrivateKey.generate()


def private_bytes(key: Ed25519PrivateKey) -> bytes:
    """The 32-byte raw private key (only ever wrapped before it is stored)."""
    return key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())


def load_private(raw: bytes) -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(raw)


def public_bytes(key: Ed25519PrivateKey | Ed25519PublicKey) -> bytes:
    """The 32-byte raw public key, as published."""
    public = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    return public.public_bytes(Encoding.Raw, PublicFormat.Raw)


def key_id(public_raw: bytes) -> str:
    """The key id printed in payloads: the first 8 bytes of SHA-256 of the public key, hex."""
    return hashlib.sha256(public_raw).digest()[:KEY_ID_BYTES].hex()


def secret_digest(secret: bytes) -> bytes:
    """What the platform stores of a card secret (128 random bits: no key needed)."""
    return hashlib.sha256(b"tierspayant.card.secret\x00" + secret).digest()


def serial_text(serial: bytes) -> str:
    """The serial as printed and typed: 16 base32 characters (10 bytes)."""
    return base64.b32encode(serial).decode("ascii")


def serial_bytes(text: str) -> bytes:
    """Parse a printed serial (case and dashes ignored)."""
    cleaned = text.replace("-", "").replace(" ", "").upper()
    try:
        raw = base64.b32decode(cleaned)
    except ValueError:
        raise CardProofError("a card serial is 16 base32 characters") from None
    if len(raw) != SERIAL_BYTES:
        raise CardProofError("a card serial is 16 base32 characters")
    return raw


# --------------------------------------------------------------------------- payload


@dataclass(frozen=True, slots=True)
class CardPayload:
    """What the 2D code carries, before signing. ``secret`` is hidden from ``repr``."""

    amc_number: str
    key_id: str
    serial: bytes
    valid_from: date
    valid_until: date
    family_binding: bytes = field(repr=False)
    secret: bytes = field(repr=False)

    def __post_init__(self) -> None:
        if not (self.amc_number.isascii() and self.amc_number.isdigit()):
            raise ValueError("AMC number must be digits")
        if not 8 <= len(self.amc_number) <= 10:
            raise ValueError("AMC number must have 8 to 10 digits")
        if len(bytes.fromhex(self.key_id)) != KEY_ID_BYTES:
            raise ValueError("key id must be 8 bytes in hex")
        if len(self.serial) != SERIAL_BYTES:
            raise ValueError("serial must be 10 bytes")
        if len(self.family_binding) != BINDING_BYTES or len(self.secret) != SECRET_BYTES:
            raise ValueError("family binding and secret must be 16 bytes each")
        if not EPOCH <= self.valid_from <= self.valid_until:
            raise ValueError("validity must start after 2000-01-01 and end after it starts")
        if (self.valid_until - EPOCH).days > 0xFFFF:
            raise ValueError("validity ends too late for the encoding")

    @property
    def serial_text(self) -> str:
        return serial_text(self.serial)

    def body(self) -> bytes:
        """The signed bytes (without the domain prefix)."""
        amc = self.amc_number.encode("ascii")
        return b"".join(
            (
                bytes((VERSION, len(amc))),
                amc,
                bytes.fromhex(self.key_id),
                self.serial,
                _DATES.pack((self.valid_from - EPOCH).days, (self.valid_until - EPOCH).days),
                self.family_binding,
                self.secret,
            )
        )


def sign(payload: CardPayload, key: Ed25519PrivateKey) -> str:
    """The text to put in the QR code: ``TP1:`` + base45(body + signature)."""
    body = payload.body()
    return PREFIX + b45encode(body + key.sign(DOMAIN + body))


def decode(text: str) -> tuple[CardPayload, bytes, bytes]:
    """Parse the text form: the payload, its signed body and its signature.

    Checks the structure only; call :func:`verify` with the right public key.
    """
    if len(text) > MAX_TEXT or not text.startswith(PREFIX):
        raise CardProofError("not a tierspayant card code")
    raw = b45decode(text[len(PREFIX) :])
    if len(raw) < 2 or raw[0] != VERSION:
        raise CardProofError("unknown card code version")
    amc_len = raw[1]
    fixed = KEY_ID_BYTES + SERIAL_BYTES + _DATES.size + BINDING_BYTES + SECRET_BYTES
    body_len = 2 + amc_len + fixed
    if len(raw) != body_len + SIGNATURE_BYTES:
        raise CardProofError("card code has the wrong length")
    body, signature = raw[:body_len], raw[body_len:]
    pos = 2
    amc = body[pos : pos + amc_len]
    pos += amc_len
    kid = body[pos : pos + KEY_ID_BYTES]
    pos += KEY_ID_BYTES
    serial = body[pos : pos + SERIAL_BYTES]
    pos += SERIAL_BYTES
    start, end = _DATES.unpack_from(body, pos)
    pos += _DATES.size
    binding = body[pos : pos + BINDING_BYTES]
    secret = body[pos + BINDING_BYTES :]
    try:
        payload = CardPayload(
            amc_number=amc.decode("ascii"),
            key_id=kid.hex(),
            serial=serial,
            valid_from=EPOCH + timedelta(days=start),
            valid_until=EPOCH + timedelta(days=end),
            family_binding=binding,
            secret=secret,
        )
    except (ValueError, UnicodeDecodeError):
        raise CardProofError("card code fields are out of range") from None
    return payload, body, signature


def verify(text: str, public_raw: bytes) -> CardPayload:
    """Decode ``text`` and check its signature with the 32-byte public key ``public_raw``.

    The caller picks the key by the payload's AMC number and key id (see :func:`peek`).
    """
    payload, body, signature = decode(text)
    if key_id(public_raw) != payload.key_id:
        raise CardProofError("the card code was signed with another key")
    try:
        Ed25519PublicKey.from_public_bytes(public_raw).verify(signature, DOMAIN + body)
    except InvalidSignature:
        raise CardProofError("the card code's signature does not verify") from None
    return payload


def peek(text: str) -> CardPayload:
    """The payload's fields, unverified: to choose the public key to verify it with."""
    return decode(text)[0]


def sign_harmonised(text: str, key: Ed25519PrivateKey) -> str:
    """The base45 signature (96 characters) of a harmonised card's DataMatrix text.

    ``text`` is everything the DataMatrix carries before the signature, the ``TP1:``
    proof included, so the printed fields cannot be changed without the card key.
    """
    return b45encode(key.sign(HARMONISED_DOMAIN + text.encode("ascii")))


def verify_harmonised(text: str, signature: str, public_raw: bytes) -> None:
    """Raise :class:`CardProofError` unless ``signature`` signs ``text`` with this key."""
    raw = b45decode(signature)
    if len(raw) != SIGNATURE_BYTES:
        raise CardProofError("the card code's signature has the wrong length")
    try:
        Ed25519PublicKey.from_public_bytes(public_raw).verify(
            raw, HARMONISED_DOMAIN + text.encode("ascii")
        )
    except (InvalidSignature, UnicodeEncodeError):
        raise CardProofError("the card code's signature does not verify") from None
