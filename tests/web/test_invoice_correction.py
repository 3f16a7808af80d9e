"""« Corriger » in the provider portal, over HTTP: the invoice form pre-filled from a
rejected invoice, sent again with the card, supersedes it and is judged again."""

from __future__ import annotations

import re
from html import unescape

from sqlalchemy import select

from tests.web.portal_client import PortalClient
from tests.web.test_invoice_and_card import _invoice
from tests.web.world import AMC, INSURER_NAME, World
from tierspayant.services import adjudication
from tierspayant.store.claims_tables import claim_lines, claims

INVOICES = "/portail/prestataire/factures"
INPUT = re.compile(
    r'<input id="([a-z_0-9]+)" name="\1" type="[a-z]+" maxlength="\d+" value="([^"]*)"'
)


def _versions(world: World, number: str) -> list[tuple[int, str, str]]:
    with world.platform.engine.connect() as conn:
        rows = conn.execute(
            select(claims.c.version, claims.c.status, claim_lines.c.status)
            .join(
                claim_lines,
                (claim_lines.c.insurer_id == claims.c.insurer_id)
                & (claim_lines.c.claim_id == claims.c.id),
            )
            .where(claims.c.invoice_number == number)
            .order_by(claims.c.version)
        )
        return [tuple(row) for row in rows]


def test_a_rejected_invoice_corrected_from_its_prefilled_form_is_judged_again(
    world: World,
) -> None:
    client = PortalClient(world)
    client.login_provider()
    client.get(INVOICES)
    card = world.other_cards[6]
    today = world.platform.today().isoformat()
    # Given an invoice whose AMO share is above base × rate, rejected by adjudication
    wrong = _invoice(card, "CORR-0001", care_date=today, amo_paid_1="9,00", amc_requested_1="1,00")
    assert "Facture reçue." in client.post(INVOICES, wrong).text
    adjudication.adjudicate_pending(world.platform)
    assert _versions(world, "CORR-0001") == [(1, "adjudicated", "rejected")]
    # When the pharmacist opens « Corriger »
    page = client.get(f"{INVOICES}/corriger", params={"facture": "CORR-0001"})
    # Then the form holds the invoice as sent, flagged as a correction, without the card
    assert page.status_code == 200
    values = {name: unescape(value) for name, value in INPUT.findall(page.text)}
    assert values["invoice_number"] == "CORR-0001"
    assert values["care_date"] == today
    assert (values["amo_paid_1"], values["amc_requested_1"], values["amo_rate_1"]) == (
        "9,00", "1,00", "65",
    )  # fmt: skip
    assert values["amc_number"] == ""
    assert card["nir"] not in page.text
    assert 'name="correction" value="1"' in page.text
    # When it corrects the AMO share and sends it with the card scanned again
    form = {name: value for name, value in values.items() if value}
    form |= {
        "lignes": "1",
        "correction": "1",
        "domain_1": "PHAR",
        "family_1": "drug_65",
        "amo_paid_1": "5,50",
        "amc_requested_1": "3,50",
        "amc_number": card["amc_number"],
        "nir": card["nir"],
        "birth_rank": card["birth_rank"],
        "birth_date": card["birth_date"],
    }
    sent = client.post(INVOICES, form)
    # Then version 2 is received and the rejected version is superseded
    assert "Facture reçue." in sent.text, sent.text
    assert '<th scope="row">Version</th><td>2</td>' in sent.text
    adjudication.adjudicate_pending(world.platform)
    assert _versions(world, "CORR-0001") == [
        (1, "superseded", "cancelled"),
        (2, "adjudicated", "accepted"),
    ]
    follow = client.get("/portail/prestataire/suivi", params={"facture": "CORR-0001"})
    assert "Facture CORR-0001 (version 2)" in follow.text


def test_the_header_names_the_member_and_the_security_staff(world: World) -> None:
    member = PortalClient(world)
    member.login("member")
    text = unescape(member.get("/portail/adherent/").text)
    assert f"Connecté : <strong>{world.logins['member'].login}</strong>" in text
    assert f"{INSURER_NAME} — AMC {AMC}" in text.split('class="who"', 1)[1].split("</p>", 1)[0]
    operator = PortalClient(world)
    operator.login("operator1")
    console = unescape(operator.get("/portail/securite/").text)
    assert "Opérateur tierspayant" in console.split('class="who"', 1)[1].split("</p>", 1)[0]
