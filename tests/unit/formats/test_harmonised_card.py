"""The harmonised card's DataMatrix text (layout v1): fields ⇄ text ⇄ DataMatrix image.

Given random fields, when they go through the text, a DataMatrix image and zxing's reader,
then the same fields come back; given what a misconfigured reader types, then a misread.
"""

from __future__ import annotations

import dataclasses
import secrets
from datetime import date, timedelta

import pytest
import zxingcpp
from hypothesis import given, settings
from hypothesis import strategies as st

from tierspayant.domain.care import CareDomain
from tierspayant.formats import harmonised_card as h
from tierspayant.formats.card_pdf import datamatrix_image
from tierspayant.security import cardsig

DIGITS = "0123456789"
UPPER = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
COVERAGE = UPPER + UPPER.lower() + DIGITS + " %+-_."
days = st.dates(min_value=date(2000, 1, 1), max_value=date(2150, 12, 31))

rights = st.lists(
    st.builds(
        h.Right,
        st.sampled_from(list(CareDomain)),
        st.booleans(),
        st.text(COVERAGE, min_size=1, max_size=16),
    ),
    max_size=len(CareDomain),
    unique_by=lambda r: r.domain,
).map(tuple)
beneficiaries = st.lists(
    st.builds(h.BeneficiaryRights, st.integers(1, 9), days, rights),
    min_size=1,
    max_size=4,
).map(tuple)


@st.composite
def cards(draw: st.DrawFn) -> h.HarmonisedCard:
    start = draw(days)
    return h.HarmonisedCard(
        amc_number=draw(st.text(DIGITS, min_size=8, max_size=10)),
        convention_type=draw(st.text(UPPER + DIGITS, max_size=4)),
        routing_criterion=draw(st.text(UPPER + DIGITS, max_size=10)),
        member_number=draw(st.text(UPPER + UPPER.lower() + DIGITS + "-", min_size=1, max_size=20)),
        valid_from=start,
        valid_until=start + timedelta(days=draw(st.integers(0, 400))),
        responsable=draw(st.booleans()),
        beneficiaries=draw(beneficiaries),
    )


def signed_text(card: h.HarmonisedCard) -> tuple[str, str, bytes]:
    """A card's full DataMatrix text with a real proof: (text, proof, public key)."""
    key = cardsig.new_signing_key()
    public = cardsig.public_bytes(key)
    payload = cardsig.CardPayload(
        amc_number=card.amc_number,
        key_id=cardsig.key_id(public),
        serial=secrets.token_bytes(10),
        valid_from=card.valid_from,
        valid_until=card.valid_until,
        family_binding=secrets.token_bytes(16),
        secret=secrets.token_bytes(16),
    )
    proof = cardsig.sign(payload, key)
    signed = h.signed_part(card, proof)
    return signed + cardsig.sign_harmonised(signed, key), proof, public


def scan(text: str) -> str:
    """Draw the DataMatrix of ``text`` and read it back with zxing."""
    found = zxingcpp.read_barcodes(
        datamatrix_image(text, module_pixels=3),
        formats=zxingcpp.BarcodeFormats(zxingcpp.BarcodeFormat.DataMatrix),
    )
    assert len(found) == 1
    return found[0].text


@settings(max_examples=25, deadline=None)
@given(cards())
def test_given_random_fields_then_text_datamatrix_and_back_give_them_unchanged(
    card: h.HarmonisedCard,
) -> None:
    text, proof, public = signed_text(card)
    read = scan(text)
    assert read == text
    scanned = h.decode(read)
    assert scanned.card == card
    assert scanned.proof == proof
    assert h.encode(scanned.card, scanned.proof, scanned.signature) == text
    assert scanned.signature is not None
    cardsig.verify_harmonised(scanned.signed_text, scanned.signature, public)
    assert h.decode(h.fields_text(card)) == h.ScannedCard(card)


