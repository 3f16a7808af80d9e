"""A real portal server for the browser tests: uvicorn in a thread over a seeded SQLite
platform, a real OpenID Connect test issuer for the professionals, and Debian's chromium
driven by Playwright (no browser is ever downloaded)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import uvicorn
from playwright.sync_api import Browser, sync_playwright

from tests.support.oidc_issuer import CLIENT_ID, CLIENT_SECRET, TestIssuer, run_test_issuer
from tests.web.world import World, build_world
from tierspayant.api.app import create_app

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).parent / "artifacts"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Site:
    url: str
    world: World
    issuer: TestIssuer


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    if not CHROMIUM.exists():
        pytest.skip("Debian's chromium is not installed at /usr/bin/chromium")
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    with run_test_issuer() as issuer:
        env = {
            "TIERSPAYANT_OIDC_ISSUER": issuer.url,
            "TIERSPAYANT_OIDC_CLIENT_ID": CLIENT_ID,
            "TIERSPAYANT_OIDC_CLIENT_SECRET": CLIENT_SECRET,
            "TIERSPAYANT_OIDC_REDIRECT_URI": f"{url}/portail/prestataire/oidc/retour",
            "TIERSPAYANT_OIDC_ALLOWED_AMR": "pop mfa",
        }
        world = build_world(tmp_path_factory.mktemp("browser"), env=env, members=1)
        config = uvicorn.Config(
            create_app(world.platform), host="127.0.0.1", port=port, log_level="warning"
        )
        server = uvicorn.Server(config)
        thread = threading.Thread(target=server.run, name="portal-server", daemon=True)
        thread.start()
        deadline = time.monotonic() + 20
        while not server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("the portal server did not start")
            time.sleep(0.05)
        try:
            yield Site(url, world, issuer)
        finally:
            server.should_exit = True
            thread.join(timeout=10)
            world.platform.close()


@pytest.fixture(scope="module")
def browser(site: Site) -> Iterator[Browser]:
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        try:
            yield launched
        finally:
            launched.close()
