"""« Mes factures », « Mes rejets », corrections and disputes through the real app, on
SQLite and PostgreSQL: each provider reads only its own invoices; a dispute is seen by the
provider that opened it and by the insurer that decided the line, by nobody else; the
insurer's answer comes back to the provider, and accepting it changes no amount."""

from __future__ import annotations

import random
import re
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from html import unescape

import pytest
from sqlalchemy import select, update

from tests.api.world import (
    ENGINE_PARAMS,
    TODAY,
    World,
    build_world,
    close_world,
    staff_session,
)
from tests.money_support import ACCEPTED, REJECTED, Line, adjudicated_claim
from tests.support.world import add_provider
from tierspayant.api.app import create_app
from tierspayant.security.oidc import OidcIdentity
from tierspayant.services import accounts, insurers, payments
from tierspayant.services.accounts import AccountKind
from tierspayant.store.claims_tables import claim_lines, claims
from tierspayant.store.disputes_tables import claim_disputes
from tierspayant.store.tables import audit_events

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

import httpx

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
MINE = "/portail/prestataire/factures/mes-factures"
REJECTS = "/portail/prestataire/factures/rejets"
DISPUTES = "/portail/assureur/contestations"
# Care dates of this module only (other modules sharing the PostgreSQL database use others).
FIRST_DAY = date(2026, 2, 2)
SECOND_DAY = date(2026, 2, 9)
PAGED_DAY = date(2026, 1, 12)


class Browser:
    """One browser on the portals: its own cookie jar, the CSRF token of the last page."""

    def __init__(self, world: World, token: str) -> None:
        self.http = TestClient(create_app(world.platform), raise_server_exceptions=True)
        self.http.cookies.set("tp_session", token)
        self.csrf = ""

    def get(self, path: str, **params: str) -> httpx.Response:
        response: httpx.Response = self.http.get(path, params=params)
        found = CSRF.search(response.text)
        if found:
            self.csrf = found.group(1)
        return response

    def post(self, path: str, data: dict[str, str]) -> httpx.Response:
        response: httpx.Response = self.http.post(path, data={"csrf_token": self.csrf, **data})
        return response


@dataclass
class Counter:
    world: World
    insurer_id: int
    amc: str
    pharmacy: Browser
    other: Browser  # another provider, with a rejected line of its own
    staff: Browser  # the insurer's claims staff
    stranger: Browser  # another insurer's staff
    decided: str  # an adjudicated invoice of the pharmacy: line 1 accepted, line 2 rejected
    waiting: str  # a received invoice of the pharmacy, not yet decided
    others: str  # the other provider's rejected invoice


def _provider_browser(world: World, rng: random.Random, name: str) -> tuple[Browser, int]:
    amcs = world.amc_numbers
    provider = add_provider(
        world.platform, rng, "pharmacy", name=name, amcs=amcs, rpps=True, finess=True, iban=True
    )
    assert provider.rpps is not None
    accounts.create_account(
        world.platform, AccountKind.PROVIDER_USER, None, None, actor="test",
        provider_id=provider.id, rpps=provider.rpps,
    )  # fmt: skip
    identity = OidcIdentity(
        "https://psc.example", f"psc-{provider.rpps}", provider.rpps, "eidas2", ("pop",),
        world.platform.now(),
    )  # fmt: skip
    session = accounts.login_oidc(world.platform, identity)
    return Browser(world, session.token), provider.id


def _invoice(world: World, claim_id: int) -> str:
    with world.platform.engine.connect() as conn:
        number = conn.execute(
            select(claims.c.invoice_number).where(claims.c.id == claim_id)
        ).scalar_one()
    return str(number)


