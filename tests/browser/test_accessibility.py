"""Accessibility of every portal page: axe-core's WCAG 2.1 A/AA rules in Debian's chromium.

One sweep per kind of visitor (anonymous, professional, insurer's staff, member, security
team), each in one browser context logged in once: every GET page of the portal in its
main states (empty form, form with errors, result shown) is checked, and the sweep fails
on any ``serious`` or ``critical`` violation. The pages come from the application's route
table: a GET route under /portail/ that no sweep checks and that ``SKIPPED`` does not
list (with its reason) fails the sweep that owns it, so a new page is checked or named.

CI runs the main states; ``make a11y`` (``TIERSPAYANT_A11Y_FULL=1``) adds the others
(notices, second results, a confirmation step). Counts per page, per impact and per rule
go to ``tests/browser/artifacts/accessibility.json``. See docs/portals.md.
"""

from __future__ import annotations

import random
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pyotp
import pytest
import yaml
from playwright.sync_api import Browser, FilePayload, Page, expect

from tests.browser.axe import (
    FULL,
    Sweep,
    axe_script,
    portal_get_routes,
    write_report,
)
from tests.browser.conftest import ARTIFACTS, Site
from tests.browser.test_gap_journeys import STAY
from tests.factories import make_french_iban
from tests.money_support import ACCEPTED, REDUCED, adjudicated_claim, next_pay_day
from tests.support import world as core
from tests.web.world import AMC, CATALOGUE_FILE, card_codes
from tierspayant.api.app import create_app
from tierspayant.demo.accounts import demo_password
from tierspayant.demo.builder import demo_catalogue
from tierspayant.domain.care import CareDomain
from tierspayant.domain.containment import ScopeKind
from tierspayant.security.principal import PrincipalKind
from tierspayant.services import accounts, alerts, bank_details, payments, providers
from tierspayant.services.accounts import AccountKind
from tierspayant.services.eligibility import RightsCheck, check_rights
from tierspayant.services.identification import CardData
from tierspayant.services.prior_auth import PriorAuthRequest, request_prior_auth

pytestmark = pytest.mark.browser

REPORT = ARTIFACTS / "accessibility.json"
PROVIDER_CLIENT = PrincipalKind.PROVIDER_CLIENT.value
PASSWORD_PORTALS = ("assureur", "adherent", "securite")
# GET routes that are not pages: each with the reason it is not checked.
SKIPPED = {
    "/portail/prestataire/oidc/debut": "redirects to the identity provider: no page of ours",
    "/portail/prestataire/paiements/{advice_id}/avis.csv": "file download (CSV)",
    "/portail/prestataire/paiements/{advice_id}/avis.pdf": "file download (PDF)",
    "/portail/assureur/import/{run_id}/erreurs.csv": "file download (CSV)",
    "/portail/assureur/releves/{period}/{document}": "file download (PDF, CSV, XML)",
}
# Which sweep owns a route, from its policy: public pages are the anonymous visitor's.
OWNER = {
    "public": "public",
    "provider": "prestataire",
    "insurer_staff": "assureur",
    "member": "adherent",
    "operator_staff": "securite",
}


@dataclass(frozen=True)
class Paid:
    """A second professional's RPPS and id, and the claims paid to them."""

    rpps: str
    provider_id: int
    claim_ids: tuple[int, ...]


@dataclass(frozen=True)
class Seeded:
    """What the sweeps' pages show besides the world: results to display, not to test."""

    payload: str  # the text of the member's card QR code
    datamatrix: str  # the text of its DataMatrix (a family card: the patient is chosen)
    paid: Paid  # a second professional, with an IBAN and a payment received
    agreement: str  # a prior authorisation waiting for the insurer's decision
    enrol: dict[str, tuple[str, str]]  # portal slug -> login, password of an account to enrol


def _enrollable(site: Site, slug: str) -> tuple[str, str]:
    """A fresh account of the portal's kind, without a second factor yet."""
    world = site.world
    login, password = f"a11y.{slug}@enrolement.example", demo_password()
    kind = {
        "assureur": AccountKind.INSURER_STAFF,
        "adherent": AccountKind.MEMBER,
        "securite": AccountKind.OPERATOR_STAFF,
    }[slug]
    beneficiary = None
    if kind is AccountKind.MEMBER:
        other = world.other_cards[-1]
        data = CardData(
            AMC, date.fromisoformat(other["birth_date"]), other["nir"], int(other["birth_rank"])
        )
        beneficiary = core.beneficiary_id(world.platform, data)
    accounts.create_account(
        world.platform, kind, login, password, actor="test:a11y",
        insurer_id=world.insurer_id if kind is not AccountKind.OPERATOR_STAFF else None,
        beneficiary_id=beneficiary,
    )  # fmt: skip
    return login, password


