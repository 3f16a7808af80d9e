"""Double-entry bookkeeping: every movement of money is a balanced posting in cents.

Accounts are named ``<kind>:<owner>`` so that one chart serves every insurer and provider:

- ``insurer_receivable:<amc>``   what an insurer owes the operator (AMC shares paid for it)
- ``provider_payable:<provider>`` what the operator owes a provider (accepted AMC shares)
- ``provider_overpaid:<provider>`` undue amounts (indus) to recover from a provider
- ``bank:operator``              the operator's settlement account
- ``fees:operator``              the operator's management fees
- ``insurer_funds:<amc>``        funds an insurer advanced, not yet applied
- ``insurer_engaged:<amc>``      engagements honoured: AMC shares paid on the operator's
                                 engagement after the insurer ended the rights (memorandum)
- ``engagement_contra:<amc>``    its counterpart: a memorandum pair, like the French chart's
                                 class 8 (engagements), so the receivable is not counted twice

A debit increases asset accounts (receivables, bank) and decreases liabilities (payables);
the ledger does not care: it only demands that every posting balances.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from enum import StrEnum

from tierspayant.domain.codes import LedgerCode
from tierspayant.domain.errors import DomainError


class LedgerError(DomainError):
    """A posting is malformed or does not balance."""


class AccountKind(StrEnum):
    INSURER_RECEIVABLE = "insurer_receivable"
    PROVIDER_PAYABLE = "provider_payable"
    PROVIDER_OVERPAID = "provider_overpaid"
    BANK = "bank"
    FEES = "fees"
    INSURER_FUNDS = "insurer_funds"
    INSURER_ENGAGED = "insurer_engaged"
    ENGAGEMENT_CONTRA = "engagement_contra"


def account(kind: AccountKind, owner: str | int) -> str:
    """The account name of ``kind`` for ``owner`` (an AMC number, a provider id, ``operator``)."""
    text = str(owner)
    if not text or ":" in text:
        raise LedgerError(LedgerCode.BAD_ACCOUNT, f"invalid account owner {owner!r}")
    return f"{kind.value}:{text}"


def parse_account(name: str) -> tuple[AccountKind, str]:
    """Split an account name into its kind and owner."""
    kind, sep, owner = name.partition(":")
    if not sep or not owner:
        raise LedgerError(LedgerCode.BAD_ACCOUNT, f"invalid account name {name!r}")
    try:
        return AccountKind(kind), owner
    except ValueError:
        raise LedgerError(LedgerCode.BAD_ACCOUNT, f"unknown account kind {kind!r}") from None


BANK = account(AccountKind.BANK, "operator")
FEES = account(AccountKind.FEES, "operator")


@dataclass(frozen=True, slots=True)
class Entry:
    """One side of a posting: an amount in cents debited or credited to an account."""

    account: str
    debit: int = 0
    credit: int = 0

    def __post_init__(self) -> None:
        parse_account(self.account)
        for value in (self.debit, self.credit):
            if type(value) is not int:
                raise LedgerError(LedgerCode.NOT_CENTS, "amounts are integer cents")
            if value < 0:
                raise LedgerError(LedgerCode.NEGATIVE, "an entry amount cannot be negative")
        if (self.debit == 0) == (self.credit == 0):
            raise LedgerError(
                LedgerCode.ONE_SIDE, "an entry is either a debit or a credit, and not zero"
            )


def debit(account_name: str, cents: int) -> Entry:
    return Entry(account_name, debit=cents)


def credit(account_name: str, cents: int) -> Entry:
    return Entry(account_name, credit=cents)


@dataclass(frozen=True, slots=True)
class Posting:
    """A balanced set of entries, identified by its journal and reference.

    ``(journal, reference)`` is the idempotency key: posting the same movement twice
    (a retried request, a rerun job) finds the first one instead of moving money again.
    """

    journal: str
    reference: str
    value_date: date
    entries: tuple[Entry, ...]
    memo: str = ""

    def __post_init__(self) -> None:
        if not self.journal or not self.reference:
            raise LedgerError(LedgerCode.NO_REFERENCE, "a posting needs a journal and a reference")
        if len(self.entries) < 2:
            raise LedgerError(LedgerCode.TOO_FEW_ENTRIES, "a posting has at least two entries")
        if self.total_debit != self.total_credit:
            raise LedgerError(
                LedgerCode.UNBALANCED,
                f"posting {self.journal}/{self.reference} does not balance: "
                f"debits {self.total_debit} ≠ credits {self.total_credit} cents",
            )

    @property
    def total_debit(self) -> int:
        return sum(e.debit for e in self.entries)

    @property
    def total_credit(self) -> int:
        return sum(e.credit for e in self.entries)


def posting(
    journal: str, reference: str, value_date: date, *entries: Entry, memo: str = ""
) -> Posting:
    """Build a posting, dropping nothing: zero-amount movements must not be posted at all."""
    return Posting(journal, reference, value_date, tuple(entries), memo)


def mirrored(original: Posting, journal: str, memo: str) -> Posting:
    """The posting that undoes ``original``: every debit becomes a credit of the same
    account and amount, and the reverse, under its own journal (same reference). The
    entries come in reverse order, so a two-entry mirror lists its debit first, as the
    stored reversals written before this helper do (a re-posting compares entries)."""
    return Posting(
        journal,
        original.reference,
        original.value_date,
        tuple(Entry(e.account, debit=e.credit, credit=e.debit) for e in reversed(original.entries)),
        memo,
    )
