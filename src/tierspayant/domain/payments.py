"""Rules of the money runs: netting undue amounts against payments, run keys, periods.

Pure and deterministic: every identifier that ends up in a file (message id, end-to-end
id, remittance id) is derived from the run key and the payee, never from a clock or a
database sequence, so that a run interrupted and run again writes the same bytes.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date

from tierspayant.domain.amount_limits import EPC_MAX_TRANSFER_CENTS, split_cents
from tierspayant.domain.codes import BillingCode, PaymentCode
from tierspayant.domain.errors import DomainError

_PERIOD = re.compile(r"(\d{4})-(0[1-9]|1[0-2])")
_REMITTANCE_ID = re.compile(r"R(\d{8})-(\d{1,10})")


@dataclass(frozen=True, slots=True)
class Netting:
    """What one provider receives: accepted amounts minus undue amounts recovered."""

    gross_cents: int
    recovered_cents: int
    net_cents: int


def net_payment(gross_cents: int, open_undue_cents: int) -> Netting:
    """Deduct open undue amounts from a payment, never below zero.

    What cannot be recovered now stays open and is deducted from the next payments.
    """
    if gross_cents < 0:
        raise DomainError(PaymentCode.NEGATIVE_GROSS, "a payment cannot be negative")
    recovered = min(max(open_undue_cents, 0), gross_cents)
    return Netting(gross_cents, recovered, gross_cents - recovered)


def allocate_recovery(
    recovered_cents: int, open_items: Iterable[tuple[tuple[int, int, int], int]]
) -> Iterator[tuple[tuple[int, int, int], int]]:
    """Spread a recovered amount over open undue items, oldest first.

    ``open_items`` yields (item key, open cents) in the order to settle them; the result
    yields (item key, cents recovered on it) for the items touched.
    """
    left = recovered_cents
    for key, open_cents in open_items:
        if left <= 0:
            return
        taken = min(left, open_cents)
        if taken > 0:
            yield key, taken
            left -= taken


def insurer_shares(
    paid_by_insurer: Mapping[int, int], recovered: Iterable[tuple[tuple[int, int, int], int]]
) -> dict[int, int]:
    """Each insurer's share of a provider's netted payment: its lines paid less its undue
    items recovered (``recovered``: as :func:`allocate_recovery` yields them, keyed by
    (insurer, claim, line)). Negative when more of that insurer's undue was recovered
    than its lines paid; the shares sum to the net payment. Zero shares are left out.
    """
    shares = dict(paid_by_insurer)
    for (insurer_id, _claim, _line), cents in recovered:
        shares[insurer_id] = shares.get(insurer_id, 0) - cents
    return {i: c for i, c in sorted(shares.items()) if c}


def recovered_by_insurer(
    recovered: Iterable[tuple[tuple[int, int, int], int]],
) -> dict[int, int]:
    """Undue cents recovered per insurer, from (insurer, claim, line) items."""
    totals: dict[int, int] = {}
    for (insurer_id, _claim, _line), cents in recovered:
        totals[insurer_id] = totals.get(insurer_id, 0) + cents
    return {i: c for i, c in sorted(totals.items()) if c}


def period_of(day: date) -> str:
    """The billing period (calendar month) a day belongs to, as ``YYYY-MM``."""
    return f"{day.year:04d}-{day.month:02d}"


def parse_period(text: str) -> tuple[date, date]:
    """The first and last day of a ``YYYY-MM`` period."""
    match = _PERIOD.fullmatch(text.strip())
    if match is None:
        raise DomainError(BillingCode.PERIOD, "the period must be written YYYY-MM", field="period")
    year, month = int(match[1]), int(match[2])
    return date(year, month, 1), date(year, month, calendar.monthrange(year, month)[1])


def payment_run_key(run_date: date) -> str:
    return f"pay:{run_date.isoformat()}"


def billing_run_key(period: str) -> str:
    parse_period(period)
    return f"bill:{period}"


def message_id(run_key: str) -> str:
    """The SEPA message id of a run's file (≤ 35 characters, no clock involved)."""
    return "TP-" + run_key.replace(":", "-").upper()


