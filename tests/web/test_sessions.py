"""Portal sessions over HTTP: cookies, CSRF, headers, timeouts, logout, policies."""

from __future__ import annotations

import re

from fastapi.routing import APIRoute, iter_route_contexts

from tests.web.portal_client import PortalClient
from tests.web.world import World
from tierspayant.api.app import create_app
from tierspayant.services import accounts
from tierspayant.web.headers import CSP

INLINE_SCRIPT = re.compile(r"<script(?![^>]*\bsrc=)[^>]*>", re.IGNORECASE)


def _set_cookie(response_headers: list[str], name: str) -> str:
    found = [h for h in response_headers if h.startswith(f"{name}=")]
    assert found, f"no {name} cookie set"
    return found[0]


def test_every_portal_route_declares_a_policy(world: World) -> None:
    # Given the application with the portals mounted
    app = create_app(world.platform)
    # When every route under /portail is inspected
    portal_routes = [
        (str(c.path), c.original_route)
        for c in iter_route_contexts(app.routes)
        if isinstance(c.original_route, APIRoute) and str(c.path).startswith("/portail")
    ]
    # Then each carries x-policy, and only login pages and the chooser are public
    assert len(portal_routes) > 30
    for path, route in portal_routes:
        assert route.openapi_extra is not None, path
        assert route.openapi_extra.get("x-policy"), path
        if route.openapi_extra["x-policy"] == "public":
            assert path == "/portail/" or "connexion" in path or "oidc" in path, path


def test_session_cookie_flags_without_tls(world: World) -> None:
    client = PortalClient(world)
    response = client.login("staff")
    cookie = _set_cookie(response.history[0].headers.get_list("set-cookie"), "tp_session")
    assert "HttpOnly" in cookie
    assert "SameSite=strict" in cookie
    assert "Path=/" in cookie
    assert "Secure" not in cookie
    assert "Max-Age" not in cookie  # gone with the browser
    assert response.status_code == 200


def test_session_cookie_is_host_prefixed_and_secure_over_tls(world: World) -> None:
    client = PortalClient(world, https=True)
    response = client.login("staff")
    cookie = _set_cookie(response.history[0].headers.get_list("set-cookie"), "__Host-tp_session")
    assert "Secure" in cookie
    assert "Path=/" in cookie
    assert "Domain" not in cookie
    assert response.headers["strict-transport-security"].startswith("max-age=")


def test_security_headers_and_no_inline_code(world: World) -> None:
    client = PortalClient(world)
    client.login("staff")
    for path in ("/portail/", "/portail/assureur/", "/portail/assureur/catalogue"):
        response = client.get(path)
        assert response.headers["content-security-policy"] == CSP
        assert "unsafe-inline" not in CSP
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["referrer-policy"] == "no-referrer"
        assert "strict-transport-security" not in response.headers  # plain http
        assert not INLINE_SCRIPT.search(response.text)
        assert "<style" not in response.text
        assert " style=" not in response.text
        assert '<html lang="fr">' in response.text


def test_post_without_csrf_token_is_refused(world: World) -> None:
    client = PortalClient(world)
    client.login("operator1")
    # Given a logged-in operator, when a form is posted without (or with a wrong) token
    bare = client.http.post("/portail/securite/principaux/retablir", data={"principal": "x"})
    wrong = client.http.post(
        "/portail/securite/principaux/retablir", data={"principal": "x", "csrf_token": "nope"}
    )
    # Then both are refused with 403 and nothing is recorded
    assert bare.status_code == 403
    assert wrong.status_code == 403
    # And the htmx header is accepted in place of the hidden field
    ok = client.http.post(
        "/portail/securite/alertes/999999/acquitter", headers={"X-CSRF-Token": client.csrf}
    )
    assert ok.status_code == 404  # got past CSRF: the alert does not exist


def test_login_form_needs_the_login_csrf_cookie(world: World) -> None:
    client = PortalClient(world)
    account = world.logins["staff"]
    response = client.http.post(
        "/portail/assureur/connexion",
        data={"login": account.login, "password": account.password, "csrf_token": "forged"},
    )
    assert response.status_code == 403


def test_wrong_password_and_wrong_portal(world: World) -> None:
    client = PortalClient(world)
    client.get("/portail/assureur/connexion")
    refused = client.post(
        "/portail/assureur/connexion", {"login": world.logins["staff"].login, "password": "x" * 12}
    )
    assert refused.status_code == 401
    assert "Identifiant ou mot de passe incorrect" in refused.text
    client.login("staff")
    other = client.get("/portail/securite/")
    assert other.status_code == 403


def test_login_into_another_portal_opens_no_session(world: World) -> None:
    client = PortalClient(world)
    account = world.logins["staff"]
    client.get("/portail/securite/connexion")
    client.post(
        "/portail/securite/connexion", {"login": account.login, "password": account.password}
    )
    response = client.post("/portail/securite/connexion/code", {"code": world.code("staff")})
    assert response.status_code == 403
    assert client.get("/portail/assureur/", follow_redirects=False).status_code == 303


def test_inactivity_timeout_sends_back_to_login(world: World) -> None:
    client = PortalClient(world)
    client.login("staff")
    assert client.get("/portail/assureur/alertes").status_code == 200
    world.clock.advance(16 * 60)
    response = client.get("/portail/assureur/alertes", follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == "/portail/assureur/connexion?motif=expiree"


def test_absolute_timeout_despite_activity(world: World) -> None:
    client = PortalClient(world)
    client.login("member")
    statuses = []
    for _ in range(8 * 6 + 1):  # a request every 10 minutes for 8 hours and more
        world.clock.advance(10 * 60)
        response = client.get("/portail/adherent/mes-donnees", follow_redirects=False)
        statuses.append(response.status_code)
        if response.status_code != 200:
            break
    # Then every request before the 8th hour was served, and the one after it was not
    assert statuses[:47] == [200] * 47
    assert response.status_code == 303
    assert "motif=expiree" in response.headers["location"]


def test_htmx_request_without_session_gets_hx_redirect(world: World) -> None:
    client = PortalClient(world)
    response = client.http.get("/portail/securite/alertes", headers={"HX-Request": "true"})
    assert response.status_code == 401
    assert response.headers["hx-redirect"] == "/portail/securite/connexion"


def test_logout_and_logout_everywhere(world: World) -> None:
    first, second = PortalClient(world), PortalClient(world)
    first.login("operator2")
    second.login("operator2")
    # Logging out ends this browser's session only
    out = first.post("/portail/securite/deconnexion", follow_redirects=False)
    assert out.status_code == 303
    assert first.get("/portail/securite/", follow_redirects=False).status_code == 303
    assert second.get("/portail/securite/").status_code == 200
    # Logging out everywhere ends the other browsers' sessions too
    third = PortalClient(world)
    third.login("operator2")
    third.post("/portail/securite/deconnexion-partout")
    assert second.get("/portail/securite/", follow_redirects=False).status_code == 303
    token = second.http.cookies.get("tp_session")
    assert token is not None


def test_provider_login_page_without_oidc_configuration(world: World) -> None:
    page = PortalClient(world).get("/portail/prestataire/connexion")
    assert "n'est pas configurée" in page.text


def test_session_is_revoked_when_principal_is_suspended(world: World) -> None:
    client = PortalClient(world)
    client.login("member1")
    principal = accounts.find_account(world.platform, world.logins["member1"].login)
    assert principal is not None
    accounts.disable_account(world.platform, principal.id, actor="test")
    response = client.get("/portail/adherent/", follow_redirects=False)
    assert response.status_code == 303
