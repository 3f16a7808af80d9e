"""Portal pages over HTTP: provider, insurer and member journeys, and what pages reveal."""

from __future__ import annotations

import html
import json
import random
import re
from datetime import date
from html import unescape
from typing import Any

import pytest
import yaml
from hypothesis import Phase, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from tests.factories import make_nir
from tests.support.misreads import layout_swaps, misread_of
from tests.web.portal_client import PortalClient
from tests.web.world import (
    AMC,
    CATALOGUE_FILE,
    PHARMACY_NAME,
    World,
    card_codes,
    card_payload,
    reinstate,
)
from tierspayant.demo.builder import demo_catalogue
from tierspayant.demo.synthetic import write_beneficiaries_csv
from tierspayant.domain.care import CareDomain
from tierspayant.domain.identifiers import parse_nir
from tierspayant.services import providers
from tierspayant.store.claims_tables import claim_lines, claims
from tierspayant.store.security_tables import security_alerts
from tierspayant.store.tables import audit_events


def _card_form(card: dict[str, str]) -> dict[str, str]:
    return {
        "amc_number": card["amc_number"],
        "nir": card["nir"],
        "birth_rank": card["birth_rank"],
        "birth_date": card["birth_date"],
    }


def _sign(world: World, *domains: CareDomain) -> None:
    """The world's structure signs the insurer's convention for ``domains`` too: the counter
    refuses a professional without it (a pharmacy signs only pharmacy domains at first)."""
    providers.add_conventions(
        world.platform, world.provider_am, AMC, domains, date(2024, 1, 1), "test"
    )


def _events(world: World, action: str) -> list[Any]:
    with world.platform.engine.connect() as conn:
        return list(conn.execute(select(audit_events).where(audit_events.c.action == action)))


def test_provider_checks_rights_from_typed_card_data(world: World) -> None:
    client = PortalClient(world)
    client.login_provider()
    before = len(_events(world, "eligibility.check"))
    page = client.get("/portail/prestataire/droits")
    assert page.status_code == 200
    # When the professional types the card and asks for pharmacy rights (htmx fragment)
    answer = client.post(
        "/portail/prestataire/droits",
        {**_card_form(world.card), "domains": ["PHAR"]},
        headers={"HX-Request": "true"},
    )
    # Then the fragment shows the decision, and neither the NIR nor any name
    assert answer.status_code == 200
    assert "<html" not in answer.text
    assert "<td>Pharmacie</td>" in answer.text
    assert "oui" in answer.text
    assert world.card["nir"] not in answer.text
    # And the check was audited as the professional's, like an API call
    events = _events(world, "eligibility.check")
    assert len(events) == before + 1
    assert events[-1].actor.startswith(f"provider:{world.provider_am}/user:")
    assert events[-1].structure == world.structure


def test_unknown_and_mismatched_cards_look_the_same(world: World) -> None:
    client = PortalClient(world)
    client.login_provider()
    known = _card_form(world.card)
    unknown = {**known, "nir": make_nir(random.Random(59), year=int(known["birth_date"][:4]))}
    assert parse_nir(unknown["nir"]) != parse_nir(known["nir"])
    answers = []
    # Given a NIR nobody has, the member's NIR with another birth date or another rank,
    # and the member's own card
    for card in (
        unknown,
        {**known, "birth_date": "1901-01-01"},
        {**known, "birth_rank": "9"},
        known,
    ):
        answer = client.post(
            "/portail/prestataire/droits",
            {**card, "domains": ["PHAR"]},
            headers={"HX-Request": "true"},
        )
        assert answer.status_code == 200
        answers.append(answer.text)
    # Then the three kinds of "no" are the same bytes, and the member is answered covered
    assert answers[0] == answers[1] == answers[2]
    assert "<td>Pharmacie</td><td>non</td>" in answers[0]
    assert "Aucun droit complémentaire pour ces données de carte" in answers[0]
    assert "<td>Pharmacie</td><td>oui</td>" in answers[3]
    assert "Aucun droit complémentaire" not in answers[3]


