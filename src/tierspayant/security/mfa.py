"""Second factors of staff and members: TOTP, one-time recovery codes, WebAuthn.

No storage here: the accounts service keeps the TOTP secret (encrypted), the last
accepted time step, the recovery-code digests and the WebAuthn credentials, and passes
them in.

- TOTP (RFC 6238, 30-second steps, 6 digits, SHA-1 as every authenticator app expects):
  a code is accepted one step early or late (clock drift), and never for a step at or
  before the last one accepted, so a code seen over a shoulder or phished cannot be
  replayed within its window (OWASP ASVS 6.5.x, as PyPI does).
- Recovery codes: 10 codes of 80 random bits each, shown once, stored as SHA-256
  digests, each usable once.
- WebAuthn (security keys, platform authenticators, passkeys) through the ``webauthn``
  package; a signature counter that does not increase (a cloned authenticator) is
  refused.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime

import pyotp
from webauthn import (
    generate_authentication_options,
    generate_registration_options,
    options_to_json,
    verify_authentication_response,
    verify_registration_response,
)
from webauthn.helpers import parse_authentication_credential_json
from webauthn.helpers.exceptions import WebAuthnException
from webauthn.helpers.structs import (
    AttestationConveyancePreference,
    AuthenticatorSelectionCriteria,
    PublicKeyCredentialDescriptor,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

from tierspayant.domain.codes import AuthCode
from tierspayant.security import SecurityError

TOTP_DIGITS = 6
TOTP_PERIOD_SECONDS = 30
TOTP_WINDOW_STEPS = 1  # accept the previous and the next step (±30 s of clock drift)
_TOTP_CODE = re.compile(r"\d{6}")

RECOVERY_CODE_COUNT = 10
# Crockford's base32 alphabet: no I, L, O, U, so a code read aloud or copied by hand is
# not misread; 16 characters of 5 bits = 80 bits per code.
_RECOVERY_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_RECOVERY_LENGTH = 16
_RECOVERY_CONFUSABLE = str.maketrans({"I": "1", "L": "1", "O": "0", "U": "V"})
_RECOVERY_DOMAIN = b"tierspayant.recovery_code.v1\x00"

WEBAUTHN_CHALLENGE_BYTES = 32
WEBAUTHN_TIMEOUT_MS = 120_000


class MfaError(SecurityError):
    """A second-factor ceremony failed. Codes: ``webauthn.registration``,
    ``webauthn.authentication``, ``webauthn.sign_count``."""


# --------------------------------------------------------------------------- TOTP


def new_totp_secret() -> str:
    """A new TOTP secret: 32 base32 characters (160 bits, the RFC 4226 recommendation)."""
    return pyotp.random_base32(length=32)


def provisioning_uri(secret: str, account: str, issuer: str = "tierspayant") -> str:
    """The ``otpauth://`` URI an authenticator app reads from a QR code."""
    uri: str = pyotp.TOTP(
        secret, digits=TOTP_DIGITS, interval=TOTP_PERIOD_SECONDS
    ).provisioning_uri(name=account, issuer_name=issuer)
    return uri


def totp_step(now: datetime) -> int:
    """The RFC 6238 time step (30-second counter since the Unix epoch) containing ``now``."""
    return int(now.timestamp()) // TOTP_PERIOD_SECONDS


def verify_totp(secret: str, code: str, *, now: datetime, last_used_step: int | None) -> int | None:
    """The time step ``code`` belongs to, or None if it is wrong, stale or replayed.

    A code is accepted for the current step and one step either side, but never for a
    step at or before ``last_used_step``: the caller stores the returned step and passes
    it back next time (the replay guard). Spaces in the code are ignored.
    """
    typed = code.replace(" ", "")
    if not _TOTP_CODE.fullmatch(typed):
        return None
    totp = pyotp.TOTP(secret, digits=TOTP_DIGITS, interval=TOTP_PERIOD_SECONDS)
    current = totp_step(now)
    accepted: int | None = None
    # Every candidate step is computed and compared, so the time taken does not say which
    # step matched or whether the guard refused it.
    for step in range(current - TOTP_WINDOW_STEPS, current + TOTP_WINDOW_STEPS + 1):
        expected = totp.generate_otp(step)
        fresh = last_used_step is None or step > last_used_step
        if hmac.compare_digest(expected, typed) and fresh and accepted is None:
            accepted = step
    return accepted


