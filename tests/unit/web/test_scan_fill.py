"""The provider portal fills the card fields from a scanned harmonised DataMatrix."""

from __future__ import annotations

from datetime import date

from starlette.datastructures import FormData

from tierspayant.domain.care import CareDomain
from tierspayant.formats.harmonised_card import BeneficiaryRights, HarmonisedCard, Right, encode
from tierspayant.web.provider import card_from, with_scan

PHAR = (Right(CareDomain.PHAR, True, "PH100"),)


def _scan(*rows: tuple[int, date]) -> str:
    card = HarmonisedCard(
        "750123456", "TM1", "0042", "A0012345678", date(2026, 1, 1), date(2026, 12, 31), True,
        tuple(BeneficiaryRights(rank, born, PHAR) for rank, born in rows),
    )  # fmt: skip
    return encode(card)


def test_a_card_of_one_beneficiary_fills_every_field() -> None:
    form = FormData([("card_payload", _scan((1, date(1979, 4, 16))) + "\r\n")])
    card = card_from(form)
    assert (card.amc_number, card.member_number) == ("750123456", "A0012345678")
    assert (card.birth_date, card.birth_rank, card.nir) == (date(1979, 4, 16), 1, None)


def test_a_family_card_fills_the_person_only_once_chosen() -> None:
    family = _scan((1, date(1979, 4, 16)), (1, date(2012, 9, 3)), (2, date(2012, 9, 3)))
    unchosen = with_scan(FormData([("card_payload", family)]))
    assert unchosen.get("amc_number") == "750123456"
    assert unchosen.get("birth_date") is None  # three people: the pharmacist picks
    by_rank = with_scan(FormData([("card_payload", family), ("birth_rank", "2")]))
    assert by_rank.get("birth_date") == "2012-09-03"


def test_what_was_typed_wins_and_a_misread_fills_nothing() -> None:
    typed = FormData([("card_payload", _scan((1, date(1979, 4, 16)))), ("amc_number", "999")])
    assert with_scan(typed).get("amc_number") == "999"
    with_nir = with_scan(FormData([("card_payload", _scan((1, date(1979, 4, 16)))),
                                   ("nir", "1790475056123")]))  # fmt: skip
    assert with_nir.get("member_number") is None  # a NIR typed: looked up by NIR
    garbled = FormData([("card_payload", "TPH1|75012|x")])
    assert with_scan(garbled) is garbled