def test_provider_calculation_and_conventions(world: World) -> None:
    _sign(world, CareDomain.MED)
    client = PortalClient(world)
    client.login_provider()
    result = client.post(
        "/portail/prestataire/calcul",
        {
            **_card_form(world.other_cards[0]),
            "act_code": "G",
            "domain": "MED",
            "family": "consultation",
            "billed": "30,00",
            "br": "30",
        },
    )
    # A GP consultation of 30 € at a base of 30 €: AMO 70 % = 21 € less the 2 € flat
    # participation = 19 €; AMC the ticket modérateur 30 % = 9 € (a contrat responsable
    # does not repay the participation); the patient keeps the 2 €.
    assert result.status_code == 200
    figures = re.findall(r"<th scope=\"row\">([^<]+)</th><td>([^<]+)</td>", result.text)
    assert figures == [
        ("Montant facturé", "30,00\u00a0€"),
        ("Assurance maladie obligatoire (AMO)", "19,00\u00a0€"),
        ("Complémentaire (AMC)", "9,00\u00a0€"),
        ("Reste à charge du patient", "2,00\u00a0€"),
    ]
    conventions = client.get("/portail/prestataire/conventions")
    assert "Mutuelle des Tilleuls" in conventions.text


def test_insurer_uploads_a_catalogue_and_sees_the_report(world: World, tmp_path: Any) -> None:
    client = PortalClient(world)
    client.login("staff")
    client.get("/portail/assureur/catalogue")
    # Given a catalogue whose contracts break a contrat responsable rule
    bad = demo_catalogue(CATALOGUE_FILE)
    for contract in bad["contracts"]:  # type: ignore[attr-defined]
        contract["covers_participation"] = True
    refused = client.post(
        "/portail/assureur/catalogue",
        files={"file": ("catalogue.yaml", yaml.safe_dump(bad).encode(), "application/yaml")},
    )
    # Then the report names each contract and the rule, and nothing is stored
    assert refused.status_code == 422
    assert refused.text.count("catalogue.responsable.covers_participation") == 2
    assert "Rien n'a été enregistré" in refused.text
    assert "ne doit pas rembourser la participation forfaitaire" in refused.text
    # And the valid catalogue (unchanged) is accepted without a new version
    good = yaml.safe_dump(demo_catalogue(CATALOGUE_FILE)).encode()
    accepted = client.post("/portail/assureur/catalogue", files={"file": ("c.yaml", good)})
    assert accepted.status_code == 200
    assert "Catalogue valide" in accepted.text


def test_insurer_catalogue_of_another_insurer_is_refused(world: World) -> None:
    client = PortalClient(world)
    client.login("staff")
    other = demo_catalogue("azur-assurances-sante.yaml")
    response = client.post(
        "/portail/assureur/catalogue",
        files={"file": ("c.json", json.dumps(other).encode(), "application/json")},
    )
    assert response.status_code == 422
    assert "catalogue.insurer_mismatch" in response.text


def test_insurer_imports_beneficiaries_and_downloads_rejects(world: World, tmp_path: Any) -> None:
    client = PortalClient(world)
    client.login("staff")
    path = tmp_path / "mouvements.csv"
    made = write_beneficiaries_csv(
        path, 30, seed=99, contracts=["ESSENTIEL"], bad_line_ratio=0.2, start=date(2026, 1, 1)
    )
    client.get("/portail/assureur/import")
    response = client.post(
        "/portail/assureur/import",
        {"mode": "incremental", "file_date": world.platform.today().isoformat()},
        files={"file": ("mouvements.csv", path.read_bytes(), "text/csv")},
    )
    assert response.status_code == 200, response.text
    assert "Lignes rejetées" in response.text
    assert made.bad_lines > 0
    link = "/portail/assureur/import/"
    assert link in response.text
    run = response.text.split(link, 1)[1].split("/", 1)[0]
    report = client.get(f"/portail/assureur/import/{run}/erreurs.csv")
    assert report.status_code == 200
    # a French CSV: BOM, French headers, ``;``
    assert report.content.startswith(
        "\ufeffligne;code;colonne;message;valeur;explication\r\n".encode()
    )
    nirs = [line.split(";")[1] for line in path.read_text().splitlines()[1:] if ";" in line]
    assert not [nir for nir in nirs if len(nir) >= 13 and nir in report.text]  # none in clear
    home = client.get("/portail/assureur/")
    assert "<svg" in home.text
    assert "Historique des imports" in home.text