def _card(fields: dict[str, str]) -> CardData:
    return CardData(
        AMC, date.fromisoformat(fields["birth_date"]), fields["nir"], int(fields["birth_rank"])
    )


def _paid_professional(site: Site, out: Path) -> Paid:
    """A second pharmacy, with an IBAN and an account, paid for two of the member's claims
    (the world's own pharmacy has no IBAN: nothing is ever paid to it)."""
    world = site.world
    platform = world.platform
    paid = core.add_provider(
        platform, random.Random(1708), "pharmacy", name="Pharmacie des Accès",
        amcs=(AMC,), since=date(2024, 1, 1), rpps=True, iban=True,
    )  # fmt: skip
    assert paid.rpps is not None
    accounts.create_account(
        platform, AccountKind.PROVIDER_USER, None, None, actor="test:a11y",
        provider_id=paid.id, rpps=paid.rpps,
    )  # fmt: skip
    year = platform.today().year
    claim_ids = []
    for line, day in ((ACCEPTED, 2), (REDUCED, 3)):
        claim_id = adjudicated_claim(
            platform, insurer_id=world.insurer_id, amc_number=AMC, provider_id=paid.id,
            beneficiary_id=world.beneficiary_id, lines=(line,), care_date=date(year, 1, day),
        )  # fmt: skip
        claim_ids.append(claim_id)
    payments.run_payments(platform, next_pay_day(platform), out_dir=out)
    return Paid(paid.rpps, paid.id, tuple(claim_ids))


@pytest.fixture(scope="module")
def seeded(site: Site, tmp_path_factory: pytest.TempPathFactory) -> Seeded:
    """Rows for the lists and charts: rights checks (two without card: a soft alert), paid
    claims, a bank details change, a prior authorisation waiting for a person, a suspended
    principal."""
    world = site.world
    platform = world.platform
    out = tmp_path_factory.mktemp("a11y")
    payload, datamatrix = card_codes(world, out)
    principal = world.provider_session().principal
    today = platform.today()
    for fields in world.other_cards[:2]:
        check_rights(platform, principal, RightsCheck(_card(fields), today, tuple(CareDomain)))
    providers.add_conventions(
        platform, world.provider_am, AMC, [CareDomain.HOSP], date(2024, 1, 1), "test:a11y"
    )
    asked = PriorAuthRequest(_card(world.card), today, "a11y-stay-1", (STAY,))
    agreement, _ = request_prior_auth(platform, principal, asked)
    bank_details.request_change(platform, principal, make_french_iban(random.Random(11)))
    paid = _paid_professional(site, out)
    with platform.engine.begin() as conn:
        alerts.suspend_principal(
            platform, conn, "client:a11y-scraper", "guard.bot_speed", kind=PROVIDER_CLIENT
        )
    enrol = {slug: _enrollable(site, slug) for slug in PASSWORD_PORTALS}
    return Seeded(payload, datamatrix, paid, agreement.agreement_number, enrol)


# --------------------------------------------------------------------------- logins


def _password_login(sweep: Sweep, site: Site, name: str, slug: str) -> None:
    account = site.world.logins[name]
    page = sweep.go(f"/portail/{slug}/connexion")
    page.get_by_label("Identifiant").fill(account.login)
    page.get_by_label("Mot de passe").fill(account.password)
    page.get_by_role("button", name="Continuer").click()
    page.get_by_label("Code à 6 chiffres").fill(site.world.code(name))
    page.get_by_role("button", name="Se connecter").click()
    expect(page.get_by_role("button", name="Se déconnecter", exact=True)).to_be_visible()


def _provider_login(sweep: Sweep, site: Site, rpps: str | None = None) -> None:
    rpps = rpps or site.world.rpps
    site.issuer.next_login(sub=f"psc-{rpps}", rpps=rpps)
    page = sweep.go("/portail/prestataire/connexion")
    page.get_by_role("link", name="Se connecter avec Pro Santé Connect").click()
    expect(page.get_by_role("heading", name="Espace professionnel")).to_be_visible()