# --------------------------------------------------------------------------- recovery codes


def new_recovery_codes(n: int = RECOVERY_CODE_COUNT) -> list[str]:
    """``n`` new one-time recovery codes, formatted ``XXXX-XXXX-XXXX-XXXX`` for reading.

    Show them once; store only :func:`recovery_code_digest` of each.
    """
    if n < 1:
        raise ValueError("at least one recovery code")
    codes = []
    for _ in range(n):
        raw = "".join(secrets.choice(_RECOVERY_ALPHABET) for _ in range(_RECOVERY_LENGTH))
        codes.append("-".join(raw[i : i + 4] for i in range(0, _RECOVERY_LENGTH, 4)))
    return codes


def normalise_recovery_code(code: str) -> str:
    """Upper case, separators removed, look-alike letters mapped (``o`` → ``0``)."""
    cleaned = re.sub(r"[\s-]", "", code).upper().translate(_RECOVERY_CONFUSABLE)
    return cleaned


def recovery_code_digest(code: str) -> bytes:
    """Storage digest (32 bytes) of a recovery code, typed in any of its accepted forms.

    SHA-256, not argon2: each code carries 80 random bits, so guessing it from its digest
    costs about 2**79 hashes whatever the hash speed; a slow hash protects low-entropy
    secrets and would only add latency. The fast digest also lets the login look the code
    up by value instead of trying ten argon2 verifications.
    """
    return hashlib.sha256(_RECOVERY_DOMAIN + normalise_recovery_code(code).encode()).digest()


def looks_like_recovery_code(code: str) -> bool:
    """Whether ``code`` has the shape of a recovery code (16 symbols of the alphabet)."""
    normalised = normalise_recovery_code(code)
    return len(normalised) == _RECOVERY_LENGTH and all(c in _RECOVERY_ALPHABET for c in normalised)


# --------------------------------------------------------------------------- WebAuthn


@dataclass(frozen=True, slots=True)
class WebAuthnRelyingParty:
    """Who we are to the authenticator: the RP ID (host name) and the portal's origin."""

    rp_id: str  # e.g. "portail.example.fr"; "localhost" in development
    rp_name: str
    origin: str  # e.g. "https://portail.example.fr"
    # A second factor after a password: presence is enough (AAL2); set True to also
    # require a PIN or biometric on the authenticator.
    require_user_verification: bool = False


@dataclass(frozen=True, slots=True)
class WebAuthnCeremony:
    """Options to hand to the browser (JSON) and the challenge to keep server-side."""

    options_json: str
    challenge: bytes


@dataclass(frozen=True, slots=True)
class RegisteredCredential:
    """A verified new WebAuthn credential, to store with the account."""

    credential_id: bytes
    public_key: bytes  # COSE-encoded
    sign_count: int


def webauthn_registration_options(
    rp: WebAuthnRelyingParty,
    *,
    user_handle: bytes,
    user_name: str,
    exclude_credential_ids: tuple[bytes, ...] = (),
) -> WebAuthnCeremony:
    """Options for ``navigator.credentials.create()`` (no attestation requested).

    ``user_handle`` must be random and stable per account, never an e-mail or a number
    that identifies the person (it is stored on the authenticator).
    """
    options = generate_registration_options(
        rp_id=rp.rp_id,
        rp_name=rp.rp_name,
        user_name=user_name,
        user_id=user_handle,
        challenge=secrets.token_bytes(WEBAUTHN_CHALLENGE_BYTES),
        timeout=WEBAUTHN_TIMEOUT_MS,
        attestation=AttestationConveyancePreference.NONE,
        authenticator_selection=AuthenticatorSelectionCriteria(
            resident_key=ResidentKeyRequirement.DISCOURAGED,
            user_verification=_uv(rp),
        ),
        exclude_credentials=[PublicKeyCredentialDescriptor(id=c) for c in exclude_credential_ids],
    )
    return WebAuthnCeremony(options_to_json(options), options.challenge)