@pytest.fixture(scope="module", params=ENGINE_PARAMS)
def counter(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Counter]:
    world = build_world(str(request.param), request, tmp_path_factory, count=12)
    platform = world.platform
    try:
        amc, other_amc = world.amc_numbers[:2]
        with platform.engine.connect() as conn:
            insurer_id = insurers.get_insurer(conn, amc).id
        rng = random.Random(f"counter:{request.param}")
        pharmacy, pharmacy_id = _provider_browser(world, rng, "Pharmacie des Lilas")
        other, other_id = _provider_browser(world, rng, "Pharmacie des Tilleuls")

        def claim(provider_id: int, lines: tuple[Line, ...], care_date: date) -> int:
            return adjudicated_claim(
                platform, insurer_id=insurer_id, amc_number=amc, provider_id=provider_id,
                lines=lines, care_date=care_date,
            )  # fmt: skip

        decided = claim(pharmacy_id, (ACCEPTED, REJECTED), FIRST_DAY)
        waiting = claim(pharmacy_id, (ACCEPTED,), SECOND_DAY)
        with platform.engine.begin() as conn:  # not yet decided: as received
            conn.execute(
                update(claims)
                .where(claims.c.id == waiting)
                .values(status="received", adjudicated_at=None, amc_accepted_cents=0)
            )
            conn.execute(
                update(claim_lines)
                .where(claim_lines.c.claim_id == waiting)
                .values(status="received", amc_accepted_cents=0, decided_at=None)
            )
        for _ in range(26):  # more than one page
            claim(pharmacy_id, (Line(billed=2000, accepted=700),), PAGED_DAY)
        others = claim(other_id, (REJECTED,), FIRST_DAY)
        # One payment run: the pharmacy's decided lines are paid (3,50 € + 26 × 7 €)
        payments.run_payments(platform, TODAY, out_dir=tmp_path_factory.mktemp("pay"))
        staff = Browser(world, staff_session(world, "insurer_staff", amc=amc))
        stranger = Browser(world, staff_session(world, "insurer_staff", amc=other_amc))
        yield Counter(
            world, insurer_id, amc, pharmacy, other, staff, stranger,
            _invoice(world, decided), _invoice(world, waiting), _invoice(world, others),
        )  # fmt: skip
    finally:
        close_world(world)


def _text(response: httpx.Response) -> str:
    return " ".join(unescape(re.sub(r"<[^>]+>", " ", response.text)).split())


def test_my_invoices_lists_only_mine_with_amounts_and_pending_decisions(counter: Counter) -> None:
    # When the pharmacist opens « Mes factures » filtered on the first care day
    page = counter.pharmacy.get(MINE, du="2026-02-01", au="2026-02-28")
    text = _text(page)
    # Then both of its February invoices are listed, linked by number to their follow-up
    assert page.status_code == 200
    assert "2 factures" in text
    for number in (counter.decided, counter.waiting):
        assert f'href="/portail/prestataire/suivi?facture={number}"' in page.text
    # And the decided one shows billed, AMO, AMC requested and accepted in French format
    row = text.split(counter.decided, 1)[1].split(counter.waiting, 1)[0]
    assert "02/02/2026" in row
    assert "traitée" in row
    assert "25,00 €" in row  # billed: 10 € + 15 €
    assert "15,50 €" in row  # AMO: 6,50 € + 9 €
    assert "9,50 €" in row  # AMC requested: 3,50 € + 6 €
    assert "3,50 €" in row  # AMC accepted
    assert "1 ligne rejetée ou réduite" in row
    # And the undecided one says it waits, never « 0,00 € » accepted
    waiting = text.split(counter.waiting, 1)[1]
    assert "reçue, en attente de traitement" in waiting
    assert "en attente de décision" in waiting
    # And the other provider's invoice is not there
    assert counter.others not in page.text


def test_my_invoices_filters_by_number_status_and_pages(counter: Counter) -> None:
    by_number = _text(counter.pharmacy.get(MINE, numero=counter.decided))
    assert "1 facture" in by_number
    assert counter.decided in by_number
    received = counter.pharmacy.get(MINE, etat="received")
    assert "1 facture" in _text(received)
    assert counter.waiting in received.text
    january = counter.pharmacy.get(MINE, du="2026-01-12", au="2026-01-12")
    assert "26 factures — page 1 sur 2" in _text(january)
    second = counter.pharmacy.get(MINE, du="2026-01-12", au="2026-01-12", page="2")
    assert "page 1 sur 2" in _text(counter.pharmacy.get(MINE, du="2026-01-12", page="x"))
    assert "page 2 sur 2" in _text(second)
    assert second.text.count('href="/portail/prestataire/suivi?facture=') == 1
    # Another provider's number finds nothing
    assert "0 facture" in _text(counter.pharmacy.get(MINE, numero=counter.others))


