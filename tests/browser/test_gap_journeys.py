"""Journeys of issue 5's portal gaps in a real browser (Debian's chromium).

An insurer's staff member accepts a prior authorisation that the policy left to a person
(a hospital stay). Screenshots go to ``tests/browser/artifacts/``.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date

import pytest
from playwright.sync_api import Browser, expect

from tests.browser.conftest import Site
from tests.browser.test_journeys import Tab
from tierspayant.domain.care import CareDomain
from tierspayant.domain.pricing import PricingLine
from tierspayant.services import providers
from tierspayant.services.identification import CardData
from tierspayant.services.prior_auth import PriorAuthRequest, get_prior_auth, request_prior_auth

pytestmark = pytest.mark.browser

STAY = PricingLine("GHS0001", CareDomain.HOSP, "hospital_stay", 1, 300000, 300000)


@pytest.fixture
def tabs(browser: Browser, site: Site) -> Iterator[list[Tab]]:
    opened: list[Tab] = []
    yield opened
    for tab in opened:
        tab.close()


def _pending_stay(site: Site) -> str:
    """A hospital stay quote sent by the world's provider session: a person must decide.
    The counter refuses a professional without the insurer's convention for the domain, so
    the world's structure first signs it for hospital stays."""
    world = site.world
    amc = world.card["amc_number"]
    providers.add_conventions(
        world.platform, world.provider_am, amc, [CareDomain.HOSP], date(2024, 1, 1), "test"
    )
    principal = world.provider_session().principal
    card = CardData(
        amc_number=world.card["amc_number"],
        birth_date=date.fromisoformat(world.card["birth_date"]),
        nir=world.card["nir"],
        birth_rank=int(world.card["birth_rank"]),
    )
    asked = PriorAuthRequest(card, world.platform.today(), "gap-stay-1", (STAY,))
    answer, _ = request_prior_auth(world.platform, principal, asked)
    assert answer.status == "pending", answer
    return answer.agreement_number


def test_insurer_accepts_a_pending_prior_authorisation(
    browser: Browser, site: Site, tabs: list[Tab]
) -> None:
    # Given a hospital stay waiting for the insurer's decision
    number = _pending_stay(site)
    # When the insurer's staff logs in and opens the agreements waiting for a person
    tab = Tab(browser, site)
    tabs.append(tab)
    tab.password_login("assureur", "staff")
    tab.page.get_by_role("link", name="Accords préalables").click()
    row = tab.page.get_by_role("row").filter(has_text=number)
    expect(row).to_be_visible()
    tab.shot("70-assureur-accord-en-attente")
    # And accepts it with a reason
    row.get_by_label("Motif (obligatoire pour un refus)").fill("Séjour programmé justifié")
    row.get_by_role("button", name="Accorder").click()
    # Then the page says it is granted, and it no longer waits
    expect(tab.page.get_by_role("status")).to_have_text(f"Accord {number} : accordé.")
    expect(tab.page.get_by_role("row").filter(has_text=number)).to_have_count(0)
    tab.shot("71-assureur-accord-accorde")
    principal = site.world.provider_session().principal
    assert get_prior_auth(site.world.platform, principal, number).status == "granted"
