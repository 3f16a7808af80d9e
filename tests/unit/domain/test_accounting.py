"""The accounting entries of each event: journal, reference, accounts and amounts."""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path

import pytest

from tierspayant.domain import accounting
from tierspayant.domain.accounting import Journal
from tierspayant.domain.ledger import Entry

DAY = date(2026, 3, 16)
MONEY_DOC = Path(__file__).resolve().parents[3] / "docs" / "money.md"


def test_a_claim_accepted_is_owed_by_the_insurer_to_the_provider() -> None:
    # Given claim 7 (version 2) of insurer 3, accepted for 15.00 €, provider 42, AMC 123456789.
    p = accounting.adjudication(3, 7, 2, "123456789", 42, 1500, DAY, "F-1")
    assert (p.journal, p.reference, p.value_date) == ("adjudication", "claim:3:7:v2", DAY)
    assert p.entries == (
        Entry("insurer_receivable:123456789", debit=1500),
        Entry("provider_payable:42", credit=1500),
    )
    assert p.memo == "invoice F-1"


def test_a_withdrawn_claim_mirrors_its_adjudication_under_the_same_reference() -> None:
    accepted = accounting.adjudication(3, 7, 2, "123456789", 42, 1500, DAY, "F-1")
    withdrawn = accounting.adjudication_reversal(3, 7, 2, "123456789", 42, 1500, DAY, "F-1")
    assert withdrawn.journal == "adjudication.reversal"
    assert withdrawn.reference == accepted.reference
    assert withdrawn.entries == (
        Entry("provider_payable:42", debit=1500),
        Entry("insurer_receivable:123456789", credit=1500),
    )


def test_a_payment_run_pays_the_net_and_recovers_the_undue() -> None:
    # Given 100.00 € owed to provider 42, 30.00 € of it undue: 30.00 recovered, 70.00 paid.
    recovered = accounting.recovery("pay:2026-03-16", 42, DAY, 3000)
    paid = accounting.payment("pay:2026-03-16", 42, DAY, 7000)
    assert (recovered.journal, recovered.reference) == ("recovery", "pay:2026-03-16:42")
    assert recovered.entries == (
        Entry("provider_payable:42", debit=3000),
        Entry("provider_overpaid:42", credit=3000),
    )
    assert (paid.journal, paid.reference) == ("payment", "pay:2026-03-16:42")
    assert paid.entries == (
        Entry("provider_payable:42", debit=7000),
        Entry("bank:operator", credit=7000),
    )


def test_an_undue_line_moves_from_the_insurer_to_the_provider() -> None:
    p = accounting.undue(3, 7, 2, "123456789", 42, 900, DAY, "claim.cancelled")
    assert (p.journal, p.reference, p.memo) == ("undue", "undue:3:7:2", "claim.cancelled")
    assert p.entries == (
        Entry("provider_overpaid:42", debit=900),
        Entry("insurer_receivable:123456789", credit=900),
    )


def test_fees_are_charged_to_the_insurer() -> None:
    # 120 lines at 5 cents: 6.00 €.
    p = accounting.fees("2026-02", 3, "123456789", 600, DAY, 120, 5)
    assert (p.journal, p.reference) == ("fees", "fee:2026-02:3")
    assert p.entries == (
        Entry("insurer_receivable:123456789", debit=600),
        Entry("fees:operator", credit=600),
    )
    assert p.memo == "operator fees 2026-02: 120 lines x 5 cents"


@pytest.mark.parametrize(
    ("due", "entries"),
    [
        # Collected: the bank receives what the insurer owed.
        (
            5000,
            (
                Entry("bank:operator", debit=5000),
                Entry("insurer_receivable:123456789", credit=5000),
            ),
        ),
        # More undue than paid: the operator owes the insurer, the other way round.
        (
            -800,
            (Entry("insurer_receivable:123456789", debit=800), Entry("bank:operator", credit=800)),
        ),
    ],
)
def test_a_fund_call_goes_the_way_of_its_sign(due: int, entries: tuple[Entry, ...]) -> None:
    p = accounting.fund_call("2026-02", 3, "123456789", due, DAY)
    assert (p.journal, p.reference) == ("billing", "bill:2026-02:3")
    assert p.entries == entries


def test_a_returned_fund_call_mirrors_the_collection_under_its_reference() -> None:
    p = accounting.fund_call_return("2026-02", 3, "123456789", 5000, DAY, "AM04")
    assert (p.journal, p.reference) == ("billing.return", "bill:2026-02:3")
    assert p.entries == (
        Entry("insurer_receivable:123456789", debit=5000),
        Entry("bank:operator", credit=5000),
    )
    assert p.memo == "fund call 2026-02 returned: AM04"


def test_the_journals_are_those_the_money_documentation_lists() -> None:
    table = MONEY_DOC.read_text(encoding="utf-8").split("## Journals", 1)[1].split("\n## ", 1)[0]
    documented = re.findall(r"^\| `([a-z.]+)` \|", table, flags=re.MULTILINE)
    assert sorted(documented) == sorted(j.value for j in Journal)
