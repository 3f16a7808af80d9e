"""A test client that logs into the portals the way a browser does (forms, cookies)."""

from __future__ import annotations

import re
import warnings
from typing import Any

from tests.web.world import World
from tierspayant.api.app import create_app

with warnings.catch_warnings():
    # Starlette warns that it prefers httpx2 to httpx; the client works the same.
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

import httpx

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
SLUGS = {"staff": "assureur", "operator1": "securite", "operator2": "securite"}


def csrf_of(page: str) -> str:
    found = CSRF.search(page)
    assert found is not None, "the page has no CSRF field"
    return found.group(1)


class PortalClient:
    """One browser: its own cookie jar."""

    def __init__(self, world: World, *, https: bool = False, faults_raise: bool = True) -> None:
        self.world = world
        base = "https://testserver" if https else "http://testserver"
        # faults_raise=False: a server fault is seen as the browser sees it, a 500.
        self.http = TestClient(
            create_app(world.platform), base_url=base, raise_server_exceptions=faults_raise
        )
        self.csrf = ""

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        response: httpx.Response = self.http.get(path, **kwargs)
        if "csrf_token" in response.text:
            self.csrf = csrf_of(response.text)
        return response

    def post(self, path: str, data: dict[str, Any] | None = None, **kwargs: Any) -> httpx.Response:
        form = {"csrf_token": self.csrf, **(data or {})}
        response: httpx.Response = self.http.post(path, data=form, **kwargs)
        if "csrf_token" in response.text:
            self.csrf = csrf_of(response.text)
        return response

    def login(self, name: str) -> httpx.Response:
        """Password then TOTP for a staff or member account; ends on the portal's home."""
        account = self.world.logins[name]
        slug = SLUGS.get(name, "adherent")
        self.get(f"/portail/{slug}/connexion")
        step = self.post(
            f"/portail/{slug}/connexion", {"login": account.login, "password": account.password}
        )
        assert step.status_code == 200, step.text
        return self.post(f"/portail/{slug}/connexion/code", {"code": self.world.code(name)})

    def login_provider(self) -> str:
        """A professional's session, as the OIDC callback would open it; its principal."""
        session = self.world.provider_session()
        self.http.cookies.set("tp_session", session.token)
        self.get("/portail/prestataire/")
        return session.principal.id
