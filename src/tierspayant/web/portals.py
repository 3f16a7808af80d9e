"""The French portals (providers, insurers, members, security team), server-rendered.

``mount_portals`` adds the home page ``/`` and, when the OpenAPI document is served, the
API documentation page ``/docs`` (``web.home``); under ``/portail``: the chooser, each
portal's login and pages, the static files (stylesheet, htmx, Swagger UI), the security
headers, and the error pages. Every route declares its policy (``web.policy``), like the
API's.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from importlib import resources
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.staticfiles import StaticFiles
from starlette.responses import RedirectResponse, Response

from tierspayant.app.platform import Platform
from tierspayant.domain.codes import PlatformCode
from tierspayant.domain.errors import DomainError
from tierspayant.services.run_failures import DATABASE_ERRORS, is_busy, is_lost
from tierspayant.web import (
    containment,
    home,
    insurer,
    insurer_backoffice,
    insurer_desk,
    insurer_disputes,
    insurer_money,
    login,
    member,
    provider,
    provider_invoices,
    security_console,
)
from tierspayant.web.headers import PORTAL_PREFIX, PortalHeadersMiddleware
from tierspayant.web.policy import WebPolicy, policy
from tierspayant.web.render import (
    french_message,
    is_htmx,
    refusal_status,
    render,
    unavailable_page,
)
from tierspayant.web.session import CsrfRefused, LoginRequired, Portal, WrongPortal

STATIC_URL = f"{PORTAL_PREFIX}/static"


def _static_dir() -> Path:
    return Path(str(resources.files("tierspayant.web").joinpath("static")))


def _login_redirect(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, LoginRequired)
    motif = "?motif=expiree" if exc.reason == "expired" else ""
    target = f"{exc.portal.root}/connexion{motif}"
    if is_htmx(request):
        # htmx follows HX-Redirect with a full page load instead of swapping a fragment.
        return Response(status_code=401, headers={"HX-Redirect": target})
    return RedirectResponse(target, status_code=303)


def _csrf_refused(request: Request, exc: Exception) -> Response:
    return render(
        request,
        "error.html",
        status_code=403,
        message="Formulaire expiré ou invalide : rechargez la page.",
    )


def _wrong_portal(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, WrongPortal)
    return render(
        request,
        "error.html",
        portal=exc.portal,
        status_code=403,
        message="Votre compte n'a pas accès à cet espace.",
    )


def _install_error_pages(app: FastAPI) -> None:
    app.add_exception_handler(LoginRequired, _login_redirect)
    app.add_exception_handler(CsrfRefused, _csrf_refused)
    app.add_exception_handler(WrongPortal, _wrong_portal)
    api_handler = app.exception_handlers.get(DomainError)

    async def domain_error(request: Request, exc: Exception) -> Response:
        # Portal pages answer a refusal with a French page; the API keeps its JSON.
        if request.url.path.startswith(PORTAL_PREFIX) or api_handler is None:
            assert isinstance(exc, DomainError)
            status = refusal_status(request, exc)
            return render(
                request,
                "error.html",
                status_code=status,
                message=french_message(exc),
                code=exc.code,
            )
        answer = api_handler(request, exc)
        return answer if isinstance(answer, Response) else await answer

    app.add_exception_handler(DomainError, domain_error)
    for kind in DATABASE_ERRORS:
        app.add_exception_handler(kind, _database_error(app.exception_handlers.get(kind)))


Handler = Callable[[Request, Any], Response | Awaitable[Response]]


def _database_error(api_handler: Handler | None) -> Handler:
    """A database busy or lost (``services.run_failures``): a French page with 503 on the
    portals, as the API answers 503 with its code; anything else stays a fault (500)."""

    async def database_error(request: Request, exc: Exception) -> Response:
        if request.url.path.startswith(PORTAL_PREFIX) or api_handler is None:
            if is_busy(exc):
                return unavailable_page(request, PlatformCode.DATABASE_BUSY, retry_after=1)
            if is_lost(exc):
                return unavailable_page(request, PlatformCode.DATABASE_UNAVAILABLE, retry_after=2)
            raise exc
        answer = api_handler(request, exc)
        return answer if isinstance(answer, Response) else await answer

    return database_error


def mount_portals(app: FastAPI, platform: Platform) -> None:
    """Add the portal routes and static files to ``app``."""
    force_tls = platform.settings.sessions.portal_tls
    app.add_middleware(PortalHeadersMiddleware, force_tls=force_tls)
    app.mount(STATIC_URL, StaticFiles(directory=_static_dir()), name="portal_static")

    @app.get(f"{PORTAL_PREFIX}/", **policy(WebPolicy.PUBLIC))
    def chooser(request: Request) -> Response:
        return render(request, "chooser.html", portals=list(Portal))

    app.include_router(home.router(platform.settings.api_docs))
    app.include_router(login.provider_router())
    for portal in login.PASSWORD_PORTALS:
        app.include_router(login.password_router(portal))
    app.include_router(provider.router())
    app.include_router(provider_invoices.router())
    app.include_router(insurer.router())
    app.include_router(insurer_backoffice.router())
    app.include_router(insurer_desk.router())
    app.include_router(insurer_money.router())
    app.include_router(insurer_disputes.router())
    app.include_router(member.router())
    app.include_router(security_console.router())
    app.include_router(containment.router())
    _install_error_pages(app)
