"""The harmonised card on SQLite and PostgreSQL: what the issue prints, what decode says.

Given issued cards, when their DataMatrix text is decoded (service and CLI), then the
fields match the family and the proof is valid; a tampered field or a foreign key gives
``invalid`` (audited), a mistyped scan a ``card.misread`` (not audited); the PDF's text
holds the standard box.
"""

from __future__ import annotations

import io
import uuid
from pathlib import Path

import pytest
import yaml
import zxingcpp
from pypdf import PdfReader
from sqlalchemy import select
from typer.testing import CliRunner

from tests.integration.test_cards import (
    ACTOR,
    CATALOGUE,
    World,
    capture_cards,
    issue,
    make_world,
)
from tests.unit.formats.test_harmonised_card import azerty
from tierspayant.app.platform import Platform
from tierspayant.cli.main import app
from tierspayant.formats import card_pdf
from tierspayant.formats import harmonised_card as h
from tierspayant.security import cardsig
from tierspayant.services import card_scans
from tierspayant.services.card_scans import ProofStatus
from tierspayant.services.errors import Unprocessable
from tierspayant.services.insurers import upload_catalogue
from tierspayant.store.tables import audit_events

__all__ = ["capture_cards"]  # the fixture, shared with the cards tests


@pytest.fixture
def actor() -> str:
    """Who decodes, one per test: the PostgreSQL database (and its audit log) is shared."""
    return f"operator:test-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def issued(
    platform: Platform, tmp_path: Path, capture_cards: list[card_pdf.CardPrint]
) -> tuple[World, list[card_pdf.CardPrint]]:
    world = make_world(platform, tmp_path, count=20, seed=5)
    issue(world, capture_cards)
    assert capture_cards
    return world, list(capture_cards)


def refusals(platform: Platform, actor: str) -> list[str]:
    """The decisions of ``actor``'s refused decodes (the PostgreSQL database is shared)."""
    with platform.engine.connect() as conn:
        return list(
            conn.execute(
                select(audit_events.c.decision).where(
                    audit_events.c.action == "card.decode_refused",
                    audit_events.c.actor == actor,
                )
            ).scalars()
        )


def test_given_issued_cards_then_each_datamatrix_carries_the_family_and_a_valid_proof(
    platform: Platform, issued: tuple[World, list[card_pdf.CardPrint]], actor: str
) -> None:
    world, printed = issued
    for card in printed:
        decoded = card_scans.decode_scan(platform, card.datamatrix_text, actor)
        assert decoded.proof is ProofStatus.VALID
        assert decoded.serial == card.serial
        fields = decoded.fields
        assert fields is not None
        assert fields == card.harmonised
        assert (fields.amc_number, fields.member_number) == (world.amc, card.member_number)
        family = {(p.birth_rank, p.birth_date) for p in world.family(card.member_number)}
        rows = {(b.rank, b.birth_date.isoformat()) for b in fields.beneficiaries}
        assert rows <= family
        assert fields.responsable  # the example catalogue's contracts are all responsables
        # The routing fields come from the catalogue's card block.
        assert (fields.convention_type, fields.routing_criterion) == ("TM1", "0042")
        assert all(b.rights for b in fields.beneficiaries)
        # The DataMatrix ends with the very proof the QR code carries.
        assert h.decode(card.datamatrix_text).proof == card.qr_text
        qr = card_scans.decode_scan(platform, card.qr_text, actor)
        assert (qr.proof, qr.fields, qr.serial) == (ProofStatus.VALID, None, card.serial)
    assert refusals(platform, actor) == []


def test_given_a_card_pdf_then_its_text_has_the_box_and_its_image_the_datamatrix(
    issued: tuple[World, list[card_pdf.CardPrint]],
) -> None:
    _, printed = issued
    card = printed[0]
    pdf = card_pdf.render_card(card)
    text = " ".join(PdfReader(io.BytesIO(pdf)).pages[0].extract_text().split())
    for label in (
        "Période de validité",
        "Numéro AMC",
        "Type de convention",
        "Critère second. de routage (CSR)",
        "Numéro d'adhérent",
        "Droits par bénéficiaire",
        "contrat responsable",
    ):
        assert label in text, label
    for value in (card.amc_number, card.member_number, card.serial, "PH100"):
        assert value in text, value
    # Each routing value on the line of its label, from the catalogue's card block.
    assert "Type de convention TM1" in text
    assert "Critère second. de routage (CSR) 0042" in text
    first = card.beneficiaries[0]
    assert first.birth_date.strftime("%d/%m/%Y") in text
    images = [i.image for i in PdfReader(io.BytesIO(pdf)).pages[0].images]
    read = {b.text for img in images for b in zxingcpp.read_barcodes(img)}
    assert read == {card.datamatrix_text, card.qr_text}


