"""Invoice submission in the provider portal and the member's card download, over HTTP."""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import select

from tests.web.portal_client import PortalClient
from tests.web.world import World, _account, _beneficiary_id
from tierspayant.security.crypto import BlindIndexer
from tierspayant.security.identity import family_index
from tierspayant.services import cards
from tierspayant.services.accounts import AccountKind
from tierspayant.store.beneficiaries import family_members
from tierspayant.store.cards_tables import cards as cards_table
from tierspayant.store.claims_tables import claims
from tierspayant.store.keys import insurer_scope
from tierspayant.store.tables import audit_events

INVOICES = "/portail/prestataire/factures"
CARD = "/portail/adherent/carte"
CLAIM_ID = re.compile(r"Identifiant de la facture</th><td>(\d+)<")


def _invoice(card: dict[str, str], number: str, **line: str) -> dict[str, str]:
    """A one-line pharmacy invoice, as the form sends it (amounts in euros)."""
    return {
        "lignes": "1",
        "invoice_number": number,
        "amc_number": card["amc_number"],
        "nir": card["nir"],
        "birth_rank": card["birth_rank"],
        "birth_date": card["birth_date"],
        "care_date": "",
        "act_code_1": "3400930000001",
        "domain_1": "PHAR",
        "family_1": "drug_65",
        "quantity_1": "1",
        "br_1": "10,00",
        "billed_1": "10,00",
        "amo_rate_1": "65",
        "amo_paid_1": "5,50",
        "amc_requested_1": "3,50",
        **line,
    }


def _claim_rows(world: World, number: str) -> list[Any]:
    with world.platform.engine.connect() as conn:
        return list(conn.execute(select(claims).where(claims.c.invoice_number == number)))


def _count(world: World, action: str) -> int:
    with world.platform.engine.connect() as conn:
        return len(list(conn.execute(select(audit_events).where(audit_events.c.action == action))))


def _provider(world: World) -> PortalClient:
    client = PortalClient(world)
    client.login_provider()
    page = client.get(INVOICES)
    assert page.status_code == 200
    return client


def test_provider_sends_an_invoice_and_gets_a_receipt(world: World) -> None:
    client = _provider(world)
    form = _invoice(world.card, "WEB-0001", care_date=world.platform.today().isoformat())
    before = _count(world, "claim.receive")
    # When the professional sends the form
    sent = client.post(INVOICES, form)
    # Then the receipt shows the claim's id and status, and links to its follow-up page
    assert sent.status_code == 200, sent.text
    assert "Facture reçue." in sent.text
    found = CLAIM_ID.search(sent.text)
    assert found is not None
    claim_id = int(found.group(1))
    assert 'href="/portail/prestataire/suivi?facture=WEB-0001"' in sent.text
    assert "reçue, en attente de traitement" in sent.text
    # And the claim was received by the service as an API claim, and audited
    (row,) = _claim_rows(world, "WEB-0001")
    assert (row.id, row.source, row.provider_id) == (claim_id, "api", world.provider_id)
    assert _count(world, "claim.receive") == before + 1
    follow = client.get("/portail/prestataire/suivi?facture=WEB-0001")
    assert "Facture WEB-0001" in follow.text
    assert "3,50" in follow.text


def test_the_same_invoice_sent_twice_is_received_once(world: World) -> None:
    client = _provider(world)
    form = _invoice(world.other_cards[0], "WEB-0002", care_date=world.platform.today().isoformat())
    first = client.post(INVOICES, form)
    before = _count(world, "claim.receive")
    again = client.post(INVOICES, form)
    first_id, again_id = (CLAIM_ID.search(r.text) for r in (first, again))
    assert first_id is not None
    assert again_id is not None
    assert first_id.group(1) == again_id.group(1)
    assert "avait déjà été reçue" in again.text
    assert len(_claim_rows(world, "WEB-0002")) == 1
    assert _count(world, "claim.receive") == before
    # A different invoice under the same number is refused, in French, at the number
    other = client.post(INVOICES, {**form, "billed_1": "11,00"})
    assert "Ce numéro de facture a déjà servi" in other.text
    assert 'id="invoice_number-erreur"' in other.text


def test_a_bad_amount_is_refused_in_french_next_to_the_field(world: World) -> None:
    client = _provider(world)
    today = world.platform.today().isoformat()
    for amount in ("12,345", "-3", "douze", "NaN"):
        refused = client.post(
            INVOICES, _invoice(world.card, "WEB-0003", care_date=today, billed_1=amount)
        )
        assert refused.status_code == 200
        assert "Montant invalide" in refused.text, amount
        assert 'id="billed_1-erreur"' in refused.text
        assert 'aria-describedby="billed_1-erreur"' in refused.text
        # The typed line is kept, the NIR is not echoed back
        assert 'value="drug_65"' in refused.text
        assert world.card["nir"] not in refused.text
    rate = client.post(
        INVOICES, _invoice(world.card, "WEB-0003", care_date=today, amo_rate_1="120")
    )
    assert "Taux invalide" in rate.text
    assert 'id="amo_rate_1-erreur"' in rate.text
    # A refusal about no input of the form is shown above it
    too_many = client.post(INVOICES, _invoice(world.card, "WEB-0003", care_date=today, lignes="11"))
    assert "Formulaire incomplet ou mal rempli." in too_many.text
    assert "corrigez le champ signalé" not in too_many.text
    assert _claim_rows(world, "WEB-0003") == []


