"""Two more journeys of issue 5 in a real browser: a professional sends an invoice, a
member downloads their tiers payant card. Screenshots go to ``tests/browser/artifacts/``."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, expect

from tests.browser.conftest import Site
from tests.browser.test_journeys import Tab
from tests.web.world import card_codes

pytestmark = pytest.mark.browser


@pytest.fixture
def tabs() -> Iterator[list[Tab]]:
    """The tabs a test opens, closed (and checked for CSP violations) after it."""
    opened: list[Tab] = []
    yield opened
    for tab in opened:
        tab.close()


def test_provider_sends_an_invoice_and_sees_the_receipt(
    browser: Browser, site: Site, tabs: list[Tab]
) -> None:
    card = site.world.card
    tab = Tab(browser, site)
    tabs.append(tab)
    tab.provider_login()
    page = tab.page
    page.get_by_role("navigation").get_by_role("link", name="Envoyer une facture").click()
    expect(page.get_by_role("heading", name="Envoyer une facture")).to_be_visible()
    page.get_by_label("Numéro de facture").fill("NAV-2024-001")
    page.get_by_label("Numéro de l'organisme complémentaire").fill(card["amc_number"])
    page.get_by_label("Date de naissance").fill(card["birth_date"])
    page.get_by_label("NIR").fill(card["nir"])
    page.get_by_label("Rang de naissance").fill(card["birth_rank"])
    page.get_by_label("Code de l'acte").fill("3400930000001")
    page.get_by_label("Domaine").select_option("PHAR")
    page.get_by_label("Famille d'actes").select_option("drug_65")
    page.get_by_label("Base de remboursement").fill("10,00")
    page.get_by_label("Montant facturé").fill("10,00")
    page.get_by_label("Taux AMO").fill("65")
    page.get_by_label("Part AMO payée").fill("5,50")
    page.get_by_label("Part complémentaire demandée").fill("3,50")
    tab.shot("50-prestataire-facture-saisie")
    page.get_by_role("button", name="Envoyer la facture").click()
    receipt = page.locator("#accuse")
    expect(receipt.get_by_role("heading", name="Accusé de réception")).to_be_visible()
    expect(receipt.get_by_text("Facture reçue.")).to_be_visible()
    assert card["nir"] not in page.content()
    tab.shot("51-prestataire-facture-accuse")
    receipt.get_by_role("link", name="Suivre cette facture").click()
    expect(page.get_by_role("heading", name="Facture NAV-2024-001")).to_be_visible()
    tab.shot("52-prestataire-facture-suivi")


def test_member_downloads_their_card(browser: Browser, site: Site, tabs: list[Tab]) -> None:
    tab = Tab(browser, site)
    tabs.append(tab)
    tab.password_login("adherent", "member")
    page = tab.page
    page.get_by_role("link", name="Ma carte de tiers payant").click()
    expect(page.get_by_role("heading", name="Ma carte de tiers payant")).to_be_visible()
    tab.shot("60-adherent-carte")
    with page.expect_download() as download:
        page.get_by_role("button", name="Télécharger ma carte").click()
    saved = download.value.path()
    assert saved.read_bytes().startswith(b"%PDF")
    assert download.value.suggested_filename.endswith(".pdf")
    tab.go("/portail/adherent/carte")
    expect(page.get_by_role("cell", name="valide", exact=True)).to_be_visible()
    tab.shot("61-adherent-carte-emise")


def test_the_counters_scan_fills_the_card_and_the_readers_enter_sends_it(
    browser: Browser, site: Site, tabs: list[Tab], tmp_path_factory: pytest.TempPathFactory
) -> None:
    card = site.world.card
    _, datamatrix = card_codes(site.world, tmp_path_factory.mktemp("scan"))
    tab = Tab(browser, site)
    tabs.append(tab)
    tab.provider_login()
    page = tab.page
    page.get_by_role("navigation").get_by_role("link", name="Vérifier des droits").click()
    scan = page.get_by_label("Code 2D de la carte")
    # The reader types the DataMatrix: the card fields fill themselves
    scan.fill(datamatrix)
    expect(page.get_by_label("Numéro de l'organisme complémentaire")).to_have_value(
        card["amc_number"]
    )
    expect(page.get_by_label("NIR")).to_have_value("")
    chooser = page.get_by_role("radiogroup")
    if chooser.is_visible():
        # A family card: Enter waits for the patient to be chosen
        scan.press("Enter")
        expect(page.locator("#resultat")).not_to_contain_text("Droits au")
        day = card["birth_date"]
        born = f"{day[8:10]}/{day[5:7]}/{day[:4]}"
        chooser.get_by_label(f"Rang {card['birth_rank']}, né(e) le {born}").check()
    expect(page.get_by_label("Date de naissance")).to_have_value(card["birth_date"])
    tab.shot("70-prestataire-scan-rempli")
    # And the reader's Enter sends the check, answered in French
    scan.press("Enter")
    result = page.locator("#resultat")
    expect(result.get_by_role("heading", name="Droits au", exact=False)).to_be_visible()
    expect(result.get_by_role("cell", name="Pharmacie", exact=True)).to_be_visible()
    assert card["nir"] not in page.content()
    tab.shot("71-prestataire-scan-droits")
