"""The member portal a member would choose (issue 15, point 5), through the real app:
the guarantees page with the family's ceilings, statements naming the professional and
the family member, and the insurer's contact wherever a page says to contact it."""

from __future__ import annotations

import random
import re
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import date
from html import unescape

import pytest
from sqlalchemy import func, select

from tests.money_support import ACCEPTED, REDUCED, adjudicated_claim, make_provider, next_pay_day
from tests.web.portal_client import PortalClient
from tests.web.world import AMC, CATALOGUE_FILE, INSURER_NAME, World, build_world
from tierspayant.demo.builder import demo_catalogue
from tierspayant.services import insurers, payments
from tierspayant.store.beneficiaries import family_members, find_by_nir_index
from tierspayant.store.claims_tables import benefit_counters
from tierspayant.store.read_models.member import family_paid_lines, nir_index
from tierspayant.store.tables import audit_events, beneficiaries

GUARANTEES = "/portail/adherent/garanties"
STATEMENT = "/portail/adherent/remboursements"
PHONE = "01 99 00 12 34"
EMAIL = "adherents@mutuelle-des-tilleuls.example"


@dataclass(frozen=True)
class Family:
    world: World
    own_id: int
    relative_id: int  # another beneficiary of the member's family
    stranger_id: int  # a beneficiary of another family
    own_provider: str
    relative_provider: str
    stranger_provider: str


def _family_ids(world: World) -> tuple[list[int], list[int]]:
    """The ids of the member's family, and of everyone else with the insurer."""
    with world.platform.engine.connect() as conn:
        idx = nir_index(conn, world.insurer_id, world.beneficiary_id)
        own = find_by_nir_index(conn, world.insurer_id, idx)
        assert own is not None
        family = [r.id for r in family_members(conn, world.insurer_id, own.idx_family)]
        everyone = [
            int(i)
            for i in conn.execute(
                select(beneficiaries.c.id).where(beneficiaries.c.insurer_id == world.insurer_id)
            ).scalars()
        ]
    return family, [i for i in everyone if i not in family]


def _use(world: World, beneficiary_id: int, key: str, day: date, cents: int, units: int) -> None:
    with world.platform.engine.begin() as conn:
        conn.execute(
            benefit_counters.insert().values(
                insurer_id=world.insurer_id,
                beneficiary_id=beneficiary_id,
                counter_key=key,
                care_date=day,
                claim_id=random.randrange(10**9),
                used_cents=cents,
                used_units=units,
            )
        )


@pytest.fixture(scope="module")
def family(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Family]:
    world = build_world(tmp_path_factory.mktemp("member"), beneficiaries=12, members=1)
    try:
        family_ids, others = _family_ids(world)
        relative = next(i for i in family_ids if i != world.beneficiary_id)
        stranger = others[0]
        platform = world.platform
        rng = random.Random(15)
        made = [make_provider(platform, rng) for _ in range(3)]
        year = platform.today().year
        for provider, person, lines in (
            (made[0], world.beneficiary_id, (replace(ACCEPTED, family="drug_65"),)),
            (made[1], relative, (REDUCED,)),
            (made[2], stranger, (ACCEPTED, ACCEPTED)),
        ):
            adjudicated_claim(
                platform, insurer_id=world.insurer_id, amc_number=AMC, provider_id=provider.id,
                beneficiary_id=person, lines=lines, care_date=date(year, 11, 2),
            )  # fmt: skip
        payments.run_payments(
            platform, next_pay_day(platform), out_dir=tmp_path_factory.mktemp("pay")
        )
        # What earlier invoices consumed of the ceilings (as adjudication records it):
        # the relative's dental prosthesis this year and last year, and osteopathy.
        _use(world, relative, "dental", date(year, 3, 4), 25_000, 1)
        _use(world, relative, "dental", date(year - 1, 12, 30), 90_000, 1)
        _use(world, relative, "alternative_medicine", date(year, 5, 6), 3_000, 1)
        _use(world, stranger, "dental", date(year, 2, 2), 40_000, 1)
        yield Family(
            world, world.beneficiary_id, relative, stranger,
            made[0].name, made[1].name, made[2].name,
        )  # fmt: skip
    finally:
        world.platform.close()


def _member(family: Family) -> PortalClient:
    client = PortalClient(family.world)
    client.login("member")
    return client


def _audits(family: Family, action: str) -> int:
    with family.world.platform.engine.connect() as conn:
        return int(
            conn.execute(select(func.count()).where(audit_events.c.action == action)).scalar_one()
        )


def _text(html: str) -> str:
    """The page's text as a reader sees it (tags dropped, spaces folded)."""
    return re.sub(r"\s+", " ", unescape(re.sub(r"<[^>]+>", " ", html)).replace("\xa0", " "))


def _row(text: str, start: str, end: str) -> str:
    return text[text.index(start) : text.index(end, text.index(start))]


def test_the_guarantees_page_gives_the_contract_in_french(family: Family) -> None:
    client = _member(family)
    before = _audits(family, "member.guarantees")

    page = client.get(GUARANTEES)

    assert page.status_code == 200
    text = _text(page.text)
    assert "Mes garanties" in text
    assert "Votre contrat : Équilibre — 150 % BR (code EQUILIBRE)" in text
    assert "Contrat responsable" in text
    assert "100 % Santé" in text
    # Per care domain, in French, with the catalogue's own figures.
    for domain in ("Pharmacie", "Médecins", "Dentaire", "Optique", "Hospitalisation"):
        assert f"Remboursement de votre complémentaire — {domain}" in text
    assert (
        "150 % de la base de remboursement (part de l'Assurance maladie comprise) ;"
        " 130 % chez un médecin non adhérent à l'OPTAM ou à l'OPTAM-CO"
    ) in text
    assert "Prothèse dentaire 250 % de la base de remboursement" in text
    assert "Plafond : 1 000,00 € par année civile" in text
    assert "Médecine douce Forfait de 30,00 € par acte ou par article" in text
    assert "Délai de carence : 90 jours" in text
    assert "Un équipement tous les 24 mois (12 mois avant 16 ans)" in text
    assert "Forfait journalier hospitalier Frais réels" in text
    for code in ("PHAR", "dental_prosthesis", "calendar_year", "rate_non_optam"):
        assert code not in text
    assert _audits(family, "member.guarantees") == before + 1


