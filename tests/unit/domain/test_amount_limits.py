"""Amount limits: ceilings by care domain, the EPC per-transfer maximum and its split."""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tierspayant.config import SettingError, load_settings
from tierspayant.domain.amount_limits import (
    DEFAULT_CEILINGS,
    EPC_MAX_TRANSFER_CENTS,
    AmountCeiling,
    check_max_transfer,
    invoice_breach,
    line_breach,
    split_cents,
)
from tierspayant.domain.care import CareDomain
from tierspayant.domain.errors import DomainError
from tierspayant.domain.payments import (
    MAX_TRANSFER_PARTS,
    Transfer,
    end_to_end_id,
    part_shares,
    split_transfer,
    transfer_part,
    transfer_parts,
)

MONEY_DOC = Path(__file__).parents[3] / "docs" / "money.md"


def test_splitting_a_payment_worked_examples() -> None:
    assert split_cents(250, 100) == [84, 83, 83]  # 3 parts: 250 = 84 + 83 + 83
    assert split_cents(200, 100) == [100, 100]
    assert split_cents(100, 100) == [100]
    assert split_cents(0, 100) == [0]
    # The 1,386,000,956.79 EUR: two transfers of about 693 million euros
    assert split_cents(138_600_095_679) == [69_300_047_840, 69_300_047_839]


def payments(most_parts: int) -> st.SearchStrategy[tuple[int, int]]:
    """(cents, maximum) pairs needing 1 to ``most_parts`` transfers."""
    return st.tuples(st.integers(1, 10**12), st.integers(1, most_parts)).flatmap(
        lambda mp: st.tuples(st.integers((mp[1] - 1) * mp[0] + 1, mp[1] * mp[0]), st.just(mp[0]))
    )


