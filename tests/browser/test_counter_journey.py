"""The counter's journey of issue 15 in a real browser: the pharmacist scans the card,
checks the rights, calculates, invoices the calculation in one click, finds the invoices
in « Mes factures », reads a rejected line with its reason and disputes it; the insurer's
staff answer on « Contestations », and the pharmacist reads the answer. French on every
page; the NIR never shown. Screenshots go to ``tests/browser/artifacts/``."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.browser.conftest import Site
from tests.browser.test_journeys import Tab
from tests.web.world import card_codes
from tierspayant.services import adjudication

pytestmark = pytest.mark.browser
DRUG = {"act": "3400930000001", "domain": "PHAR", "family": "drug_65"}


@pytest.fixture
def tabs() -> Iterator[list[Tab]]:
    opened: list[Tab] = []
    yield opened
    for tab in opened:
        tab.close()


def _scan(page: Page, datamatrix: str, card: dict[str, str]) -> None:
    """The reader types the DataMatrix; on a family card, the patient is chosen."""
    page.get_by_label("Code 2D de la carte").fill(datamatrix)
    expect(page.get_by_label("Numéro de l'organisme complémentaire")).to_have_value(
        card["amc_number"]
    )
    chooser = page.get_by_role("radiogroup")
    if chooser.is_visible():
        day = card["birth_date"]
        born = f"{day[8:10]}/{day[5:7]}/{day[:4]}"
        chooser.get_by_label(f"Rang {card['birth_rank']}, né(e) le {born}").check()
    expect(page.get_by_label("Date de naissance")).to_have_value(card["birth_date"])


def test_pharmacist_invoices_follows_disputes_and_reads_the_insurers_answer(
    browser: Browser, site: Site, tabs: list[Tab], tmp_path_factory: pytest.TempPathFactory
) -> None:
    world, card = site.world, site.world.card
    _, datamatrix = card_codes(world, tmp_path_factory.mktemp("scan"))
    tab = Tab(browser, site)
    tabs.append(tab)
    tab.provider_login()
    page = tab.page
    # The header says who is logged in, for which pharmacy
    expect(page.locator("header .who")).to_contain_text("Pharmacie du Marché")
    expect(page.locator("header .who")).to_contain_text("FINESS")
    # Scan → rights
    page.get_by_role("navigation").get_by_role("link", name="Vérifier des droits").click()
    _scan(page, datamatrix, card)
    page.get_by_label("Code 2D de la carte").press("Enter")
    expect(
        page.locator("#resultat").get_by_role("heading", name="Droits au", exact=False)
    ).to_be_visible()
    # Scan → calculate, explained in French → « Facturer ce calcul »
    page.get_by_role("navigation").get_by_role("link", name="Simuler une prise en charge").click()
    page.get_by_label("Code de l'acte").fill(DRUG["act"])
    page.get_by_label("Domaine").select_option(DRUG["domain"])
    page.get_by_label("Famille d'actes").select_option(DRUG["family"])
    page.get_by_label("Montant facturé").fill("10,00")
    page.get_by_label("Base de remboursement").fill("10,00")
    _scan(page, datamatrix, card)
    page.get_by_role("button", name="Calculer").click()
    result = page.locator("#resultat")
    expect(result.get_by_role("heading", name="Comment ce calcul est fait")).to_be_visible()
    expect(result).to_contain_text("Base de remboursement 10,00 € × taux AMO 65 %")
    result.get_by_label("Numéro de facture").fill("COMPTOIR-0001")
    tab.shot("90-prestataire-calcul-explique")
    result.get_by_role("button", name="Facturer ce calcul").click()
    expect(result.get_by_text("Facture reçue.")).to_be_visible()
    # A second invoice, typed by hand, with an AMO share above base × rate
    page.get_by_role("navigation").get_by_role("link", name="Envoyer une facture").click()
    page.get_by_label("Numéro de facture").fill("COMPTOIR-0002")
    page.get_by_label("Numéro de l'organisme complémentaire").fill(card["amc_number"])
    page.get_by_label("Date de naissance").fill(card["birth_date"])
    page.get_by_label("NIR").fill(card["nir"])
    page.get_by_label("Rang de naissance").fill(card["birth_rank"])
    page.get_by_label("Code de l'acte").fill(DRUG["act"])
    page.get_by_label("Domaine").select_option(DRUG["domain"])
    page.get_by_label("Famille d'actes").select_option(DRUG["family"])
    page.get_by_label("Base de remboursement").fill("10,00")
    page.get_by_label("Montant facturé").fill("10,00")
    page.get_by_label("Taux AMO").fill("65")
    page.get_by_label("Part AMO payée").fill("9,00")
    page.get_by_label("Part complémentaire demandée").fill("1,00")
    page.get_by_role("button", name="Envoyer la facture").click()
    expect(page.locator("#accuse").get_by_text("Facture reçue.")).to_be_visible()
    # « Mes factures » before the decision: nothing accepted, « en attente de décision »
    page.get_by_role("navigation").get_by_role("link", name="Mes factures").click()
    listing = page.get_by_role("table")
    expect(listing.get_by_role("row").filter(has_text="COMPTOIR-0002")).to_contain_text(
        "en attente de décision"
    )
    # The insurer judges the invoices (the adjudication job)
    adjudication.adjudicate_pending(world.platform)
    page.reload()
    rejected = listing.get_by_role("row").filter(has_text="COMPTOIR-0002")
    expect(rejected).to_contain_text("traitée")
    expect(rejected).to_contain_text("1 ligne rejetée ou réduite")
    tab.shot("91-prestataire-mes-factures")
    # The follow-up page, reached by clicking the invoice number
    rejected.get_by_role("link", name="COMPTOIR-0002").click()
    expect(page.get_by_role("heading", name="Facture COMPTOIR-0002 (version 1)")).to_be_visible()
    expect(page.locator("main")).to_contain_text("Part AMO supérieure à la base × taux")
    # « Mes rejets »: the reason, what to do, and the dispute
    page.get_by_role("navigation").get_by_role("link", name="Mes rejets").click()
    row = page.get_by_role("row").filter(has_text="COMPTOIR-0002")
    expect(row).to_contain_text("Corrigez la part AMO")
    row.get_by_label("Motif de la contestation").fill("La part AMO est celle du décompte")
    tab.shot("92-prestataire-mes-rejets")
    row.get_by_role("button", name="Contester").click()
    expect(page.get_by_role("status")).to_contain_text("Contestation envoyée")
    assert card["nir"] not in page.content()
    # The insurer's staff answer it
    staff = Tab(browser, site)
    tabs.append(staff)
    staff.password_login("assureur", "staff")
    expect(staff.page.locator("header .who")).to_contain_text("AMC")
    staff.page.get_by_role("navigation").get_by_role("link", name="Contestations").click()
    waiting = staff.page.get_by_role("row").filter(has_text="COMPTOIR-0002")
    expect(waiting).to_contain_text("La part AMO est celle du décompte")
    expect(waiting).to_contain_text("Pharmacie du Marché")
    waiting.get_by_label("Votre réponse").fill("Décompte reçu : renvoyez la facture corrigée")
    staff.shot("93-assureur-contestations")
    waiting.get_by_role("button", name="Accepter").click()
    expect(staff.page.get_by_role("status")).to_contain_text("Contestation acceptée")
    # And the pharmacist reads the answer, and how the amount will be corrected
    page.reload()
    answered = page.get_by_role("table", name="Contestations, les plus récentes d'abord")
    expect(answered.get_by_role("row")).to_have_count(2)  # its header and one dispute
    expect(answered).to_contain_text("acceptée")
    expect(answered).to_contain_text("Décompte reçu : renvoyez la facture corrigée")
    expect(answered).to_contain_text("n'est pas modifié par cette réponse")
    tab.shot("94-prestataire-contestation-repondue")
