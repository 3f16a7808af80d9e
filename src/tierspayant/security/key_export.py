"""The keys kept outside the database, sealed under a passphrase for a backup.

A backup of the database is useless without the keyring (every encrypted field is
wrapped by its KEKs) and the audit checkpoint signing key; stored beside it, it hands a
thief everything. So the two files are exported apart, in one sealed file:

- the key is derived from a passphrase with scrypt (RFC 7914), its salt and cost
  parameters written in the file's header;
- the content is encrypted with AES-256-GCM; the header (format, KDF parameters, nonce,
  creation time) is the associated data, so altering any of it fails the opening.

File layout: one JSON object ``{"format", "version", "kdf": {"name", "n", "r", "p",
"salt"}, "cipher", "nonce", "created_at", "ciphertext"}`` (binary values in base64). The
sealed content is a JSON object ``{"keyring": <the keyring file>, "checkpoint_key": <the
signing key file, or null>}``. Keys held in an HSM never leave it and are not exported.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from tierspayant.domain.codes import PlatformCode
from tierspayant.security import SecurityError

EXPORT_FORMAT = "tierspayant.key-export"
EXPORT_VERSION = 1
CIPHER = "AES-256-GCM"
# scrypt cost: 2^17 x 8 x 128 bytes = 128 MiB of memory, under a second on a server.
DEFAULT_SCRYPT_N = 2**17
SCRYPT_R = 8
SCRYPT_P = 1
_MIN_N, _MAX_N = 2**14, 2**20  # a header asking for more is refused, not obeyed
_MAX_R, _MAX_P = 16, 4
SALT_BYTES = 16
NONCE_BYTES = 12
MIN_PASSPHRASE_CHARS = 12
_MAX_FILE_BYTES = 1024 * 1024


class KeyExportError(SecurityError):
    """A key export cannot be written or opened (see its code)."""


@dataclass(frozen=True, slots=True)
class KeyBundle:
    """The raw files a key export carries."""

    keyring: bytes = field(repr=False)
    checkpoint_key: bytes | None = field(default=None, repr=False)


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def _unb64(value: object, what: str) -> bytes:
    if not isinstance(value, str):
        raise _malformed(f"{what} is missing")
    try:
        return base64.b64decode(value, validate=True)
    except binascii.Error as exc:
        raise _malformed(f"{what} is not base64") from exc


def _malformed(why: str) -> KeyExportError:
    return KeyExportError(PlatformCode.KEY_EXPORT_MALFORMED, f"not a key export: {why}")


def _derive(passphrase: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return Scrypt(salt=salt, length=32, n=n, r=r, p=p).derive(passphrase.encode("utf-8"))


def _associated_data(header: dict[str, Any]) -> bytes:
    return json.dumps(header, sort_keys=True, separators=(",", ":")).encode("utf-8")


def check_passphrase(passphrase: str) -> None:
    """Refuse a passphrase too short to protect the keys (``key_export.passphrase``)."""
    if len(passphrase) < MIN_PASSPHRASE_CHARS:
        raise KeyExportError(
            PlatformCode.KEY_EXPORT_PASSPHRASE,
            f"the passphrase must have at least {MIN_PASSPHRASE_CHARS} characters",
        )


def seal(
    bundle: KeyBundle,
    passphrase: str,
    *,
    now: datetime | None = None,
    scrypt_n: int = DEFAULT_SCRYPT_N,
) -> bytes:
    """The sealed export of ``bundle`` under ``passphrase`` (the file's bytes)."""
    check_passphrase(passphrase)
    if not _MIN_N <= scrypt_n <= _MAX_N or scrypt_n & (scrypt_n - 1):
        raise ValueError("scrypt n must be a power of two within the accepted range")
    salt, nonce = os.urandom(SALT_BYTES), os.urandom(NONCE_BYTES)
    header: dict[str, Any] = {
        "format": EXPORT_FORMAT,
        "version": EXPORT_VERSION,
        "kdf": {"name": "scrypt", "n": scrypt_n, "r": SCRYPT_R, "p": SCRYPT_P, "salt": _b64(salt)},
        "cipher": CIPHER,
        "nonce": _b64(nonce),
        "created_at": (now or datetime.now(UTC)).astimezone(UTC).isoformat(timespec="seconds"),
    }
    content = json.dumps(
        {
            "keyring": bundle.keyring.decode("utf-8"),
            "checkpoint_key": (
                None if bundle.checkpoint_key is None else bundle.checkpoint_key.decode("ascii")
            ),
        }
    ).encode("utf-8")
    key = _derive(passphrase, salt, scrypt_n, SCRYPT_R, SCRYPT_P)
    ciphertext = AESGCM(key).encrypt(nonce, content, _associated_data(header))
    document = {**header, "ciphertext": _b64(ciphertext)}
    return (json.dumps(document, indent=2) + "\n").encode("utf-8")


def _header(raw: bytes) -> tuple[dict[str, Any], bytes]:
    """The checked header of a sealed file and its ciphertext."""
    if len(raw) > _MAX_FILE_BYTES:
        raise _malformed("file too large")
    try:
        document = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _malformed("not JSON") from exc
    if not isinstance(document, dict) or document.get("format") != EXPORT_FORMAT:
        raise _malformed("unknown format")
    if document.get("version") != EXPORT_VERSION:
        raise _malformed(f"unsupported version {document.get('version')!r}")
    if document.get("cipher") != CIPHER:
        raise _malformed("unknown cipher")
    kdf = document.get("kdf")
    if not isinstance(kdf, dict) or kdf.get("name") != "scrypt":
        raise _malformed("unknown key derivation")
    n, r, p = (kdf.get(name) for name in ("n", "r", "p"))
    if not (isinstance(n, int) and isinstance(r, int) and isinstance(p, int)):
        raise _malformed("key derivation parameters are not integers")
    if isinstance(n, bool) or isinstance(r, bool) or isinstance(p, bool):
        raise _malformed("key derivation parameters are not integers")
    if not (_MIN_N <= n <= _MAX_N and n & (n - 1) == 0 and 1 <= r <= _MAX_R and 1 <= p <= _MAX_P):
        raise _malformed("key derivation parameters out of the accepted range")
    ciphertext = _unb64(document.pop("ciphertext", None), "ciphertext")
    return document, ciphertext


def open_sealed(raw: bytes, passphrase: str) -> KeyBundle:
    """The bundle sealed in ``raw``; ``key_export.refused`` for a wrong passphrase or an
    altered file (GCM cannot tell them apart), ``key_export.malformed`` for anything
    that is not a key export."""
    header, ciphertext = _header(raw)
    kdf = header["kdf"]
    salt = _unb64(kdf.get("salt"), "salt")
    nonce = _unb64(header.get("nonce"), "nonce")
    if len(salt) < SALT_BYTES or len(nonce) != NONCE_BYTES:
        raise _malformed("salt or nonce of a wrong size")
    key = _derive(passphrase, salt, kdf["n"], kdf["r"], kdf["p"])
    try:
        content = AESGCM(key).decrypt(nonce, ciphertext, _associated_data(header))
    except InvalidTag as exc:
        raise KeyExportError(
            PlatformCode.KEY_EXPORT_REFUSED,
            "the key export does not open: wrong passphrase, or the file was altered",
        ) from exc
    try:
        inner = json.loads(content.decode("utf-8"))
        keyring = inner["keyring"]
        checkpoint_key = inner.get("checkpoint_key")
        if not isinstance(keyring, str) or not isinstance(checkpoint_key, str | None):
            raise TypeError("wrong types")
    except (UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError) as exc:
        raise _malformed("sealed content is not a key bundle") from exc
    return KeyBundle(
        keyring=keyring.encode("utf-8"),
        checkpoint_key=None if checkpoint_key is None else checkpoint_key.encode("ascii"),
    )
