"""Portal sessions in cookies: names, flags, CSRF, and the dependencies that check them.

The session itself lives in ``services.accounts`` (token digest in the database,
inactivity and absolute limits enforced there); this module only carries the token in a
cookie and refuses a state-changing request without the session's CSRF token.

Cookies (``docs/portals.md``):

- ``tp_session`` — the session token; ``__Host-tp_session`` when served over TLS
  (``Secure``, ``Path=/``, no ``Domain``), always ``HttpOnly`` and ``SameSite=Strict``;
- ``tp_login`` — a random value echoed by the login forms (login CSRF, before a session);
- ``tp_challenge`` — the secret of the second login step, five minutes;
- ``tp_oidc`` — state, nonce and PKCE verifier of an OpenID Connect login (``SameSite=Lax``:
  it must come back on the issuer's cross-site redirect).
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from enum import Enum
from typing import Annotated

from fastapi import Depends, Request
from starlette.datastructures import FormData
from starlette.responses import Response

from tierspayant.app.platform import Platform
from tierspayant.domain.codes import AuthCode
from tierspayant.security.principal import PrincipalKind
from tierspayant.services import accounts
from tierspayant.services.accounts import SessionInfo
from tierspayant.services.errors import Unauthenticated
from tierspayant.web.headers import is_tls
from tierspayant.web.policy import WebPolicy

SESSION = "tp_session"
LOGIN_CSRF = "tp_login"
CHALLENGE = "tp_challenge"
OIDC = "tp_oidc"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"


class Portal(Enum):
    """The four portals: URL segment, who may use it, title."""

    PROVIDER = (
        "prestataire",
        PrincipalKind.PROVIDER_USER,
        WebPolicy.PROVIDER,
        "Espace des professionnels de santé",
    )
    INSURER = (
        "assureur",
        PrincipalKind.INSURER_STAFF,
        WebPolicy.INSURER_STAFF,
        "Espace des organismes complémentaires",
    )
    MEMBER = ("adherent", PrincipalKind.MEMBER, WebPolicy.MEMBER, "Espace adhérent")
    SECURITY = ("securite", PrincipalKind.OPERATOR_STAFF, WebPolicy.OPERATOR_STAFF,
                "Console de sécurité")  # fmt: skip

    def __init__(self, slug: str, kind: PrincipalKind, rule: WebPolicy, title: str) -> None:
        self.slug = slug
        self.kind = kind
        self.rule = rule
        self.title = title

    @property
    def root(self) -> str:
        return f"/portail/{self.slug}"


class LoginRequired(Exception):
    """No valid session for this portal: the handler sends the browser to its login page."""

    def __init__(self, portal: Portal, reason: str) -> None:
        super().__init__(reason)
        self.portal = portal
        self.reason = reason  # "absent", "expired" or "invalid"


class CsrfRefused(Exception):
    """A state-changing request without the right CSRF token (answered 403)."""


class WrongPortal(Exception):
    """A valid session of another kind of account (answered 403)."""

    def __init__(self, portal: Portal) -> None:
        super().__init__(portal.slug)
        self.portal = portal


@dataclass(frozen=True, slots=True)
class PortalSession:
    """A checked session, with its cookie token (needed to log out)."""

    token: str
    info: SessionInfo
    portal: Portal


def platform_of(request: Request) -> Platform:
    platform: Platform = request.app.state.platform
    return platform


def tls(request: Request) -> bool:
    return is_tls(request.scope, platform_of(request).settings.sessions.portal_tls)


def cookie_name(request: Request, base: str) -> str:
    """``__Host-`` names over TLS: the browser then refuses them without Secure and Path=/."""
    return f"__Host-{base}" if tls(request) else base


def set_cookie(
    response: Response,
    request: Request,
    base: str,
    value: str,
    *,
    max_age: int | None = None,
    samesite: str = "strict",
) -> None:
    """Set one portal cookie with the flags every portal cookie has."""
    response.set_cookie(
        cookie_name(request, base),
        value,
        max_age=max_age,
        path="/",
        secure=tls(request),
        httponly=True,
        samesite=samesite,  # type: ignore[arg-type]
    )


def clear_cookie(response: Response, request: Request, base: str) -> None:
    response.delete_cookie(
        cookie_name(request, base), path="/", secure=tls(request), httponly=True, samesite="strict"
    )


def read_cookie(request: Request, base: str) -> str | None:
    return request.cookies.get(cookie_name(request, base)) or None


def login_csrf(request: Request) -> str:
    """The login-CSRF value of this browser (made on first visit of a login page)."""
    existing = read_cookie(request, LOGIN_CSRF)
    if existing is not None:
        return existing
    made: str | None = getattr(request.state, "new_login_csrf", None)
    if made is None:
        made = secrets.token_urlsafe(24)
        request.state.new_login_csrf = made
    return made


def keep_login_csrf(request: Request, response: Response) -> None:
    """Send the login-CSRF cookie if :func:`login_csrf` had to make one."""
    made: str | None = getattr(request.state, "new_login_csrf", None)
    if made is not None:
        set_cookie(response, request, LOGIN_CSRF, made, max_age=3600)


def current_session(request: Request) -> SessionInfo | None:
    """The valid session of the cookie, checked once per request, or None."""
    if hasattr(request.state, "session_info"):
        cached: SessionInfo | None = request.state.session_info
        return cached
    token = read_cookie(request, SESSION)
    info: SessionInfo | None = None
    request.state.session_error = "absent"
    if token is not None:
        try:
            info = accounts.validate_session(platform_of(request), token)
        except Unauthenticated as exc:
            request.state.session_error = (
                "expired" if exc.code == AuthCode.SESSION_EXPIRED else "invalid"
            )
    request.state.session_info = info
    request.state.session_token = token
    return info


def requires(portal: Portal) -> Callable[[Request], PortalSession]:
    """Dependency: the session of an account that may use ``portal``, else login/403."""

    def dependency(request: Request) -> PortalSession:
        info = current_session(request)
        if info is None:
            raise LoginRequired(portal, str(request.state.session_error))
        if info.principal.kind is not portal.kind:
            raise WrongPortal(portal)
        return PortalSession(str(request.state.session_token), info, portal)

    return dependency


def _same(expected: str, submitted: str | None) -> bool:
    return submitted is not None and hmac.compare_digest(expected.encode(), submitted.encode())


async def read_form(request: Request) -> AsyncIterator[FormData]:
    """The submitted form (empty for a GET); its uploaded files are closed afterwards."""
    form = await request.form()
    try:
        yield form
    finally:
        await form.close()


def csrf_protect(request: Request, form: Annotated[FormData, Depends(read_form)]) -> None:
    """Router dependency: every POST carries the session's CSRF token (hidden field or the
    ``X-CSRF-Token`` header htmx sends); before login, the login-CSRF cookie's value."""
    if request.method in {"GET", "HEAD", "OPTIONS"}:
        return
    submitted = request.headers.get(CSRF_HEADER)
    if submitted is None:
        value = form.get(CSRF_FIELD)
        submitted = value if isinstance(value, str) else None
    info = current_session(request)
    if info is not None:
        if not info.check_csrf(submitted):
            raise CsrfRefused
        return
    expected = read_cookie(request, LOGIN_CSRF)
    if expected is None or not _same(expected, submitted):
        raise CsrfRefused


Form = Annotated[FormData, Depends(read_form)]


__all__ = [
    "CHALLENGE",
    "OIDC",
    "SESSION",
    "CsrfRefused",
    "Form",
    "LoginRequired",
    "Portal",
    "PortalSession",
    "WrongPortal",
    "clear_cookie",
    "cookie_name",
    "csrf_protect",
    "current_session",
    "login_csrf",
    "platform_of",
    "read_cookie",
    "read_form",
    "requires",
    "set_cookie",
]