def verify_webauthn_registration(
    rp: WebAuthnRelyingParty, *, response_json: str, expected_challenge: bytes
) -> RegisteredCredential:
    """Check the browser's answer to the registration options; MfaError otherwise."""
    try:
        verified = verify_registration_response(
            credential=response_json,
            expected_challenge=expected_challenge,
            expected_rp_id=rp.rp_id,
            expected_origin=rp.origin,
            require_user_verification=rp.require_user_verification,
        )
    except (WebAuthnException, ValueError, KeyError, TypeError) as exc:
        raise MfaError(
            AuthCode.WEBAUTHN_REGISTRATION, "the security key registration failed"
        ) from exc
    return RegisteredCredential(
        credential_id=verified.credential_id,
        public_key=verified.credential_public_key,
        sign_count=verified.sign_count,
    )


def webauthn_authentication_options(
    rp: WebAuthnRelyingParty, *, allow_credential_ids: tuple[bytes, ...]
) -> WebAuthnCeremony:
    """Options for ``navigator.credentials.get()`` restricted to the account's credentials."""
    options = generate_authentication_options(
        rp_id=rp.rp_id,
        challenge=secrets.token_bytes(WEBAUTHN_CHALLENGE_BYTES),
        timeout=WEBAUTHN_TIMEOUT_MS,
        allow_credentials=[PublicKeyCredentialDescriptor(id=c) for c in allow_credential_ids],
        user_verification=_uv(rp),
    )
    return WebAuthnCeremony(options_to_json(options), options.challenge)


def webauthn_response_credential_id(response_json: str) -> bytes:
    """The credential ID a ``navigator.credentials.get()`` answer claims (to find its key)."""
    try:
        return parse_authentication_credential_json(response_json).raw_id
    except (WebAuthnException, ValueError, KeyError, TypeError) as exc:
        raise MfaError(AuthCode.WEBAUTHN_AUTHENTICATION, "malformed security key answer") from exc


def check_sign_count(stored: int, received: int) -> int:
    """The new counter to store, or MfaError ``webauthn.sign_count`` on a regression.

    Authenticators that keep no counter (most passkeys) always send 0, and that is
    accepted while the stored value is 0 too. Otherwise the counter must increase: a
    value at or below the stored one means two copies of the key are in use.
    """
    if (received > 0 or stored > 0) and received <= stored:
        raise MfaError(
            AuthCode.WEBAUTHN_SIGN_COUNT,
            "the security key's counter went backwards: it may have been cloned",
        )
    return received


def verify_webauthn_authentication(
    rp: WebAuthnRelyingParty,
    *,
    response_json: str,
    expected_challenge: bytes,
    public_key: bytes,
    stored_sign_count: int,
) -> int:
    """Check an authentication answer against the stored key; returns the new counter.

    The signature is verified first (the library is told the stored counter is 0), and
    the counter rule is applied afterwards by :func:`check_sign_count`, so a forged
    answer cannot trigger the "cloned key" signal and a regression gets its own code.
    """
    try:
        verified = verify_authentication_response(
            credential=response_json,
            expected_challenge=expected_challenge,
            expected_rp_id=rp.rp_id,
            expected_origin=rp.origin,
            credential_public_key=public_key,
            credential_current_sign_count=0,
            require_user_verification=rp.require_user_verification,
        )
    except (WebAuthnException, ValueError, KeyError, TypeError) as exc:
        raise MfaError(AuthCode.WEBAUTHN_AUTHENTICATION, "the security key check failed") from exc
    return check_sign_count(stored_sign_count, verified.new_sign_count)


def _uv(rp: WebAuthnRelyingParty) -> UserVerificationRequirement:
    if rp.require_user_verification:
        return UserVerificationRequirement.REQUIRED
    return UserVerificationRequirement.DISCOURAGED