# --------------------------------------------------------------------------- the sweeps


def _fill_card(page: Page, card: dict[str, str], payload: str = "") -> None:
    if payload:
        page.get_by_label("Code 2D de la carte").fill(payload)
    page.get_by_label("Numéro de l'organisme complémentaire").fill(card["amc_number"])
    page.get_by_label("Date de naissance").fill(card["birth_date"])
    page.get_by_label("NIR").fill(card["nir"])
    page.get_by_label("Rang de naissance").fill(card["birth_rank"])


def _fill_act(page: Page, billed: str) -> None:
    page.get_by_label("Code de l'acte").fill("3400930000001")
    page.get_by_label("Domaine").select_option("PHAR")
    page.get_by_label("Famille d'actes").select_option("drug_65")
    page.get_by_label("Montant facturé").fill(billed)
    page.get_by_label("Base de remboursement").fill("10,00")


def sweep_public(sweep: Sweep, site: Site, seeded: Seeded) -> None:
    page = sweep.page
    sweep.visit("/", "accueil du site")  # not a portal page, but the way into them
    sweep.visit("/portail/", "choix de l'espace")
    sweep.visit("/portail/prestataire/connexion", "connexion")
    if FULL:
        sweep.visit("/portail/prestataire/connexion?motif=deconnecte", "déconnecté")
    sweep.visit("/portail/prestataire/oidc/retour", "connexion refusée")
    for slug in PASSWORD_PORTALS:
        root = f"/portail/{slug}/connexion"
        sweep.visit(root, "formulaire vide")
        if FULL:
            sweep.visit(f"{root}?motif=expiree", "session expirée")
        page.get_by_label("Identifiant").fill(f"inconnu@{slug}.example")
        page.get_by_label("Mot de passe").fill("pas le bon mot de passe")
        page.get_by_role("button", name="Continuer").click()
        expect(page.get_by_role("alert")).to_be_visible()
        sweep.check(root, "identifiants refusés")
        login, password = seeded.enrol[slug]
        page.get_by_label("Identifiant").fill(login)
        page.get_by_label("Mot de passe").fill(password)
        page.get_by_role("button", name="Continuer").click()
        enrolment = page.get_by_role("heading", name="Activer la double authentification")
        expect(enrolment).to_be_visible()
        sweep.check(f"{root}/enrolement", "code à scanner")
        secret = page.locator("#totp-secret").inner_text().strip()
        page.get_by_label("Premier code affiché").fill(pyotp.TOTP(secret).at(site.world.clock()))
        page.get_by_role("button", name="Activer").click()
        expect(page.get_by_role("heading", name="Vos codes de secours")).to_be_visible()
        sweep.check(f"{root}/enrolement", "codes de secours")
        page.context.clear_cookies()
        # The account now has its second factor: the code page, and a wrong code
        sweep.go(root)
        page.get_by_label("Identifiant").fill(login)
        page.get_by_label("Mot de passe").fill(password)
        page.get_by_role("button", name="Continuer").click()
        expect(page.get_by_role("heading", name="Code de vérification")).to_be_visible()
        sweep.check(f"{root}/code", "formulaire vide")
        page.get_by_label("Code à 6 chiffres").fill("000000")
        page.get_by_role("button", name="Se connecter").click()
        expect(page.get_by_role("alert")).to_be_visible()
        sweep.check(f"{root}/code", "code refusé")
        page.context.clear_cookies()