def test_the_ceilings_say_what_each_family_member_used_and_what_remains(family: Family) -> None:
    text = _text(_member(family).get(GUARANTEES).text)
    year = family.world.platform.today().year
    own, relative = _ceiling_tables(text)
    # The relative used 250 € of the 1 000 € dental ceiling this year (last year's 900 €
    # is outside the window), and 1 of 3 osteopathy sessions.
    assert (
        f"Prothèse dentaire, Implant dentaire du 01/01/{year} au 31/12/{year}"
        " 1 000,00 € 250,00 € 750,00 €"
    ) in relative
    assert "Médecine douce" in relative
    assert "3 actes 1 acte 2 actes" in relative
    # The member used nothing; another family's consumption never shows.
    assert "1 000,00 € 0,00 € 1 000,00 €" in own
    assert "600,00 €" not in text
    assert "400,00 €" not in text


def _ceiling_tables(text: str) -> tuple[str, str]:
    ceilings = text[text.index("Mes plafonds au") : text.index("Contacter votre organisme")]
    first = ceilings.index("(vous)")
    captions = [m.start() for m in re.finditer(r"Plafond Période Limite", ceilings)]
    assert len(captions) == 2, ceilings
    own_end = captions[1]
    return ceilings[first:own_end], ceilings[own_end:]


def test_the_statement_names_the_practitioner_and_the_family_member(family: Family) -> None:
    client = _member(family)
    before = _audits(family, "member.statement")

    page = client.get(STATEMENT)

    assert page.status_code == 200
    text = _text(page.text)
    assert family.own_provider in text
    assert family.relative_provider in text
    # Two lines, one per family member, each with its first name and its professional.
    rows = re.findall(r"<tr><td>[^<]*</td><td>([^<]*)</td><td>([^<]*)</td>", page.text)
    assert len(rows) == 2
    assert {provider for _, provider in rows} == {family.own_provider, family.relative_provider}
    mine = next(name for name, provider in rows if provider == family.own_provider)
    assert mine.endswith(" (vous)")
    theirs = next(name for name, provider in rows if provider == family.relative_provider)
    assert theirs
    assert "(vous)" not in theirs
    assert "Pharmacie" in text
    assert "Médicament remboursé à 65 % (PH7)" in text  # the act, in French with its code
    assert "Payé" in text
    assert _audits(family, "member.statement") == before + 1


def test_a_member_never_sees_another_familys_lines(family: Family) -> None:
    text = _text(_member(family).get(STATEMENT).text)
    assert family.stranger_provider not in text
    # The stranger's claim was paid too: it is in the data, just not this family's.
    with family.world.platform.engine.connect() as conn:
        theirs = family_paid_lines(conn, family.world.insurer_id, [family.stranger_id], 10)
    assert [line.provider_name for line in theirs] == [family.stranger_provider] * 2


@pytest.mark.parametrize(
    "path", ["/portail/adherent/", GUARANTEES, STATEMENT, "/portail/adherent/carte"]
)
def test_every_page_that_says_to_contact_the_insurer_gives_its_contact(
    family: Family, path: str
) -> None:
    page = _member(family).get(path)
    assert page.status_code == 200
    text = _text(page.text)
    assert "organisme complémentaire" in text
    assert "Contacter votre organisme complémentaire" in text
    assert "Mutuelle des Tilleuls — service adhérents" in text
    assert f"Téléphone : {PHONE}" in text
    assert f"Courriel : {EMAIL}" in text
    assert "Adresse : 12 rue des Tilleuls, 75012 Paris" in text
    assert 'href="tel:0199001234"' in page.text


def test_the_portal_is_closed_to_everyone_but_members(family: Family) -> None:
    staff = PortalClient(family.world)
    staff.login("staff")
    assert staff.get(GUARANTEES, follow_redirects=False).status_code in (302, 303, 403)
    anonymous = PortalClient(family.world)
    assert anonymous.get(GUARANTEES, follow_redirects=False).status_code in (302, 303, 401)


def test_a_new_catalogue_applies_at_once_and_without_contact_the_insurer_is_named(
    family: Family,
) -> None:
    """Runs last in this module: it uploads a new catalogue version for the insurer."""
    # Given the insurer uploads a new edition: a new contract label, no contact block
    document = demo_catalogue(CATALOGUE_FILE)
    del document["contact"]
    document["version"] = "2026.9"
    contracts = document["contracts"]
    assert isinstance(contracts, list)
    for contract in contracts:
        if contract["code"] == "EQUILIBRE":
            contract["label"] = "Équilibre 2026 — 150 % BR"
    insurers.upload_catalogue(family.world.platform, AMC, document, "test")

    # Then the guarantees page reads the edition in force
    text = _text(_member(family).get(GUARANTEES).text)
    assert "Votre contrat : Équilibre 2026 — 150 % BR (code EQUILIBRE)" in text
    assert "édition 2026.9" in text
    # and the contact falls back to the insurer's registered name, saying where to look
    assert f"Contacter votre organisme complémentaire {INSURER_NAME}" in text
    assert "Téléphone" not in text
    assert "elles figurent sur votre carte de tiers payant et sur votre contrat" in text
