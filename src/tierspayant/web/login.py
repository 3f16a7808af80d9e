"""Logging in and out of the portals.

Staff and members: password, then a TOTP code (or a recovery code); an account without a
second factor enrols one first. Health professionals: OpenID Connect (Pro Santé Connect)
only, as the security design requires; the issuer is configured through
``Settings.oidc`` (``TIERSPAYANT_OIDC_*``, see docs/operations.md).
"""

from __future__ import annotations

import segno
from fastapi import APIRouter, Depends, Request
from markupsafe import Markup
from starlette.responses import RedirectResponse, Response

from tierspayant.config import Settings
from tierspayant.domain.codes import AuthCode
from tierspayant.security.oidc import OidcClient, OidcConfig, OidcError, state_matches
from tierspayant.services import accounts
from tierspayant.services.errors import ServiceError
from tierspayant.web import forms
from tierspayant.web.policy import WebPolicy, policy
from tierspayant.web.render import french_message, render
from tierspayant.web.session import (
    CHALLENGE,
    OIDC,
    SESSION,
    Form,
    Portal,
    PortalSession,
    clear_cookie,
    csrf_protect,
    platform_of,
    read_cookie,
    requires,
    set_cookie,
)

PUBLIC = policy(WebPolicy.PUBLIC)
CHALLENGE_SECONDS = 300
PASSWORD_PORTALS = (Portal.INSURER, Portal.MEMBER, Portal.SECURITY)


def _ip(request: Request) -> str | None:
    return request.client.host if request.client else None


