"""The portals in a real browser (Debian's chromium): the four journeys of issue 5.

Each journey saves screenshots to ``tests/browser/artifacts/`` and fails on any
Content-Security-Policy violation or form field without a label.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
import yaml
from playwright.sync_api import (
    Browser,
    BrowserContext,
    ConsoleMessage,
    FilePayload,
    Page,
    expect,
)

from tests.browser.conftest import ARTIFACTS, Site
from tests.web.world import CATALOGUE_FILE, PHARMACY_NAME
from tierspayant.demo.builder import demo_catalogue

pytestmark = pytest.mark.browser

UNLABELLED = """() => [...document.querySelectorAll(
  'input:not([type=hidden]), select, textarea')].filter(e => e.labels.length === 0).length"""


class Tab:
    """One browser context (its own cookies), recording CSP violations."""

    def __init__(self, browser: Browser, site: Site) -> None:
        self.site = site
        self.context: BrowserContext = browser.new_context(locale="fr-FR")
        self.page: Page = self.context.new_page()
        self.violations: list[str] = []
        self.page.on("console", self._console)

    def _console(self, message: ConsoleMessage) -> None:
        if "Content Security Policy" in message.text or "Content-Security-Policy" in message.text:
            self.violations.append(message.text)

    def go(self, path: str) -> Page:
        self.page.goto(self.site.url + path)
        return self.page

    def shot(self, name: str) -> None:
        assert self.page.evaluate(UNLABELLED) == 0, "a form field has no label"
        self.page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)

    def password_login(self, slug: str, name: str) -> None:
        account = self.site.world.logins[name]
        self.go(f"/portail/{slug}/connexion")
        self.page.get_by_label("Identifiant").fill(account.login)
        self.page.get_by_label("Mot de passe").fill(account.password)
        self.page.get_by_role("button", name="Continuer").click()
        self.page.get_by_label("Code à 6 chiffres").fill(self.site.world.code(name))
        self.page.get_by_role("button", name="Se connecter").click()
        expect(self.page.get_by_role("button", name="Se déconnecter", exact=True)).to_be_visible()

    def provider_login(self) -> None:
        world = self.site.world
        self.site.issuer.next_login(sub=f"psc-{world.rpps}", rpps=world.rpps)
        self.go("/portail/prestataire/connexion")
        self.page.get_by_role("link", name="Se connecter avec Pro Santé Connect").click()
        expect(self.page.get_by_role("heading", name="Espace professionnel")).to_be_visible()

    def check_rights(self, card: dict[str, str]) -> None:
        page = self.page
        page.get_by_label("Numéro de l'organisme complémentaire").fill(card["amc_number"])
        page.get_by_label("Date de naissance").fill(card["birth_date"])
        page.get_by_label("NIR").fill(card["nir"])
        page.get_by_label("Rang de naissance").fill(card["birth_rank"])
        page.get_by_role("button", name="Vérifier").click()

    def close(self) -> None:
        assert self.violations == [], self.violations
        self.context.close()


@pytest.fixture
def tabs(browser: Browser, site: Site) -> Iterator[list[Tab]]:
    opened: list[Tab] = []
    yield opened
    for tab in opened:
        tab.close()


def test_provider_logs_in_and_checks_rights(browser: Browser, site: Site, tabs: list[Tab]) -> None:
    tab = Tab(browser, site)
    tabs.append(tab)
    tab.go("/portail/")
    tab.shot("00-choix-espace")
    tab.provider_login()
    tab.shot("10-prestataire-accueil")
    tab.page.get_by_role("link", name="Vérifier des droits").click()
    tab.check_rights(site.world.card)
    result = tab.page.locator("#resultat")
    expect(result.get_by_role("heading", name="Droits au")).to_be_visible()
    assert site.world.card["nir"] not in result.inner_text()
    tab.shot("11-prestataire-droits")
    tab.page.get_by_role("link", name="Mes conventions").click()
    expect(tab.page.get_by_text("Mutuelle des Tilleuls").first).to_be_visible()
    tab.shot("12-prestataire-conventions")


def test_insurer_uploads_a_catalogue_and_sees_the_report(
    browser: Browser, site: Site, tabs: list[Tab], tmp_path: object
) -> None:
    tab = Tab(browser, site)
    tabs.append(tab)
    tab.password_login("assureur", "staff")
    tab.shot("20-assureur-tableau-de-bord")
    bad = demo_catalogue(CATALOGUE_FILE)
    for contract in bad["contracts"]:  # type: ignore[attr-defined]
        contract["covers_participation"] = True
    tab.page.get_by_role("link", name="Catalogue de garanties").click()
    payload: FilePayload = {
        "name": "catalogue.yaml",
        "mimeType": "application/yaml",
        "buffer": yaml.safe_dump(bad).encode(),
    }
    tab.page.get_by_label("Fichier du catalogue").set_input_files(files=[payload])
    tab.page.get_by_role("button", name="Valider et déposer").click()
    report = tab.page.locator("#rapport")
    expect(report.get_by_text("Catalogue refusé")).to_be_visible()
    expect(report.get_by_text("catalogue.responsable.covers_participation").first).to_be_visible()
    tab.shot("21-assureur-rapport-catalogue")


def test_member_sees_who_checked_their_rights(
    browser: Browser, site: Site, tabs: list[Tab]
) -> None:
    pro = Tab(browser, site)
    tabs.append(pro)
    pro.provider_login()
    pro.go("/portail/prestataire/droits")
    pro.check_rights(site.world.card)
    expect(pro.page.locator("#resultat").get_by_role("heading", name="Droits au")).to_be_visible()
    member = Tab(browser, site)
    tabs.append(member)
    member.password_login("adherent", "member")
    expect(member.page.get_by_role("cell", name=PHARMACY_NAME).first).to_be_visible()
    assert site.world.card["nir"] not in member.page.content()
    member.shot("30-adherent-consultations")
    member.page.get_by_role("link", name="Mes données").click()
    with member.page.expect_download() as download:
        member.page.get_by_role("button", name="Télécharger mes données").click()
    exported = json.loads(download.value.path().read_text(encoding="utf-8"))
    assert exported["mes_droits"]["nir"].endswith("** ** *** *** **")


def test_security_team_sees_a_scrape_suspended_and_reinstates_it(
    browser: Browser, site: Site, tabs: list[Tab]
) -> None:
    world = site.world
    # Given the security console open, polling its alerts
    console = Tab(browser, site)
    tabs.append(console)
    console.password_login("securite", "operator1")
    # When a professional's session scrapes rights checks without card proof
    pro = Tab(browser, site)
    tabs.append(pro)
    pro.provider_login()
    pro.go("/portail/prestataire/droits")
    cards = [world.card, *world.other_cards]
    answers = 0
    for index in range(40):
        pro.check_rights(cards[index % len(cards)])
        result = pro.page.locator("#resultat")
        expect(result).not_to_be_empty()
        if result.get_by_role("heading", name="Droits au").count() == 0:
            break
        answers += 1
        result.evaluate("node => node.replaceChildren()")
    print(
        json.dumps(
            {
                "bench": "portal_scrape",
                "answers_before_suspension": answers,
                "lookups_attempted": answers + 1,
            }
        )
    )
    assert answers <= 12
    pro.shot("40-prestataire-suspendu")
    # Then the alert appears in the console without reloading (htmx polling)
    expect(console.page.get_by_text("guard.human_speed").first).to_be_visible(timeout=15_000)
    console.shot("41-securite-alerte")
    console.go("/portail/securite/")
    console.page.get_by_role("button", name="Demander le rétablissement").first.click()
    expect(console.page.get_by_text("un second opérateur doit la confirmer")).to_be_visible()
    # And a second operator confirms the reinstatement
    second = Tab(browser, site)
    tabs.append(second)
    second.password_login("securite", "operator2")
    second.page.get_by_role("button", name="Confirmer le rétablissement").first.click()
    expect(second.page.get_by_text("Accès rétabli")).to_be_visible()
    second.shot("42-securite-retablissement")
