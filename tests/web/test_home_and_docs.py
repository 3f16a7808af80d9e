"""The home page ``/`` (French, leading to the four portals and the API documentation)
and the API documentation page ``/docs``, whose Swagger UI comes from the package's own
files: no URL of another host in the page, its assets served here, the CSP without CDN."""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.world import open_platform
from tierspayant.api.app import create_app
from tierspayant.web.headers import CSP, DOCS_CSP
from tierspayant.web.session import Portal

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

EXTERNAL = re.compile(r"""(?:src|href)\s*=\s*["']?(?:https?:)?//""", re.IGNORECASE)


def _client(data_dir: Path, docs: bool) -> Iterator[TestClient]:
    env = {"TIERSPAYANT_API_DOCS": "1"} if docs else {}
    platform = open_platform(data_dir, env=env)
    try:
        yield TestClient(create_app(platform), raise_server_exceptions=False)
    finally:
        platform.engine.dispose()


@pytest.fixture
def with_docs(tmp_path: Path) -> Iterator[TestClient]:
    yield from _client(tmp_path, docs=True)


@pytest.fixture
def without_docs(tmp_path: Path) -> Iterator[TestClient]:
    yield from _client(tmp_path, docs=False)


def test_home_is_a_french_page_leading_to_the_portals_and_the_api_docs(
    with_docs: TestClient,
) -> None:
    page = with_docs.get("/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert '<html lang="fr">' in page.text
    assert page.headers["content-security-policy"] == CSP
    for portal in Portal:
        assert f'href="{portal.root}/connexion"' in page.text
        assert portal.title in page.text
    assert 'href="/docs"' in page.text
    assert 'href="/openapi.json"' in page.text
    assert "Documentation interactive de l'API" in page.text
    assert not EXTERNAL.search(page.text)
    # every portal link answers
    for portal in Portal:
        assert with_docs.get(f"{portal.root}/connexion").status_code == 200, portal


def test_home_without_api_docs_says_so_and_docs_stays_unknown(without_docs: TestClient) -> None:
    page = without_docs.get("/")
    assert page.status_code == 200
    assert 'href="/docs"' not in page.text
    assert "TIERSPAYANT_API_DOCS" in page.text
    for path in ("/docs", "/openapi.json"):
        answer = without_docs.get(path)
        assert answer.status_code == 404, path
        assert answer.json()["error"]["code"] == "route.not_found"


def test_docs_page_loads_swagger_ui_from_this_server_only(with_docs: TestClient) -> None:
    page = with_docs.get("/docs")
    assert page.status_code == 200
    assert page.headers["content-security-policy"] == DOCS_CSP
    assert "script-src 'self';" in DOCS_CSP
    assert "unsafe-inline" not in DOCS_CSP
    assert "unsafe-eval" not in DOCS_CSP
    assert not EXTERNAL.search(page.text), page.text
    assets = re.findall(r'(?:src|href)="(/portail/static/[^"]+)"', page.text)
    assert {a.rsplit("/", 1)[-1] for a in assets} == {
        "swagger-ui.css",
        "swagger-ui-bundle.js",
        "start.js",
    }
    for asset in assets:
        answer = with_docs.get(asset)
        assert answer.status_code == 200, asset
        assert len(answer.content) > 100, asset
    bundle = with_docs.get("/portail/static/swagger-ui/swagger-ui-bundle.js")
    assert "SwaggerUIBundle" in bundle.text
    assert bundle.headers["content-type"].startswith(("text/javascript", "application/javascript"))
    # the document it reads is served alongside
    assert 'data-openapi-url="/openapi.json"' in page.text
    assert "/v1/eligibility" in with_docs.get("/openapi.json").json()["paths"]


def test_the_vendored_swagger_ui_ships_its_licence_and_pinned_version() -> None:
    static = Path(__file__).parents[2] / "src" / "tierspayant" / "web" / "static"
    assert "Apache License" in (static / "swagger-ui" / "LICENSE").read_text()
    readme = (static / "README.md").read_text()
    assert "swagger-ui-dist@5.36.0" in readme