def _see_other(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


def open_session(request: Request, response: Response, session: accounts.Session) -> None:
    """Put a new session's token in the session cookie (no Max-Age: gone with the browser)."""
    set_cookie(response, request, SESSION, session.token)
    clear_cookie(response, request, CHALLENGE)


def _wrong_kind(request: Request, portal: Portal, session: accounts.Session) -> Response | None:
    """A valid login into the wrong portal opens nothing: end that session at once."""
    if session.principal.kind is portal.kind:
        return None
    accounts.logout(platform_of(request), session.token)
    return render(
        request,
        "login.html",
        portal=portal,
        status_code=403,
        error="Ce compte n'a pas accès à cet espace.",
    )


def password_router(portal: Portal) -> APIRouter:
    """Login pages of a password + second factor portal."""
    router = APIRouter(prefix=portal.root, dependencies=[Depends(csrf_protect)])

    @router.get("/connexion", name=f"{portal.slug}_login", **PUBLIC)
    def login_page(request: Request, motif: str | None = None) -> Response:
        notice = {
            "expiree": "Votre session a expiré : reconnectez-vous.",
            "deconnecte": "Vous êtes déconnecté.",
        }.get(motif or "")
        return render(request, "login.html", portal=portal, notice=notice)

    @router.post("/connexion", **PUBLIC)
    def login_submit(request: Request, form: Form) -> Response:
        try:
            challenge = accounts.begin_login(
                platform_of(request),
                forms.text(form, "login", max_length=254),
                forms.text(form, "password", max_length=128),
                ip=_ip(request),
            )
        except ServiceError as exc:
            status = 429 if exc.code == AuthCode.LOCKED else 401
            error = french_message(exc)
            return render(request, "login.html", portal=portal, status_code=status, error=error)
        step = "enrolement" if challenge.must_enrol else "code"
        response = _see_other(f"{portal.root}/connexion/{step}")
        set_cookie(response, request, CHALLENGE, challenge.challenge_id, max_age=CHALLENGE_SECONDS)
        return response

    @router.get("/connexion/code", **PUBLIC)
    def code_page(request: Request) -> Response:
        if read_cookie(request, CHALLENGE) is None:
            return _see_other(f"{portal.root}/connexion")
        return render(request, "mfa.html", portal=portal)

    @router.post("/connexion/code", **PUBLIC)
    def code_submit(request: Request, form: Form) -> Response:
        challenge = read_cookie(request, CHALLENGE) or ""
        code = forms.text(form, "code", max_length=24, required=False).replace(" ", "")
        use_recovery = "-" in code
        try:
            session = accounts.complete_mfa(
                platform_of(request),
                challenge,
                totp_code=None if use_recovery else code,
                recovery_code=code if use_recovery else None,
                ip=_ip(request),
            )
        except ServiceError as exc:
            again = exc.code == AuthCode.MFA_FAILED
            page = "mfa.html" if again else "login.html"
            return render(request, page, portal=portal, status_code=401, error=french_message(exc))
        refused = _wrong_kind(request, portal, session)
        if refused is not None:
            return refused
        response = _see_other(f"{portal.root}/")
        open_session(request, response, session)
        return response

    @router.get("/connexion/enrolement", **PUBLIC)
    def enrol_page(request: Request) -> Response:
        challenge = read_cookie(request, CHALLENGE)
        if challenge is None:
            return _see_other(f"{portal.root}/connexion")
        try:
            enrolment = accounts.enrol_totp(platform_of(request), challenge)
        except ServiceError as exc:
            return render(request, "login.html", portal=portal, error=french_message(exc))
        qr = segno.make(enrolment.uri, error="m").svg_inline(scale=4, omitsize=False)
        return render(
            request,
            "enrol.html",
            portal=portal,
            secret=enrolment.secret,
            qr=Markup(qr),  # noqa: S704
        )

    @router.post("/connexion/enrolement", **PUBLIC)
    def enrol_submit(request: Request, form: Form) -> Response:
        challenge = read_cookie(request, CHALLENGE) or ""
        try:
            enrolled = accounts.confirm_totp(
                platform_of(request), challenge, forms.text(form, "code", max_length=8)
            )
        except ServiceError as exc:
            return render(request, "login.html", portal=portal, error=french_message(exc))
        refused = _wrong_kind(request, portal, enrolled.session)
        if refused is not None:
            return refused
        response = render(
            request, "recovery_codes.html", portal=portal, codes=enrolled.recovery_codes
        )
        open_session(request, response, enrolled.session)
        return response

    _logout_routes(router, portal)
    return router


def _logout_routes(router: APIRouter, portal: Portal) -> None:
    # The dependency is a default value: it names ``portal``, a local variable, which a
    # string annotation (``from __future__ import annotations``) could not resolve.
    @router.post("/deconnexion", **policy(portal.rule))
    def logout(request: Request, session: PortalSession = Depends(requires(portal))) -> Response:
        accounts.logout(platform_of(request), session.token)
        response = _see_other(f"{portal.root}/connexion?motif=deconnecte")
        clear_cookie(response, request, SESSION)
        return response

    @router.post("/deconnexion-partout", **policy(portal.rule))
    def logout_everywhere(
        request: Request, session: PortalSession = Depends(requires(portal))
    ) -> Response:
        accounts.logout_everywhere(platform_of(request), session.info.account_id)
        response = _see_other(f"{portal.root}/connexion?motif=deconnecte")
        clear_cookie(response, request, SESSION)
        return response


# --------------------------------------------------------------------------- OIDC


def oidc_config(settings: Settings) -> OidcConfig | None:
    """The professionals' issuer from ``Settings.oidc``, or None when not configured."""
    oidc = settings.oidc
    if oidc is None:
        return None
    return OidcConfig(
        issuer=oidc.issuer,
        client_id=oidc.client_id,
        client_secret=oidc.client_secret,
        redirect_uri=oidc.redirect_uri,
        required_acr=oidc.required_acr,
        allowed_amr=oidc.allowed_amr,
        max_auth_age_seconds=oidc.max_age_seconds,
    )


def _client(request: Request) -> OidcClient | None:
    state = request.app.state
    if not hasattr(state, "portal_oidc"):
        config = oidc_config(platform_of(request).settings)
        state.portal_oidc = OidcClient(config) if config is not None else None
    client: OidcClient | None = state.portal_oidc
    return client


def provider_router() -> APIRouter:
    """Login of health professionals by OpenID Connect."""
    portal = Portal.PROVIDER
    router = APIRouter(prefix=portal.root, dependencies=[Depends(csrf_protect)])

    @router.get("/connexion", name="prestataire_login", **PUBLIC)
    def login_page(request: Request, motif: str | None = None) -> Response:
        notice = {
            "expiree": "Votre session a expiré : reconnectez-vous.",
            "deconnecte": "Vous êtes déconnecté.",
        }.get(motif or "")
        return render(
            request,
            "login_provider.html",
            portal=portal,
            configured=_client(request) is not None,
            notice=notice,
        )

    @router.get("/oidc/debut", **PUBLIC)
    def oidc_start(request: Request) -> Response:
        client = _client(request)
        if client is None:
            return _see_other(f"{portal.root}/connexion")
        try:
            started = client.start_login()
        except OidcError as exc:
            accounts.record_oidc_failure(platform_of(request), exc, ip=_ip(request))
            return _oidc_refused(request)
        response = _see_other(started.url)
        secrets = ".".join((started.state, started.nonce, started.code_verifier))
        set_cookie(response, request, OIDC, secrets, max_age=600, samesite="lax")
        return response

    @router.get("/oidc/retour", **PUBLIC)
    def oidc_callback(request: Request, code: str = "", state: str = "") -> Response:
        client = _client(request)
        kept = (read_cookie(request, OIDC) or "").split(".")
        if client is None or len(kept) != 3 or not state_matches(kept[0], state) or not code:
            return _oidc_refused(request)
        platform = platform_of(request)
        try:
            identity = client.complete_login(code[:512], kept[2], kept[1], platform.now())
            session = accounts.login_oidc(platform, identity, ip=_ip(request))
        except OidcError as exc:
            accounts.record_oidc_failure(platform, exc, ip=_ip(request))
            return _oidc_refused(request)
        except ServiceError as exc:
            return _oidc_refused(request, french_message(exc))
        # A page of ours, not a redirect: the SameSite=Strict session cookie is then sent
        # on the next request even though this one came from the issuer's site.
        response = render(request, "oidc_done.html", portal=portal, next_url=f"{portal.root}/")
        open_session(request, response, session)
        clear_cookie(response, request, OIDC)
        return response

    _logout_routes(router, portal)
    return router


def _oidc_refused(request: Request, message: str | None = None) -> Response:
    response = render(
        request,
        "login_provider.html",
        portal=Portal.PROVIDER,
        configured=True,
        status_code=401,
        error=message or "La connexion par Pro Santé Connect a été refusée : recommencez.",
    )
    clear_cookie(response, request, OIDC)
    return response
