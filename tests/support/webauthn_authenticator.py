"""A software WebAuthn authenticator (ES256, "none" attestation) for tests.

It builds the same bytes a browser and a security key would send: clientDataJSON,
authenticator data, a CBOR attestation object on registration and an ECDSA P-256
signature on authentication. The counter can be set by hand to simulate a cloned key.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from base64 import urlsafe_b64decode, urlsafe_b64encode
from dataclasses import dataclass, field

import cbor2
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

_FLAG_UP = 0x01
_FLAG_UV = 0x04
_FLAG_AT = 0x40


def b64url(data: bytes) -> str:
    return urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def unb64url(text: str) -> bytes:
    return urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass
class SoftAuthenticator:
    """One credential on one software security key."""

    origin: str
    rp_id: str
    sign_count: int = 0
    user_verified: bool = False
    credential_id: bytes = field(default_factory=lambda: secrets.token_bytes(32))
    key: ec.EllipticCurvePrivateKey = field(
        default_factory=lambda: ec.generate_private_key(ec.SECP256R1())
    )

    def _client_data(self, kind: str, challenge_b64: str, origin: str | None) -> bytes:
        document = {"type": kind, "challenge": challenge_b64, "origin": origin or self.origin}
        return json.dumps(document, separators=(",", ":")).encode()

    def _flags(self, extra: int = 0) -> bytes:
        return bytes([_FLAG_UP | (_FLAG_UV if self.user_verified else 0) | extra])

    def _cose_public_key(self) -> bytes:
        numbers = self.key.public_key().public_numbers()
        return cbor2.dumps(
            {
                1: 2,  # kty: EC2
                3: -7,  # alg: ES256
                -1: 1,  # crv: P-256
                -2: numbers.x.to_bytes(32, "big"),
                -3: numbers.y.to_bytes(32, "big"),
            }
        )

    def register(self, options_json: str, *, origin: str | None = None) -> str:
        """Answer ``navigator.credentials.create()`` options; returns the response JSON."""
        options = json.loads(options_json)
        client_data = self._client_data("webauthn.create", options["challenge"], origin)
        rp_hash = hashlib.sha256(options["rp"]["id"].encode()).digest()
        attested = (
            bytes(16)  # AAGUID: zeros for a "none" attestation
            + len(self.credential_id).to_bytes(2, "big")
            + self.credential_id
            + self._cose_public_key()
        )
        auth_data = rp_hash + self._flags(_FLAG_AT) + self.sign_count.to_bytes(4, "big") + attested
        attestation = cbor2.dumps({"fmt": "none", "attStmt": {}, "authData": auth_data})
        return json.dumps(
            {
                "id": b64url(self.credential_id),
                "rawId": b64url(self.credential_id),
                "type": "public-key",
                "response": {
                    "clientDataJSON": b64url(client_data),
                    "attestationObject": b64url(attestation),
                },
            }
        )

    def authenticate(
        self, options_json: str, *, origin: str | None = None, advance: bool = True
    ) -> str:
        """Answer ``navigator.credentials.get()`` options; returns the response JSON.

        The counter goes up by one first unless ``advance`` is False.
        """
        options = json.loads(options_json)
        if advance:
            self.sign_count += 1
        client_data = self._client_data("webauthn.get", options["challenge"], origin)
        rp_hash = hashlib.sha256(options["rpId"].encode()).digest()
        auth_data = rp_hash + self._flags() + self.sign_count.to_bytes(4, "big")
        signature = self.key.sign(
            auth_data + hashlib.sha256(client_data).digest(), ec.ECDSA(hashes.SHA256())
        )
        return json.dumps(
            {
                "id": b64url(self.credential_id),
                "rawId": b64url(self.credential_id),
                "type": "public-key",
                "response": {
                    "clientDataJSON": b64url(client_data),
                    "authenticatorData": b64url(auth_data),
                    "signature": b64url(signature),
                    "userHandle": None,
                },
            }
        )
