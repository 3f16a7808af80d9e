"""The running demo issuer: its state, keys and protocol logic, and its HTTP handler.

The two stay together: :meth:`DemoIssuer.start` builds the handler, and the handler
calls the issuer's methods.
"""

from __future__ import annotations

import base64
import hmac
import json
import secrets
import threading
import time
from collections import deque
from collections.abc import Sequence, Set
from dataclasses import dataclass, field
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self
from urllib.parse import parse_qs, urlencode, urlsplit

from joserfc import jwt
from joserfc.jwk import RSAKey

from tierspayant.demo.issuer.flow import (
    DEMO_ACR,
    DEMO_AMR,
    DEMO_CLIENT_ID,
    MAX_FORM_BYTES,
    MAX_PENDING,
    TICKET_SECONDS,
    PlannedLogin,
    _Authorization,
    _checked_professionals,
    _Grant,
    _is_web_url,
    _login,
    _new_key,
    _Pending,
    _Refused,
    _s256,
)
from tierspayant.demo.issuer.pages import _PAGE_HEADERS, _STYLE, _csp, error_page, login_page
from tierspayant.security.oidc import OidcConfig


@dataclass
class DemoIssuer:
    """A running issuer: its state, its keys and the protocol logic (HTTP is in
    :func:`_handler`)."""

    url: str
    key: RSAKey
    client_id: str = DEMO_CLIENT_ID
    client_secret: str = field(default_factory=lambda: secrets.token_urlsafe(32), repr=False)
    professionals: tuple[tuple[str, str], ...] = ()  # (name, RPPS), shown on the page
    # Redirect URIs the client registered (environment adds them); empty accepts any,
    # which only the tests rely on.
    redirect_uris: set[str] = field(default_factory=set)
    token_ttl_seconds: int = 300
    planned: deque[PlannedLogin] = field(default_factory=deque)
    grants: dict[str, _Grant] = field(default_factory=dict)
    pending: dict[str, _Pending] = field(default_factory=dict)
    access_tokens: dict[str, dict[str, Any]] = field(default_factory=dict)
    requests: list[str] = field(default_factory=list)  # paths served, in order
    lock: threading.Lock = field(default_factory=threading.Lock)
    _server: ThreadingHTTPServer | None = field(default=None, repr=False)
    _thread: threading.Thread | None = field(default=None, repr=False)

    # ----------------------------------------------------------------- lifecycle

    @classmethod
    def start(
        cls,
        host: str,
        port: int,
        professionals: Sequence[tuple[str, str]] = (),
        *,
        client_id: str = DEMO_CLIENT_ID,
        client_secret: str | None = None,
    ) -> Self:
        """Bind ``host:port`` (0: any free port), generate the key, serve in a thread."""
        chosen = _checked_professionals(professionals)
        server = ThreadingHTTPServer((host, port), BaseHTTPRequestHandler)
        bound_host, bound_port = server.server_address[:2]
        issuer = cls(
            url=f"http://{bound_host!s}:{bound_port}",
            key=_new_key(),
            client_id=client_id,
            professionals=chosen,
        )
        if client_secret is not None:
            issuer.client_secret = client_secret
        server.RequestHandlerClass = _handler(issuer)
        thread = threading.Thread(target=server.serve_forever, name="oidc-issuer", daemon=True)
        thread.start()
        issuer._server, issuer._thread = server, thread
        return issuer

    def stop(self) -> None:
        """Stop serving and release the port (idempotent)."""
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is not None:
            server.shutdown()
            server.server_close()
        if thread is not None:
            thread.join(timeout=5)

    # ----------------------------------------------------------------- relying party side

    def environment(self, redirect_uri: str) -> dict[str, str]:
        """The ``TIERSPAYANT_OIDC_*`` variables of a platform logging in here (read by
        ``load_settings``); also registers ``redirect_uri`` as a redirect URI of the client."""
        with self.lock:
            self.redirect_uris.add(redirect_uri)
        return {
            "TIERSPAYANT_OIDC_ISSUER": self.url,
            "TIERSPAYANT_OIDC_CLIENT_ID": self.client_id,
            "TIERSPAYANT_OIDC_CLIENT_SECRET": self.client_secret,
            "TIERSPAYANT_OIDC_REDIRECT_URI": redirect_uri,
            "TIERSPAYANT_OIDC_REQUIRED_ACR": "eidas2 eidas3",
            "TIERSPAYANT_OIDC_ALLOWED_AMR": " ".join(DEMO_AMR),
            "TIERSPAYANT_OIDC_MAX_AGE": "600",
        }

    def config(
        self,
        redirect_uri: str,
        *,
        required_acr: Set[str] = frozenset({"eidas2", "eidas3"}),
        allowed_amr: Set[str] = frozenset({"pop", "mfa", "hwk"}),
        max_auth_age_seconds: int = 600,
        **overrides: Any,
    ) -> OidcConfig:
        """A relying-party configuration for this issuer and its client."""
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

    # ----------------------------------------------------------------- planned logins

    def next_login(
        self,
        *,
        sub: str = "psc-user-1",
        rpps: str | None = "10001234567",
        acr: str = DEMO_ACR,
        amr: Sequence[str] = DEMO_AMR,
        auth_time: int | datetime | None = None,
        rpps_claim: str = "SubjectNameID",
        rpps_in_userinfo_only: bool = False,
        **extra_claims: Any,
    ) -> None:
        """Choose the user of the next authorization request (queue: one per call); no
        page is shown for it.

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

    # ----------------------------------------------------------------- tokens and keys

    @property
    def kid(self) -> str:
        return str(self.key.kid)

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
        claims = self.id_token_claims(_login("psc-user-1", "10001234567"), nonce)
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

    # ----------------------------------------------------------------- authorize

    def authorization(self, query: dict[str, str]) -> _Authorization:
        """Validate an authorization request; :class:`_Refused` if a real issuer would."""
        redirect_uri = query.get("redirect_uri", "")
        if query.get("client_id") != self.client_id or not _is_web_url(redirect_uri):
            raise _Refused("invalid_request")
        with self.lock:
            registered = not self.redirect_uris or redirect_uri in self.redirect_uris
        if not registered:
            raise _Refused("invalid_request")
        if query.get("response_type") != "code":
            raise _Refused("unsupported_response_type")
        challenge = query.get("code_challenge")
        if challenge is not None and query.get("code_challenge_method") != "S256":
            raise _Refused("invalid_request")
        return _Authorization(redirect_uri, query.get("state"), query.get("nonce"), challenge)

    def take_planned(self) -> PlannedLogin | None:
        with self.lock:
            return self.planned.popleft() if self.planned else None

    def show_page(self, authorization: _Authorization) -> str:
        """Remember the request under a fresh single-use ticket, for the login form."""
        ticket = secrets.token_urlsafe(32)
        now = time.monotonic()
        with self.lock:
            for old, pending in list(self.pending.items()):
                if now - pending.shown_at > TICKET_SECONDS or len(self.pending) >= MAX_PENDING:
                    del self.pending[old]
            self.pending[ticket] = _Pending(authorization, now)
        return ticket

    def choose(self, form: dict[str, str]) -> str:
        """The login form's answer: the redirect back to the relying party, with a code.

        The ticket is consumed whatever happens next, so a form is good for one try.
        """
        with self.lock:
            pending = self.pending.pop(form.get("ticket", ""), None)
        if pending is None or time.monotonic() - pending.shown_at > TICKET_SECONDS:
            raise _Refused("invalid_request")
        authorization = pending.authorization
        if not hmac.compare_digest(
            (authorization.state or "").encode(), form.get("state", "").encode()
        ):
            raise _Refused("invalid_request")
        rpps = form.get("rpps", "")
        if rpps not in {number for _, number in self.professionals}:
            raise _Refused("access_denied")
        return self.issue_code(authorization, _login(f"psc-demo-{rpps}", rpps))

    def issue_code(self, authorization: _Authorization, login: PlannedLogin) -> str:
        """Grant a single-use code; return the URL that takes it back to the client."""
        code = secrets.token_urlsafe(24)
        with self.lock:
            self.grants[code] = _Grant(login, authorization)
        back = {"code": code}
        if authorization.state is not None:
            back["state"] = authorization.state
        separator = "&" if "?" in authorization.redirect_uri else "?"
        return authorization.redirect_uri + separator + urlencode(back)

    # ----------------------------------------------------------------- token, userinfo

    def exchange(self, form: dict[str, str]) -> dict[str, Any]:
        """The token endpoint, for an authenticated client: a code for tokens."""
        if form.get("grant_type") != "authorization_code":
            raise _Refused("unsupported_grant_type")
        with self.lock:
            grant = self.grants.get(form.get("code", ""))
            replayed = grant is not None and grant.used
            if grant is not None:
                grant.used = True
        if grant is None or replayed:
            raise _Refused("invalid_grant")
        authorization = grant.authorization
        if authorization.redirect_uri != form.get("redirect_uri"):
            raise _Refused("invalid_grant")
        if authorization.code_challenge is not None and not hmac.compare_digest(
            _s256(form.get("code_verifier", "")), authorization.code_challenge
        ):
            raise _Refused("invalid_grant")
        access_token = secrets.token_urlsafe(24)
        userinfo: dict[str, Any] = {"sub": grant.login.sub}
        if grant.login.rpps is not None:
            userinfo[grant.login.rpps_claim] = "8" + grant.login.rpps
        with self.lock:
            self.access_tokens[access_token] = userinfo
        return {
            "access_token": access_token,
            "token_type": "Bearer",
            "expires_in": 120,
            "id_token": self.sign(self.id_token_claims(grant.login, authorization.nonce)),
        }

    def client_authenticated(self, authorization_header: str) -> bool:
        """client_secret_basic: the client's ID and secret in HTTP Basic."""
        if not authorization_header.startswith("Basic "):
            return False
        try:
            decoded = base64.b64decode(authorization_header[6:], validate=True).decode()
        except ValueError:
            return False
        user, _, password = decoded.partition(":")
        return user == self.client_id and hmac.compare_digest(
            password.encode(), self.client_secret.encode()
        )

    def userinfo(self, authorization_header: str) -> dict[str, Any] | None:
        if not authorization_header.startswith("Bearer "):
            return None
        with self.lock:
            return self.access_tokens.get(authorization_header.removeprefix("Bearer "))


