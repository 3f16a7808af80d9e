"""Returned credit transfers to providers: recorded once, the provider owed again, paid
again to new bank details only.

A transfer of a payment run (end-to-end id ``TP<date>-<provider id>``) that the
provider's bank returns is read from the operator bank's pain.002 (``RJCT``) or camt.054
(``RtrInf``); ``tierspayant bill returns FILE`` reads both kinds, for fund calls and
transfers alike (``services.billing.record_returns``), all or nothing. Each return:

- posts journal ``payment.return`` (debit ``bank:operator``, credit
  ``provider_payable:<id>``), reference ``return:<end-to-end id>``: the money is back and
  the lines it paid are owed again;
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
from tierspayant.domain.codes import AuthCode, PaymentCode
from tierspayant.domain.payments import end_to_end_id
from tierspayant.formats.sepa_status import StatusReport, TransactionStatus
from tierspayant.security.principal import Principal, PrincipalKind
from tierspayant.services.errors import Forbidden
from tierspayant.store import audit, ledger
from tierspayant.store import bank_details as bank_store
from tierspayant.store import payment_returns as store

TRANSFER_E2E = re.compile(r"TP(\d{8})-(\d{1,12})")


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
    message: str


def is_transfer_id(end_to_end: str) -> bool:
    """Whether an end-to-end id is written as those of our transfers to providers."""
    return TRANSFER_E2E.fullmatch(end_to_end) is not None


def match_transfer(conn: Connection, tx: TransactionStatus) -> store.SentTransfer | TransferProblem:
    """The transfer ``tx`` returns (its payment row locked on PostgreSQL), or why none."""
    e2e = tx.end_to_end_id
    parsed = TRANSFER_E2E.fullmatch(e2e)
    sent = None
    if parsed is not None:
        digits = parsed[1]
        try:
            day = date(int(digits[:4]), int(digits[4:6]), int(digits[6:]))
        except ValueError:
            day = None
        if day is not None and end_to_end_id(day, parsed[2]) == e2e:
            sent = store.sent_transfer(conn, int(parsed[2]), day, lock=True)
    if sent is None:
        return TransferProblem(
            e2e, PaymentCode.RETURNS_UNKNOWN_TRANSFER, "no credit transfer has this end-to-end id"
        )
    if tx.cents is not None and tx.cents != sent.cents:
        return TransferProblem(
            e2e,
            PaymentCode.RETURNS_TRANSFER_AMOUNT,
            f"the bank returns {tx.cents} cents, the transfer was {sent.cents}",
        )
    return sent


def already_returned(conn: Connection, end_to_end: str) -> ReturnedTransfer | None:
    """The return recorded for this transfer before, if any."""
    row = store.return_of(conn, end_to_end)
    if row is None:
        return None
    return ReturnedTransfer(row.provider_id, row.end_to_end_id, row.cents, row.reason_code)


def post_transfer_return(
    platform: Platform,
    conn: Connection,
    sent: store.SentTransfer,
    tx: TransactionStatus,
    report: StatusReport,
    actor: str,
) -> ReturnedTransfer:
    """Post and record one returned transfer (in the caller's transaction)."""
    assert tx.reason_code is not None  # the readers refuse a return without a reason
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
    for insurer_id, cents in shares.items():
        ledger.post(
            conn,
            accounting.transfer_return(
                tx.end_to_end_id, sent.provider_id, cents, value_date, tx.reason_code
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
            cents=sent.cents,
            reason_code=tx.reason_code,
            report_id=report.message_id[:35],
            value_date=value_date,
            account_version=bank_store.account_version(conn, sent.provider_id, sent.created_at),
            recorded_at=now,
            reissue_run_key=None,
        ),
        actor,
    )
    audit.append(
        conn,
        at=now,
        actor=actor,
        action="payments.return",
        decision="allow",
        detail={
            "transfer": tx.end_to_end_id,
            "provider": sent.provider_id,
            "reason": tx.reason_code,
            "cents": sent.cents,
        },
    )
    return ReturnedTransfer(sent.provider_id, tx.end_to_end_id, sent.cents, tx.reason_code)


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
