"""The member's journey of issue 15 (point 5) in a real browser: my guarantees with what
my family used of the ceilings, my reimbursements naming the professional and the family
member, and my insurer's contact. Screenshots go to ``tests/browser/artifacts/``."""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
from playwright.sync_api import Browser, expect

from tests.browser.conftest import Site
from tests.browser.test_journeys import Tab
from tests.money_support import ACCEPTED, REDUCED, adjudicated_claim, make_provider, next_pay_day
from tests.web.world import AMC
from tierspayant.services import payments
from tierspayant.store.beneficiaries import family_members, find_by_nir_index
from tierspayant.store.claims_tables import benefit_counters
from tierspayant.store.read_models.member import nir_index

pytestmark = pytest.mark.browser


@pytest.fixture
def tabs() -> Iterator[list[Tab]]:
    opened: list[Tab] = []
    yield opened
    for tab in opened:
        tab.close()


def _paid_family(site: Site, out: Path) -> tuple[str, str, str]:
    """The member's and a relative's care paid by a run, and the relative's dental use;
    the two professionals' names and the relative's first-name-free id text."""
    world = site.world
    platform = world.platform
    with platform.engine.connect() as conn:
        own = find_by_nir_index(
            conn, world.insurer_id, nir_index(conn, world.insurer_id, world.beneficiary_id)
        )
        assert own is not None
        relative = next(
            r.id for r in family_members(conn, world.insurer_id, own.idx_family) if r.id != own.id
        )
    rng = random.Random(1515)
    mine, theirs = make_provider(platform, rng), make_provider(platform, rng)
    year = platform.today().year
    for provider, person, line in ((mine, own.id, ACCEPTED), (theirs, relative, REDUCED)):
        adjudicated_claim(
            platform, insurer_id=world.insurer_id, amc_number=AMC, provider_id=provider.id,
            beneficiary_id=person, lines=(line,), care_date=date(year, 11, 2),
        )  # fmt: skip
    payments.run_payments(platform, next_pay_day(platform), out_dir=out)
    with platform.engine.begin() as conn:
        conn.execute(
            benefit_counters.insert().values(
                insurer_id=world.insurer_id, beneficiary_id=relative, counter_key="dental",
                care_date=date(year, 3, 4), claim_id=424242, used_cents=25_000, used_units=1,
            )
        )  # fmt: skip
    return mine.name, theirs.name, str(year)


def test_member_reads_guarantees_reimbursements_and_contact(
    browser: Browser, site: Site, tabs: list[Tab], tmp_path: Path
) -> None:
    mine, theirs, year = _paid_family(site, tmp_path)
    started = time.monotonic()
    tab = Tab(browser, site)
    tabs.append(tab)
    tab.password_login("adherent", "member")
    page = tab.page
    nav = page.get_by_role("navigation")

    nav.get_by_role("link", name="Mes garanties").click()
    expect(page.get_by_role("heading", name="Mes garanties", exact=True)).to_be_visible()
    expect(page.get_by_text("Votre contrat : Équilibre — 150 % BR")).to_be_visible()
    expect(page.get_by_text("Contrat responsable", exact=True)).to_be_visible()
    dental = page.get_by_role("table", name="Remboursement de votre complémentaire — Dentaire")
    expect(dental.get_by_role("row", name="Prothèse dentaire")).to_contain_text(
        "250 % de la base de remboursement"
    )
    expect(dental).to_contain_text("Plafond : 1 000,00 € par année civile")
    # The relative's ceilings (the last table, not the member's own): 250 € used of 1 000 €.
    relative = page.locator("table").filter(has_not_text="(vous)").last
    dental_ceiling = relative.get_by_role("row", name="Prothèse dentaire, Implant dentaire")
    expect(dental_ceiling.get_by_role("cell")).to_have_text(
        [f"du 01/01/{year} au 31/12/{year}", "1 000,00 €", "250,00 €", "750,00 €"]
    )
    contact = page.get_by_role("region", name="Contacter votre organisme complémentaire")
    expect(contact).to_contain_text("Mutuelle des Tilleuls — service adhérents")
    expect(contact.get_by_role("link", name="01 99 00 12 34")).to_have_attribute(
        "href", "tel:0199001234"
    )
    tab.shot("70-adherent-garanties")

    nav.get_by_role("link", name="Mes remboursements").click()
    expect(page.get_by_role("heading", name="Mes remboursements")).to_be_visible()
    mine_row = page.get_by_role("row").filter(has_text=mine)
    expect(mine_row).to_contain_text("(vous)")
    expect(mine_row).to_contain_text("Pharmacie")
    theirs_row = page.get_by_role("row").filter(has_text=theirs)
    expect(theirs_row).not_to_contain_text("(vous)")
    expect(theirs_row).to_contain_text("Médecins")
    expect(page.get_by_text("Contactez votre organisme complémentaire.")).to_be_visible()
    expect(
        page.get_by_role("region", name="Contacter votre organisme complémentaire")
    ).to_contain_text("adherents@mutuelle-des-tilleuls.example")
    tab.shot("71-adherent-remboursements")
    print(f'{{"bench": "member_journey", "seconds": {time.monotonic() - started:.2f}}}')