def test_follow_up_by_invoice_number_is_the_providers_own(counter: Counter) -> None:
    mine = _text(counter.pharmacy.get("/portail/prestataire/suivi", facture=counter.decided))
    assert f"Facture {counter.decided}" in mine
    assert "rejetée" in mine
    assert "Pas de droits complémentaires" in mine
    assert "Corriger et renvoyer cette facture" in mine
    waiting = _text(counter.pharmacy.get("/portail/prestataire/suivi", facture=counter.waiting))
    assert "Part complémentaire acceptée en attente de décision" in waiting
    theirs = _text(counter.pharmacy.get("/portail/prestataire/suivi", facture=counter.others))
    assert "Aucune facture de votre structure ne porte ce numéro." in theirs
    assert f"Facture {counter.others}" not in theirs


def test_correcting_prefills_the_invoice_form_without_the_card(counter: Counter) -> None:
    page = counter.pharmacy.get("/portail/prestataire/factures/corriger", facture=counter.decided)
    assert page.status_code == 200
    assert 'name="correction" value="1"' in page.text
    number = 'name="invoice_number" type="text" maxlength="40" value="{}"'
    assert number.format(counter.decided) in page.text
    assert 'value="2026-02-02"' in page.text
    assert 'id="billed_2" name="billed_2" type="text" maxlength="12" value="15,00"' in page.text
    assert 'id="nir" name="nir" maxlength="21" autocomplete="off">' in page.text
    # Another provider's invoice cannot be opened for correction
    theirs = counter.pharmacy.get("/portail/prestataire/factures/corriger", facture=counter.others)
    assert "Aucune facture de votre structure ne porte ce numéro." in _text(theirs)
    assert 'name="correction"' not in theirs.text


def _audits(counter: Counter, action: str) -> int:
    with counter.world.platform.engine.connect() as conn:
        rows = conn.execute(select(audit_events.c.seq).where(audit_events.c.action == action))
        return len(list(rows))


def test_a_dispute_goes_to_the_insurer_and_its_answer_comes_back(counter: Counter) -> None:
    pharmacy, staff = counter.pharmacy, counter.staff
    # Given the pharmacist's rejects: the rejected line, its reason and what to do
    rejects = _text(pharmacy.get(REJECTS))
    assert counter.decided in rejects
    assert "Pas de droits complémentaires à la date des soins" in rejects
    assert "Vérifiez la carte et la date des soins" in rejects
    assert counter.others not in rejects
    before = _audits(counter, "claim.dispute")
    answers_before = _audits(counter, "claim.dispute_answer")
    # When the pharmacist disputes line 2, twice (a retried form)
    form = {"invoice_number": counter.decided, "line": "2", "reason": "Droits ouverts au 1er"}
    sent = pharmacy.post("/portail/prestataire/factures/contester", form)
    again = pharmacy.post("/portail/prestataire/factures/contester", form)
    # Then one dispute is open, and audited once
    assert "Contestation envoyée" in _text(sent)
    assert "déjà contestée" in _text(again)
    with counter.world.platform.engine.connect() as conn:
        rows = list(
            conn.execute(
                select(claim_disputes.c.id, claim_disputes.c.state).where(
                    claim_disputes.c.invoice_number == counter.decided
                )
            )
        )
    assert [r.state for r in rows] == ["open"]
    dispute_id = rows[0].id
    assert _audits(counter, "claim.dispute") == before + 1
    # And an accepted line cannot be disputed
    accepted = pharmacy.post("/portail/prestataire/factures/contester", {**form, "line": "1"})
    assert accepted.status_code == 422
    assert "Seule une ligne rejetée ou réduite" in _text(accepted)
    # And the other provider and the other insurer see nothing of it
    assert "Droits ouverts au 1er" not in pharmacy_text(counter.other, REJECTS)
    assert "Droits ouverts au 1er" not in pharmacy_text(counter.stranger, DISPUTES)
    refused = counter.stranger.post(
        f"{DISPUTES}/repondre",
        {"dispute": str(dispute_id), "decision": "refused", "answer": "Non"},
    )
    assert "Aucune contestation de votre organisme ne porte ce numéro." in _text(refused)
    # When the insurer's staff, who see it with the line's decision, accept it
    queue = _text(staff.get(DISPUTES))
    assert "Droits ouverts au 1er" in queue
    assert "Pharmacie des Lilas" in queue
    answer = staff.post(
        f"{DISPUTES}/repondre",
        {"dispute": str(dispute_id), "decision": "accepted", "answer": "Droits confirmés"},
    )
    assert "Contestation acceptée" in _text(answer)
    retried = staff.post(
        f"{DISPUTES}/repondre",
        {"dispute": str(dispute_id), "decision": "accepted", "answer": "Droits confirmés"},
    )
    assert "Contestation acceptée" in _text(retried)  # the same answer again: once
    twice = staff.post(
        f"{DISPUTES}/repondre",
        {"dispute": str(dispute_id), "decision": "refused", "answer": "Non"},
    )
    assert "Cette contestation a déjà reçu une réponse." in _text(twice)
    # Then the pharmacist reads the answer, and that the amount changes only with the
    # corrected invoice: the line is still rejected, nothing accepted
    back = _text(pharmacy.get(REJECTS))
    assert "Droits confirmés" in back
    assert "acceptée" in back
    assert "n'est pas modifié par cette réponse" in back
    with counter.world.platform.engine.connect() as conn:
        line = conn.execute(
            select(claim_lines.c.status, claim_lines.c.amc_accepted_cents)
            .join(
                claims,
                (claims.c.insurer_id == claim_lines.c.insurer_id)
                & (claims.c.id == claim_lines.c.claim_id),
            )
            .where(claims.c.invoice_number == counter.decided, claim_lines.c.line_no == 2)
        ).one()
    assert tuple(line) == ("rejected", 0)
    assert _audits(counter, "claim.dispute_answer") == answers_before + 1
    # And the accepted line is not disputed again: the corrected invoice is what is left
    again = pharmacy.post("/portail/prestataire/factures/contester", form)
    assert "Cette contestation a déjà reçu une réponse." in _text(again)
    assert "Contestation acceptée : envoyez la facture corrigée." in _text(pharmacy.get(REJECTS))


