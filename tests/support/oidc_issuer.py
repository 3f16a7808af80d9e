"""A real, local OpenID provider for tests: discovery, JWKS, authorize, token, userinfo.

It runs an HTTP server on 127.0.0.1 (random port) in a thread and signs ID tokens with an
RS256 key generated at start. There is no login page: ``/authorize`` redirects straight
back to the relying party with a code, for whatever user the test chose with
:meth:`TestIssuer.next_login`. The token endpoint checks what a real issuer checks
(client credentials, single-use code, redirect URI, PKCE S256), so the relying party's
side of the flow is exercised for real.

    with run_test_issuer() as issuer:
        issuer.next_login(sub="f:1", rpps="10001234567", acr="eidas2", amr=["pop"])
        config = issuer.config(redirect_uri="http://127.0.0.1/callback", ...)
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import threading
import time
from collections import deque
from collections.abc import Iterator, Sequence, Set
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from joserfc import jwt
from joserfc.jwk import RSAKey

from tierspayant.security.oidc import OidcConfig

CLIENT_ID = "tierspayant-test"
CLIENT_SECRET = "test-secret-" + "x" * 20


@dataclass
class PlannedLogin:
    """Who logs in at the next ``/authorize``, and how the issuer says they did."""

    sub: str
    rpps: str | None
    acr: str
    amr: list[str]
    auth_time: int
    rpps_claim: str
    rpps_in_userinfo_only: bool
    extra_claims: dict[str, Any]


@dataclass
class _Grant:
    login: PlannedLogin
    client_id: str
    redirect_uri: str
    nonce: str | None
    code_challenge: str | None
    used: bool = False


@dataclass
class TestIssuer:
    """Handle on a running test issuer."""

    url: str
    key: RSAKey
    client_id: str = CLIENT_ID
    client_secret: str = CLIENT_SECRET
    token_ttl_seconds: int = 300
    planned: deque[PlannedLogin] = field(default_factory=deque)
    grants: dict[str, _Grant] = field(default_factory=dict)
    access_tokens: dict[str, dict[str, Any]] = field(default_factory=dict)
    requests: list[str] = field(default_factory=list)  # paths served, in order
    lock: threading.Lock = field(default_factory=threading.Lock)

    __test__ = False  # not a pytest test class, despite its name

    @property
    def kid(self) -> str:
        return str(self.key.kid)

    def next_login(
        self,
        *,
        sub: str = "psc-user-1",
        rpps: str | None = "10001234567",
        acr: str = "eidas2",
        amr: Sequence[str] = ("pop", "mfa"),
        auth_time: int | datetime | None = None,
        rpps_claim: str = "SubjectNameID",
        rpps_in_userinfo_only: bool = False,
        **extra_claims: Any,
    ) -> None:
        """Choose the user of the next authorization request (queue: one per call).

        ``rpps`` is published as the national identifier ``8`` + RPPS under
        ``rpps_claim``, as Pro Santé Connect does; ``auth_time`` defaults to now.
        """
        if isinstance(auth_time, datetime):
            auth_time = int(auth_time.timestamp())
        with self.lock:
            self.planned.append(
                PlannedLogin(
                    sub=sub,
                    rpps=rpps,
                    acr=acr,
                    amr=list(amr),
                    auth_time=int(time.time()) if auth_time is None else auth_time,
                    rpps_claim=rpps_claim,
                    rpps_in_userinfo_only=rpps_in_userinfo_only,
                    extra_claims=dict(extra_claims),
                )
            )

    def config(
        self,
        redirect_uri: str,
        *,
        required_acr: Set[str] = frozenset({"eidas2", "eidas3"}),
        allowed_amr: Set[str] = frozenset({"pop", "mfa", "hwk"}),
        max_auth_age_seconds: int = 600,
        **overrides: Any,
    ) -> OidcConfig:
        """A relying-party configuration for this issuer and its test client."""
        return OidcConfig(
            issuer=self.url,
            client_id=self.client_id,
            client_secret=self.client_secret,
            redirect_uri=redirect_uri,
            required_acr=required_acr,
            max_auth_age_seconds=max_auth_age_seconds,
            allowed_amr=allowed_amr,
            **overrides,
        )

    def id_token_claims(self, login: PlannedLogin, nonce: str | None) -> dict[str, Any]:
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.url,
            "sub": login.sub,
            "aud": self.client_id,
            "iat": now,
            "exp": now + self.token_ttl_seconds,
            "auth_time": login.auth_time,
            "acr": login.acr,
            "amr": login.amr,
        }
        if nonce is not None:
            claims["nonce"] = nonce
        if login.rpps is not None and not login.rpps_in_userinfo_only:
            claims[login.rpps_claim] = "8" + login.rpps
        claims.update(login.extra_claims)
        return claims

    def sign(self, claims: dict[str, Any], *, key: RSAKey | None = None, alg: str = "RS256") -> str:
        """Sign arbitrary claims as this issuer would (or with another ``key``)."""
        signer = key or self.key
        header = {"alg": alg, "kid": str(signer.kid)}
        return jwt.encode(header, claims, signer, algorithms=[alg])

    def mint_id_token(self, *, nonce: str | None, **overrides: Any) -> str:
        """An ID token for a default user, with any claim replaced (None removes it; a
        None ``nonce`` leaves the nonce out)."""
        login = PlannedLogin(
            sub="psc-user-1",
            rpps="10001234567",
            acr="eidas2",
            amr=["pop", "mfa"],
            auth_time=int(time.time()),
            rpps_claim="SubjectNameID",
            rpps_in_userinfo_only=False,
            extra_claims={},
        )
        claims = self.id_token_claims(login, nonce)
        for name, value in overrides.items():
            if value is None:
                claims.pop(name, None)
            else:
                claims[name] = value
        return self.sign(claims)

    def jwks(self) -> dict[str, Any]:
        return {"keys": [self.key.as_dict(private=False, use="sig", alg="RS256")]}

    def discovery(self) -> dict[str, Any]:
        return {
            "issuer": self.url,
            "authorization_endpoint": self.url + "/authorize",
            "token_endpoint": self.url + "/token",
            "userinfo_endpoint": self.url + "/userinfo",
            "jwks_uri": self.url + "/jwks",
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "code_challenge_methods_supported": ["S256"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic"],
            "acr_values_supported": ["eidas1", "eidas2", "eidas3"],
            "claims_supported": ["sub", "acr", "amr", "auth_time", "SubjectNameID"],
        }

    def rotate_key(self) -> None:
        """Replace the signing key (the relying party must refetch the JWKS)."""
        self.key = _new_key()


def _new_key() -> RSAKey:
    key = RSAKey.generate_key(2048, auto_kid=True)
    return key


def _handler(issuer: TestIssuer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            return  # keep test output quiet

        def _send_json(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            issuer.requests.append(parts.path)
            if parts.path == "/.well-known/openid-configuration":
                self._send_json(200, issuer.discovery())
            elif parts.path == "/jwks":
                self._send_json(200, issuer.jwks())
            elif parts.path == "/authorize":
                self._authorize({k: v[0] for k, v in parse_qs(parts.query).items()})
            elif parts.path == "/userinfo":
                self._userinfo()
            else:
                self._send_json(404, {"error": "not_found"})

        def do_POST(self) -> None:
            parts = urlsplit(self.path)
            issuer.requests.append(parts.path)
            if parts.path != "/token":
                self._send_json(404, {"error": "not_found"})
                return
            length = int(self.headers.get("Content-Length", "0"))
            form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
            self._token(form)

        def _authorize(self, query: dict[str, str]) -> None:
            redirect_uri = query.get("redirect_uri", "")
            if query.get("client_id") != issuer.client_id or not redirect_uri:
                self._send_json(400, {"error": "invalid_request"})
                return
            if query.get("response_type") != "code":
                self._send_json(400, {"error": "unsupported_response_type"})
                return
            with issuer.lock:
                login = issuer.planned.popleft() if issuer.planned else None
            if login is None:
                self._send_json(500, {"error": "test issuer: call next_login() first"})
                return
            code = secrets.token_urlsafe(24)
            challenge = query.get("code_challenge")
            if challenge is not None and query.get("code_challenge_method") != "S256":
                self._send_json(400, {"error": "invalid_request"})
                return
            with issuer.lock:
                issuer.grants[code] = _Grant(
                    login=login,
                    client_id=issuer.client_id,
                    redirect_uri=redirect_uri,
                    nonce=query.get("nonce"),
                    code_challenge=challenge,
                )
            back = {"code": code}
            if "state" in query:
                back["state"] = query["state"]
            separator = "&" if "?" in redirect_uri else "?"
            self.send_response(302)
            self.send_header("Location", redirect_uri + separator + urlencode(back))
            self.send_header("Content-Length", "0")
            self.end_headers()

        def _client_ok(self) -> bool:
            header = self.headers.get("Authorization", "")
            if not header.startswith("Basic "):
                return False
            try:
                user, _, password = base64.b64decode(header[6:]).decode().partition(":")
            except ValueError:
                return False
            return user == issuer.client_id and secrets.compare_digest(
                password, issuer.client_secret
            )

        def _token(self, form: dict[str, str]) -> None:
            if not self._client_ok():
                self._send_json(401, {"error": "invalid_client"})
                return
            if form.get("grant_type") != "authorization_code":
                self._send_json(400, {"error": "unsupported_grant_type"})
                return
            with issuer.lock:
                grant = issuer.grants.get(form.get("code", ""))
                replayed = grant is not None and grant.used
                if grant is not None:
                    grant.used = True
            if grant is None or replayed or grant.redirect_uri != form.get("redirect_uri"):
                self._send_json(400, {"error": "invalid_grant"})
                return
            if grant.code_challenge is not None:
                verifier = form.get("code_verifier", "")
                digest = hashlib.sha256(verifier.encode()).digest()
                computed = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
                if computed != grant.code_challenge:
                    self._send_json(400, {"error": "invalid_grant"})
                    return
            access_token = secrets.token_urlsafe(24)
            userinfo: dict[str, Any] = {"sub": grant.login.sub}
            if grant.login.rpps is not None:
                userinfo[grant.login.rpps_claim] = "8" + grant.login.rpps
            with issuer.lock:
                issuer.access_tokens[access_token] = userinfo
            id_token = issuer.sign(issuer.id_token_claims(grant.login, grant.nonce))
            self._send_json(
                200,
                {
                    "access_token": access_token,
                    "token_type": "Bearer",
                    "expires_in": 120,
                    "id_token": id_token,
                },
            )

        def _userinfo(self) -> None:
            header = self.headers.get("Authorization", "")
            with issuer.lock:
                claims = issuer.access_tokens.get(header.removeprefix("Bearer "))
            if not header.startswith("Bearer ") or claims is None:
                self._send_json(401, {"error": "invalid_token"})
                return
            self._send_json(200, claims)

    return Handler


@contextmanager
def run_test_issuer() -> Iterator[TestIssuer]:
    """Start a test OpenID provider on 127.0.0.1 (random port); stop it on exit."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    host, port = server.server_address[:2]
    issuer = TestIssuer(url=f"http://{host!s}:{port}", key=_new_key())
    server.RequestHandlerClass = _handler(issuer)
    thread = threading.Thread(target=server.serve_forever, name="test-oidc-issuer", daemon=True)
    thread.start()
    try:
        yield issuer
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