def start_demo_issuer(host: str, port: int, professionals: Sequence[tuple[str, str]]) -> DemoIssuer:
    """Start the demo issuer with its login page listing ``professionals`` ((name,
    RPPS) pairs). Demo only: fresh key and client secret at every start."""
    return DemoIssuer.start(host, port, professionals)


def _content_length(header: str | None) -> int:
    try:
        return int(header or "0")
    except ValueError:
        return -1


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


# --------------------------------------------------------------------------- HTTP


def _handler(issuer: DemoIssuer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            return  # quiet: the demo console and test output are not for this

        def _send(self, status: int, body: bytes, content_type: str, **headers: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            for name, value in {**_PAGE_HEADERS, **headers}.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)

        def _send_json(self, status: int, body: dict[str, Any]) -> None:
            self._send(status, json.dumps(body).encode(), "application/json")

        def _send_html(self, status: int, html: str, form_action: str = "'none'") -> None:
            csp = {"Content-Security-Policy": _csp(form_action)}
            self._send(status, html.encode(), "text/html; charset=utf-8", **csp)

        def _redirect(self, location: str) -> None:
            self._send(302, b"", "text/plain", Location=location)

        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            issuer.requests.append(parts.path)
            query = {k: v[0] for k, v in parse_qs(parts.query).items()}
            if parts.path == "/.well-known/openid-configuration":
                self._send_json(200, issuer.discovery())
            elif parts.path == "/jwks":
                self._send_json(200, issuer.jwks())
            elif parts.path == "/authorize":
                self._authorize(query)
            elif parts.path == "/userinfo":
                claims = issuer.userinfo(self.headers.get("Authorization", ""))
                if claims is None:
                    self._send_json(401, {"error": "invalid_token"})
                else:
                    self._send_json(200, claims)
            elif parts.path == "/demo.css":
                self._send(200, _STYLE.encode(), "text/css; charset=utf-8")
            else:
                self._send_json(404, {"error": "not_found"})

        def do_POST(self) -> None:
            parts = urlsplit(self.path)
            issuer.requests.append(parts.path)
            if parts.path not in {"/token", "/authorize"}:
                self._send_json(404, {"error": "not_found"})
                return
            length = _content_length(self.headers.get("Content-Length"))
            if not 0 <= length <= MAX_FORM_BYTES:
                self._send_json(413, {"error": "invalid_request"})
                return
            raw = parse_qs(self.rfile.read(length).decode(errors="replace"), max_num_fields=16)
            form = {k: v[0] for k, v in raw.items()}
            if parts.path == "/authorize":
                self._login_submitted(form)
            elif not issuer.client_authenticated(self.headers.get("Authorization", "")):
                self._send_json(401, {"error": "invalid_client"})
            else:
                try:
                    self._send_json(200, issuer.exchange(form))
                except _Refused as refused:
                    self._send_json(refused.status, {"error": refused.error})

        def _authorize(self, query: dict[str, str]) -> None:
            try:
                authorization = issuer.authorization(query)
            except _Refused as refused:
                self._send_json(refused.status, {"error": refused.error})
                return
            planned = issuer.take_planned()
            if planned is not None:
                self._redirect(issuer.issue_code(authorization, planned))
            elif issuer.professionals:
                ticket = issuer.show_page(authorization)
                form_action = "'self' " + _origin(authorization.redirect_uri)
                page = login_page(issuer, ticket, authorization.state)
                self._send_html(200, page, form_action)
            else:
                self._send_json(500, {"error": "no login queued (next_login) and no page"})

        def _login_submitted(self, form: dict[str, str]) -> None:
            try:
                location = issuer.choose(form)
            except _Refused:
                self._send_html(400, error_page())
                return
            self._redirect(location)

    return Handler