def pharmacy_text(browser: Browser, path: str) -> str:
    return _text(browser.get(path))


def test_the_header_names_who_is_logged_in_and_their_structure(counter: Counter) -> None:
    pharmacy = _text(counter.pharmacy.get(MINE))
    assert "Connecté :" in pharmacy
    assert re.search(r"Pharmacie des Lilas — FINESS \d{9}", pharmacy)
    assert "Se déconnecter" in pharmacy
    staff = _text(counter.staff.get(DISPUTES))
    assert f"— AMC {counter.amc}" in staff
    assert "Connecté : insurer_staff." in staff  # the login, lacking a display name


def test_payments_are_searchable_by_period_amount_and_run(counter: Counter) -> None:
    pay = "/portail/prestataire/paiements"
    reference = f"R{TODAY:%Y%m%d}-"
    everything = counter.pharmacy.get(pay)
    assert "185,50" in _text(everything)
    assert reference in everything.text
    # The amount of the transfer, as typed in French or with a dot
    assert "185,50" in _text(counter.pharmacy.get(pay, montant="185,50"))
    assert "185,50" in _text(counter.pharmacy.get(pay, montant="185.5"))
    other_amount = _text(counter.pharmacy.get(pay, montant="185,51"))
    assert "Aucun paiement ne correspond à cette recherche." in other_amount
    # The period of payment dates
    day = TODAY.isoformat()
    assert "185,50" in _text(counter.pharmacy.get(pay, du=day, au=day))
    before = _text(counter.pharmacy.get(pay, au="2026-03-15"))
    assert "Aucun paiement ne correspond à cette recherche." in before
    # The run, by the reference of its transfer (as the bank statement shows it)
    assert "185,50" in _text(counter.pharmacy.get(pay, reference=f"TP{TODAY:%Y%m%d}-1"))
    assert "Aucun paiement" in _text(counter.pharmacy.get(pay, reference="TP20260317-1"))
    # And the other provider, never paid (its only line was rejected), finds nothing
    assert "185,50" not in _text(counter.other.get(pay, montant="185,50"))
