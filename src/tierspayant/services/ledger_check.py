"""``tierspayant ledger check``: prove the ledger balances and agrees with the records.

Three kinds of proof, each a sum compared with another sum, to the cent:

- the ledger itself: every posting balances, every insurer's postings balance (each
  posting and its entries belong to one insurer, migration 0020), the stored totals
  match the entries, the whole ledger sums to zero;
- claims: what the adjudication journal moved equals the accepted totals of the claims;
  what the engagement journal booked (and its reversals) equals the lines paid on
  engagements (and those of withdrawn claims);
- money runs: payments, recoveries, undue amounts, operator fees, fund calls and their
  returns posted equal what the remittances, undue records, statements and recorded
  returns say; returned transfers to providers and those paid again equal their records;
  what providers still owe as undue equals the open undue amounts; the bank account
  holds exactly the fund calls collected, less returns and transfers, plus the transfers
  that came back and were not paid again.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection

from tierspayant.app.platform import Platform
from tierspayant.domain.accounting import Journal
from tierspayant.domain.ledger import BANK, FEES
from tierspayant.store import ledger
from tierspayant.store import overpayments as store
from tierspayant.store import payment_returns as transfer_returns
from tierspayant.store.claims import engaged_totals


@dataclass(frozen=True, slots=True)
class Difference:
    what: str
    expected_cents: int
    found_cents: int

    def __str__(self) -> str:
        gap = self.found_cents - self.expected_cents
        return (
            f"{self.what}: expected {self.expected_cents} cents, found {self.found_cents} "
            f"(difference {gap:+d})"
        )


@dataclass(frozen=True, slots=True)
class LedgerReport:
    postings: int
    entries: int
    total_cents: int
    problems: tuple[str, ...]
    differences: tuple[Difference, ...]

    @property
    def ok(self) -> bool:
        return not self.problems and not self.differences


def check_ledger(platform: Platform) -> LedgerReport:
    """Run every proof in one read transaction (a consistent snapshot on PostgreSQL)."""
    with platform.engine.connect() as conn, conn.begin():
        base = ledger.check(conn)
        problems: list[str] = []
        if base.unbalanced:
            problems.append(f"postings that do not balance: {_ids(base.unbalanced)}")
        if base.mismatched_totals:
            problems.append(
                f"postings whose total differs from entries: {_ids(base.mismatched_totals)}"
            )
        if base.unbalanced_insurers:
            problems.append(
                f"insurers whose postings do not balance: {_ids(base.unbalanced_insurers)}"
            )
        if base.stray_entries:
            problems.append(
                f"entries that belong to no posting of their insurer: {base.stray_entries}"
            )
        if base.total_debit != base.total_credit:
            problems.append(
                f"the ledger does not sum to zero: debits {base.total_debit}, "
                f"credits {base.total_credit}"
            )
        differences = tuple(d for d in _reconciliations(conn) if d.expected_cents != d.found_cents)
    return LedgerReport(base.postings, base.entries, base.total_debit, tuple(problems), differences)


def _ids(ids: tuple[int, ...]) -> str:
    shown = ", ".join(str(i) for i in ids[:20])
    return shown + (f" … ({len(ids)} in all)" if len(ids) > 20 else "")


def _reconciliations(conn: Connection) -> list[Difference]:
    journals = ledger.journal_totals(conn)
    totals = ledger.record_totals(conn)
    recovered = totals.recovered_cents
    collected = ledger.signed_journal_total(conn, Journal.BILLING.value, BANK)
    called = totals.called_cents
    fees = totals.fee_cents
    returned = totals.returned_cents
    transferred = totals.remitted_net_cents
    engaged, engaged_withdrawn = engaged_totals(conn)
    transfers_back = transfer_returns.totals(conn)
    return [
        Difference(
            "engagement postings vs lines paid on engagements",
            engaged,
            journals.get(Journal.ENGAGEMENT.value, 0),
        ),
        Difference(
            "engagement reversals vs engaged lines of withdrawn claims",
            engaged_withdrawn,
            journals.get(Journal.ENGAGEMENT_REVERSAL.value, 0),
        ),
        Difference(
            "adjudication postings vs accepted totals of claims",
            totals.claims_accepted_cents,
            journals.get(Journal.ADJUDICATION.value, 0),
        ),
        Difference(
            "paid lines vs remittance totals",
            totals.remitted_gross_cents,
            totals.paid_line_cents,
        ),
        Difference(
            "payment postings vs transfers of remittances",
            transferred,
            -ledger.signed_journal_total(conn, Journal.PAYMENT.value, BANK),
        ),
        Difference(
            "recovery postings vs undue deducted on remittances",
            recovered,
            journals.get(Journal.RECOVERY.value, 0),
        ),
        Difference(
            "undue recovered per item vs per remittance",
            recovered,
            totals.undue_recovered_cents,
        ),
        Difference(
            "undue postings vs undue records",
            totals.undue_cents,
            journals.get(Journal.UNDUE.value, 0),
        ),
        Difference(
            "undue owed by providers vs open undue records",
            store.open_undue_total(conn),
            sum(ledger.balances(conn, prefix="provider_overpaid:").values()),
        ),
        Difference("fund calls posted vs statements", called, collected),
        Difference(
            "fee postings vs operator fees of statements", fees, journals.get(Journal.FEES.value, 0)
        ),
        Difference(
            "fees account vs operator fees of statements", fees, -ledger.balance(conn, FEES)
        ),
        Difference(
            "returned fund call postings vs recorded returns",
            returned,
            -ledger.signed_journal_total(conn, Journal.BILLING_RETURN.value, BANK),
        ),
        Difference(
            "recorded returns vs the fund calls they return",
            totals.returned_calls_cents,
            returned,
        ),
        Difference(
            "returned transfer postings vs recorded transfer returns",
            transfers_back.returned_cents,
            ledger.signed_journal_total(conn, Journal.TRANSFER_RETURN.value, BANK),
        ),
        Difference(
            "reissue postings vs returned transfers paid again in payments",
            transfers_back.payments_reissued_cents,
            -ledger.signed_journal_total(conn, Journal.TRANSFER_REISSUE.value, BANK),
        ),
        Difference(
            "returned transfers marked paid again vs payments",
            transfers_back.payments_reissued_cents,
            transfers_back.reissued_cents,
        ),
        Difference(
            "bank account vs fund calls less returns and transfers",
            called
            - returned
            - transferred
            + transfers_back.returned_cents
            - transfers_back.payments_reissued_cents,
            ledger.balance(conn, BANK),
        ),
    ]