def sweep_provider(sweep: Sweep, site: Site, seeded: Seeded) -> None:
    card = site.world.card
    page = sweep.page
    _provider_login(sweep, site)
    sweep.visit("/portail/prestataire/", "accueil")
    # Rights: empty, refused, answered
    sweep.visit("/portail/prestataire/droits", "formulaire vide")
    page.get_by_role("button", name="Vérifier").click()
    expect(page.locator("#resultat").get_by_role("alert")).to_be_visible()
    sweep.check("/portail/prestataire/droits", "erreurs")
    _fill_card(page, card, seeded.payload)
    page.get_by_role("button", name="Vérifier").click()
    expect(page.locator("#resultat").get_by_role("heading", name="Droits au")).to_be_visible()
    sweep.check("/portail/prestataire/droits", "résultat")
    # The family card's DataMatrix read: the patient to choose among its beneficiaries
    sweep.go("/portail/prestataire/droits")
    page.get_by_label("Code 2D de la carte").fill(seeded.datamatrix)
    expect(page.get_by_label("Numéro de l'organisme complémentaire")).to_have_value(AMC)
    sweep.check("/portail/prestataire/droits", "carte familiale lue")
    # Calculation: empty, refused, calculated (and invoiced, in the full sweep)
    sweep.visit("/portail/prestataire/calcul", "formulaire vide")
    _fill_act(page, "dix euros")
    page.get_by_role("button", name="Calculer").click()
    expect(page.locator("#resultat").get_by_role("alert")).to_be_visible()
    sweep.check("/portail/prestataire/calcul", "erreurs")
    _fill_card(page, card, seeded.payload)
    _fill_act(page, "10,00")
    page.get_by_role("button", name="Calculer").click()
    expect(page.locator("#resultat").get_by_role("heading", name="Répartition")).to_be_visible()
    sweep.check("/portail/prestataire/calcul", "résultat")
    if FULL:
        page.locator("#resultat").get_by_label("Numéro de facture").fill("A11Y-CALC-1")
        page.get_by_role("button", name="Facturer ce calcul").click()
        expect(page.locator("#accuse")).to_be_visible()
        sweep.check("/portail/prestataire/calcul", "facture envoyée")
    sweep.visit("/portail/prestataire/engagements", "liste")
    # Prior authorisation: empty, refused, answered
    sweep.visit("/portail/prestataire/accords", "formulaire vide")
    _fill_act(page, "dix euros")
    page.get_by_role("button", name="Demander l'accord").click()
    expect(page.locator("#resultat").get_by_role("alert")).to_be_visible()
    sweep.check("/portail/prestataire/accords", "erreurs")
    _fill_card(page, card, seeded.payload)
    _fill_act(page, "10,00")
    page.get_by_role("button", name="Demander l'accord").click()
    expect(page.locator("#resultat")).not_to_be_empty()
    sweep.check("/portail/prestataire/accords", "réponse")
    # Invoice: empty, a field refused, received
    sweep.visit("/portail/prestataire/factures", "formulaire vide")
    if FULL:
        sweep.visit("/portail/prestataire/factures?lignes=3", "trois lignes")
        sweep.go("/portail/prestataire/factures")
    _fill_invoice(page, card, seeded.payload, amount="dix")
    page.get_by_role("button", name="Envoyer la facture").click()
    expect(page.locator("[aria-invalid=true]").first).to_be_visible()
    sweep.check("/portail/prestataire/factures", "erreurs")
    _fill_invoice(page, card, seeded.payload, amount="3,50")
    page.get_by_role("button", name="Envoyer la facture").click()
    expect(page.locator("#accuse")).to_be_visible()
    sweep.check("/portail/prestataire/factures", "accusé de réception")
    # Follow-up: empty, an invoice, an agreement, unknown
    page.locator("#accuse").get_by_role("link", name="Suivre cette facture").click()
    expect(page.get_by_role("heading", name="Facture A11Y-1")).to_be_visible()
    sweep.check("/portail/prestataire/suivi", "facture")
    sweep.visit("/portail/prestataire/suivi", "formulaire vide")
    sweep.visit(f"/portail/prestataire/suivi?accord={seeded.agreement}", "accord")
    if FULL:
        sweep.visit("/portail/prestataire/suivi?facture=999999999", "introuvable")
    # Bank details: the pending change listed, a refused IBAN (the change stays pending)
    sweep.visit("/portail/prestataire/coordonnees-bancaires", "demande en cours")
    page.get_by_label("Nouvel IBAN").fill("FR00 1234")
    page.get_by_role("button", name="Demander le changement").click()
    expect(page.get_by_role("alert")).to_be_visible()
    sweep.check("/portail/prestataire/coordonnees-bancaires", "erreurs")
    sweep.visit("/portail/prestataire/conventions", "liste")
    sweep.visit("/portail/prestataire/factures/mes-factures", "liste")
    sweep.visit("/portail/prestataire/factures/rejets", "liste")
    sweep.visit("/portail/prestataire/factures/corriger?facture=A11Y-1", "formulaire prérempli")
    sweep.visit("/portail/prestataire/paiements", "aucun paiement")
    # Another professional, paid by a run: the payments and their advices
    page.context.clear_cookies()
    _provider_login(sweep, site, seeded.paid.rpps)
    sweep.visit("/portail/prestataire/paiements", "virements reçus")
    expect(page.get_by_role("link", name="Télécharger (PDF)").first).to_be_visible()


