"""The demo's pharmacist, end to end: ``tierspayant demo --no-serve`` builds the data, the
pharmacist picked on the demo Pro Santé Connect page lands in the provider portal of the
demo pharmacy, sees its payment, downloads the remittance advice, which lists paid lines
and rejected lines with their reason."""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from tests.web.test_demo_issuer import HIDDEN, PORTAL, REDIRECT
from tierspayant.api.app import create_app
from tierspayant.app.platform import Platform, open_platform
from tierspayant.cli.main import app
from tierspayant.config import load_settings
from tierspayant.demo.builder import demo_pharmacist
from tierspayant.demo.issuer import DemoIssuer, start_demo_issuer

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

SEED = 2024  # the demo's default seed, as `make demo` uses it


@dataclass
class Demo:
    platform: Platform
    issuer: DemoIssuer
    rpps: str


@pytest.fixture
def demo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Demo]:
    data = tmp_path / "data"
    monkeypatch.setenv("TIERSPAYANT_DATA_DIR", str(data))
    monkeypatch.delenv("TIERSPAYANT_DATABASE_URL", raising=False)
    monkeypatch.setenv("COLUMNS", "300")
    small = ["--beneficiaries", "45", "--providers", "6", "--claims", "24", "--no-serve"]
    made = CliRunner().invoke(app, ["demo", *small])
    assert made.exit_code == 0, made.output
    name, rpps = demo_pharmacist(SEED)
    assert f"RPPS {rpps}" in made.output
    issuer = start_demo_issuer("127.0.0.1", 0, [(name, rpps)])
    try:
        env = {"TIERSPAYANT_DATA_DIR": str(data), **issuer.environment(REDIRECT)}
        platform = open_platform(load_settings(env))
        try:
            yield Demo(platform, issuer, rpps)
        finally:
            platform.close()
    finally:
        issuer.stop()


def test_the_pharmacist_logs_in_and_downloads_a_remittance_with_rejections(
    demo: Demo,
) -> None:
    issuer, rpps = demo.issuer, demo.rpps
    with (
        TestClient(create_app(demo.platform), base_url=PORTAL) as portal,
        httpx.Client(timeout=5, follow_redirects=False) as http,
    ):
        start = portal.get("/portail/prestataire/oidc/debut", follow_redirects=False)
        page = http.get(start.headers["location"])
        fields = dict(HIDDEN.findall(page.text))
        back = http.post(f"{issuer.url}/authorize", data={**fields, "rpps": rpps})
        assert back.status_code == 302, back.text
        assert portal.get(str(back.headers["location"])).status_code == 200
        listed = portal.get("/portail/prestataire/paiements")
        assert listed.status_code == 200, listed.text
        links = re.findall(r'href="(/portail/prestataire/paiements/[^"]+/avis\.csv)"', listed.text)
        assert links, listed.text
        advice = portal.get(links[0])
        assert advice.status_code == 200
        text = advice.content.decode("utf-8-sig")
        pdf = portal.get(links[0].replace("avis.csv", "avis.pdf"))
        assert pdf.status_code == 200
        assert pdf.content.startswith(b"%PDF")
    assert "rights.none" in text or "amounts.amo_above_rate" in text, text
