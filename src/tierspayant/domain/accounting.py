"""The accounting entries of each event: its journal, its reference, its balanced entries.

Every movement of money the platform books is built here, once, as a :class:`Posting` of
:mod:`tierspayant.domain.ledger`; services write what these functions return. A posting is
identified by ``(journal, reference)``, so the references are built here too: posting the
same event again must give the same key. The table of journals is in ``docs/money.md``.
"""

from __future__ import annotations

from datetime import date
from enum import StrEnum

from tierspayant.domain.ledger import (
    BANK,
    FEES,
    AccountKind,
    Posting,
    account,
    credit,
    debit,
    mirrored,
    posting,
)
from tierspayant.domain.payments import billing_run_key


class Journal(StrEnum):
    """The journals of the ledger (the values are stored with every posting)."""

    ADJUDICATION = "adjudication"  # a claim accepted: the insurer owes, we owe the provider
    ADJUDICATION_REVERSAL = "adjudication.reversal"  # an unpaid claim withdrawn
    PAYMENT = "payment"  # credit transfer to a provider
    RECOVERY = "recovery"  # undue amounts deducted from a payment
    UNDUE = "undue"  # a paid line found undue
    FEES = "fees"  # operator fees charged to an insurer
    BILLING = "billing"  # fund call collected from an insurer
    BILLING_RETURN = "billing.return"  # fund call returned by the insurer's bank
    TRANSFER_RETURN = "payment.return"  # a credit transfer to a provider came back
    TRANSFER_REISSUE = "payment.reissue"  # a returned transfer paid again, to new details
    # Lines paid on an engagement after the rights ended: a memorandum in the insurer's
    # books (the adjudication posting already charges its receivable), and its mirror
    # when the claim is withdrawn.
    ENGAGEMENT = "engagement"
    ENGAGEMENT_REVERSAL = "engagement.reversal"


def claim_reference(insurer_id: int, claim_id: int, version: int) -> str:
    """The ledger reference of a claim's adjudication (and of its reversal)."""
    return f"claim:{insurer_id}:{claim_id}:v{version}"


def payment_reference(run_key: str, provider_id: int) -> str:
    """The reference of a provider's payment and recovery in a payment run (one posting
    per insurer with lines or recoveries in it: the key holds the insurer)."""
    return f"{run_key}:{provider_id}"


def fee_reference(period: str, insurer_id: int) -> str:
    """The reference of an insurer's operator fees for a billing period."""
    return f"fee:{period}:{insurer_id}"


def fund_call_reference(period: str, insurer_id: int) -> str:
    """Reference of the fund call's posting (``billing``) and of its return."""
    return f"{billing_run_key(period)}:{insurer_id}"


def adjudication(
    insurer_id: int,
    claim_id: int,
    version: int,
    amc: str,
    provider_id: int,
    cents: int,
    day: date,
    invoice_number: str,
) -> Posting:
    """A claim accepted for ``cents``: the insurer ``amc`` owes them, we owe the provider."""
    return posting(
        Journal.ADJUDICATION.value,
        claim_reference(insurer_id, claim_id, version),
        day,
        debit(account(AccountKind.INSURER_RECEIVABLE, amc), cents),
        credit(account(AccountKind.PROVIDER_PAYABLE, provider_id), cents),
        memo=f"invoice {invoice_number}",
    )


def adjudication_reversal(
    insurer_id: int,
    claim_id: int,
    version: int,
    amc: str,
    provider_id: int,
    cents: int,
    day: date,
    invoice_number: str,
) -> Posting:
    """The mirror of :func:`adjudication`, for an unpaid claim withdrawn."""
    accepted = adjudication(
        insurer_id, claim_id, version, amc, provider_id, cents, day, invoice_number
    )
    return mirrored(
        accepted, Journal.ADJUDICATION_REVERSAL.value, f"invoice {invoice_number} withdrawn"
    )


def engagement_reference(insurer_id: int, claim_id: int, version: int) -> str:
    """The reference of the engagements a claim's adjudication honoured (and their mirror)."""
    return f"engagement:{insurer_id}:{claim_id}:v{version}"


def engagement_honoured(
    insurer_id: int, claim_id: int, version: int, amc: str, cents: int, day: date
) -> Posting:
    """AMC shares of a claim paid on engagements: booked to the insurer's account of
    engagements honoured, against its contra account (the receivable is charged by
    :func:`adjudication` already)."""
    return posting(
        Journal.ENGAGEMENT.value,
        engagement_reference(insurer_id, claim_id, version),
        day,
        debit(account(AccountKind.INSURER_ENGAGED, amc), cents),
        credit(account(AccountKind.ENGAGEMENT_CONTRA, amc), cents),
        memo=f"claim {claim_id}: engagements honoured",
    )


def engagement_reversal(
    insurer_id: int, claim_id: int, version: int, amc: str, cents: int, day: date
) -> Posting:
    """The mirror of :func:`engagement_honoured`, for a claim withdrawn before payment."""
    honoured = engagement_honoured(insurer_id, claim_id, version, amc, cents, day)
    return mirrored(
        honoured,
        Journal.ENGAGEMENT_REVERSAL.value,
        f"claim {claim_id} withdrawn: engagements no longer honoured",
    )