def _fill_invoice(page: Page, card: dict[str, str], payload: str, *, amount: str) -> None:
    page.get_by_label("Numéro de facture").fill("A11Y-1")
    _fill_card(page, card)
    page.get_by_label("Code 2D de la carte").fill(payload)
    page.get_by_label("Code de l'acte").fill("3400930000001")
    page.get_by_label("Domaine").select_option("PHAR")
    page.get_by_label("Famille d'actes").select_option("drug_65")
    page.get_by_label("Base de remboursement").fill("10,00")
    page.get_by_label("Montant facturé").fill("10,00")
    page.get_by_label("Taux AMO").fill("65")
    page.get_by_label("Part AMO payée").fill("6,50")
    page.get_by_label("Part complémentaire demandée").fill(amount)


def sweep_insurer(sweep: Sweep, site: Site, seeded: Seeded) -> None:
    page = sweep.page
    _password_login(sweep, site, "staff", "assureur")
    sweep.visit("/portail/assureur/", "tableau de bord")
    # Catalogue: empty, refused with its report (valid, in the full sweep)
    sweep.visit("/portail/assureur/catalogue", "formulaire vide")
    bad = demo_catalogue(CATALOGUE_FILE)
    for contract in bad["contracts"]:  # type: ignore[attr-defined]
        contract["covers_participation"] = True
    _upload(page, "Fichier du catalogue", "catalogue.yaml", yaml.safe_dump(bad).encode())
    page.get_by_role("button", name="Valider et déposer").click()
    expect(page.locator("#rapport").get_by_role("alert")).to_be_visible()
    sweep.check("/portail/assureur/catalogue", "catalogue refusé")
    if FULL:
        good = yaml.safe_dump(demo_catalogue(CATALOGUE_FILE)).encode()
        _upload(page, "Fichier du catalogue", "catalogue.yaml", good)
        page.get_by_role("button", name="Valider et déposer").click()
        expect(page.locator("#rapport").get_by_role("status")).to_be_visible()
        sweep.check("/portail/assureur/catalogue", "catalogue valide")
    # Import: empty, a summary with rejected lines (a confirmation step, full sweep)
    sweep.visit("/portail/assureur/import", "formulaire vide")
    lines = (site.world.platform.settings.data_dir / "beneficiaires.csv").read_bytes()
    header, *rows = lines.splitlines()
    broken = b"\n".join([header, rows[0], b";".join([b"x"] * header.count(b";"))]) + b"\n"
    _upload(page, "Fichier CSV", "mouvements.csv", broken)
    page.get_by_role("button", name="Importer").click()
    expect(page.locator("#resume")).to_be_visible()
    sweep.check("/portail/assureur/import", "compte rendu avec rejets")
    if FULL:
        sweep.go("/portail/assureur/import")
        _upload(page, "Fichier CSV", "population.csv", b"\n".join([header, *rows[:-3]]) + b"\n")
        page.get_by_label("Population complète").check()
        page.get_by_role("button", name="Importer").click()
        expect(page.locator("#confirmation")).to_be_visible()
        sweep.check("/portail/assureur/import", "confirmation des radiations")
    sweep.visit("/portail/assureur/accords", "demande en attente")
    if FULL:
        row = page.get_by_role("row").filter(has_text=seeded.agreement)
        row.get_by_label("Motif").fill("Séjour programmé justifié")
        row.get_by_role("button", name="Accorder").click()
        expect(page.get_by_role("status")).to_be_visible()
        decided = f"/portail/assureur/accords/{seeded.agreement}"
        sweep.check("/portail/assureur/accords", "décision enregistrée", host=decided)
    sweep.visit("/portail/assureur/alertes", "liste")
    sweep.visit("/portail/assureur/factures", "graphiques")
    sweep.visit("/portail/assureur/engagements", "liste")
    sweep.visit("/portail/assureur/releves", "liste")
    sweep.visit("/portail/assureur/coordonnees-bancaires", "demande en attente")
    sweep.visit("/portail/assureur/contestations", "liste")
    sweep.visit("/portail/assureur/indus", "liste")
    # The claims desk: an agreement in detail, the invoice search, an invoice, its provider
    agreement = f"/portail/assureur/accords/{seeded.agreement}"
    sweep.visit(agreement, "détail", route="/portail/assureur/accords/{number}")
    search = "/portail/assureur/factures/recherche"
    sweep.visit(search, "formulaire vide")
    sweep.go(f"{search}?du=pas-une-date")
    expect(page.get_by_role("alert").first).to_be_visible()
    sweep.check(search, "erreurs")
    claim = seeded.paid.claim_ids[0]
    sweep.go(f"{search}?facture=F{claim:08d}")  # the money tests' invoice numbers
    expect(page.get_by_role("table", name="Factures trouvées")).to_be_visible()
    sweep.check(search, "résultats")
    sweep.visit(
        f"/portail/assureur/factures/{claim}",
        "facture",
        route="/portail/assureur/factures/{claim_id:int}",
    )
    provider = seeded.paid.provider_id
    sweep.visit(
        f"/portail/assureur/prestataires/{provider}",
        "professionnel",
        route="/portail/assureur/prestataires/{provider_id:int}",
    )


