"""Remittance advice over HTTP: the printable PDF for the owning provider only, and an
audit event for every read of remittance data (list, JSON page, PDF), refusals included.

A real app over a real database (SQLite and PostgreSQL): two payment runs, the second one
deducting an undue amount flagged in between, so the advice has paid, reduced and
rejected lines and an indu recovery line.
"""

from __future__ import annotations

import json
import random
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime

import pytest
from sqlalchemy import select

from tests.api.world import ENGINE_PARAMS, Clock, error_code, open_platform_for, request_token
from tests.money_support import (
    ACCEPTED,
    REDUCED,
    REJECTED,
    Line,
    adjudicated_claim,
    make_provider,
)
from tests.pdf_support import pdf_text
from tierspayant.api.app import create_app
from tierspayant.app.platform import Platform
from tierspayant.domain.adjudication import REASONS, Reason
from tierspayant.domain.payments import RemittanceHeader
from tierspayant.formats.remittance_pdf import french_amount
from tierspayant.security.principal import AuthStrength, Principal, PrincipalKind
from tierspayant.services import insurers, overpayments, payments, providers
from tierspayant.store.tables import audit_events

with warnings.catch_warnings():
    # Starlette warns that it prefers httpx2 to httpx; the client works the same.
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

AMC = "31000017"
FIRST_DAY = date(2026, 5, 4)
PAY_DAY = date(2026, 5, 5)
CARE_DAY = date(2026, 4, 30)
UNDUE_REASON = str(Reason.RIGHTS_NONE)


@dataclass(frozen=True, slots=True)
class Paid:
    platform: Platform
    client: TestClient
    advice_id: str
    invoices: tuple[str, ...]  # invoices remitted on the advice
    undue_invoice: str  # the invoice whose undue amount the advice deducts
    owner: dict[str, str]  # the paid provider's bearer header
    other: dict[str, str]  # another provider's


def _invoice(claim_id: int) -> str:
    # money_support numbers invoices after the claim id.
    return f"F{claim_id:08d}"


@pytest.fixture(scope="module", params=ENGINE_PARAMS)
def paid(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Paid]:
    clock = Clock(datetime(2026, 5, 4, 9, tzinfo=UTC))
    platform, _ = open_platform_for(
        str(request.param), request, tmp_path_factory, guard=None, clock=clock
    )
    insurer = insurers.add_insurer(platform, AMC, "Mutuelle des Tilleuls", "mutuelle", "test")
    rng = random.Random(5)
    owner, stranger = make_provider(platform, rng), make_provider(platform, rng)

    def claim(provider_id: int, *lines: Line) -> int:
        return adjudicated_claim(
            platform, insurer_id=insurer.id, amc_number=AMC, provider_id=provider_id,
            lines=lines, care_date=CARE_DAY,
        )  # fmt: skip

    first = claim(owner.id, ACCEPTED)
    payments.run_payments(platform, FIRST_DAY, out_dir=tmp_path_factory.mktemp("first"))
    clock.now = datetime(2026, 5, 4, 12, tzinfo=UTC)
    staff = Principal(
        "staff:t", PrincipalKind.INSURER_STAFF, AuthStrength.AAL2, insurer_id=insurer.id
    )
    overpayments.flag_undue(platform, staff, first, 1, UNDUE_REASON)
    clock.now = datetime(2026, 5, 5, 9, tzinfo=UTC)
    claims = [
        claim(owner.id, ACCEPTED, REJECTED),
        claim(owner.id, REDUCED),
    ]
    claim(stranger.id, ACCEPTED)
    payments.run_payments(platform, PAY_DAY, out_dir=tmp_path_factory.mktemp("second"))
    client = TestClient(create_app(platform), raise_server_exceptions=False)
    headers = []
    for provider in (owner, stranger):
        credentials = providers.issue_client(platform, provider.am_number, "test", "test")
        token = request_token(client, credentials.client_id, credentials.client_secret)
        headers.append({"Authorization": f"Bearer {token}"})
    try:
        yield Paid(
            platform=platform,
            client=client,
            advice_id=f"R{PAY_DAY:%Y%m%d}-{owner.id}",
            invoices=tuple(_invoice(c) for c in claims),
            undue_invoice=_invoice(first),
            owner=headers[0],
            other=headers[1],
        )
    finally:
        client.close()
        platform.close()


def _events(paid: Paid, action: str) -> list[tuple[str, str, dict[str, object]]]:
    with paid.platform.engine.connect() as conn:
        rows = conn.execute(
            select(audit_events.c.actor, audit_events.c.decision, audit_events.c.detail)
            .where(audit_events.c.action == action)
            .order_by(audit_events.c.seq)
        ).all()
    return [(row.actor, row.decision, json.loads(row.detail)) for row in rows]


def _header(paid: Paid) -> RemittanceHeader:
    listed = paid.client.get("/v1/remittances", headers=paid.owner).json()["remittances"]
    (advice,) = [a for a in listed if a["id"] == paid.advice_id]
    lines = paid.client.get(f"/v1/remittances/{paid.advice_id}", headers=paid.owner).json()
    return RemittanceHeader(
        paid.advice_id, PAY_DAY, advice["provider_am_number"], "",
        round(float(advice["accepted"]) * 100), round(float(advice["undue_recovered"]) * 100),
        round(float(advice["transferred"]) * 100), len(lines["lines"]), advice["end_to_end_id"],
    )  # fmt: skip


