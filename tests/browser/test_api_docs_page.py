"""``/docs`` in Chromium with every request to another host refused: Swagger UI renders
the API's operations from the package's own files, with no CSP violation."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn
from playwright.sync_api import ConsoleMessage, Route, expect, sync_playwright

from tests.browser.conftest import CHROMIUM, _free_port
from tests.support.world import open_platform
from tierspayant.api.app import create_app

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def docs_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if not CHROMIUM.exists():
        pytest.skip("Debian's chromium is not installed at /usr/bin/chromium")
    platform = open_platform(tmp_path_factory.mktemp("docs"), env={"TIERSPAYANT_API_DOCS": "1"})
    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(platform), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, name="docs-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "the server did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        platform.close()


def test_swagger_ui_renders_offline_without_csp_violation(docs_url: str, tmp_path: Path) -> None:
    elsewhere: list[str] = []
    violations: list[str] = []

    def only_here(route: Route) -> None:
        if route.request.url.startswith(docs_url):
            route.continue_()
        else:
            elsewhere.append(route.request.url)
            route.abort()

    def console(message: ConsoleMessage) -> None:
        if "Content Security Policy" in message.text or "Content-Security-Policy" in message.text:
            violations.append(message.text)

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        try:
            page = browser.new_page(locale="fr-FR")
            page.route("**/*", only_here)
            page.on("console", console)
            page.goto(docs_url + "/")
            page.get_by_role("link", name="Documentation interactive de l'API").click()
            expect(page.locator(".opblock-summary-path", has_text="/v1/eligibility")).to_be_visible(
                timeout=15_000
            )
            page.screenshot(path=str(tmp_path / "docs.png"))
        finally:
            browser.close()
    assert elsewhere == []
    assert violations == []
