"""What the demo issuer's flow is made of: its constants, the records it keeps between
requests (a planned login, an authorization request, a code, a login page shown), the
OAuth refusal, and the checks and values it computes."""

from __future__ import annotations

import base64
import hashlib
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from joserfc.jwk import RSAKey

DEMO_CLIENT_ID = "tierspayant-demo"
# What a login through the page asserts: the level of an e-CPS login at Pro Santé Connect.
DEMO_ACR = "eidas2"
DEMO_AMR = ("pop", "mfa")
TICKET_SECONDS = 600
MAX_PENDING = 256  # login pages shown but not yet answered; the oldest are forgotten
MAX_FORM_BYTES = 4096
_RPPS = re.compile(r"\d{11}")


@dataclass
class PlannedLogin:
    """Who logs in at an ``/authorize``, and how the issuer says they did."""

    sub: str
    rpps: str | None
    acr: str
    amr: list[str]
    auth_time: int
    rpps_claim: str
    rpps_in_userinfo_only: bool
    extra_claims: dict[str, Any]


@dataclass(frozen=True)
class _Authorization:
    """A validated authorization request, waiting for its user."""

    redirect_uri: str
    state: str | None
    nonce: str | None
    code_challenge: str | None


@dataclass
class _Grant:
    login: PlannedLogin
    authorization: _Authorization
    used: bool = False


@dataclass(frozen=True)
class _Pending:
    """A login page shown: the request it answers, kept here rather than in the form."""

    authorization: _Authorization
    shown_at: float


class _Refused(Exception):
    """An OAuth error to answer with (``error`` code, HTTP status)."""

    def __init__(self, error: str, status: int = 400) -> None:
        super().__init__(error)
        self.error = error
        self.status = status


def _checked_professionals(professionals: Sequence[tuple[str, str]]) -> tuple[tuple[str, str], ...]:
    seen: set[str] = set()
    for name, rpps in professionals:
        if not name.strip() or not _RPPS.fullmatch(rpps) or rpps in seen:
            raise ValueError(f"demo professional needs a name and a new 11-digit RPPS: {rpps!r}")
        seen.add(rpps)
    return tuple((name, rpps) for name, rpps in professionals)


def _login(sub: str, rpps: str) -> PlannedLogin:
    """A professional logging in now, at the level an e-CPS login reaches."""
    return PlannedLogin(
        sub=sub,
        rpps=rpps,
        acr=DEMO_ACR,
        amr=list(DEMO_AMR),
        auth_time=int(time.time()),
        rpps_claim="SubjectNameID",
        rpps_in_userinfo_only=False,
        extra_claims={},
    )


def _new_key() -> RSAKey:
    return RSAKey.generate_key(2048, auto_kid=True)


def _s256(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def _is_web_url(url: str) -> bool:
    parts = urlsplit(url)
    return parts.scheme in {"http", "https"} and bool(parts.netloc) and not parts.fragment
