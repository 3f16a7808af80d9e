"""The claims officer's desk through the real app, on SQLite and PostgreSQL: the undue
amounts of the insurer with what payment runs recovered of them, the flag form by invoice
number (field-level French errors, idempotent), the catalogue in force and its editions;
another insurer's staff see and reach none of it."""

from __future__ import annotations

import random
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from html import unescape

import httpx
import pytest
from sqlalchemy import update

from tests.api.world import ENGINE_PARAMS, TODAY, World, build_world, close_world, staff_session
from tests.money_support import ACCEPTED, REDUCED, Line, adjudicated_claim, make_provider
from tests.web.portal_client import csrf_of
from tierspayant.domain.ledger import AccountKind, account
from tierspayant.security.principal import AuthStrength, Principal, PrincipalKind
from tierspayant.services import insurers, overpayments, payments
from tierspayant.services.providers import Provider
from tierspayant.store import ledger
from tierspayant.store.claims_tables import claims

BIG = Line("C", "MED", billed=3000, amo=1900, accepted=1100)
ROOT = "/portail/assureur"
TOMORROW = TODAY + timedelta(days=1)


@dataclass(frozen=True, slots=True)
class Desk:
    world: World
    amc: tuple[str, str]  # the insurer under test, the other one
    ids: tuple[int, int]
    first: Provider  # owes back 11.00, recovered 7.00 by the second run
    second: Provider
    third: Provider  # sent an invoice numbered like one of the second's
    recovered: str  # invoice number of the partly recovered undue amount
    unpaid: str  # an invoice adjudicated after the runs: not paid
    to_flag: tuple[str, str, str]  # paid invoices the tests flag, one each
    shared: str  # the invoice number two providers used
    other_undue: str  # the other insurer's undue amount (3.50 €)


@pytest.fixture(scope="module", params=ENGINE_PARAMS)
def desk(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Desk]:
    world = build_world(str(request.param), request, tmp_path_factory, count=20)
    platform = world.platform
    try:
        amc, other = world.amc_numbers[0], world.amc_numbers[1]
        with platform.engine.connect() as conn:
            ids = (insurers.get_insurer(conn, amc).id, insurers.get_insurer(conn, other).id)
        rng = random.Random(f"desk2:{request.param}")
        first, second, third, fourth = (make_provider(platform, rng) for _ in range(4))

        def claim(provider: Provider, line: Line = ACCEPTED, insurer: int = 0) -> int:
            return adjudicated_claim(
                platform, insurer_id=ids[insurer], amc_number=(amc, other)[insurer],
                provider_id=provider.id, lines=(line,),
            )  # fmt: skip

        recovered = claim(first, BIG)
        flagged = [claim(second) for _ in range(3)]
        shared, twin = claim(second), claim(third)
        other_undue = claim(fourth, insurer=1)
        out = tmp_path_factory.mktemp("pay")
        payments.run_payments(platform, TODAY, out_dir=out)
        with platform.engine.begin() as conn:
            conn.execute(
                update(claims)
                .where(claims.c.insurer_id == ids[0], claims.c.id == twin)
                .values(invoice_number=f"F{shared:08d}")
            )
        staff = _principal(ids[0])
        overpayments.flag_undue(platform, staff, recovered, 1, "rights.ended")
        overpayments.flag_undue(platform, _principal(ids[1]), other_undue, 1, "care.not_given")
        # The next day the first provider is owed 7.00: deducted, 4.00 stays to recover.
        world.clock.advance(days=1)
        claim(first, REDUCED)
        payments.run_payments(platform, TOMORROW, out_dir=out)
        unpaid = claim(second)
        yield Desk(
            world, (amc, other), ids, first, second, third,
            recovered=f"F{recovered:08d}", unpaid=f"F{unpaid:08d}",
            to_flag=tuple(f"F{c:08d}" for c in flagged),  # type: ignore[arg-type]
            shared=f"F{shared:08d}", other_undue=f"F{other_undue:08d}",
        )  # fmt: skip
    finally:
        close_world(world)


def _principal(insurer_id: int) -> Principal:
    return Principal(
        id=f"staff:desk2:{insurer_id}",
        kind=PrincipalKind.INSURER_STAFF,
        strength=AuthStrength.AAL2,
        insurer_id=insurer_id,
    )


