"""A provider's netted payment split by insurer (migration 0020): whatever the lines and
the undue items, every share posting balances, the shares sum to the transfer, and each
insurer's payable to the provider is settled in its own books."""

from __future__ import annotations

from datetime import date

from hypothesis import given
from hypothesis import strategies as st

from tierspayant.domain import accounting
from tierspayant.domain.ledger import BANK, AccountKind, Posting, account
from tierspayant.domain.payments import (
    allocate_recovery,
    insurer_shares,
    net_payment,
    recovered_by_insurer,
)

DAY = date(2026, 11, 30)
PROVIDER = 42
PAYABLE = account(AccountKind.PROVIDER_PAYABLE, PROVIDER)
OVERPAID = account(AccountKind.PROVIDER_OVERPAID, PROVIDER)

insurers = st.integers(min_value=1, max_value=6)
paid = st.dictionaries(insurers, st.integers(min_value=0, max_value=10**9), max_size=5)
undue = st.lists(st.tuples(insurers, st.integers(min_value=1, max_value=10**8)), max_size=8).map(
    lambda items: [((i, n, 1), cents) for n, (i, cents) in enumerate(items)]
)


def _signed(postings: list[tuple[int, Posting]], name: str) -> dict[int, int]:
    """Debits minus credits of one account, per insurer."""
    totals: dict[int, int] = {}
    for insurer_id, posting in postings:
        for e in posting.entries:
            if e.account == name:
                totals[insurer_id] = totals.get(insurer_id, 0) + e.debit - e.credit
    return totals


@given(paid, undue)
def test_every_insurer_s_share_balances_and_the_shares_make_the_transfer(
    paid_by_insurer: dict[int, int], open_items: list[tuple[tuple[int, int, int], int]]
) -> None:
    gross = sum(paid_by_insurer.values())
    netting = net_payment(gross, sum(cents for _, cents in open_items))
    allocations = list(allocate_recovery(netting.recovered_cents, open_items))

    postings = [
        (i, accounting.recovery("pay:2026-11-30", PROVIDER, DAY, cents))
        for i, cents in recovered_by_insurer(allocations).items()
    ] + [
        (i, accounting.payment("pay:2026-11-30", PROVIDER, DAY, cents))
        for i, cents in insurer_shares(paid_by_insurer, allocations).items()
    ]

    # Each posting balances (Posting refuses otherwise) and moves a positive amount
    assert all(p.total_debit > 0 for _, p in postings)
    # The bank moves the one transfer, however many insurers share it
    assert -sum(_signed(postings, BANK).values()) == netting.net_cents
    # What each insurer owed the provider for its lines is settled in its books: paid out
    # of the bank, or set against its own undue recovered
    settled = _signed(postings, PAYABLE)
    for insurer_id in {*paid_by_insurer, *settled}:
        assert settled.get(insurer_id, 0) == paid_by_insurer.get(insurer_id, 0), insurer_id
    # The undue recovered leaves each insurer's overpaid account as allocated to its items
    assert {i: -c for i, c in _signed(postings, OVERPAID).items()} == recovered_by_insurer(
        allocations
    )
    # Each insurer's postings sum to zero on their own
    for insurer_id in {i for i, _ in postings}:
        mine = [p for i, p in postings if i == insurer_id]
        assert sum(p.total_debit for p in mine) == sum(p.total_credit for p in mine)


def test_a_negative_share_puts_the_money_into_the_bank_in_that_insurer_s_books() -> None:
    # A's line of 11.00; B's undue of 7.00 recovered out of it
    allocations = [((2, 9, 1), 700)]
    assert insurer_shares({1: 1100}, allocations) == {1: 1100, 2: -700}
    b_share = accounting.payment("pay:2026-11-30", PROVIDER, DAY, -700)
    assert [(e.account, e.debit, e.credit) for e in b_share.entries] == [
        (BANK, 700, 0),
        (PAYABLE, 0, 700),
    ]
    assert b_share.memo.endswith("(undue recovered for this insurer beyond its lines)")