def test_member_sees_who_checked_their_rights_and_nobody_else(world: World) -> None:
    # Given the pharmacy checked the member's rights and another person's
    pro = PortalClient(world)
    pro.login_provider()
    for card in (world.card, world.other_cards[0]):
        pro.post("/portail/prestataire/droits", {**_card_form(card), "domains": ["PHAR"]})
    member = PortalClient(world)
    page = member.login("member")
    # Then the member sees the pharmacy's name, and no NIR at all
    assert page.status_code == 200
    assert PHARMACY_NAME in page.text
    assert world.card["nir"] not in page.text
    assert world.other_cards[0]["nir"] not in page.text
    checks = page.text.count("Vérification de droits")
    own = [e for e in _events(world, "eligibility.check") if e.subject is not None]
    subjects = {e.subject for e in own}
    assert len(subjects) >= 2  # two people were checked
    assert 1 <= checks < len(own)  # the member sees only theirs
    # And reading the history was itself audited
    assert _events(world, "member.consultations")


def test_member_exports_own_data_with_nir_masked(world: World) -> None:
    client = PortalClient(world)
    client.login("member")
    client.get("/portail/adherent/mes-donnees")
    response = client.post("/portail/adherent/mes-donnees")
    assert response.status_code == 200
    assert "attachment" in response.headers["content-disposition"]
    data = response.json()
    nir = parse_nir(world.card["nir"])
    assert data["mes_droits"]["nir"] == nir.masked()
    assert world.card["nir"] not in response.text
    assert data["mes_droits"]["date_de_naissance"] == world.card["birth_date"]
    assert data["mes_droits"]["organisme"] == AMC
    assert world.other_cards[0]["birth_date"] not in response.text or (
        world.other_cards[0]["birth_date"] == world.card["birth_date"]
    )
    assert _events(world, "member.data_export")


def test_rights_check_with_the_card_2d_code(world: World, tmp_path: Any) -> None:
    client = PortalClient(world)
    principal_id = client.login_provider()
    payload = card_payload(world, tmp_path)
    form = {**_card_form(world.card), "domains": ["PHAR"]}
    # A genuine code of the patient's card is accepted, and the lookup is audited with it
    accepted = client.post("/portail/prestataire/droits", {**form, "card_payload": payload})
    assert accepted.status_code == 200
    assert "Droits au" in accepted.text
    assert json.loads(_events(world, "eligibility.check")[-1].detail)["proof"] is True
    # A tampered code is refused, whatever is wrong with it
    forged = payload[:-6] + ("AAAAAA" if not payload.endswith("AAAAAA") else "BBBBBB")
    refused = client.post("/portail/prestataire/droits", {**form, "card_payload": forged})
    assert "Cette carte ne peut pas être acceptée" in refused.text
    # And a forged card is an attack signal: the professional's session ends at once
    after = client.get("/portail/prestataire/droits", follow_redirects=False)
    assert after.status_code == 303
    reinstate(world, principal_id)


def alerts_of(world: World, principal_id: str) -> list[str]:
    with world.platform.engine.connect() as conn:
        return list(
            conn.execute(
                select(security_alerts.c.code).where(security_alerts.c.principal == principal_id)
            ).scalars()
        )


MISREAD_FR = (
    "Code mal lu : vérifiez la disposition du clavier du lecteur (AZERTY/QWERTY) et "
    "scannez à nouveau."
)


@settings(max_examples=1, deadline=None, phases=(Phase.explicit, Phase.generate))
@given(data=st.data())
def test_misread_scans_in_the_rights_page_ask_for_a_new_scan_and_never_suspend(
    world: World, tmp_path_factory: pytest.TempPathFactory, data: st.DataObject
) -> None:
    client = PortalClient(world)
    principal_id = client.login_provider()
    payload = card_payload(world, tmp_path_factory.mktemp("misread"))
    form = {**_card_form(world.card), "domains": ["PHAR"], "member_number": "M-123"}
    before = alerts_of(world, principal_id)
    # Given a reader on the wrong keyboard layout, scans cut short, garbage: 25 in a row
    misreads = ["TP&MQBCDEF%%GHIJ", *layout_swaps(payload)]
    misreads += [data.draw(misread_of(payload)) for _ in range(22)]
    for i, text in enumerate(misreads):
        htmx = {"HX-Request": "true"} if i % 2 else {}
        page = client.post(
            "/portail/prestataire/droits", {**form, "card_payload": text}, headers=htmx
        )
        # Then each says, in French, to check the layout and scan again
        assert page.status_code == 200
        assert html.unescape(page.text).count(MISREAD_FR) == 1, text
        assert "card.misread" in page.text
        assert "ne peut pas être acceptée" not in page.text
        if not htmx:
            # And a full page keeps the form as typed (never the NIR)
            assert f'value="{world.card["amc_number"]}"' in page.text
            assert 'value="M-123"' in page.text
            assert 'value="PHAR" checked' in page.text
            assert world.card["nir"] not in page.text
    # And the session goes on: no suspension, no alert; the card scanned right is answered
    assert client.get("/portail/prestataire/droits", follow_redirects=False).status_code == 200
    accepted = client.post("/portail/prestataire/droits", {**form, "card_payload": payload})
    assert "Droits au" in accepted.text
    assert alerts_of(world, principal_id) == before
    assert len(_events(world, "card.proof_misread")) >= len(misreads)
    guard = world.platform.guard
    assert guard is not None
    assert not guard.suspended(principal_id)
    guard.clear_suspension(principal_id)  # forget the misreads: the module's world is shared


