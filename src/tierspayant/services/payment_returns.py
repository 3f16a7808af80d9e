"""Returned credit transfers to providers: recorded once, the provider owed again, paid
again to new bank details only.

A transfer of a payment run (end-to-end id ``TP<date>-<provider id>``, or
``TP<date>-<provider id>-<part>`` for each transfer of a payment above the per-transfer
maximum, ``domain.payments.split_transfer``) that the provider's bank returns is read
from the operator bank's pain.002 (``RJCT``) or camt.054 (``RtrInf``); ``tierspayant bill
returns FILE`` reads both kinds, for fund calls and transfers alike
(``services.billing.record_returns``), all or nothing. Each return, of a whole payment
or of one part:

- posts journal ``payment.return`` (debit ``bank:operator``, credit
  ``provider_payable:<id>``), reference ``return:<end-to-end id>``, for the cents that
  transfer carried: the money is back and owed to the provider again;
- records a ``provider_transfer_returns`` row with the account it was sent to;
- appends an audit event ``payments.return``.

The payment run holds every payment of a provider whose returned transfer went to the
account it still has, and pays the returned amounts again, with its next transfer, once
its bank details changed (``services.payments``, journal ``payment.reissue``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date

from sqlalchemy import Connection

from tierspayant.app.platform import Platform
from tierspayant.domain import accounting
from tierspayant.domain.amount_limits import split_cents
from tierspayant.domain.codes import AuthCode, PaymentCode
from tierspayant.domain.money import format_euros
from tierspayant.domain.payments import end_to_end_id, part_shares, transfer_part
from tierspayant.formats.sepa_status import StatusReport, TransactionStatus
from tierspayant.security.principal import Principal, PrincipalKind
from tierspayant.services.errors import Forbidden
from tierspayant.store import audit, ledger
from tierspayant.store import bank_details as bank_store
from tierspayant.store import payment_returns as store

# A payment, or one part of a split payment (the part checked by ``transfer_part``).
TRANSFER_E2E = re.compile(r"TP(\d{8})-(\d{1,12})(?:-\d{1,3})?")


@dataclass(frozen=True, slots=True)
class ReturnedTransfer:
    provider_id: int
    end_to_end_id: str
    cents: int
    reason_code: str


@dataclass(frozen=True, slots=True)
class TransferProblem:
    end_to_end_id: str
    code: str
    message: str  # English, for the audit and the logs
    detail: str = ""  # French, what the operator reads after the code's label


@dataclass(frozen=True, slots=True)
class MatchedTransfer:
    """A transfer a payment run sent: a whole payment, or one part of a split one."""

    sent: store.SentTransfer  # the payment
    end_to_end_id: str
    part: int  # 0: the payment was one transfer; else its number, from 1
    amounts: tuple[int, ...]  # the cents of each transfer that carried the payment

    @property
    def cents(self) -> int:
        """What this transfer carried."""
        return self.sent.cents if self.part == 0 else self.amounts[self.part - 1]


def is_transfer_id(end_to_end: str) -> bool:
    """Whether an end-to-end id is written as those of our transfers to providers."""
    return TRANSFER_E2E.fullmatch(end_to_end) is not None


def _unknown(e2e: str, message: str, detail: str = "") -> TransferProblem:
    return TransferProblem(e2e, PaymentCode.RETURNS_UNKNOWN_TRANSFER, message, detail)


def match_transfer(conn: Connection, tx: TransactionStatus) -> MatchedTransfer | TransferProblem:
    """The transfer ``tx`` returns (its payment row locked on PostgreSQL), or why none.

    A payment above its run's maximum of one transfer was sent as the transfers
    ``split_cents`` cuts it into with that maximum, which the run recorded when it
    started (``run_payments``; the EPC maximum but in tests) and which is read from it
    here, never assumed: each is returned under its own id and for its own amount. The
    payment's own id names no transfer then (``returns.split_payment``), and a part id
    of a payment sent whole, or a part number past the last, names none either.
    """
    e2e = tx.end_to_end_id
    parsed = TRANSFER_E2E.fullmatch(e2e)
    if parsed is None:
        return _unknown(e2e, "no credit transfer has this end-to-end id")
    digits = parsed[1]
    try:
        day = date(int(digits[:4]), int(digits[4:6]), int(digits[6:]))
    except ValueError:
        return _unknown(e2e, "no credit transfer has this end-to-end id")
    provider_id = int(parsed[2])
    payment_id = end_to_end_id(day, str(provider_id))
    traced = transfer_part(e2e, [payment_id])
    sent = None if traced is None else store.sent_transfer(conn, provider_id, day, lock=True)
    if traced is None or sent is None:
        return _unknown(e2e, "no credit transfer has this end-to-end id")
    part = traced[1]
    amounts = tuple(split_cents(sent.cents, sent.max_transfer_cents))
    count = len(amounts)
    parts_en = f"{payment_id}-1 to {payment_id}-{count}"
    parts_fr = f"{payment_id}-1 à {payment_id}-{count}"
    if part == 0 and count > 1:
        return TransferProblem(
            e2e,
            PaymentCode.RETURNS_SPLIT_PAYMENT,
            f"payment {payment_id} was sent as {count} transfers, {parts_en}: "
            "the bank returns each under its own id",
            f"le paiement {payment_id} a été envoyé en {count} virements, {parts_fr}",
        )
    if part > 0 and count == 1:
        return _unknown(
            e2e,
            f"payment {payment_id} was sent as one transfer, {payment_id}: it has no part {part}",
            f"le paiement {payment_id} a été envoyé en un seul virement, {payment_id}",
        )
    if part > count:
        return _unknown(
            e2e,
            f"payment {payment_id} has {count} parts, {parts_en}: no part {part}",
            f"le paiement {payment_id} a {count} virements, {parts_fr} : pas de virement {part}",
        )
    matched = MatchedTransfer(sent, e2e, part, amounts)
    if tx.cents is not None and tx.cents != matched.cents:
        what = "the transfer" if part == 0 else f"part {part} of {count} of payment {payment_id}"
        quoi = (
            "le virement" if part == 0 else f"le virement {part}/{count} du paiement {payment_id}"
        )
        return TransferProblem(
            e2e,
            PaymentCode.RETURNS_TRANSFER_AMOUNT,
            f"the bank returns {tx.cents} cents, {what} was {matched.cents}",
            f"retourné {format_euros(tx.cents)}, {quoi} : {format_euros(matched.cents)}",
        )
    return matched


def already_returned(conn: Connection, end_to_end: str) -> ReturnedTransfer | None:
    """The return recorded for this transfer before, if any."""
    row = store.return_of(conn, end_to_end)
    if row is None:
        return None
    return ReturnedTransfer(row.provider_id, row.end_to_end_id, row.cents, row.reason_code)


def post_transfer_return(
    platform: Platform,
    conn: Connection,
    matched: MatchedTransfer,
    tx: TransactionStatus,
    report: StatusReport,
    actor: str,
) -> ReturnedTransfer:
    """Post and record one returned transfer (in the caller's transaction).

    A part of a split payment is posted for its own cents, each insurer's share of it
    as :func:`tierspayant.domain.payments.part_shares` computes: every part returned,
    each insurer has its whole share of the payment back.
    """
    assert tx.reason_code is not None  # the readers refuse a return without a reason
    sent = matched.sent
    now = platform.now()
    # The bank's date, read from the file: the same file posts the same movement.
    value_date = max(report.created, sent.payment_date)
    # The transfer netted every insurer's share: its return is posted share by share.
    reference = accounting.payment_reference(sent.run_key, sent.provider_id)
    shares = ledger.bank_shares(
        conn,
        [accounting.Journal.PAYMENT.value, accounting.Journal.TRANSFER_REISSUE.value],
        [reference],
    )
    if sum(shares.values()) != sent.cents:
        raise RuntimeError(
            f"the ledger's shares of transfer {tx.end_to_end_id} sum to "
            f"{sum(shares.values())} cents, the transfer was {sent.cents}"
        )
    if matched.part:
        shares = part_shares(shares, matched.amounts, matched.part)
    cents = matched.cents
    for insurer_id, share in shares.items():
        ledger.post(
            conn,
            accounting.transfer_return(
                tx.end_to_end_id, sent.provider_id, share, value_date, tx.reason_code
            ),
            at=now,
            insurer_id=insurer_id,
        )
    store.insert_return(
        conn,
        store.TransferReturn(
            end_to_end_id=tx.end_to_end_id,
            provider_id=sent.provider_id,
            run_key=sent.run_key,
            cents=cents,
            reason_code=tx.reason_code,
            report_id=report.message_id[:35],
            value_date=value_date,
            account_version=bank_store.account_version(conn, sent.provider_id, sent.created_at),
            recorded_at=now,
            reissue_run_key=None,
        ),
        actor,
    )
    detail: dict[str, audit.DetailValue] = {
        "transfer": tx.end_to_end_id,
        "provider": sent.provider_id,
        "reason": tx.reason_code,
        "cents": cents,
    }
    if matched.part:
        detail["part"] = f"{matched.part}/{len(matched.amounts)}"
    audit.append(
        conn,
        at=now,
        actor=actor,
        action="payments.return",
        decision="allow",
        detail=detail,
    )
    return ReturnedTransfer(sent.provider_id, tx.end_to_end_id, cents, tx.reason_code)


# --- portals ----------------------------------------------------------------------------

_PROVIDER_KINDS = frozenset({PrincipalKind.PROVIDER_CLIENT, PrincipalKind.PROVIDER_USER})


@dataclass(frozen=True, slots=True)
class TransferReturnView:
    """A returned transfer as the portals show it."""

    end_to_end_id: str
    provider_id: int
    payment_date: str
    cents: int
    reason_code: str
    value_date: date
    status: str  # waiting_for_new_details | repaid
    repaid_in: str | None  # the payment run that paid it again


def _view(row: store.TransferReturn) -> TransferReturnView:
    return TransferReturnView(
        end_to_end_id=row.end_to_end_id,
        provider_id=row.provider_id,
        payment_date=row.run_key.removeprefix("pay:"),
        cents=row.cents,
        reason_code=row.reason_code,
        value_date=row.value_date,
        status="repaid" if row.reissue_run_key else "waiting_for_new_details",
        repaid_in=None if row.reissue_run_key is None else row.reissue_run_key.removeprefix("pay:"),
    )


def provider_returns(platform: Platform, principal: Principal) -> list[TransferReturnView]:
    """The provider's own returned transfers, newest first."""
    if principal.kind not in _PROVIDER_KINDS or principal.provider_id is None:
        raise Forbidden(AuthCode.WRONG_PRINCIPAL, "returned transfers: providers only")
    with platform.engine.connect() as conn:
        return [_view(r) for r in store.returns_of_provider(conn, principal.provider_id)]


def insurer_returns(platform: Platform, insurer_id: int) -> list[TransferReturnView]:
    """Returned transfers that carried lines of the insurer, newest first."""
    with platform.engine.connect() as conn:
        return [_view(r) for r in store.returns_touching_insurer(conn, insurer_id)]
