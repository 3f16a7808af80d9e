"""The security console in a real browser (Debian's chromium), in French from end to
end: an alert names the pharmacist and her pharmacy, the incident form sent empty says
what each field needs, the scope is computed, and the notices say what was done.
Screenshots go to ``tests/browser/artifacts/``."""

from __future__ import annotations

import io
import re
import zipfile
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, expect

from tests.browser.conftest import Site
from tests.browser.test_card_and_scope_journeys import _scrape
from tests.browser.test_journeys import Tab
from tests.web.world import PHARMACIST_NAME, PHARMACY_NAME

pytestmark = pytest.mark.browser


@pytest.fixture
def tabs() -> Iterator[list[Tab]]:
    opened: list[Tab] = []
    yield opened
    for tab in opened:
        tab.close()


def test_an_analyst_reads_names_corrects_the_incident_form_and_gets_truthful_notices(
    browser: Browser, site: Site, tabs: list[Tab]
) -> None:
    world = site.world
    named = (
        f"{PHARMACIST_NAME}, professionnel (portail) — {PHARMACY_NAME} (FINESS {world.structure})"
    )
    # Given a scrape stopped by the guard
    assert _scrape(browser, site, tabs) >= 1
    # When an analyst opens the console
    console = Tab(browser, site)
    tabs.append(console)
    console.password_login("securite", "operator1")
    page = console.page
    # Then the alert names the pharmacist and her pharmacy by its FINESS, in French
    alerts = page.get_by_role("table", name="Dernières alertes")
    row = alerts.get_by_role("row").filter(has_text="Consultations plus rapides qu'un humain")
    expect(row.first).to_contain_text(named)
    expect(row.first).to_contain_text(f"{PHARMACY_NAME} (FINESS {world.structure})")
    suspended = page.get_by_role("table", name="Comptes suspendus")
    expect(suspended).to_contain_text(named)
    expect(suspended).to_contain_text("Consultations plus rapides qu'un humain")
    principal = suspended.locator("tbody small.raw code").first.inner_text().strip()
    console.shot("90-securite-noms")
    # When the incident form is sent empty
    page.get_by_role("button", name="Calculer le périmètre").click()
    # Then each field says, next to it, what it needs; nothing generic
    account = page.get_by_label("Compte en cause")
    expect(account).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#inc-principal-erreur")).to_have_text(
        "Indiquez le compte en cause, ou à défaut la structure. (incident.criteria)"
    )
    expect(page.locator("#inc-start-erreur")).to_contain_text("Indiquez la date de début")
    expect(page.locator("#inc-end-erreur")).to_contain_text("Indiquez la date de fin")
    expect(page.get_by_text("Demande refusée")).to_have_count(0)
    console.shot("91-securite-incident-erreurs")
    # When the analyst fills it in
    today = world.platform.today().isoformat()
    account.fill(principal)
    page.get_by_label("Du").fill(today)
    page.get_by_label("Au (inclus)").fill(today)
    page.get_by_role("button", name="Calculer le périmètre").click()
    # Then the scope names whose reads it counts
    scope = page.locator("#perimetre")
    expect(scope.get_by_role("status")).to_contain_text(f"personne(s) lue(s) par {named}")
    console.shot("92-securite-perimetre-nomme")
    # And the notices say the account was suspended, when and why, in French
    with page.expect_download() as download:
        scope.get_by_role("button", name="Télécharger les projets de notification").click()
    data = download.value.path().read_bytes()
    with zipfile.ZipFile(io.BytesIO(data)) as bundle:
        name = next(n for n in bundle.namelist() if n.startswith("notification-cnil-"))
        cnil = bundle.read(name).decode("utf-8")
    taken = cnil.split("## Mesures prises", 1)[1].split("## Mesures proposées", 1)[0]
    assert re.search(
        rf"le \d\d/\d\d/\d{{4}} à \d\d:\d\d \(heure de Paris\) : suspension du compte "
        rf"« {re.escape(named)} » \(par : Contrôles automatiques de la plateforme ; "
        r"motif : Consultations plus rapides qu'un humain\)",
        taken,
    ), taken
    assert "révocation" not in taken  # nobody revoked it: the draft does not say so
    assert world.card["nir"] not in cnil
