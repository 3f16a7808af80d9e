"""Journeys of the claims officer's desk in a real browser (Debian's chromium): from a bar
of the reject-reasons chart to the invoices it counts, one invoice, then its provider;
and a prior authorisation in detail with its quote lines and the member's remaining
ceilings, refused first without a reason. Screenshots go to ``tests/browser/artifacts/``.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import date, timedelta

import pytest
from playwright.sync_api import Browser, expect

from tests.browser.conftest import Site
from tests.browser.test_journeys import Tab
from tests.money_support import ACCEPTED, REJECTED, adjudicated_claim, make_provider
from tests.support.world import beneficiary_id
from tests.web.world import AMC
from tierspayant.domain.care import CareDomain
from tierspayant.domain.pricing import PricingLine
from tierspayant.services import providers
from tierspayant.services.identification import CardData
from tierspayant.services.prior_auth import PriorAuthRequest, request_prior_auth
from tierspayant.store.beneficiaries import record_by_id

pytestmark = pytest.mark.browser

STAY = PricingLine("GHS0001", CareDomain.HOSP, "hospital_stay", 1, 300_000, 300_000)
ROOM = PricingLine("CHP0001", CareDomain.HOSP, "hospital_private_room", 5, 45_000, 0)


@pytest.fixture
def tabs(browser: Browser, site: Site) -> Iterator[list[Tab]]:
    opened: list[Tab] = []
    yield opened
    for tab in opened:
        tab.close()


def test_officer_goes_from_a_chart_bar_to_an_invoice_and_its_provider(
    browser: Browser, site: Site, tabs: list[Tab]
) -> None:
    # Given a provider's invoice of last week with a line rejected for lack of rights
    world = site.world
    pharmacy = make_provider(world.platform, random.Random(401))
    claim_id = adjudicated_claim(
        world.platform, insurer_id=world.insurer_id, amc_number=AMC, provider_id=pharmacy.id,
        lines=(ACCEPTED, REJECTED), beneficiary_id=world.beneficiary_id,
        care_date=world.platform.today() - timedelta(days=7),
    )  # fmt: skip
    invoice = f"F{claim_id:08d}"
    tab = Tab(browser, site)
    tabs.append(tab)
    page = tab.page
    tab.password_login("assureur", "staff")
    # When the officer opens the figures and clicks the bar of the reject reason
    page.get_by_role("link", name="Factures et rejets").click()
    expect(page.get_by_role("heading", name="Factures et rejets", exact=True)).to_be_visible()
    tab.shot("80-assureur-factures-graphiques")
    page.locator('svg a[href*="motif=rights.none"]').click()
    # Then the search lists the invoices the bar counts
    expect(page.get_by_role("heading", name="Recherche de factures")).to_be_visible()
    expect(page.get_by_label("Motif de rejet ou de réduction")).to_have_value("rights.none")
    row = page.get_by_role("row").filter(has_text=invoice)
    expect(row).to_contain_text(pharmacy.name)
    expect(row).to_contain_text("traitée")
    tab.shot("81-assureur-recherche-factures")
    # And the invoice shows each line's decision, reason and amounts
    row.get_by_role("link", name=invoice).click()
    expect(page.get_by_role("heading", name=f"Facture {invoice}")).to_be_visible()
    lines = page.get_by_role("table", name="Décision et paiement de chaque ligne")
    rejected = lines.get_by_role("row").filter(has_text="rejetée")
    expect(rejected).to_contain_text("Pas de droits complémentaires à la date des soins")
    expect(lines.get_by_role("row").filter(has_text="acceptée")).to_contain_text("3,50")
    tab.shot("82-assureur-facture")
    # And its provider's page: identity, weeks, reject rate
    page.get_by_role("link", name=pharmacy.name).first.click()
    expect(page.get_by_role("heading", name=pharmacy.name)).to_be_visible()
    expect(page.get_by_text(pharmacy.am_number).first).to_be_visible()
    expect(page.get_by_text("Taux de lignes rejetées ou réduites")).to_contain_text("50,00 %")
    expect(page.get_by_text("Aucun paiement pour votre compte.")).to_be_visible()
    tab.shot("83-assureur-prestataire")


def _card_with_contract(site: Site, code: str) -> CardData:
    world = site.world
    for fields in [world.card, *world.other_cards]:
        card = CardData(
            AMC, date.fromisoformat(fields["birth_date"]), fields["nir"], int(fields["birth_rank"])
        )
        with world.platform.engine.connect() as conn:
            record = record_by_id(conn, world.insurer_id, beneficiary_id(world.platform, card))
        if record is not None and record.contract_code == code:
            return card
    pytest.skip(f"no beneficiary of the world has the contract {code}")


def test_officer_reads_an_agreement_with_its_quote_and_ceilings_then_refuses_it(
    browser: Browser, site: Site, tabs: list[Tab]
) -> None:
    # Given a hospital stay with a private room waiting for the insurer
    world = site.world
    providers.add_conventions(
        world.platform, world.provider_am, AMC, [CareDomain.HOSP], date(2024, 1, 1), "test"
    )
    card = _card_with_contract(site, "EQUILIBRE")
    asked = PriorAuthRequest(card, world.platform.today(), "desk-browser-1", (STAY, ROOM))
    answer, _ = request_prior_auth(world.platform, world.provider_session().principal, asked)
    number = answer.agreement_number
    tab = Tab(browser, site)
    tabs.append(tab)
    page = tab.page
    tab.password_login("assureur", "staff")
    # When the officer opens it from the waiting list
    page.get_by_role("link", name="Accords préalables").click()
    page.get_by_role("link", name=number).click()
    # Then the quote lines, the contract and the remaining ceilings are shown
    expect(page.get_by_role("heading", name=f"Accord préalable {number}")).to_be_visible()
    expect(page.get_by_role("row").filter(has_text="GHS0001")).to_contain_text("Séjour hospitalier")
    room = page.get_by_role("row").filter(has_text="CHP0001")
    expect(room).to_contain_text("Chambre particulière")
    expect(room).to_contain_text("450,00")
    expect(page.get_by_role("table", name="Contrat en vigueur")).to_contain_text("EQUILIBRE")
    ceilings = page.get_by_role("table", name="Plafonds restants en Hospitalisation", exact=False)
    expect(ceilings).to_contain_text("Chambre particulière")
    expect(ceilings).to_contain_text("30 actes")
    assert card.nir is not None
    expect(page.get_by_text(card.nir)).to_have_count(0)
    tab.shot("84-assureur-accord-detail")
    # And refusing without a reason is refused on the field itself
    page.get_by_role("button", name="Refuser").click()
    field = page.get_by_label("Motif (obligatoire pour un refus)")
    expect(field).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#motif-erreur")).to_have_text(
        "Indiquez le motif du refus. (prior_auth.reason_required)"
    )
    tab.shot("85-assureur-accord-motif-manquant")
    page.get_by_label("Motif (obligatoire pour un refus)").fill("Devis sans justificatif")
    page.get_by_role("button", name="Refuser").click()
    expect(page.get_by_role("status")).to_have_text(f"Accord {number} : refusé.")
    expect(page.get_by_text("Devis sans justificatif")).to_be_visible()