def end_to_end_id(run_date: date, payee: str) -> str:
    """The end-to-end reference the payee's bank statement shows (≤ 35 characters)."""
    return f"TP{run_date:%Y%m%d}-{payee}"[:35]


def remittance_id(run_date: date, provider_id: int) -> str:
    """How a provider names one of its remittance advices."""
    return f"R{run_date:%Y%m%d}-{provider_id}"


def parse_remittance_id(text: str) -> tuple[date, int] | None:
    """The payment date and provider of a remittance id, or None if it is not one."""
    match = _REMITTANCE_ID.fullmatch(text)
    if match is None:
        return None
    digits = match[1]
    try:
        day = date(int(digits[:4]), int(digits[4:6]), int(digits[6:]))
    except ValueError:
        return None
    return day, int(match[2])


@dataclass(frozen=True, slots=True)
class RemittanceLine:
    """One invoice line on a remittance advice: paid, or rejected with its reason."""

    amc_number: str
    invoice_number: str
    claim_id: int
    line_no: int
    care_date: date
    act_code: str
    domain: str
    requested_cents: int
    paid_cents: int
    status: str
    reason_code: str | None


@dataclass(frozen=True, slots=True)
class RecoveredUndue:
    """An undue amount (indu) deducted from a payment."""

    amc_number: str
    invoice_number: str
    claim_id: int
    line_no: int
    reason_code: str
    cents: int


@dataclass(frozen=True, slots=True)
class RemittanceHeader:
    remittance_id: str
    payment_date: date
    provider_am_number: str
    provider_name: str
    gross_cents: int
    recovered_cents: int
    net_cents: int
    lines: int
    end_to_end_id: str
    reissued_cents: int = 0  # returned transfers paid again with this one

    @property
    def transfer_cents(self) -> int:
        """What the credit transfer carried: the net payment and returned transfers."""
        return self.net_cents + self.reissued_cents


@dataclass(frozen=True, slots=True)
class Transfer:
    """One SEPA credit transfer (or direct debit) to write in a pain file."""

    end_to_end_id: str
    cents: int
    name: str
    iban: str
    bic: str | None
    remittance_info: str


@dataclass(frozen=True, slots=True)
class BankParty:
    """The operator's own account: debited by transfers, credited by direct debits."""

    name: str
    iban: str
    bic: str
    creditor_id: str  # SEPA creditor identifier (ICS), for direct debits


@dataclass(frozen=True, slots=True)
class Mandate:
    """The insurer's SEPA B2B direct debit mandate."""

    mandate_id: str
    signed_on: date


@dataclass(frozen=True, slots=True)
class DetailLine:
    """One row of the claim detail file an insurer loads for its members' statements.

    ``beneficiary_id`` is the platform's internal id, which the insurer maps back to its
    member; no NIR, name or birth date leaves in this file.
    """

    kind: str  # paid | undue
    claim_id: int
    line_no: int
    invoice_number: str
    provider_am_number: str
    provider_category: str
    beneficiary_id: int
    domain: str
    act_code: str
    care_date: date
    payment_date: date
    billed_cents: int
    amo_cents: int
    amc_cents: int  # negative for an undue amount credited back

    @property
    def remainder_cents(self) -> int:
        """What was left for the member (0 on an undue row: it only corrects the AMC part)."""
        if self.kind != "paid":
            return 0
        return self.billed_cents - self.amo_cents - self.amc_cents


MAX_TRANSFER_PARTS = 999  # a part number has 1 to 3 digits in its end-to-end id


