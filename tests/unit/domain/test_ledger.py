"""The ledger's rules: postings balance or are refused; any sequence of valid postings
leaves the whole ledger at zero."""

from __future__ import annotations

from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tierspayant.domain.ledger import (
    BANK,
    AccountKind,
    Entry,
    LedgerError,
    Posting,
    account,
    credit,
    debit,
    mirrored,
    parse_account,
    posting,
)

DAY = date(2026, 11, 30)
ACCOUNTS = [
    account(AccountKind.INSURER_RECEIVABLE, "75012345"),
    account(AccountKind.PROVIDER_PAYABLE, 1),
    account(AccountKind.PROVIDER_OVERPAID, 1),
    BANK,
]


def test_an_account_name_is_kind_and_owner() -> None:
    name = account(AccountKind.PROVIDER_PAYABLE, 42)
    assert name == "provider_payable:42"
    assert parse_account(name) == (AccountKind.PROVIDER_PAYABLE, "42")
    for bad in ("bank", "nope:1", "bank:"):
        with pytest.raises(LedgerError):
            parse_account(bad)
    with pytest.raises(LedgerError):
        account(AccountKind.BANK, "a:b")


@pytest.mark.parametrize(
    ("entries", "code"),
    [
        ((debit(BANK, 100), credit(ACCOUNTS[0], 99)), "ledger.unbalanced"),
        ((debit(BANK, 100),), "ledger.too_few_entries"),
    ],
)
def test_a_posting_that_does_not_balance_is_refused(entries: tuple[Entry, ...], code: str) -> None:
    with pytest.raises(LedgerError) as refused:
        posting("payment", "pay:1", DAY, *entries)
    assert refused.value.code == code


@pytest.mark.parametrize(
    ("debit_cents", "credit_cents", "code"),
    [(0, 0, "ledger.one_side"), (5, 5, "ledger.one_side"), (-5, 0, "ledger.negative")],
)
def test_an_entry_is_one_positive_side(debit_cents: int, credit_cents: int, code: str) -> None:
    with pytest.raises(LedgerError) as refused:
        Entry(BANK, debit=debit_cents, credit=credit_cents)
    assert refused.value.code == code


def test_amounts_are_integer_cents() -> None:
    with pytest.raises(LedgerError) as refused:
        Entry(BANK, debit=1.5)  # type: ignore[arg-type]
    assert refused.value.code == "ledger.not_cents"


@st.composite
def balanced_postings(draw: st.DrawFn) -> Posting:
    """A posting moving random amounts from random accounts to random accounts."""
    sources = draw(
        st.lists(
            st.tuples(st.sampled_from(ACCOUNTS), st.integers(1, 10**9)), min_size=1, max_size=4
        )
    )
    total = sum(cents for _, cents in sources)
    splits = draw(st.lists(st.integers(1, 100), min_size=1, max_size=4))
    shares = [total * s // sum(splits) for s in splits]
    shares[0] += total - sum(shares)
    targets = [(draw(st.sampled_from(ACCOUNTS)), cents) for cents in shares if cents > 0]
    entries = [debit(a, c) for a, c in sources] + [credit(a, c) for a, c in targets]
    return posting("test", draw(st.uuids()).hex, DAY, *entries)


@given(st.lists(balanced_postings(), max_size=30))
def test_any_sequence_of_valid_postings_keeps_the_ledger_at_zero(postings: list[Posting]) -> None:
    balances: dict[str, int] = {}
    for p in postings:
        assert p.total_debit == p.total_credit
        for entry in p.entries:
            balances[entry.account] = balances.get(entry.account, 0) + entry.debit - entry.credit
    assert sum(balances.values()) == 0


@given(st.lists(st.integers(1, 10**9), min_size=1, max_size=5))
def test_a_mirrored_posting_cancels_the_original_account_by_account(amounts: list[int]) -> None:
    # Given a balanced posting spreading a total over several provider accounts
    entries = [debit("insurer_receivable:123456789", sum(amounts))]
    entries += [credit(f"provider_payable:{n}", cents) for n, cents in enumerate(amounts, 1)]
    original = posting("adjudication", "claim:1:1:v1", date(2026, 3, 16), *entries)
    # When it is mirrored
    undone = mirrored(original, "adjudication.reversal", "withdrawn")
    # Then it balances, keeps the reference, and each account's net over both is zero
    assert (undone.journal, undone.reference, undone.memo) == (
        "adjudication.reversal",
        "claim:1:1:v1",
        "withdrawn",
    )
    assert sum(e.debit for e in undone.entries) == sum(e.credit for e in undone.entries)
    net: dict[str, int] = {}
    for entry in (*original.entries, *undone.entries):
        net[entry.account] = net.get(entry.account, 0) + entry.debit - entry.credit
    assert set(net.values()) == {0}