def _upload(page: Page, label: str, name: str, body: bytes) -> None:
    payload: FilePayload = {"name": name, "mimeType": "text/plain", "buffer": body}
    page.get_by_label(label).set_input_files(files=[payload])


def sweep_member(sweep: Sweep, site: Site, seeded: Seeded) -> None:
    _password_login(sweep, site, "member", "adherent")
    sweep.visit("/portail/adherent/", "consultations")
    sweep.visit("/portail/adherent/garanties", "garanties et plafonds")
    sweep.visit("/portail/adherent/remboursements", "remboursements")
    sweep.visit("/portail/adherent/carte", "carte émise")
    sweep.visit("/portail/adherent/mes-donnees", "téléchargement")
    # (No new card is downloaded here: it would revoke the one the professional scans.)


def sweep_security(sweep: Sweep, site: Site, seeded: Seeded) -> None:
    page = sweep.page
    _password_login(sweep, site, "operator1", "securite")
    sweep.visit("/portail/securite/", "console")
    expect(page.get_by_role("button", name="Révoquer sessions et jetons").first).to_be_visible()
    # The fragments htmx loads into the console: the alerts (polled) and the audit chain
    expect(page.locator("#alertes table")).to_be_visible()
    sweep.check("/portail/securite/alertes", "alertes en direct", host="/portail/securite/")
    expect(page.locator("#audit").get_by_role("status")).to_be_visible()
    sweep.check("/portail/securite/audit", "chaîne vérifiée", host="/portail/securite/")
    # The incident's scope: refused (no principal nor structure), then computed
    today = site.world.platform.today().isoformat()
    page.get_by_label("Du").fill(today)
    page.get_by_label("Au (inclus)").fill(today)
    page.get_by_role("button", name="Calculer le périmètre").click()
    expect(page.get_by_role("alert").first).to_be_visible()
    sweep.check("/portail/securite/", "périmètre refusé", host=_at(page, INCIDENT))
    page.get_by_label("ou structure").fill(site.world.structure)
    page.get_by_role("button", name="Calculer le périmètre").click()
    expect(page.get_by_role("status").filter(has_text="personne(s) lue(s)")).to_be_visible()
    sweep.check("/portail/securite/", "périmètre calculé", host=_at(page, INCIDENT))
    sweep.visit("/portail/securite/canaris", "liste")
    # Containment: the list, a refused proposal, a proposal waiting for a second operator
    sweep.visit("/portail/securite/confinement", "liste")
    _propose(page, "n'existe pas")
    expect(page.get_by_role("alert")).to_be_visible()
    sweep.check("/portail/securite/confinement", "erreurs", host=PROPOSED)
    if FULL:  # proposed only: nothing is in force before a second operator approves
        _propose(page, AMC)
        expect(page.get_by_role("status")).to_be_visible()
        sweep.check("/portail/securite/confinement", "bascule proposée", host=PROPOSED)


PROPOSED = "/portail/securite/confinement/proposer"
INCIDENT = "/portail/securite/incident"


def _at(page: Page, posted: str) -> str:
    """The console's path, or ``posted`` when the incident form was posted as a page
    rather than swapped in by htmx."""
    return posted if page.url.split("#")[0].endswith(posted) else "/portail/securite/"