def test_the_owner_downloads_the_advice_as_a_pdf_in_french(paid: Paid) -> None:
    url = f"/v1/remittances/{paid.advice_id}/pdf"
    response = paid.client.get(url, headers=paid.owner)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/pdf"
    assert f'filename="avis-{paid.advice_id}.pdf"' in response.headers["content-disposition"]
    assert response.content.startswith(b"%PDF-")
    text = pdf_text(response.content)
    for invoice in paid.invoices:
        assert invoice in text
    # The amounts the lines were paid: accepted, rejected (0) and reduced, and the totals.
    header = _header(paid)
    paid_cents = ACCEPTED.accepted + REJECTED.accepted + REDUCED.accepted
    assert header.gross_cents == paid_cents
    assert header.recovered_cents == ACCEPTED.accepted  # the undue line of the first run
    assert header.net_cents == paid_cents - ACCEPTED.accepted
    for cents in (header.gross_cents, header.recovered_cents, header.net_cents):
        assert f"{french_amount(cents)} EUR" in text
    assert header.end_to_end_id in text
    assert "rejetée" in text
    assert "rights.none - " + REASONS[Reason.RIGHTS_NONE][:25] in text
    # The undue amount deducted, as on the CSV: its invoice and a negative amount.
    assert paid.undue_invoice in text
    assert french_amount(-ACCEPTED.accepted) in text
    # Asked again: the very same bytes.
    assert paid.client.get(url, headers=paid.owner).content == response.content


def test_another_provider_gets_the_404_of_an_unknown_advice_and_is_audited(paid: Paid) -> None:
    before = len(_events(paid, payments.REMITTANCE_READ))
    stranger = paid.client.get(f"/v1/remittances/{paid.advice_id}/pdf", headers=paid.other)
    unknown = paid.client.get(f"/v1/remittances/R{PAY_DAY:%Y%m%d}-999999/pdf", headers=paid.owner)
    assert stranger.status_code == unknown.status_code == 404
    assert error_code(stranger) == error_code(unknown) == "remittance.unknown"
    assert stranger.json() == unknown.json()
    assert not stranger.content.startswith(b"%PDF")
    refused = _events(paid, payments.REMITTANCE_READ)[before:]
    assert [(decision, detail["format"]) for _, decision, detail in refused] == [
        ("deny", "pdf"),
        ("deny", "pdf"),
    ]
    assert refused[0][2]["advice"] == paid.advice_id
    # Each refusal names who asked: the other provider, then the owner (unknown id).
    assert paid.client.get("/v1/remittances", headers=paid.owner).status_code == 200
    owner_actor = _events(paid, payments.REMITTANCE_LIST)[-1][0]
    assert refused[0][0] != owner_actor
    assert refused[1][0] == owner_actor
    assert paid.client.get("/v1/remittances/x/pdf", headers=paid.owner).status_code == 422
    assert paid.client.get(f"/v1/remittances/{paid.advice_id}/pdf").status_code == 401


def test_every_read_of_remittance_data_is_audited_once(paid: Paid) -> None:
    reads = len(_events(paid, payments.REMITTANCE_READ))
    lists = len(_events(paid, payments.REMITTANCE_LIST))
    assert paid.client.get("/v1/remittances", headers=paid.owner).status_code == 200
    page = paid.client.get(f"/v1/remittances/{paid.advice_id}?limit=2", headers=paid.owner)
    assert page.status_code == 200
    document = paid.client.get(f"/v1/remittances/{paid.advice_id}/pdf", headers=paid.owner)
    assert document.status_code == 200
    (listed,) = _events(paid, payments.REMITTANCE_LIST)[lists:]
    assert listed[1:] == ("allow", {"advices": 2})  # the first run's advice and this one
    read = _events(paid, payments.REMITTANCE_READ)[reads:]
    assert [(decision, detail) for _, decision, detail in read] == [
        ("allow", {"advice": paid.advice_id, "format": "json", "offset": 0, "lines": 2}),
        ("allow", {"advice": paid.advice_id, "format": "pdf", "offset": 0, "lines": 3}),
    ]
    assert {actor for actor, _, _ in (listed, *read)} == {read[0][0]}


def test_the_advice_reads_as_a_fhir_payment_reconciliation_for_its_owner_only(
    paid: Paid,
) -> None:
    from tests.api.fhir_support import outcome_code, parsed

    path = f"/fhir/PaymentReconciliation/{paid.advice_id}"
    response = paid.client.get(path, headers=paid.owner)
    assert response.status_code == 200, response.text
    body = response.json()
    parsed(body)
    v1 = paid.client.get(f"/v1/remittances/{paid.advice_id}", headers=paid.owner).json()
    assert body["id"] == paid.advice_id
    assert body["paymentAmount"]["value"] == float(v1["remittance"]["transferred"])
    payments_ = [d for d in body["detail"] if d["type"]["coding"][0]["code"] == "payment"]
    adjustments = [d for d in body["detail"] if d["type"]["coding"][0]["code"] == "adjustment"]
    assert len(payments_) == len(v1["lines"])
    assert len(adjustments) == len(v1["undue_recovered"]) >= 1
    # Another provider gets the answer of an advice that does not exist.
    other = paid.client.get(path, headers=paid.other)
    unknown = paid.client.get("/fhir/PaymentReconciliation/R20260505-999999", headers=paid.owner)
    assert other.status_code == unknown.status_code == 404
    assert outcome_code(other) == outcome_code(unknown)
    assert other.content == unknown.content
