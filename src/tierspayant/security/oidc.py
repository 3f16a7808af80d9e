"""OpenID Connect relying party for health professionals (Pro Santé Connect in production).

Authorization code flow with PKCE (S256), ``state`` and ``nonce``; the ID token is checked
against the issuer's published keys (JWKS) and every claim that matters is verified, each
refusal with its own code so that logs and tests can tell them apart:

============== ==============================================================
code            refused when
============== ==============================================================
oidc.signature  not a signed JWT, unknown key, bad signature, algorithm not allowed
oidc.issuer     ``iss`` is not the configured issuer
oidc.audience   our client ID is not in ``aud`` (or ``azp`` names another client)
oidc.expired    ``exp`` is past (or ``iat``/``nbf`` in the future), with a small leeway
oidc.nonce      ``nonce`` differs from the one bound to the user's browser
oidc.acr        ``acr`` missing or not among the required values
oidc.amr        ``amr`` missing or without any allowed method (always checked)
oidc.auth_time  ``auth_time`` missing, in the future, or older than the allowed age
oidc.subject    ``sub`` missing
oidc.rpps       no RPPS number in the configured claims
============== ==============================================================

OWASP ASVS 6.8.4 asks a relying party to check ``acr``/``amr``/``auth_time`` from an
external identity provider: a password-only login at the IdP, or a session opened hours
ago, is refused here even though the token is genuine.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import threading
import time
from collections.abc import Mapping, Set
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode, urlsplit

import httpx
from joserfc import jwt
from joserfc.errors import InvalidKeyIdError, JoseError, MissingKeyError
from joserfc.jwk import KeySet

from tierspayant.domain.codes import AuthCode
from tierspayant.domain.errors import DomainError

DEFAULT_ALGORITHMS = ("RS256", "PS256", "ES256")
# Pro Santé Connect puts the national identifier of the professional in SubjectNameID
# ("8" + RPPS); other issuers may use preferred_username or a custom "rpps" claim.
DEFAULT_RPPS_CLAIMS = ("SubjectNameID", "preferred_username", "rpps")
_RPPS = re.compile(r"\d{11}")
_NATIONAL_ID_RPPS = re.compile(r"8(\d{11})")
_LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}


class OidcError(DomainError):
    """The OpenID Connect login was refused; ``code`` says which check failed."""


@dataclass(frozen=True)
class OidcConfig:
    """One OpenID provider as this relying party uses it."""

    issuer: str
    client_id: str
    client_secret: str = field(repr=False)
    redirect_uri: str
    required_acr: Set[str]
    max_auth_age_seconds: int
    allowed_amr: Set[str]
    rpps_claims: tuple[str, ...] = DEFAULT_RPPS_CLAIMS
    scopes: tuple[str, ...] = ("openid",)
    algorithms: tuple[str, ...] = DEFAULT_ALGORITHMS
    leeway_seconds: int = 60
    discovery_ttl_seconds: int = 3600
    http_timeout_seconds: float = 10.0

    def __post_init__(self) -> None:
        # Sets are frozen so that the configuration cannot change under a running client.
        object.__setattr__(self, "required_acr", frozenset(self.required_acr))
        object.__setattr__(self, "allowed_amr", frozenset(self.allowed_amr))
        parts = urlsplit(self.issuer)
        if parts.scheme != "https" and not (
            parts.scheme == "http" and parts.hostname in _LOCAL_HOSTS
        ):
            raise ValueError("the OIDC issuer must use https (plain http only on localhost)")
        if not self.required_acr:
            raise ValueError("required_acr must name at least one accepted acr value")
        if not self.allowed_amr:
            # No "accept any method": amr=["pwd"] would open a session (ASVS 6.8.4).
            raise ValueError("allowed_amr must name at least one accepted amr value")
        if self.max_auth_age_seconds <= 0:
            raise ValueError("max_auth_age_seconds must be positive")
        if "none" in {a.lower() for a in self.algorithms} or any(
            a.upper().startswith("HS") for a in self.algorithms
        ):
            raise ValueError("ID tokens must be signed with an asymmetric algorithm")


@dataclass(frozen=True, slots=True)
class OidcTokens:
    """What the token endpoint returned."""

    id_token: str = field(repr=False)
    access_token: str | None = field(default=None, repr=False)
    token_type: str | None = None
    expires_in: int | None = None


@dataclass(frozen=True, slots=True)
class OidcIdentity:
    """A health professional, as the issuer vouched for them, after every check passed."""

    issuer: str
    sub: str
    rpps: str
    acr: str
    amr: tuple[str, ...]
    auth_time: datetime


@dataclass(frozen=True, slots=True)
class AuthorizationRequest:
    """The three secrets to keep in the user's pre-login cookie, and the URL to send them to."""

    url: str
    state: str
    nonce: str
    code_verifier: str = field(repr=False)


