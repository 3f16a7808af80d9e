"""The card payload codec: base45, signing, and refusal of every alteration."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tierspayant.security import cardsig
from tierspayant.security.cardsig import CardPayload, CardProofError

KEY = cardsig.new_signing_key()
PUBLIC = cardsig.public_bytes(KEY)
KID = cardsig.key_id(PUBLIC)


@st.composite
def payloads(draw: st.DrawFn) -> CardPayload:
    start = draw(st.dates(min_value=date(2000, 1, 1), max_value=date(2150, 1, 1)))
    length = draw(st.integers(min_value=0, max_value=730))
    return CardPayload(
        amc_number=draw(st.from_regex(r"\A[0-9]{8,10}\Z")),
        key_id=KID,
        serial=draw(st.binary(min_size=10, max_size=10)),
        valid_from=start,
        valid_until=start + timedelta(days=length),
        family_binding=draw(st.binary(min_size=16, max_size=16)),
        secret=draw(st.binary(min_size=16, max_size=16)),
    )


@pytest.mark.parametrize(
    ("raw", "text"),
    [(b"AB", "BB8"), (b"Hello!!", "%69 VD92EX0"), (b"base-45", "UJCLQE7W581"), (b"", "")],
)
def test_given_rfc9285_examples_then_base45_matches_both_ways(raw: bytes, text: str) -> None:
    assert cardsig.b45encode(raw) == text
    assert cardsig.b45decode(text) == raw


@pytest.mark.parametrize("text", ["BB8\n", "BB8 \n", "bb8", "BB", "GGW", "BB8\r"])
def test_given_a_trailing_newline_then_base45_refuses_it(text: str) -> None:
    # A text our encoder would not produce is refused, with a coded reason: the reasons
    # the codec is ours and not the base45 package's (docs/decisions/0001), which strips
    # a trailing newline and raises a bare ValueError.
    with pytest.raises(CardProofError):
        cardsig.b45decode(text)


@given(st.binary(max_size=300))
def test_given_any_bytes_then_base45_round_trips(raw: bytes) -> None:
    assert cardsig.b45decode(cardsig.b45encode(raw)) == raw


@given(payloads())
def test_given_a_signed_payload_then_it_verifies_to_the_same_fields(payload: CardPayload) -> None:
    text = cardsig.sign(payload, KEY)
    assert text.startswith("TP1:")
    assert len(text) <= cardsig.MAX_TEXT
    assert cardsig.verify(text, PUBLIC) == payload


@settings(max_examples=60)
@given(payloads(), st.data())
def test_given_any_single_bit_flipped_then_verification_fails(
    payload: CardPayload, data: st.DataObject
) -> None:
    raw = bytearray(cardsig.b45decode(cardsig.sign(payload, KEY)[4:]))
    bit = data.draw(st.integers(min_value=0, max_value=len(raw) * 8 - 1))
    raw[bit // 8] ^= 1 << (bit % 8)
    with pytest.raises(CardProofError):
        cardsig.verify("TP1:" + cardsig.b45encode(bytes(raw)), PUBLIC)


@given(st.text(max_size=500))
def test_given_arbitrary_text_then_decoding_fails_only_with_the_proof_error(text: str) -> None:
    try:
        cardsig.verify(text, PUBLIC)
    except CardProofError:
        return
    pytest.fail("random text verified")  # pragma: no cover


def test_given_another_insurers_key_then_verification_fails() -> None:
    payload = CardPayload("75012345", KID, b"s" * 10, date(2026, 1, 1), date(2026, 12, 31),
                          b"f" * 16, b"k" * 16)  # fmt: skip
    text = cardsig.sign(payload, cardsig.new_signing_key())
    with pytest.raises(CardProofError):
        cardsig.verify(text, PUBLIC)
    other = cardsig.public_bytes(cardsig.new_signing_key())
    with pytest.raises(CardProofError, match="another key"):
        cardsig.verify(cardsig.sign(payload, KEY), other)


def test_given_a_payload_then_it_names_no_member_number_and_fits_a_small_qr() -> None:
    payload = CardPayload("750123456", KID, b"\x01" * 10, date(2026, 1, 1), date(2026, 12, 31),
                          b"\x02" * 16, b"\x03" * 16)  # fmt: skip
    text = cardsig.sign(payload, KEY)
    assert len(cardsig.b45decode(text[4:])) == 2 + 9 + 8 + 10 + 4 + 16 + 16 + 64
    assert "secret" not in repr(payload)
    assert "\\x03" not in repr(payload)


def test_given_a_printed_serial_then_dashes_and_case_do_not_matter() -> None:
    serial = bytes(range(10))
    text = cardsig.serial_text(serial)
    assert len(text) == 16
    spaced = "-".join(text[i : i + 4] for i in range(0, 16, 4)).lower()
    assert cardsig.serial_bytes(spaced) == serial
    with pytest.raises(CardProofError):
        cardsig.serial_bytes("ABC")


def test_given_a_harmonised_text_then_only_its_own_signature_and_key_verify_it() -> None:
    text = "TPH1|750123456|||0012345678|20260101|20261231|R|1.19790416:PHAR=PH100|TP1:AB|"
    signature = cardsig.sign_harmonised(text, KEY)
    assert len(signature) == 96  # 64 bytes of Ed25519 in base45
    cardsig.verify_harmonised(text, signature, PUBLIC)
    other = cardsig.public_bytes(cardsig.new_signing_key())
    refused = [
        (text.replace("0012345678", "0012345679"), signature, PUBLIC),
        (text, signature, other),
        (text, signature[:-3], PUBLIC),
        (text + "é", signature, PUBLIC),
    ]
    for bad_text, bad_signature, key in refused:
        with pytest.raises(CardProofError):
            cardsig.verify_harmonised(bad_text, bad_signature, key)
    # Domain separation: the same bytes signed as a card proof never pass as harmonised.
    proof_signature = cardsig.b45encode(KEY.sign(cardsig.DOMAIN + text.encode("ascii")))
    with pytest.raises(CardProofError):
        cardsig.verify_harmonised(text, proof_signature, PUBLIC)
