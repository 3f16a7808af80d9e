"""The claims officer's desk in a real browser: a bad beneficiary file answered in
French with line, column and value; the catalogue in force; the undue amounts page and
its flag form's field-level error."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, FilePayload, expect

from tests.browser.conftest import Site
from tests.browser.test_journeys import Tab
from tests.web.world import World

pytestmark = pytest.mark.browser

HEADER = (
    "member_number;nir;birth_rank;birth_date;last_name;first_name;sex;quality;contract;"
    "coverage_start;coverage_end"
)


@pytest.fixture
def tabs(browser: Browser, site: Site) -> Iterator[list[Tab]]:
    opened: list[Tab] = []
    yield opened
    for tab in opened:
        tab.close()


def _line(world: World, member: str, birth_date: str) -> str:
    card = world.other_cards[4]
    sex = "F" if card["nir"].startswith(("2", "4", "8")) else "M"
    cells = (member, card["nir"], card["birth_rank"], birth_date, "Petit", "Léa", sex, "child",
             "ESSENTIEL", "2026-01-01", "")  # fmt: skip
    return ";".join(cells)


def _csv(name: str, text: str) -> FilePayload:
    return {"name": name, "mimeType": "text/csv", "buffer": text.encode("utf-8")}


def test_officer_reads_import_errors_in_french(
    browser: Browser, site: Site, tabs: list[Tab]
) -> None:
    tab = Tab(browser, site)
    tabs.append(tab)
    world = site.world
    tab.password_login("assureur", "staff")
    page = tab.page
    page.get_by_role("link", name="Import des bénéficiaires").click()
    # A file whose third line writes the birth date the French way
    good = _line(world, "DESK2-B1", world.other_cards[4]["birth_date"])
    bad = _line(world, "DESK2-B2", "03/02/2011")
    page.get_by_label("Fichier CSV").set_input_files(
        files=[_csv("mouvements.csv", f"{HEADER}\n{good}\n{bad}\n")]
    )
    page.get_by_role("button", name="Importer").click()
    rejects = page.locator("#rejets")
    expect(rejects).to_contain_text(
        "ligne 3, colonne « birth_date » : date attendue au format AAAA-MM-JJ"
    )
    expect(rejects).to_contain_text("(valeur « ••/••/•••• »)")
    assert "03/02/2011" not in page.content()
    assert world.other_cards[4]["nir"] not in page.content()
    tab.shot("60-assureur-rejets-import")

    # A header with a column the format does not know: refused, the column named
    header = HEADER.replace("birth_date", "date_naissance")
    page.get_by_label("Fichier CSV").set_input_files(
        files=[_csv("entete.csv", f"{header}\n{good}\n")]
    )
    page.get_by_role("button", name="Importer").click()
    expect(page.get_by_role("alert")).to_contain_text(
        "ligne 1 (en-tête), colonne 4 « date_naissance » : colonne inconnue"
    )
    tab.shot("61-assureur-entete-refusee")


def test_officer_reads_the_catalogue_and_the_undue_amounts(
    browser: Browser, site: Site, tabs: list[Tab]
) -> None:
    tab = Tab(browser, site)
    tabs.append(tab)
    tab.password_login("assureur", "staff")
    page = tab.page
    page.get_by_role("link", name="Catalogue de garanties").click()
    in_force = page.locator("#en-vigueur")
    expect(in_force.get_by_role("heading", name="Catalogue en vigueur")).to_be_visible()
    expect(in_force).to_contain_text("Contrat ESSENTIEL")
    expect(in_force).to_contain_text("Historique des éditions")
    tab.shot("62-assureur-catalogue-en-vigueur")

    page.get_by_role("link", name="Indus").click()
    expect(page.get_by_role("heading", name="Indus et leur recouvrement")).to_be_visible()
    page.get_by_label("Numéro de facture").fill("F-ABSENTE-1")
    page.get_by_label("Ligne", exact=True).fill("1")
    page.get_by_label("Motif").select_option(label="Soins non réalisés")
    page.get_by_role("button", name="Déclarer indue").click()
    expect(page.locator("#invoice_number-erreur")).to_contain_text(
        "Aucune facture de votre organisme ne porte ce numéro."
    )
    expect(page.get_by_label("Numéro de facture")).to_have_attribute("aria-invalid", "true")
    tab.shot("63-assureur-indus-erreur")