def test_given_an_insurer_without_a_card_block_then_its_cards_print_the_fields_empty(
    platform: Platform, tmp_path: Path, capture_cards: list[card_pdf.CardPrint], actor: str
) -> None:
    world = make_world(platform, tmp_path, count=4, seed=9)
    document = yaml.safe_load(CATALOGUE.read_text(encoding="utf-8"))
    document["insurer"] = world.amc
    document["version"] = "2026.2"
    del document["card"]
    upload_catalogue(platform, world.amc, document, ACTOR)
    issue(world, capture_cards)
    assert capture_cards
    for card in capture_cards:
        assert (card.harmonised.convention_type, card.harmonised.routing_criterion) == ("", "")
        assert f"|{world.amc}|||" in card.datamatrix_text
        decoded = card_scans.decode_scan(platform, card.datamatrix_text, actor)
        assert decoded.proof is ProofStatus.VALID
        assert decoded.fields is not None
        assert decoded.fields.routing_criterion == ""


def test_given_tampered_or_foreign_codes_then_invalid_and_audited_not_misread(
    platform: Platform, issued: tuple[World, list[card_pdf.CardPrint]], actor: str
) -> None:
    _, printed = issued
    card = printed[0]
    scanned = h.decode(card.datamatrix_text)
    other_member = card.member_number[:-1] + ("1" if card.member_number[-1] != "1" else "2")
    tampered = card.datamatrix_text.replace(f"|{card.member_number}|", f"|{other_member}|", 1)
    stranger = cardsig.new_signing_key()
    assert scanned.proof is not None
    resigned = scanned.signed_text + cardsig.sign_harmonised(scanned.signed_text, stranger)
    foreign_proof = printed[1].qr_text if len(printed) > 1 else card.qr_text
    swapped = h.signed_part(scanned.card, foreign_proof)
    swapped += cardsig.sign_harmonised(swapped, stranger)
    for bad in (tampered, resigned, swapped):
        decoded = card_scans.decode_scan(platform, bad, actor)
        assert decoded.proof is ProofStatus.INVALID
    assert refusals(platform, actor) == ["deny"] * 3


def test_given_misreads_then_a_coded_misread_and_nothing_audited(
    platform: Platform, issued: tuple[World, list[card_pdf.CardPrint]], actor: str
) -> None:
    _, printed = issued
    card = printed[0]
    for bad in (
        azerty(card.datamatrix_text),
        card.datamatrix_text[:-10],
        card.qr_text[:-6],
        "TP&MQBCDEF%%GHIJ",
        "TP1:ABCDEF",
    ):
        with pytest.raises(Unprocessable) as caught:
            card_scans.decode_scan(platform, bad, actor)
        assert caught.value.code == "card.misread"
    assert refusals(platform, actor) == []
    without_proof = h.fields_text(card.harmonised)
    decoded = card_scans.decode_scan(platform, without_proof, actor)
    assert (decoded.proof, decoded.fields) == (ProofStatus.ABSENT, card.harmonised)


def test_given_the_decode_command_then_french_fields_and_the_proof_status(
    platform: Platform,
    issued: tuple[World, list[card_pdf.CardPrint]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _, printed = issued
    card = printed[0]
    monkeypatch.setenv("TIERSPAYANT_DATA_DIR", str(platform.settings.data_dir))
    monkeypatch.setenv("TIERSPAYANT_DATABASE_URL", platform.settings.database_url)
    monkeypatch.setenv("COLUMNS", "250")
    runner = CliRunner()
    result = runner.invoke(app, ["cards", "decode", card.datamatrix_text])
    assert result.exit_code == 0, result.output
    for expected in (
        "Numéro AMC",
        card.amc_number,
        "Numéro d'adhérent",
        card.member_number,
        "Contrat responsable",
        "oui (R)",
        "Bénéficiaire rang",
        "PHAR PH100",
        "Preuve signée",
        "valide",
        card.serial,
    ):
        assert expected in result.output, expected
    tampered = card.datamatrix_text.replace("|R|", "|N|", 1)
    result = runner.invoke(app, ["cards", "decode", tampered])
    assert result.exit_code == 1
    assert "INVALIDE" in result.output
    result = runner.invoke(app, ["cards", "decode", "TP&MQBCDEF%%GHIJ"])
    assert result.exit_code == 2
    assert "[card.misread]" in result.output
    assert "code mal lu" in result.output
    result = runner.invoke(app, ["cards", "decode", h.fields_text(card.harmonised)])
    assert result.exit_code == 0
    assert "absente" in result.output