def _propose(page: Page, insurer: str) -> None:
    page.get_by_label("Périmètre").select_option(ScopeKind.INSURER.value)
    page.get_by_label("Valeur").fill(insurer)
    page.get_by_label(re.compile(r"^Motif(?! de la levée)")).fill("Essai d'accessibilité")
    page.get_by_role("button", name="Proposer", exact=True).click()


SWEEPS: dict[str, Callable[[Sweep, Site, Seeded], None]] = {
    "public": sweep_public,
    "prestataire": sweep_provider,
    "assureur": sweep_insurer,
    "adherent": sweep_member,
    "securite": sweep_security,
}


# --------------------------------------------------------------------------- the tests


@pytest.fixture(scope="module")
def portal_routes(site: Site) -> dict[str, str]:
    return portal_get_routes(create_app(site.world.platform))


def owned_routes(routes: dict[str, str], name: str) -> set[str]:
    return {path for path, rule in routes.items() if OWNER.get(rule) == name}


def test_every_portal_get_route_has_a_sweep_and_every_skip_a_route(
    portal_routes: dict[str, str],
) -> None:
    assert len(portal_routes) > 40
    orphans = sorted(p for p, rule in portal_routes.items() if rule not in OWNER)
    assert orphans == [], f"GET portal routes that no accessibility sweep visits: {orphans}"
    stale = sorted(set(SKIPPED) - set(portal_routes))
    assert stale == [], f"SKIPPED names routes that do not exist: {stale}"


@pytest.fixture
def sweep_of(browser: Browser, site: Site, seeded: Seeded) -> Iterator[Callable[[str], Sweep]]:
    script = axe_script()
    contexts = []

    def open_sweep(name: str) -> Sweep:
        # bypass_csp: the only way to add axe's script; no other test's context has it.
        context = browser.new_context(locale="fr-FR", bypass_csp=True)
        contexts.append(context)
        return Sweep(name, site.url, context.new_page(), script)

    yield open_sweep
    for context in contexts:
        context.close()


@pytest.mark.parametrize("name", list(SWEEPS))
def test_portal_pages_have_no_serious_accessibility_violation(
    name: str,
    sweep_of: Callable[[str], Sweep],
    site: Site,
    seeded: Seeded,
    portal_routes: dict[str, str],
) -> None:
    # Given one browser context for this kind of visitor
    sweep = sweep_of(name)
    started = time.monotonic()
    # When every page of theirs is checked in its main states
    SWEEPS[name](sweep, site, seeded)
    seconds = time.monotonic() - started
    write_report(REPORT, sweep, seconds)
    print(f'{{"bench": "a11y_{name}", "seconds": {seconds:.1f}, "checks": {len(sweep.checked)}}}')
    # Then every GET route of theirs was checked or is skipped with a reason
    unchecked = owned_routes(portal_routes, name) - sweep.routes() - set(SKIPPED)
    assert unchecked == set(), f"pages not checked for accessibility: {sorted(unchecked)}"
    # And no page has a serious or critical violation
    assert sweep.failures() == "", "serious or critical violations:\n" + sweep.failures()


def test_the_sweep_reports_what_axe_finds(sweep_of: Callable[[str], Sweep]) -> None:
    # Given the chooser page with an unlabelled field, grey-on-grey text and a link whose
    # focus is not shown added
    sweep = sweep_of("controle")
    page = sweep.go("/portail/")
    page.evaluate(
        """() => {
        const main = document.querySelector('main');
        main.insertAdjacentHTML('beforeend',
          '<input id="a11y-no-label"><p id="a11y-faint">texte illisible</p>'
          + '<p><a id="a11y-no-focus" href="#contenu">focus invisible</a></p>');
        const faint = document.getElementById('a11y-faint');
        faint.style.color = '#bbb'; faint.style.background = '#ccc';
        const hidden = document.getElementById('a11y-no-focus').style;
        hidden.outline = 'none'; hidden.boxShadow = 'none';
    }"""
    )
    # When it is checked
    checked = sweep.check("/portail/", "champ sans étiquette")
    # Then the three are serious or critical violations, named with their target
    found = {(v.rule, v.targets) for v in checked.blocking}
    assert ("label", ("#a11y-no-label",)) in found
    assert ("color-contrast", ("#a11y-faint",)) in found
    assert ("tp-focus-visible", ("#a11y-no-focus",)) in found
    assert "#a11y-no-label" in sweep.failures()