def example() -> h.HarmonisedCard:
    return h.HarmonisedCard(
        amc_number="750123456",
        convention_type="",
        routing_criterion="",
        member_number="0012345678",
        valid_from=date(2026, 1, 1),
        valid_until=date(2026, 12, 31),
        responsable=True,
        beneficiaries=(
            h.BeneficiaryRights(
                1,
                date(1979, 4, 16),
                (
                    h.Right(CareDomain.PHAR, True, "PH100"),
                    h.Right(CareDomain.OPTI, False, "OPT1"),
                ),
            ),
        ),
    )


def test_given_the_example_then_the_text_is_the_documented_one() -> None:
    assert h.fields_text(example()) == (
        "TPH1|750123456|||0012345678|20260101|20261231|R|1.19790416:PHAR=PH100,OPTI#OPT1"
    )


def test_given_rows_with_the_same_rights_then_they_are_written_once() -> None:
    first = example().beneficiaries[0]
    twins = (
        first,
        h.BeneficiaryRights(1, date(2012, 6, 1), first.rights),
        h.BeneficiaryRights(2, date(2012, 6, 1), first.rights),
        h.BeneficiaryRights(1, date(2015, 3, 9), ()),
    )
    card = dataclasses.replace(example(), beneficiaries=twins)
    text = h.fields_text(card)
    assert text.endswith("OPTI#OPT1;1.20120601:*;2.20120601:*;1.20150309:")
    assert h.decode(text).card == card
    with pytest.raises(h.Misread):
        h.decode(text.replace("1.19790416:PHAR=PH100,OPTI#OPT1", "1.19790416:*"))


def azerty(text: str) -> str:
    """What a reader set up for QWERTY types into a computer set up for AZERTY."""
    swaps = str.maketrans(
        {
            "A": "Q",
            "Q": "A",
            "Z": "W",
            "W": "Z",
            "M": ",",
            ":": "M",
            "1": "&",
            "2": "é",
            "3": '"',
            "4": "'",
            "5": "(",
            "6": "-",
            "7": "è",
            "8": "_",
            "9": "ç",
            "0": "à",
            "|": "µ",
        }
    )
    return text.translate(swaps)


def test_given_mistyped_or_truncated_scans_then_each_is_a_misread() -> None:
    text, _, _ = signed_text(example())
    proof = text.split("|")[9]
    misreads = {
        "azerty": azerty(text),
        "lower case": text.lower(),
        "cut in the proof": text[: text.index("TP1:") + 40],
        "cut in the signature": text[:-5],
        "cut in the fields": text[:40],
        "no signature": text[: text.rindex("|")],
        "bad date": text.replace("20260101", "20261301"),
        "unknown domain": text.replace("PHAR=", "PHRA="),
        "bad mark": text.replace("|R|", "|X|"),
        "empty": "",
        "too long": text + "0" * 2000,
        "proof mistyped": text.replace(proof, proof.replace("TP1:", "TP&M")),
    }
    for name, bad in misreads.items():
        with pytest.raises(h.Misread) as caught:
            h.decode(bad)
        assert caught.value.code == "card.misread", name


def test_given_a_tampered_field_then_it_parses_but_its_signature_fails() -> None:
    text, _, public = signed_text(example())
    tampered = text.replace("|0012345678|", "|0012345679|")
    scanned = h.decode(tampered)  # well formed: not a misread, a forgery
    assert scanned.card.member_number == "0012345679"
    assert scanned.signature is not None
    with pytest.raises(cardsig.CardProofError):
        cardsig.verify_harmonised(scanned.signed_text, scanned.signature, public)


def test_given_invalid_fields_then_the_card_refuses_them() -> None:
    good = example()
    with pytest.raises(ValueError, match="AMC"):
        dataclasses.replace(good, amc_number="12AB")
    with pytest.raises(ValueError, match="member"):
        dataclasses.replace(good, member_number="12|34")
    with pytest.raises(ValueError, match="validity"):
        dataclasses.replace(good, valid_until=date(2025, 1, 1))
    with pytest.raises(ValueError, match="coverage"):
        h.Right(CareDomain.MED, True, "100|")
    with pytest.raises(ValueError, match="twice"):
        h.BeneficiaryRights(1, date(1990, 1, 1), (h.Right(CareDomain.MED, True, "1"),) * 2)
    with pytest.raises(ValueError, match="proof"):
        h.encode(good, "TP1:abc", "X" * 96)
