"""The demo OpenID provider's login page, walked end to end against a real platform: the
portal sends the browser to the issuer, a professional is picked, the callback opens a
provider session; forged, replayed and misdirected requests get no code."""

from __future__ import annotations

import random
import re
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from tests.factories import make_am_number, make_rpps
from tests.web.world import World, build_world
from tierspayant.api.app import create_app
from tierspayant.config import load_settings
from tierspayant.demo.issuer import DemoIssuer, start_demo_issuer
from tierspayant.services import accounts, providers

with warnings.catch_warnings():
    # Starlette warns that it prefers httpx2 to httpx; the client works the same.
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

PORTAL = "http://127.0.0.1:8000"
REDIRECT = f"{PORTAL}/portail/prestataire/oidc/retour"
DOCTOR = "Dr Zoé <Martin> & fils"  # markup in a name must come out escaped
HIDDEN = re.compile(r'<input type="hidden" name="(ticket|state)" value="([^"]*)">')


@dataclass
class Demo:
    issuer: DemoIssuer
    world: World
    doctor_rpps: str
    doctor_provider_id: int
    stranger_rpps: str  # on the issuer's list, unknown to the platform's registry


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    rng = random.Random(41)
    doctor_rpps, stranger_rpps = make_rpps(rng), make_rpps(rng)
    issuer = start_demo_issuer(
        "127.0.0.1", 0, [(DOCTOR, doctor_rpps), ("Mme Inconnue du registre", stranger_rpps)]
    )
    try:
        env = issuer.environment(REDIRECT)
        world = build_world(tmp_path_factory.mktemp("demo_issuer"), env=env, members=0)
        doctor = providers.add_provider(
            world.platform,
            providers.NewProvider(
                make_am_number(rng, 1, department="69"), "gp", DOCTOR, rpps=doctor_rpps
            ),
            "test",
        )
        try:
            yield Demo(issuer, world, doctor_rpps, doctor.id, stranger_rpps)
        finally:
            world.platform.close()
    finally:
        issuer.stop()


@pytest.fixture
def portal(demo: Demo) -> Iterator[TestClient]:
    with TestClient(create_app(demo.world.platform), base_url=PORTAL) as client:
        yield client


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=5, follow_redirects=False) as client:
        yield client


def _login_page(portal: TestClient, http: httpx.Client) -> tuple[httpx.Response, dict[str, str]]:
    """Start a login at the portal and open the issuer's page; its hidden fields."""
    start = portal.get("/portail/prestataire/oidc/debut", follow_redirects=False)
    assert start.status_code == 303
    page = http.get(start.headers["location"])
    assert page.status_code == 200, page.text
    return page, dict(HIDDEN.findall(page.text))


def _choose(http: httpx.Client, issuer: DemoIssuer, fields: dict[str, str], rpps: str) -> str:
    """Submit the page for ``rpps``: where the issuer sends the browser back to."""
    answer = http.post(f"{issuer.url}/authorize", data={**fields, "rpps": rpps})
    assert answer.status_code == 302, answer.text
    return str(answer.headers["location"])


def test_given_a_professional_chosen_on_the_demo_page_then_logged_into_the_provider_portal(
    demo: Demo, portal: TestClient, http: httpx.Client
) -> None:
    page, fields = _login_page(portal, http)
    assert "Pro Santé Connect — environnement de démonstration" in page.text
    assert "Dr Zoé &lt;Martin&gt; &amp; fils" in page.text
    assert DOCTOR not in page.text
    assert f"RPPS {demo.doctor_rpps}" in page.text
    assert "<script" not in page.text
    assert "style=" not in page.text
    csp = page.headers["content-security-policy"]
    assert "default-src 'none'" in csp
    assert f"form-action 'self' {PORTAL}" in csp
    assert set(fields) == {"ticket", "state"}

    back = _choose(http, demo.issuer, fields, demo.doctor_rpps)
    assert back.startswith(REDIRECT + "?")
    assert parse_qs(urlsplit(back).query)["state"] == [fields["state"]]
    done = portal.get(back)
    assert done.status_code == 200, done.text
    assert "Connexion réussie" in done.text
    home = portal.get("/portail/prestataire/")
    assert home.status_code == 200
    assert "Espace professionnel" in home.text
    assert "Se déconnecter" in home.text
    token = portal.cookies.get("tp_session")
    assert token is not None
    info = accounts.validate_session(demo.world.platform, token)
    assert info.principal.provider_id == demo.doctor_provider_id


def test_given_a_professional_unknown_to_the_registry_then_the_portal_refuses(
    demo: Demo, portal: TestClient, http: httpx.Client
) -> None:
    _, fields = _login_page(portal, http)
    back = _choose(http, demo.issuer, fields, demo.stranger_rpps)
    refused = portal.get(back)
    assert refused.status_code == 401
    assert "tp_session" not in portal.cookies


@pytest.mark.parametrize(
    "tamper",
    [
        {"ticket": "forged"},
        {"ticket": ""},
        {"state": "another-login"},
        {"rpps": "10000000000"},
    ],
)
def test_given_a_forged_form_then_no_code_and_the_ticket_is_spent(
    demo: Demo, portal: TestClient, http: httpx.Client, tamper: dict[str, str]
) -> None:
    _, fields = _login_page(portal, http)
    form = {**fields, "rpps": demo.doctor_rpps, **tamper}
    refused = http.post(f"{demo.issuer.url}/authorize", data=form)
    assert refused.status_code == 400
    assert "location" not in refused.headers
    assert "Connexion impossible" in refused.text
    if tamper.get("ticket") is None:
        # The ticket was genuine: it is gone, the honest form no longer works either.
        again = http.post(f"{demo.issuer.url}/authorize", data={**fields, "rpps": demo.doctor_rpps})
        assert again.status_code == 400


def test_given_a_submitted_form_then_it_cannot_be_replayed(
    demo: Demo, portal: TestClient, http: httpx.Client
) -> None:
    _, fields = _login_page(portal, http)
    _choose(http, demo.issuer, fields, demo.doctor_rpps)
    replay = http.post(f"{demo.issuer.url}/authorize", data={**fields, "rpps": demo.doctor_rpps})
    assert replay.status_code == 400


def test_given_an_unregistered_redirect_uri_then_no_page(demo: Demo, http: httpx.Client) -> None:
    query = {
        "response_type": "code",
        "client_id": demo.issuer.client_id,
        "redirect_uri": "http://evil.example/retour",
        "state": "s",
    }
    refused = http.get(f"{demo.issuer.url}/authorize", params=query)
    assert refused.status_code == 400
    assert refused.json() == {"error": "invalid_request"}


def test_given_its_environment_then_the_settings_name_this_issuer_and_its_client(
    demo: Demo,
) -> None:
    env = demo.issuer.environment(REDIRECT)
    assert {name for name in env if not name.startswith("TIERSPAYANT_OIDC_")} == set()
    oidc = load_settings(env).oidc
    assert oidc is not None
    assert oidc.issuer == demo.issuer.url
    assert oidc.client_id == "tierspayant-demo"
    assert len(oidc.client_secret) >= 32
    assert oidc.redirect_uri == REDIRECT


@pytest.mark.parametrize(
    "professionals",
    [[("", "10001234567")], [("Dr A", "123")], [("Dr A", "10001234567"), ("Dr B", "10001234567")]],
)
def test_given_a_bad_list_of_professionals_then_not_started(
    professionals: list[tuple[str, str]],
) -> None:
    with pytest.raises(ValueError, match="11-digit RPPS"):
        start_demo_issuer("127.0.0.1", 0, professionals)