def test_the_harmonised_datamatrix_scanned_in_the_rights_page_is_the_card_proof(
    world: World, tmp_path_factory: pytest.TempPathFactory
) -> None:
    client = PortalClient(world)
    principal_id = client.login_provider()
    _, datamatrix = card_codes(world, tmp_path_factory.mktemp("datamatrix"))
    form = {**_card_form(world.card), "domains": ["PHAR"]}
    before = alerts_of(world, principal_id)
    try:
        # Given the DataMatrix scanned whole: answered as a card-proven lookup
        accepted = client.post("/portail/prestataire/droits", {**form, "card_payload": datamatrix})
        assert "Droits au" in accepted.text
        last = _events(world, "eligibility.check")[-1]
        assert json.loads(last.detail)["proof"] is True
        # Given it cut short: a misread, asked to scan again, no alert
        cut = client.post("/portail/prestataire/droits", {**form, "card_payload": datamatrix[:-3]})
        assert html.unescape(cut.text).count(MISREAD_FR) == 1
        assert alerts_of(world, principal_id) == before
        # Given its box altered: the card cannot be accepted, a forged proof
        forged = client.post(
            "/portail/prestataire/droits",
            {**form, "card_payload": datamatrix.replace("|R|", "|N|", 1)},
        )
        assert "ne peut pas être acceptée" in html.unescape(forged.text)
        assert alerts_of(world, principal_id) == [*before, "guard.proof_forged"]
        after = client.get("/portail/prestataire/droits", follow_redirects=False)
        assert after.status_code == 303  # suspended, as for a forged QR code
    finally:
        reinstate(world, principal_id)  # the module's world is shared