class Officer:
    """A claims officer's browser on the insurer portal: session cookie, CSRF token."""

    def __init__(self, desk: Desk, amc: str) -> None:
        self.client = desk.world.client
        self.cookie = f"tp_session={staff_session(desk.world, 'insurer_staff', amc=amc)}"
        self.csrf = ""

    def get(self, path: str) -> httpx.Response:
        response: httpx.Response = self.client.get(f"{ROOT}{path}", headers={"cookie": self.cookie})
        if "csrf_token" in response.text:
            self.csrf = csrf_of(response.text)
        return response

    def flag(self, **fields: str) -> httpx.Response:
        if not self.csrf:
            self.get("/indus")
        response: httpx.Response = self.client.post(
            f"{ROOT}/indus",
            data={"csrf_token": self.csrf, **fields},
            headers={"cookie": self.cookie},
        )
        return response


def text_of(response: httpx.Response) -> str:
    page = re.sub(r"<[^>]+>", " ", response.text)
    return re.sub(r"\s+", " ", unescape(page)).replace("\xa0", " ").replace("\u202f", " ")


def _row(page: str, invoice: str) -> str:
    """The text of the table row of ``invoice`` on the undue page."""
    match = re.search(rf"<tr>(?:(?!</tr>).)*{invoice}(?:(?!</tr>).)*</tr>", page, re.S)
    assert match is not None, f"no row for {invoice}"
    return re.sub(r"\s+", " ", unescape(re.sub(r"<[^>]+>", " ", match.group()))).replace(
        "\xa0", " "
    )


def _overpaid(desk: Desk, provider: Provider) -> int:
    with desk.world.platform.engine.connect() as conn:
        return ledger.balance(conn, account(AccountKind.PROVIDER_OVERPAID, provider.id))


def test_the_undue_page_shows_what_each_payment_run_recovered(desk: Desk) -> None:
    page = Officer(desk, desk.amc[0]).get("/indus")
    assert page.status_code == 200
    row = _row(page.text, desk.recovered)
    assert desk.first.name in row
    assert f"AM {desk.first.am_number}" in row
    assert "11,00 €" in row  # the amount
    assert "Droits fermés à la date des soins" in row
    assert "7,00 € sur le paiement du 17/03/2026" in row
    assert "4,00 €" in row  # what remains
    assert "recouvré partiellement" in row
    assert _overpaid(desk, desk.first) == 400  # the ledger says the same


def test_the_totals_count_flagged_recovered_and_remaining(desk: Desk) -> None:
    # The other insurer's book holds one undue amount no test changes.
    text = text_of(Officer(desk, desk.amc[1]).get("/indus"))
    assert "Totaux (1 indu)" in text
    assert "Montant des indus 3,50 € Recouvré 0,00 € Reste à recouvrer 3,50 €" in text
    assert "Soins non réalisés" in text
    assert "à recouvrer" in text


def test_another_insurers_staff_see_none_of_its_undue_amounts(desk: Desk) -> None:
    page = Officer(desk, desk.amc[1]).get("/indus")
    assert desk.recovered not in page.text
    assert desk.first.name not in page.text
    assert desk.other_undue in page.text
    mine = Officer(desk, desk.amc[0]).get("/indus")
    assert desk.other_undue not in mine.text


def test_a_paid_line_is_flagged_from_its_invoice_number_once(desk: Desk) -> None:
    officer = Officer(desk, desk.amc[0])
    invoice = desk.to_flag[0]
    before = _overpaid(desk, desk.second)
    done = officer.flag(invoice_number=invoice, line_no="1", reason_code="claim.duplicate")
    assert done.status_code == 200, text_of(done)
    assert f"Ligne 1 de la facture {invoice} ({desk.second.name}) déclarée indue" in text_of(done)
    row = _row(done.text, invoice)
    assert "Facture déjà payée (doublon)" in row
    assert "à recouvrer" in row
    assert _overpaid(desk, desk.second) == before + 350

    again = officer.flag(invoice_number=invoice, line_no="1", reason_code="claim.duplicate")
    assert again.status_code == 200
    assert "était déjà déclarée indue : rien de plus" in text_of(again)
    assert again.text.count(f"<code>{invoice}</code>") == 1
    assert _overpaid(desk, desk.second) == before + 350