def split_transfer(transfer: Transfer, maximum: int = EPC_MAX_TRANSFER_CENTS) -> list[Transfer]:
    """One payment as the SEPA transfers that carry it, each at most ``maximum`` cents.

    A payment within the EPC maximum is one transfer, unchanged. Above it, the parts
    (:func:`split_cents`, as even as possible) sum to the payment exactly, and each part's
    end-to-end id is the payment's followed by ``-<part>`` (``TP20261130-42-1``,
    ``TP20261130-42-2``): unique in the file, and traced back to the payment by
    :func:`transfer_part`. Each remittance information says which part of how many it is.
    """
    amounts = split_cents(transfer.cents, maximum)
    if len(amounts) == 1:
        return [transfer]
    if len(amounts) > MAX_TRANSFER_PARTS:
        raise DomainError(
            PaymentCode.SEPA_AMOUNT,
            f"a payment of {transfer.cents} cents would take more than {MAX_TRANSFER_PARTS} "
            "transfers",
            field="net_cents",
        )
    parts: list[Transfer] = []
    for number, cents in enumerate(amounts, start=1):
        suffix = f"-{number}"
        note = f" virement {number}/{len(amounts)}"
        parts.append(
            replace(
                transfer,
                end_to_end_id=transfer.end_to_end_id[: 35 - len(suffix)] + suffix,
                cents=cents,
                remittance_info=transfer.remittance_info[: 140 - len(note)] + note,
            )
        )
    return parts


def transfer_parts(net_cents: int, maximum: int = EPC_MAX_TRANSFER_CENTS) -> int:
    """How many transfers carry a payment of ``net_cents`` (0 for nothing to pay)."""
    return 0 if net_cents <= 0 else len(split_cents(net_cents, maximum))


_PART = re.compile(r"(.+)-([1-9][0-9]{0,2})")


def transfer_part(e2e_id: str, payment_e2e_ids: Iterable[str]) -> tuple[str, int] | None:
    """The payment an end-to-end id belongs to, with its part number (0: not split).

    ``payment_e2e_ids`` are the candidate payments' own ids (:func:`end_to_end_id`); a
    returned part ``TP20261130-42-2`` is found as ``("TP20261130-42", 2)``.
    """
    known = set(payment_e2e_ids)
    if e2e_id in known:
        return e2e_id, 0
    match = _PART.fullmatch(e2e_id)
    if match is not None and match[1] in known:
        return match[1], int(match[2])
    return None


def _spread(shares: Mapping[int, int], total: int, cents: int) -> dict[int, int]:
    """``cents`` spread over ``shares`` (summing to ``total``) in proportion, rounded by
    largest remainder (ties to the lower insurer id) so that the result sums to ``cents``
    exactly and equals ``shares`` when ``cents == total``."""
    floors = {i: s * cents // total for i, s in shares.items()}
    remainders = {i: s * cents - floors[i] * total for i, s in shares.items()}
    missing = cents - sum(floors.values())
    for i in sorted(shares, key=lambda i: (-remainders[i], i))[:missing]:
        floors[i] += 1
    return floors


def part_shares(shares: Mapping[int, int], amounts: Sequence[int], part: int) -> dict[int, int]:
    """Each insurer's share of one transfer of a split payment, ``part`` from 1.

    ``shares`` are the insurers' shares of the whole payment (:func:`insurer_shares`, a
    share may be negative) and ``amounts`` the transfers that carried it
    (:func:`split_cents`). The shares of the first k parts are the payment's shares in
    proportion to what those parts carried, rounded by largest remainder; part k's are
    the difference with the first k-1. So a part's shares sum to the part exactly, and
    the shares of every part sum to the payment's, insurer by insurer: returned part by
    part, each insurer gets back its whole share. Zero shares are left out.

    2 insurers owed 700 and 350 of a payment of 1050 cents sent as 350 + 350 + 350:
    part 1 carries {1: 233, 2: 117} (1050 x 1/3 = 350: 700/3 = 233.3, 350/3 = 116.7, the
    larger remainder rounds up), part 2 {1: 234, 2: 116}, part 3 {1: 233, 2: 117}.
    """
    total = sum(amounts)
    if total <= 0 or sum(shares.values()) != total:
        raise ValueError("the shares and the transfers of a payment sum to the same amount")
    if not 1 <= part <= len(amounts):
        raise ValueError(f"a payment of {len(amounts)} transfers has no part {part}")
    before = sum(amounts[: part - 1])
    start = _spread(shares, total, before)
    end = _spread(shares, total, before + amounts[part - 1])
    return {i: end[i] - start[i] for i in sorted(shares) if end[i] != start[i]}