def recovery(run_key: str, provider_id: int, day: date, cents: int) -> Posting:
    """Undue amounts the provider owed, deducted from what we owe it in a payment run."""
    return posting(
        Journal.RECOVERY.value,
        payment_reference(run_key, provider_id),
        day,
        debit(account(AccountKind.PROVIDER_PAYABLE, provider_id), cents),
        credit(account(AccountKind.PROVIDER_OVERPAID, provider_id), cents),
        memo="undue amounts deducted from the payment",
    )


def _bank_share(
    journal: Journal, reference: str, day: date, provider_id: int, cents: int, memo: str
) -> Posting:
    """One insurer's share of a movement between the bank and a provider's payable:
    ``cents`` out of the bank (a negative share: into it, see :func:`payment`)."""
    payable = account(AccountKind.PROVIDER_PAYABLE, provider_id)
    if cents > 0:
        entries = (debit(payable, cents), credit(BANK, cents))
    else:
        entries = (debit(BANK, -cents), credit(payable, -cents))
        memo = f"{memo} (undue recovered for this insurer beyond its lines)"
    return posting(journal.value, reference, day, *entries, memo=memo)


def payment(run_key: str, provider_id: int, day: date, cents: int) -> Posting:
    """One insurer's share of the net credit transfer to a provider in a payment run.

    The transfer is one per provider, netting every insurer's lines and recoveries; its
    share for an insurer is that insurer's lines less its undue amounts recovered, which
    is negative when the provider's undue owed to that insurer exceeded its lines: the
    surplus paid other insurers' lines, so it comes into the bank in this insurer's books
    (debit bank, credit the provider's payable) and goes out in theirs. The shares sum to
    the transfer, and each insurer's payable to the provider is settled on its own.
    """
    return _bank_share(
        Journal.PAYMENT,
        payment_reference(run_key, provider_id),
        day,
        provider_id,
        cents,
        "SEPA credit transfer",
    )


def undue(
    insurer_id: int,
    claim_id: int,
    line_no: int,
    amc: str,
    provider_id: int,
    cents: int,
    day: date,
    reason_code: str,
) -> Posting:
    """A paid line found undue: the provider owes it back, the insurer no longer owes it."""
    return posting(
        Journal.UNDUE.value,
        f"undue:{insurer_id}:{claim_id}:{line_no}",
        day,
        debit(account(AccountKind.PROVIDER_OVERPAID, provider_id), cents),
        credit(account(AccountKind.INSURER_RECEIVABLE, amc), cents),
        memo=reason_code,
    )


def fees(
    period: str, insurer_id: int, amc: str, cents: int, day: date, lines: int, rate: int
) -> Posting:
    """The operator fees of a billing period charged to the insurer ``amc``."""
    return posting(
        Journal.FEES.value,
        fee_reference(period, insurer_id),
        day,
        debit(account(AccountKind.INSURER_RECEIVABLE, amc), cents),
        credit(FEES, cents),
        memo=f"operator fees {period}: {lines} lines x {rate} cents",
    )


def fund_call(period: str, insurer_id: int, amc: str, due: int, day: date) -> Posting:
    """The fund call collected from an insurer; a negative amount due is the other way round."""
    receivable = account(AccountKind.INSURER_RECEIVABLE, amc)
    entries = (
        (debit(BANK, due), credit(receivable, due))
        if due > 0
        else (debit(receivable, -due), credit(BANK, -due))
    )
    return posting(
        Journal.BILLING.value,
        fund_call_reference(period, insurer_id),
        day,
        *entries,
        memo=f"fund call {period}",
    )


def fund_call_return(
    period: str, insurer_id: int, amc: str, cents: int, day: date, reason_code: str
) -> Posting:
    """The mirror of a collected fund call that the insurer's bank returned."""
    return posting(
        Journal.BILLING_RETURN.value,
        fund_call_reference(period, insurer_id),
        day,
        debit(account(AccountKind.INSURER_RECEIVABLE, amc), cents),
        credit(BANK, cents),
        memo=f"fund call {period} returned: {reason_code}",
    )


def transfer_return_reference(end_to_end_id: str) -> str:
    """The reference of a returned credit transfer (its end-to-end id is unique)."""
    return f"return:{end_to_end_id}"


def transfer_return(
    end_to_end_id: str, provider_id: int, cents: int, day: date, reason_code: str
) -> Posting:
    """One insurer's share of a credit transfer to a provider that its bank returned: the
    money is back in our account and we owe the provider again (the mirror of that
    insurer's ``payment`` and ``payment.reissue`` shares; ``cents`` negative for a
    negative share)."""
    payable = account(AccountKind.PROVIDER_PAYABLE, provider_id)
    entries = (
        (debit(BANK, cents), credit(payable, cents))
        if cents > 0
        else (debit(payable, -cents), credit(BANK, -cents))
    )
    return posting(
        Journal.TRANSFER_RETURN.value,
        transfer_return_reference(end_to_end_id),
        day,
        *entries,
        memo=f"credit transfer {end_to_end_id} returned: {reason_code}",
    )


def transfer_reissue(run_key: str, provider_id: int, day: date, cents: int) -> Posting:
    """One insurer's share of returned transfers paid again in a payment run, to the
    provider's new details (its shares of the returns; negative as in :func:`payment`)."""
    return _bank_share(
        Journal.TRANSFER_REISSUE,
        payment_reference(run_key, provider_id),
        day,
        provider_id,
        cents,
        "returned credit transfers paid again",
    )
