"""Credentials: API client secrets, opaque access tokens, and human passwords.

Machine secrets and tokens are 256-bit random strings; they are stored only as SHA-256
digests and compared in constant time. Human passwords are low-entropy, so they get a
slow, memory-hard hash (argon2id).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import unicodedata

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from argon2.profiles import RFC_9106_LOW_MEMORY

CLIENT_ID_PREFIX = "tpc_"
# Public prefixes (not secrets) that make leaked credentials recognisable.
CLIENT_SECRET_PREFIX = "tpcs_"  # noqa: S105
ACCESS_TOKEN_PREFIX = "tpat_"  # noqa: S105
SECRET_BYTES = 32  # 256 bits of randomness in every client secret and access token
DIGEST_BYTES = 32
_CLIENT_ID_BYTES = 12
_SECRET_DOMAIN = b"tierspayant.client_secret.v1\x00"
_TOKEN_DOMAIN = b"tierspayant.access_token.v1\x00"

# argon2id with the RFC 9106 "second recommended" profile (t=3, 64 MiB, p=4): above the
# OWASP minimum (19 MiB, t=2) and affordable for staff and member logins. Raising it later
# is safe: needs_rehash() tells the login flow to re-hash with the new parameters.
_PASSWORDS = PasswordHasher.from_parameters(RFC_9106_LOW_MEMORY)


def new_client_credentials() -> tuple[str, str]:
    """A new ``(client_id, client_secret)`` pair for a provider's software.

    Show the secret once; store only :func:`hash_secret` of it.
    """
    client_id = CLIENT_ID_PREFIX + secrets.token_urlsafe(_CLIENT_ID_BYTES)
    client_secret = CLIENT_SECRET_PREFIX + secrets.token_urlsafe(SECRET_BYTES)
    return client_id, client_secret


def hash_secret(secret: str) -> bytes:
    """Storage digest (32 bytes) of a client secret.

    Plain SHA-256, not argon2: the secret is 256 random bits, so no dictionary or brute
    force applies and a slow hash would add nothing but latency and memory on the token
    endpoint (a hot path that attackers could also use to exhaust CPU). argon2 is for
    passwords that humans choose.
    """
    return hashlib.sha256(_SECRET_DOMAIN + secret.encode("utf-8")).digest()


def verify_secret(secret: str, digest: bytes) -> bool:
    """True when ``secret`` hashes to ``digest`` (constant-time comparison)."""
    return hmac.compare_digest(hash_secret(secret), digest)


def new_access_token() -> str:
    """A new opaque bearer token (``tpat_`` + 256 random bits, URL-safe).

    The prefix lets secret scanners and log filters recognise a leaked token.
    """
    return ACCESS_TOKEN_PREFIX + secrets.token_urlsafe(SECRET_BYTES)


def token_digest(token: str) -> bytes:
    """Storage and lookup key (32 bytes) of an access token; the token itself is not kept."""
    return hashlib.sha256(_TOKEN_DOMAIN + token.encode("utf-8")).digest()


def _normalise_password(password: str) -> bytes:
    # NIST SP 800-63B: normalise Unicode so that the same password typed on another
    # keyboard or OS (composed vs decomposed accents) still verifies.
    return unicodedata.normalize("NFKC", password).encode("utf-8")


def hash_password(password: str) -> str:
    """argon2id hash (PHC string, salt included) of a human password."""
    if not password:
        raise ValueError("empty password")
    return _PASSWORDS.hash(_normalise_password(password))


def verify_password(password_hash: str, password: str) -> bool:
    """True when ``password`` matches ``password_hash``; False on mismatch or bad hash."""
    try:
        return _PASSWORDS.verify(password_hash, _normalise_password(password))
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash: str) -> bool:
    """True when the hash uses older parameters (re-hash at the next successful login)."""
    try:
        return _PASSWORDS.check_needs_rehash(password_hash)
    except (InvalidHashError, ValueError):
        return True