def test_the_scan_alone_fills_the_card_fields_without_a_script(
    world: World, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """A browser without the page's script sends only the scanned DataMatrix and the
    patient it names (a family card lists several: birth date and rank, as the script's
    choice would give): the server fills the AMC number and the member number from it,
    and the lookup is card-proven."""
    client = PortalClient(world)
    principal_id = client.login_provider()
    _, datamatrix = card_codes(world, tmp_path_factory.mktemp("scan-only"))
    form = {
        "card_payload": datamatrix + "\r\n",  # the reader's Enter
        "birth_rank": str(world.card["birth_rank"]),
        "birth_date": world.card["birth_date"],
        "domains": ["PHAR"],
    }
    page = client.post("/portail/prestataire/droits", form, headers={"HX-Request": "true"})
    assert page.status_code == 200, page.text
    assert "<td>Pharmacie</td><td>oui</td>" in page.text
    last = _events(world, "eligibility.check")[-1]
    assert json.loads(last.detail)["proof"] is True
    # A code that does not parse fills nothing: the form's own errors answer
    garbled = client.post("/portail/prestataire/droits", {**form, "card_payload": "TPH1|x"})
    assert "<td>Pharmacie</td><td>oui</td>" not in garbled.text
    guard = world.platform.guard
    assert guard is not None
    guard.clear_suspension(principal_id)  # forget this pace: the module's world is shared


def test_provider_asks_a_prior_authorisation_and_follows_it_up(world: World) -> None:
    _sign(world, CareDomain.OPTI)
    client = PortalClient(world)
    client.login_provider()
    page = client.get("/portail/prestataire/accords")
    key = page.text.split('name="request_key" value="', 1)[1].split('"', 1)[0]
    form = {
        **_card_form(world.other_cards[1]),
        "request_key": key,
        "act_code": "FRAME1",
        "domain": "OPTI",
        "family": "optics_frame",
        "billed": "150,00",
        "br": "0,05",
    }
    first = client.post("/portail/prestataire/accords", form, headers={"HX-Request": "true"})
    assert first.status_code == 200, first.text
    assert "Accord n°" in first.text
    number = first.text.split("Accord n° ", 1)[1].split("<", 1)[0].strip()
    # The same form sent twice (same request key) gets the same agreement
    again = client.post("/portail/prestataire/accords", form, headers={"HX-Request": "true"})
    assert f"Accord n° {number}" in again.text
    follow = client.get(f"/portail/prestataire/suivi?accord={number}")
    assert f"Accord n° {number}" in follow.text
    unknown = client.get("/portail/prestataire/suivi?facture=999999")
    assert "Aucune facture de votre structure ne porte ce numéro" in unknown.text


def test_insurer_decides_a_pending_prior_authorisation(world: World) -> None:
    _sign(world, CareDomain.HOSP)
    # Given a hospital stay asked by the provider: a person at the insurer must decide
    pro = PortalClient(world)
    pro.login_provider()
    page = pro.get("/portail/prestataire/accords")
    key = page.text.split('name="request_key" value="', 1)[1].split('"', 1)[0]
    asked = pro.post(
        "/portail/prestataire/accords",
        {
            **_card_form(world.other_cards[2]),
            "request_key": key,
            "act_code": "GHS0001",
            "domain": "HOSP",
            "family": "hospital_stay",
            "billed": "3000",
            "br": "3000",
        },
    )
    assert "en attente" in asked.text
    number = asked.text.split("Accord n° ", 1)[1].split("<", 1)[0].strip()
    # When the insurer's staff refuses without a reason, then with one
    staff = PortalClient(world)
    staff.login("staff")
    listing = staff.get("/portail/assureur/accords")
    assert number in listing.text
    assert PHARMACY_NAME in listing.text
    assert world.other_cards[2]["nir"] not in listing.text
    bare = staff.post(f"/portail/assureur/accords/{number}", {"decision": "refuser"})
    assert "Indiquez le motif du refus" in bare.text
    assert number in bare.text  # still pending
    done = staff.post(
        f"/portail/assureur/accords/{number}", {"decision": "refuser", "reason": "devis incomplet"}
    )
    # Then the agreement is refused and the provider sees it
    assert f"Accord {number} : refusé" in done.text
    assert "refusé" in pro.get(f"/portail/prestataire/suivi?accord={number}").text


def test_the_prior_authorisation_form_key_is_always_one_the_service_accepts() -> None:
    # A key drawn with token_urlsafe starts with "-" or "_" once in 32 draws: the form
    # then failed with prior_auth.request_key. 2,000 draws would all but surely meet one.
    from tierspayant.services.prior_auth import REQUEST_KEY
    from tierspayant.web.provider import new_request_key

    keys = {new_request_key() for _ in range(2000)}
    assert len(keys) == 2000
    assert all(REQUEST_KEY.match(key) for key in keys)


def _engagements(client: PortalClient) -> list[str]:
    page = client.get("/portail/prestataire/engagements")
    assert page.status_code == 200
    return re.findall(r"<code>(ENG1-C-[^<]+)</code>", page.text)


def test_provider_lists_its_open_engagements_and_cancels_one(world: World) -> None:
    _sign(world, CareDomain.MED)
    client = PortalClient(world)
    client.login_provider()
    before = _engagements(client)  # the module's world: other tests calculate too
    form = {
        **_card_form(world.other_cards[2]),
        "act_code": "G",
        "domain": "MED",
        "family": "consultation",
        "billed": "30,00",
        "br": "30",
    }
    assert client.post("/portail/prestataire/calcul", form).status_code == 200
    # The calculation's engagement is listed, newest first: number, domain, dates, amount
    page = client.get("/portail/prestataire/engagements")
    numbers = re.findall(r"<code>(ENG1-C-[^<]+)</code>", page.text)
    assert len(numbers) == len(before) + 1
    number = numbers[0]
    row = page.text.split(number, 1)[1].split("</tr>", 1)[0]
    cells = re.findall(r"<td>([^<]*)</td>", row)
    assert cells[0] == "MED"
    assert cells[-1] == "9,00\u00a0€"
    assert f'name="number" value="{number}"' in row
    assert 'hx-post="/portail/prestataire/engagements/annuler"' in row
    # When the professional cancels it (htmx swaps the list only)
    done = client.post(
        "/portail/prestataire/engagements/annuler",
        {"number": number},
        headers={"HX-Request": "true"},
    )
    assert done.status_code == 200
    assert "<h1>" not in done.text
    assert "Engagement annulé" in done.text
    assert number not in done.text
    # Then it is gone, and a made-up number is refused in French
    assert _engagements(client) == before
    made_up = client.post(
        "/portail/prestataire/engagements/annuler",
        {"number": "ENG1-C-AAAA"},
        headers={"HX-Request": "true"},
    )
    assert "Engagement introuvable" in made_up.text


def test_provider_invoices_a_calculation_in_one_step(world: World) -> None:
    _sign(world, CareDomain.MED)
    client = PortalClient(world)
    client.login_provider()
    card = _card_form(world.other_cards[3])
    calculated = client.post(
        "/portail/prestataire/calcul",
        {
            **card,
            "act_code": "G",
            "domain": "MED",
            "family": "consultation",
            "billed": "30,00",
            "br": "30",
        },
    )
    assert calculated.status_code == 200
    engagement = re.search(r"<code>(ENG1-C-[^<]+)</code>", calculated.text)
    assert engagement is not None
    assert "Facturer ce calcul" in calculated.text
    # The calculation comes with its explanation, in French: the guarantee, base × rate
    explained = unescape(calculated.text.split('id="explication"', 1)[1].split("</section>")[0])
    assert "Garantie appliquée : contrat" in explained
    assert "Consultation" in explained
    assert "Base de remboursement 30,00 € × taux AMO 70 % : part AMO 19,00 €" in explained
    assert "Part complémentaire 9,00 € ; reste à charge du patient" in explained
    # The button's form: the act as calculated, a pre-filled invoice number, no NIR
    button = calculated.text.split('action="/portail/prestataire/calcul/facture"', 1)[1]
    button = button.split("</form>", 1)[0]
    assert card["nir"] not in button
    hidden = dict(re.findall(r'name="([a-z_]+)" value="([^"]*)"', button))
    assert hidden["engagement_number"] == engagement.group(1)
    assert hidden["billed"] == "30,00"
    assert hidden["invoice_number"].startswith("PORTAIL-")
    # When the professional clicks « Facturer ce calcul » (the card comes from the form)
    sent = client.post(
        "/portail/prestataire/calcul/facture",
        {**card, **hidden},
        headers={"HX-Request": "true"},
    )
    # Then the invoice is received with its number, its status and a link to follow it
    assert sent.status_code == 200, sent.text
    assert "Facture reçue." in sent.text
    assert hidden["invoice_number"] in sent.text
    assert "reçue, en attente de traitement" in sent.text
    claim_id = re.search(r"Identifiant de la facture</th><td>(\d+)<", sent.text)
    assert claim_id is not None
    assert f'href="/portail/prestataire/suivi?facture={hidden["invoice_number"]}"' in sent.text
    # And it carries the engagement and the calculated figures: AMO 70 % paying 19 €,
    # AMC requested the 9 € calculated
    with world.platform.engine.connect() as conn:
        claim = conn.execute(
            select(claims).where(claims.c.invoice_number == hidden["invoice_number"])
        ).one()
        lines = list(conn.execute(select(claim_lines).where(claim_lines.c.claim_id == claim.id)))
    assert claim.engagement_number == engagement.group(1)
    assert (claim.billed_cents, claim.amc_requested_cents) == (3000, 900)
    assert [
        (x.act_code, x.amo_rate_bp, x.amo_paid_cents, x.amc_requested_cents) for x in lines
    ] == [("G", 7000, 1900, 900)]
    # A second click is the same invoice, not another one
    again = client.post(
        "/portail/prestataire/calcul/facture", {**card, **hidden}, headers={"HX-Request": "true"}
    )
    assert "avait déjà été reçue" in again.text
    # A changed amount is not what was calculated: refused, nothing invoiced
    changed = {**hidden, "billed": "31,00", "invoice_number": "PORTAIL-AUTRE"}
    refused = client.post(
        "/portail/prestataire/calcul/facture", {**card, **changed}, headers={"HX-Request": "true"}
    )
    assert "calculez à nouveau" in refused.text
    with world.platform.engine.connect() as conn:
        assert not list(
            conn.execute(select(claims).where(claims.c.invoice_number == "PORTAIL-AUTRE"))
        )