def test_an_amount_above_its_domain_ceiling_is_refused_in_french_at_the_field(
    world: World,
) -> None:
    client = _provider(world)
    today = world.platform.today().isoformat()
    # Given a pharmacy line billed 40 000,00 EUR (the PHAR line ceiling is 30 000 EUR)
    form = _invoice(world.card, "WEB-0004", care_date=today, billed_1="40000,00")
    # When the professional sends it
    refused = client.post(INVOICES, form)
    # Then the ceiling's French sentence is shown next to the billed amount, nothing stored
    assert refused.status_code == 200
    assert "Montant de ligne au-dessus du plafond de son domaine de soins." in refused.text
    assert 'id="billed_1-erreur"' in refused.text
    # and an AMO amount above it is shown at its own input
    amo = client.post(INVOICES, {**form, "billed_1": "10,00", "amo_paid_1": "40000,00"})
    assert 'id="amo_paid_1-erreur"' in amo.text
    assert _claim_rows(world, "WEB-0004") == []


def test_an_invoice_without_the_csrf_token_is_refused(world: World) -> None:
    client = _provider(world)
    form = _invoice(world.card, "WEB-0004", care_date=world.platform.today().isoformat())
    bare = client.http.post(INVOICES, data=form)
    forged = client.http.post(INVOICES, data={**form, "csrf_token": "forged"})
    assert bare.status_code == forged.status_code == 403
    assert _claim_rows(world, "WEB-0004") == []


def _binding(world: World, member_number: str) -> bytes:
    """The keyed family binding of a member number, as the card service computes it."""
    platform = world.platform
    with platform.engine.connect() as conn:
        keys = platform.keys.active(conn, insurer_scope(world.card["amc_number"]))
        members = family_members(
            conn, world.insurer_id, family_index(BlindIndexer(keys), member_number)
        )
        return cards.family_binding(keys, members[0].idx_family)


def _active_cards(world: World, binding: bytes) -> list[str]:
    with world.platform.engine.connect() as conn:
        return list(
            conn.execute(
                select(cards_table.c.serial).where(
                    cards_table.c.family_binding == binding, cards_table.c.status == "active"
                )
            ).scalars()
        )


def _download(client: PortalClient, **extra: str) -> bytes:
    client.get(CARD)
    answer = client.post(CARD, extra)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "application/pdf"
    assert "attachment" in answer.headers["content-disposition"]
    assert answer.headers["cache-control"] == "no-store"
    return answer.content


def test_member_downloads_their_family_card(world: World) -> None:
    member = PortalClient(world)
    member.login("member")
    page = member.get(CARD)
    assert page.status_code == 200
    assert "Ma carte de tiers payant" in page.text
    issued = _count(world, "card.issue")
    pdf = _download(member)
    assert pdf.startswith(b"%PDF")
    # The download issued the family's card, audited as the member's own act
    assert _count(world, "card.issue") == issued + 1
    with world.platform.engine.connect() as conn:
        event = conn.execute(
            select(audit_events)
            .where(audit_events.c.action == "card.issue")
            .order_by(audit_events.c.seq.desc())
        ).first()
    assert event is not None
    assert "/member:" in event.actor
    (serial,) = _active_cards(world, _binding(world, world.card["member_number"]))
    listing = member.get(CARD)
    assert serial in listing.text
    assert "valide" in listing.text
    assert world.card["nir"] not in listing.text
    assert _count(world, "member.cards") >= 2


def test_a_member_never_gets_another_familys_card(world: World) -> None:
    # Given two members of two different families, each with an active card
    other_card = world.other_cards[1]
    assert other_card["member_number"] != world.card["member_number"]
    _account(
        world,
        "other_family",
        AccountKind.MEMBER,
        "autre.famille@adherent.example",
        insurer_id=world.insurer_id,
        beneficiary_id=_beneficiary_id(world.platform, other_card),
    )
    mine, theirs = PortalClient(world), PortalClient(world)
    mine.login("member")
    theirs.login("other_family")
    _download(mine)
    my_binding = _binding(world, world.card["member_number"])
    their_binding = _binding(world, other_card["member_number"])
    (my_card,) = _active_cards(world, my_binding)
    # When the other member downloads, even naming my member number in the request
    pdf = _download(theirs, member_number=world.card["member_number"], serial=my_card)
    # Then they get a card of their own family, and mine stays the active one
    assert pdf.startswith(b"%PDF")
    (their_card,) = _active_cards(world, their_binding)
    assert their_card != my_card
    assert _active_cards(world, my_binding) == [my_card]
    assert my_card not in theirs.get(CARD).text
    assert their_card not in mine.get(CARD).text