@pytest.mark.parametrize(
    ("fields", "status", "field", "message"),
    [
        ({"line_no": "1", "reason_code": "rights.ended"}, 400, "invoice_number",
         "Indiquez le numéro de la facture"),
        ({"invoice_number": "{flag}", "line_no": "un", "reason_code": "rights.ended"}, 400,
         "line_no", "Indiquez le numéro de ligne : un nombre de 1 à 99."),
        ({"invoice_number": "{flag}", "line_no": "1", "reason_code": ""}, 400,
         "reason_code", "Choisissez un motif dans la liste."),
        ({"invoice_number": "{flag}", "line_no": "1", "reason_code": "claim.corrected"}, 400,
         "reason_code", "Choisissez un motif dans la liste."),
        ({"invoice_number": "{flag}", "line_no": "2", "reason_code": "rights.ended"}, 404,
         "line_no", "Cette facture n'a pas de ligne portant ce numéro."),
        ({"invoice_number": "{unpaid}", "line_no": "1", "reason_code": "rights.ended"}, 409,
         "line_no", "Cette ligne n'a pas été payée : rien n'est à recouvrer."),
        ({"invoice_number": "F-INCONNUE", "line_no": "1", "reason_code": "rights.ended"}, 404,
         "invoice_number", "Aucune facture de votre organisme ne porte ce numéro."),
        ({"invoice_number": "{shared}", "line_no": "1", "reason_code": "rights.ended"}, 409,
         "provider", "Plusieurs professionnels ont envoyé une facture sous ce numéro"),
    ],
)  # fmt: skip
def test_a_refused_flag_says_why_next_to_the_field(
    desk: Desk, fields: dict[str, str], status: int, field: str, message: str
) -> None:
    names = {"flag": desk.to_flag[1], "unpaid": desk.unpaid, "shared": desk.shared}
    sent = {k: v.format(**names) for k, v in fields.items()}
    before = _overpaid(desk, desk.second)
    answer = Officer(desk, desk.amc[0]).flag(**sent)
    assert answer.status_code == status, text_of(answer)
    assert f'id="{field}-erreur"' in answer.text
    assert message in text_of(answer)
    assert "Rien n'a été déclaré : corrigez le champ signalé." in text_of(answer)
    assert re.search(rf'id="{field}"[^>]*aria-invalid="true"', answer.text)
    assert _overpaid(desk, desk.second) == before  # nothing flagged


def test_two_providers_numbering_an_invoice_alike_are_told_apart(desk: Desk) -> None:
    officer = Officer(desk, desk.amc[0])
    done = officer.flag(
        invoice_number=desk.shared,
        line_no="1",
        reason_code="amount.wrong",
        provider=desk.third.am_number,
    )
    assert done.status_code == 200, text_of(done)
    assert f"({desk.third.name}) déclarée indue" in text_of(done)
    assert _overpaid(desk, desk.third) == 350


def test_another_insurers_invoice_cannot_be_flagged(desk: Desk) -> None:
    before = _overpaid(desk, desk.second)
    answer = Officer(desk, desk.amc[1]).flag(
        invoice_number=desk.to_flag[2], line_no="1", reason_code="rights.ended"
    )
    assert answer.status_code == 404
    assert "Aucune facture de votre organisme ne porte ce numéro." in text_of(answer)
    assert desk.second.name not in answer.text
    assert _overpaid(desk, desk.second) == before


def test_the_catalogue_in_force_is_readable_with_its_editions(desk: Desk) -> None:
    text = text_of(Officer(desk, desk.amc[0]).get("/catalogue"))
    assert "Catalogue en vigueur" in text
    assert "Édition « 2026.1 » — Mutuelle des Tilleuls, déposée le" in text
    assert "Contrat ESSENTIEL" in text
    assert "(contrat responsable)" in text
    assert "de la base de remboursement" in text
    assert "Pharmacie — tiers payant, code de couverture" in text
    assert "Plafond : 100,00 € par année civile" in text
    assert "Coordonnées publiées pour vos adhérents" in text
    assert "Historique des éditions" in text
    assert "1 (en vigueur)" in text
    # Scoping: the other insurer's catalogue is not shown.
    assert "PREMIUM" not in text
    assert "Azur" not in text


def test_the_other_insurer_reads_its_own_catalogue(desk: Desk) -> None:
    text = text_of(Officer(desk, desk.amc[1]).get("/catalogue"))
    assert "Contrat PREMIUM" in text
    assert "Édition « 2026.02 » — Azur Assurances Santé" in text
    assert "ESSENTIEL" not in text


def test_a_claims_page_can_link_to_the_form_filled_in(desk: Desk) -> None:
    officer = Officer(desk, desk.amc[0])
    before = _overpaid(desk, desk.second)
    page = officer.get(f"/indus?facture={desk.to_flag[1]}&ligne=1")
    assert page.status_code == 200
    assert f'name="invoice_number" maxlength="40" value="{desk.to_flag[1]}"' in page.text
    assert 'name="line_no" inputmode="numeric" maxlength="2" value="1"' in page.text
    assert _overpaid(desk, desk.second) == before  # a GET flags nothing
    hostile = officer.get('/indus?facture="><script>x</script>')
    assert "<script>x</script>" not in hostile.text