@given(payment=payments(2000))
def test_split_parts_sum_to_the_payment_each_within_the_maximum(payment: tuple[int, int]) -> None:
    cents, maximum = payment
    parts = split_cents(cents, maximum)
    assert sum(parts) == cents
    assert all(0 < p <= maximum for p in parts) or parts == [0]
    # the fewest parts possible, as even as possible
    assert len(parts) == max(1, -(-cents // maximum))
    assert max(parts) - min(parts) <= 1
    assert transfer_parts(cents, maximum) == (len(parts) if cents else 0)


@given(payment=payments(MAX_TRANSFER_PARTS), provider=st.integers(1, 10**9))
def test_split_transfers_have_unique_ids_traced_back_to_their_payment(
    payment: tuple[int, int], provider: int
) -> None:
    cents, maximum = payment
    day = date(2026, 11, 30)
    whole = Transfer(
        end_to_end_id(day, str(provider)), cents, "Clinique", "FR76", None, "Tiers payant avis"
    )
    parts = split_transfer(whole, maximum)
    ids = [p.end_to_end_id for p in parts]
    assert len(set(ids)) == len(ids)
    assert all(len(i) <= 35 for i in ids)
    assert sum(p.cents for p in parts) == cents
    others = [end_to_end_id(day, str(provider + 1)), end_to_end_id(day, str(provider * 10))]
    traced = [transfer_part(i, [*others, whole.end_to_end_id]) for i in ids]
    if len(parts) == 1:
        assert parts == [whole]
        assert traced == [(whole.end_to_end_id, 0)]
    else:
        assert traced == [(whole.end_to_end_id, n) for n in range(1, len(parts) + 1)]
        assert parts[-1].remittance_info.endswith(f"virement {len(parts)}/{len(parts)}")
    assert transfer_part("TP20261130-unknown-1", [whole.end_to_end_id]) is None


def test_a_parts_insurer_shares_worked_examples() -> None:
    # 1050 cents, insurer 1 owed 700 and insurer 2 350, sent as 350 + 350 + 350.
    # Parts 1..k carry the shares x (what they carried / 1050), largest remainder rounded:
    # after part 1 (350): 233.3 and 116.7 -> 233 and 117
    # after part 2 (700): 466.7 and 233.3 -> 467 and 233: part 2 is 234 and 116
    # after part 3: 700 and 350: part 3 is 233 and 117
    shares = {1: 700, 2: 350}
    assert [part_shares(shares, [350, 350, 350], k) for k in (1, 2, 3)] == [
        {1: 233, 2: 117},
        {1: 234, 2: 116},
        {1: 233, 2: 117},
    ]
    # 1401 = 701 + 700 (insurer 1: 1050, insurer 2: 351): 701 x 351/1401 = 175.6 rounds up
    assert part_shares({1: 1050, 2: 351}, [701, 700], 1) == {1: 525, 2: 176}
    assert part_shares({1: 1050, 2: 351}, [701, 700], 2) == {1: 525, 2: 175}
    # A negative share (more of the insurer's undue recovered than its lines paid)
    assert part_shares({1: 1200, 2: -150}, [350, 350, 350], 2) == {1: 400, 2: -50}
    with pytest.raises(ValueError, match="no part 4"):
        part_shares(shares, [350, 350, 350], 4)
    with pytest.raises(ValueError, match="same amount"):
        part_shares(shares, [350, 350], 1)  # the shares are not the transfers' sum


@given(
    payment=payments(50),
    weights=st.lists(st.integers(-(10**6), 10**9), min_size=1, max_size=6),
)
def test_part_shares_sum_to_each_part_and_to_each_insurers_share(
    payment: tuple[int, int], weights: list[int]
) -> None:
    cents, maximum = payment
    # shares of the insurers summing to the payment, the last one taking the rest
    shares = {i: w % (cents + 1) for i, w in enumerate(weights[:-1], start=1)}
    shares[len(weights)] = cents - sum(shares.values())
    amounts = split_cents(cents, maximum)
    parts = [part_shares(shares, amounts, k) for k in range(1, len(amounts) + 1)]
    assert [sum(p.values()) for p in parts] == amounts
    assert {i: sum(p.get(i, 0) for p in parts) for i in shares} == shares
    assert all(0 not in p.values() for p in parts)


def test_a_payment_needing_more_than_999_transfers_is_refused() -> None:
    whole = Transfer("TP20261130-1", 1000, "Clinique", "FR76", None, "avis")
    assert len(split_transfer(whole, 2)) == 500
    with pytest.raises(DomainError) as refused:
        split_transfer(whole, 1)
    assert refused.value.code == "sepa.amount"


def test_the_epc_maximum_is_999_999_999_99_euros() -> None:
    assert EPC_MAX_TRANSFER_CENTS == 999_999_999_99


def test_a_run_s_maximum_of_one_transfer_is_1_cent_to_the_epc_maximum() -> None:
    # A run may cut lower than the EPC (tests do), never higher, never at nothing
    check_max_transfer(1)
    check_max_transfer(EPC_MAX_TRANSFER_CENTS)
    for wrong in (0, -400, EPC_MAX_TRANSFER_CENTS + 1):
        with pytest.raises(ValueError, match=f"1 to {EPC_MAX_TRANSFER_CENTS} cents.*got {wrong}"):
            check_max_transfer(wrong)


def test_a_line_and_an_invoice_breach_name_field_domain_and_ceiling() -> None:
    amounts = {"br_cents": 1000, "billed_cents": 3_000_001, "plv_cents": None}
    breach = line_breach(2, CareDomain.PHAR, amounts, DEFAULT_CEILINGS)
    assert breach is not None
    assert (breach.field, breach.rule, breach.cents, breach.ceiling_cents) == (
        "lines[2].billed_cents", "line", 3_000_001, 3_000_000,
    )  # fmt: skip
    assert line_breach(0, CareDomain.PHAR, {"billed_cents": 3_000_000}, DEFAULT_CEILINGS) is None
    # Two domains each within their invoice ceiling (OPTI 6,000, AUDI 8,000 EUR) but
    # together above the larger one: the whole invoice is refused
    lines = [(CareDomain.OPTI, 600_000), (CareDomain.AUDI, 300_000)]
    whole = invoice_breach(lines, DEFAULT_CEILINGS)
    assert whole is not None
    assert (whole.domain, whole.cents) == (CareDomain.AUDI, 900_000)
    assert invoice_breach(lines[:1], DEFAULT_CEILINGS) is None


def test_ceilings_refuse_a_line_above_its_invoice_or_the_maxima() -> None:
    for line, invoice in ((0, 10), (20, 10), (100_000_001, 100_000_001), (10, 10**9 + 1)):
        with pytest.raises(ValueError, match="a ceiling needs"):
            AmountCeiling(line, invoice)


def test_the_money_page_documents_the_default_ceilings() -> None:
    # Given the table of docs/money.md (domain, line EUR, invoice EUR)
    text = MONEY_DOC.read_text(encoding="utf-8")
    rows = re.findall(r"^\| `([A-Z]+)` \| ([\d ]+) € \| ([\d ]+) € \|", text, re.MULTILINE)
    documented = {
        CareDomain(d): AmountCeiling(int(a.replace(" ", "")) * 100, int(b.replace(" ", "")) * 100)
        for d, a, b in rows
    }
    # Then it lists every domain with the ceilings the code applies
    assert documented == dict(DEFAULT_CEILINGS)


def test_ceilings_are_configured_per_domain_over_the_defaults() -> None:
    settings = load_settings({"TIERSPAYANT_AMOUNT_CEILINGS": "phar=500/1000; HOSP=1/2"})
    assert settings.amount_ceilings[CareDomain.PHAR] == AmountCeiling(500, 1000)
    assert settings.amount_ceilings[CareDomain.HOSP] == AmountCeiling(1, 2)
    assert settings.amount_ceilings[CareDomain.MED] == DEFAULT_CEILINGS[CareDomain.MED]
    assert load_settings({}).amount_ceilings == dict(DEFAULT_CEILINGS)
    for bad in ("XX=1/2", "PHAR=1", "PHAR=-1/2", "PHAR=3/2", "PHAR=1/20000000000", "PHAR=a/b"):
        with pytest.raises(SettingError) as refused:
            load_settings({"TIERSPAYANT_AMOUNT_CEILINGS": bad})
        assert refused.value.variable == "TIERSPAYANT_AMOUNT_CEILINGS", bad
