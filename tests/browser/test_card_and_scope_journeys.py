"""Two journeys of issue 5 in a real browser (Debian's chromium): a professional checks
rights from a scanned card's 2D code, and the security team scopes a scrape and downloads
the list of people it read. Screenshots go to ``tests/browser/artifacts/``."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, expect
from sqlalchemy import select

from tests.browser.conftest import Site
from tests.browser.test_journeys import Tab
from tests.web.world import card_payload
from tierspayant.formats import french_csv
from tierspayant.store.tables import audit_events

pytestmark = pytest.mark.browser


@pytest.fixture
def tabs() -> Iterator[list[Tab]]:
    """The tabs a test opens, closed (and checked for CSP violations) after it."""
    opened: list[Tab] = []
    yield opened
    for tab in opened:
        tab.close()


def test_provider_checks_rights_from_a_scanned_card(
    browser: Browser, site: Site, tabs: list[Tab], tmp_path: Path
) -> None:
    # Given the member's family card, issued by the insurer, and the text of its 2D code
    payload = card_payload(site.world, tmp_path)
    assert payload.startswith("TP1:")
    card = site.world.card
    # When the professional scans it and types the card's printed data
    tab = Tab(browser, site)
    tabs.append(tab)
    tab.provider_login()
    tab.page.get_by_role("link", name="Vérifier des droits").click()
    tab.page.get_by_label("Code 2D de la carte").fill(payload)
    tab.page.get_by_label("Numéro de l'organisme complémentaire").fill(card["amc_number"])
    tab.page.get_by_label("Date de naissance").fill(card["birth_date"])
    tab.page.get_by_label("NIR").fill(card["nir"])
    tab.page.get_by_label("Rang de naissance").fill(card["birth_rank"])
    tab.page.get_by_role("button", name="Vérifier").click()
    # Then the insurer's answer shows, in French, with covered domains in tiers payant
    result = tab.page.locator("#resultat")
    expect(result.get_by_role("heading", name="Droits au")).to_be_visible()
    expect(result.get_by_role("columnheader", name="Tiers payant")).to_be_visible()
    expect(result.get_by_role("cell", name="oui", exact=True).first).to_be_visible()
    page = tab.page.content()
    assert card["nir"] not in page
    assert payload not in page
    tab.shot("80-prestataire-droits-code-2d")
    # And the audit log records a card-bound hit (a refused code would have shown no answer)
    decision, detail = _last_rights_check(site)
    assert decision == "hit"
    assert json.loads(detail)["proof"] is True


def _last_rights_check(site: Site) -> tuple[str, str]:
    query = (
        select(audit_events.c.decision, audit_events.c.detail)
        .where(audit_events.c.action == "eligibility.check")
        .order_by(audit_events.c.seq.desc())
        .limit(1)
    )
    with site.world.platform.engine.connect() as conn:
        decision, detail = conn.execute(query).one()
    return str(decision), str(detail)


def _scrape(browser: Browser, site: Site, tabs: list[Tab]) -> int:
    """A professional's session checks rights without card until it is suspended; returns
    how many lookups were answered (one distinct person each, the member first)."""
    world = site.world
    pro = Tab(browser, site)
    tabs.append(pro)
    pro.provider_login()
    pro.go("/portail/prestataire/droits")
    cards = [world.card, *world.other_cards]
    answers = 0
    for index in range(len(cards)):
        pro.check_rights(cards[index])
        result = pro.page.locator("#resultat")
        expect(result).not_to_be_empty()
        if result.get_by_role("heading", name="Droits au").count() == 0:
            return answers
        answers += 1
        result.evaluate("node => node.replaceChildren()")
    raise AssertionError(f"{answers} lookups answered and the session is still open")


def test_security_team_scopes_a_scrape_and_downloads_its_csv(
    browser: Browser, site: Site, tabs: list[Tab]
) -> None:
    # Given a scrape stopped by the guard
    answers = _scrape(browser, site, tabs)
    assert answers >= 1
    # When an operator scopes the suspended principal over today
    console = Tab(browser, site)
    tabs.append(console)
    console.password_login("securite", "operator1")
    page = console.page
    suspended = page.get_by_role("table", name="Comptes suspendus")
    principal = suspended.locator("tbody code").first.inner_text().strip()
    today = site.world.platform.today().isoformat()
    page.get_by_label("Compte en cause").fill(principal)
    page.get_by_label("Du").fill(today)
    page.get_by_label("Au (inclus)").fill(today)
    page.get_by_role("button", name="Calculer le périmètre").click()
    # Then each person answered is counted once, under the site's insurer (the member,
    # read first, is the one the card journey may also have read: still one person)
    scope = page.locator("#perimetre")
    expect(scope.get_by_role("status")).to_contain_text(f"{answers} personne(s) lue(s)")
    row = scope.get_by_role("row").filter(has_text=site.world.card["amc_number"])
    expect(row.get_by_role("cell").nth(2)).to_have_text(str(answers))
    console.shot("81-securite-perimetre-incident")
    # And the CSV holds one row per person, with no identity in it
    with page.expect_download() as download:
        scope.get_by_role("button", name="Télécharger le périmètre").click()
    text = download.value.path().read_bytes().decode("utf-8")
    header, *lines = french_csv.read(text)
    rows = [dict(zip(header, line, strict=True)) for line in lines]
    assert len(rows) == answers
    assert len({row["Id bénéficiaire"] for row in rows}) == answers
    assert {row["N° AMC"] for row in rows} == {site.world.card["amc_number"]}
    assert site.world.card["nir"] not in text