def new_state() -> str:
    """A random ``state`` (CSRF protection of the callback), 256 bits."""
    return secrets.token_urlsafe(32)


def new_nonce() -> str:
    """A random ``nonce`` (binds the ID token to this browser's login), 256 bits."""
    return secrets.token_urlsafe(32)


def new_code_verifier() -> str:
    """A PKCE code verifier: 43 URL-safe characters (RFC 7636, 256 bits)."""
    return secrets.token_urlsafe(32)


def code_challenge(code_verifier: str) -> str:
    """The S256 PKCE challenge of ``code_verifier``."""
    digest = hashlib.sha256(code_verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def state_matches(expected: str, received: str) -> bool:
    """Constant-time comparison of the ``state`` kept in the cookie with the callback's."""
    return hmac.compare_digest(expected.encode(), received.encode())


def extract_rpps(value: object) -> str | None:
    """An RPPS number from a claim: 11 digits, or the national form ``8`` + 11 digits."""
    if not isinstance(value, str):
        return None
    text = value.strip()
    if _RPPS.fullmatch(text):
        return text
    national = _NATIONAL_ID_RPPS.fullmatch(text)
    return national.group(1) if national else None


class OidcClient:
    """Relying party of one issuer: discovery and keys cached, safe to share between threads."""

    # A token signed by an unknown key makes us refetch the JWKS (the issuer rotated its
    # keys), but not more often than this, so forged tokens cannot make us hammer it.
    JWKS_REFRESH_MIN_SECONDS = 60.0

    def __init__(self, config: OidcConfig, http: httpx.Client | None = None) -> None:
        self.config = config
        self._http = http or httpx.Client(
            timeout=config.http_timeout_seconds, follow_redirects=False
        )
        self._lock = threading.Lock()
        self._discovery: dict[str, Any] | None = None
        self._discovery_at = 0.0
        self._keys: KeySet | None = None
        self._keys_at = 0.0

    # ----------------------------------------------------------------- metadata

    def _get_json(self, url: str, code: AuthCode) -> dict[str, Any]:
        try:
            response = self._http.get(url, headers={"Accept": "application/json"})
            response.raise_for_status()
            document = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise OidcError(code, f"could not read {url}") from exc
        if not isinstance(document, dict):
            raise OidcError(code, f"{url} did not return a JSON object")
        return document

    def discovery(self) -> dict[str, Any]:
        """The issuer's discovery document, fetched once per ``discovery_ttl_seconds``."""
        with self._lock:
            fresh = time.monotonic() - self._discovery_at < self.config.discovery_ttl_seconds
            if self._discovery is not None and fresh:
                return self._discovery
        url = self.config.issuer.rstrip("/") + "/.well-known/openid-configuration"
        document = self._get_json(url, AuthCode.OIDC_DISCOVERY)
        # The document must name the issuer we configured (OpenID Connect Discovery 4.3):
        # otherwise one provider could pass itself off as another (mix-up attack).
        if document.get("issuer") != self.config.issuer:
            raise OidcError(AuthCode.OIDC_DISCOVERY, "the discovery document names another issuer")
        for key in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
            if not isinstance(document.get(key), str):
                raise OidcError(AuthCode.OIDC_DISCOVERY, f"the discovery document has no {key}")
        with self._lock:
            self._discovery = document
            self._discovery_at = time.monotonic()
        return document

    def _key_set(self, *, refresh: bool = False) -> KeySet:
        with self._lock:
            keys, fetched_at = self._keys, self._keys_at
        too_soon = time.monotonic() - fetched_at < self.JWKS_REFRESH_MIN_SECONDS
        if keys is not None and (not refresh or too_soon):
            return keys
        document = self._get_json(str(self.discovery()["jwks_uri"]), AuthCode.OIDC_JWKS)
        try:
            keys = KeySet.import_key_set(document)  # type: ignore[arg-type]
        except (JoseError, ValueError, KeyError, TypeError) as exc:
            raise OidcError(AuthCode.OIDC_JWKS, "the issuer's key set is malformed") from exc
        with self._lock:
            self._keys = keys
            self._keys_at = time.monotonic()
        return keys

    # ----------------------------------------------------------------- the flow

    def authorization_url(self, state: str, nonce: str, code_verifier: str) -> str:
        """Where to send the browser: the issuer's login page, with PKCE S256.

        ``acr_values`` and ``max_age`` ask the issuer for the assurance and freshness we
        are going to check anyway.
        """
        params = {
            "response_type": "code",
            "client_id": self.config.client_id,
            "redirect_uri": self.config.redirect_uri,
            "scope": " ".join(self.config.scopes),
            "state": state,
            "nonce": nonce,
            "code_challenge": code_challenge(code_verifier),
            "code_challenge_method": "S256",
            "acr_values": " ".join(sorted(self.config.required_acr)),
            "max_age": str(self.config.max_auth_age_seconds),
        }
        endpoint = str(self.discovery()["authorization_endpoint"])
        separator = "&" if "?" in endpoint else "?"
        return endpoint + separator + urlencode(params)

    def start_login(self) -> AuthorizationRequest:
        """Fresh ``state``, ``nonce`` and PKCE verifier, and the authorization URL for them."""
        state, nonce, verifier = new_state(), new_nonce(), new_code_verifier()
        return AuthorizationRequest(
            self.authorization_url(state, nonce, verifier), state, nonce, verifier
        )

    def exchange_code(self, code: str, code_verifier: str) -> OidcTokens:
        """Trade the authorization code for tokens (client_secret_basic, PKCE verifier)."""
        endpoint = str(self.discovery()["token_endpoint"])
        try:
            response = self._http.post(
                endpoint,
                data={
                    "grant_type": "authorization_code",
                    "code": code,
                    "redirect_uri": self.config.redirect_uri,
                    "code_verifier": code_verifier,
                },
                auth=(self.config.client_id, self.config.client_secret),
                headers={"Accept": "application/json"},
            )
            response.raise_for_status()
            body = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise OidcError(
                AuthCode.OIDC_TOKEN, "the issuer refused the authorization code"
            ) from exc
        if not isinstance(body, dict) or not isinstance(body.get("id_token"), str):
            raise OidcError(AuthCode.OIDC_TOKEN, "the token response has no ID token")
        expires_in = body.get("expires_in")
        return OidcTokens(
            id_token=body["id_token"],
            access_token=body.get("access_token"),
            token_type=body.get("token_type"),
            expires_in=int(expires_in) if isinstance(expires_in, int | str) else None,
        )

    def userinfo(self, access_token: str) -> dict[str, Any]:
        """The userinfo claims (JSON), for issuers that put the RPPS only there."""
        endpoint = self.discovery().get("userinfo_endpoint")
        if not isinstance(endpoint, str):
            raise OidcError(AuthCode.OIDC_USERINFO, "the issuer has no userinfo endpoint")
        try:
            response = self._http.get(
                endpoint,
                headers={"Authorization": f"Bearer {access_token}", "Accept": "application/json"},
            )
            response.raise_for_status()
            claims = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise OidcError(AuthCode.OIDC_USERINFO, "could not read the userinfo claims") from exc
        if not isinstance(claims, dict):
            raise OidcError(AuthCode.OIDC_USERINFO, "the userinfo answer is not a JSON object")
        return claims

    def complete_login(
        self, code: str, code_verifier: str, nonce: str, now: datetime
    ) -> OidcIdentity:
        """Exchange the code, validate the ID token, read userinfo only if the RPPS is not
        in the ID token."""
        tokens = self.exchange_code(code, code_verifier)
        try:
            return self.validate_id_token(tokens.id_token, nonce, now)
        except OidcError as exc:
            if exc.code != AuthCode.OIDC_RPPS or tokens.access_token is None:
                raise
        return self.validate_id_token(
            tokens.id_token, nonce, now, userinfo=self.userinfo(tokens.access_token)
        )

    # ----------------------------------------------------------------- validation

    def _decode(self, id_token: str) -> dict[str, Any]:
        algorithms = list(self.config.algorithms)
        for refresh in (False, True):
            try:
                token = jwt.decode(id_token, self._key_set(refresh=refresh), algorithms=algorithms)
            except (InvalidKeyIdError, MissingKeyError) as exc:
                if refresh:
                    raise OidcError(
                        AuthCode.OIDC_SIGNATURE, "the ID token's key is unknown"
                    ) from exc
                continue
            except (JoseError, ValueError, TypeError) as exc:
                raise OidcError(AuthCode.OIDC_SIGNATURE, "the ID token does not verify") from exc
            return dict(token.claims)
        raise OidcError(
            AuthCode.OIDC_SIGNATURE, "the ID token's key is unknown"
        )  # pragma: no cover

    def validate_id_token(
        self,
        id_token: str,
        nonce: str,
        now: datetime,
        *,
        userinfo: Mapping[str, Any] | None = None,
    ) -> OidcIdentity:
        """Verify signature and claims of an ID token; :class:`OidcError` on any failure.

        ``userinfo`` (from :meth:`userinfo`) is consulted for the RPPS when the ID token
        does not carry it; its ``sub`` must be the token's.
        """
        claims = self._decode(id_token)
        return validate_claims(self.config, claims, nonce, now, userinfo=userinfo)


def _numeric(claims: Mapping[str, Any], name: str) -> int | None:
    value = claims.get(name)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return int(value)


def validate_claims(
    config: OidcConfig,
    claims: Mapping[str, Any],
    nonce: str,
    now: datetime,
    *,
    userinfo: Mapping[str, Any] | None = None,
) -> OidcIdentity:
    """Check the claims of an ID token whose signature was verified (see module table)."""
    leeway = config.leeway_seconds
    at = int(now.timestamp())
    if claims.get("iss") != config.issuer:
        raise OidcError(AuthCode.OIDC_ISSUER, "the ID token comes from another issuer")
    audience = claims.get("aud")
    audiences = [audience] if isinstance(audience, str) else audience
    if not isinstance(audiences, list) or config.client_id not in audiences:
        raise OidcError(AuthCode.OIDC_AUDIENCE, "the ID token is not meant for this service")
    azp = claims.get("azp")
    if (len(audiences) > 1 or azp is not None) and azp != config.client_id:
        raise OidcError(AuthCode.OIDC_AUDIENCE, "the ID token was issued to another client")
    exp = _numeric(claims, "exp")
    if exp is None or at > exp + leeway:
        raise OidcError(AuthCode.OIDC_EXPIRED, "the ID token has expired")
    for name in ("iat", "nbf"):
        moment = _numeric(claims, name)
        if moment is not None and moment > at + leeway:
            raise OidcError(AuthCode.OIDC_EXPIRED, f"the ID token's {name} is in the future")
    token_nonce = claims.get("nonce")
    if not isinstance(token_nonce, str) or not hmac.compare_digest(
        token_nonce.encode(), nonce.encode()
    ):
        raise OidcError(AuthCode.OIDC_NONCE, "the ID token belongs to another login attempt")
    acr = claims.get("acr")
    if not isinstance(acr, str) or acr not in config.required_acr:
        raise OidcError(AuthCode.OIDC_ACR, "the login did not reach the required assurance level")
    amr = claims.get("amr")
    if isinstance(amr, str):
        amr = [amr]
    if not isinstance(amr, list) or not all(isinstance(m, str) for m in amr):
        raise OidcError(AuthCode.OIDC_AMR, "the ID token does not say how the user authenticated")
    if not set(amr) & config.allowed_amr:
        raise OidcError(AuthCode.OIDC_AMR, "the authentication method is not accepted")
    auth_time = _numeric(claims, "auth_time")
    if auth_time is None:
        raise OidcError(AuthCode.OIDC_AUTH_TIME, "the ID token has no auth_time")
    if auth_time > at + leeway or at - auth_time > config.max_auth_age_seconds + leeway:
        raise OidcError(AuthCode.OIDC_AUTH_TIME, "the authentication is too old; log in again")
    sub = claims.get("sub")
    if not isinstance(sub, str) or not sub:
        raise OidcError(AuthCode.OIDC_SUBJECT, "the ID token has no subject")
    rpps = _find_rpps(config, claims)
    if rpps is None and userinfo is not None and userinfo.get("sub") == sub:
        rpps = _find_rpps(config, userinfo)
    if rpps is None:
        raise OidcError(AuthCode.OIDC_RPPS, "the identity carries no RPPS number")
    return OidcIdentity(
        issuer=config.issuer,
        sub=sub,
        rpps=rpps,
        acr=acr,
        amr=tuple(amr),
        auth_time=datetime.fromtimestamp(auth_time, UTC),
    )


def _find_rpps(config: OidcConfig, claims: Mapping[str, Any]) -> str | None:
    for name in config.rpps_claims:
        rpps = extract_rpps(claims.get(name))
        if rpps is not None:
            return rpps
    return None
