"""Provider payment run: adjudicated lines → one SEPA credit transfer per provider.

A run is named by its payment date (``pay:2026-11-30``) and goes in two phases:

1. **Remit**, one transaction per provider: copy its adjudicated lines not yet remitted
   into ``payment_lines`` (the line is the primary key: never paid twice), deduct its open
   undue amounts, post the recovery and the payment, record the payment. A crash loses at
   most the provider in progress, whose transaction rolls back.
2. **Files**, from the database alone: the pain.001 file and one remittance advice per
   provider, each written to a temporary name and renamed, with no clock in them. A rerun
   rewrites the same bytes.

The run holds a lease in ``money_runs`` so that two workers never run it side by side
(:mod:`tierspayant.services.run_leases`), renewed in every provider transaction.
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import NoReturn, TextIO

import structlog
from sqlalchemy import Connection

from tierspayant import metrics
from tierspayant.app.platform import Platform
from tierspayant.domain import accounting
from tierspayant.domain.amount_limits import check_max_transfer
from tierspayant.domain.banking_calendar import following_business_day, is_business_day, paris_day
from tierspayant.domain.codes import AuthCode, PaymentCode
from tierspayant.domain.payments import (
    BankParty,
    RecoveredUndue,
    RemittanceHeader,
    RemittanceLine,
    Transfer,
    allocate_recovery,
    end_to_end_id,
    insurer_shares,
    message_id,
    net_payment,
    parse_remittance_id,
    payment_run_key,
    period_of,
    recovered_by_insurer,
    remittance_id,
    split_transfer,
)
from tierspayant.formats.remittance import write_remittance
from tierspayant.formats.remittance_pdf import render_remittance
from tierspayant.formats.sepa import write_credit_transfers
from tierspayant.security.crypto import FieldCipher, row_aad
from tierspayant.security.principal import Principal, PrincipalKind
from tierspayant.services.delays import run_delays
from tierspayant.services.errors import Conflict, Forbidden, NotFound, ServiceError, Unprocessable
from tierspayant.services.run_leases import acquire_run, aware, release_run, renew
from tierspayant.store import audit, ledger, overpayments, runs
from tierspayant.store import bank_details as bank_store
from tierspayant.store import payment_returns as returns_store
from tierspayant.store import payments as store
from tierspayant.store.keys import OPERATOR_SCOPE
from tierspayant.store.payments import PaymentSearch as PaymentSearch

log = structlog.get_logger(__name__)
ACTOR = "job:payments"

# Progress points, reported to ``progress(point, n)``: what the command line shows, and
# where the crash tests kill the process.
REMITTED = "provider.remitted"  # inside the provider's transaction, before its commit
COMMITTED = "provider.committed"
TRANSFERS_WRITTEN = "file.transfers_written"  # written, not yet renamed
REMITTANCE_WRITTEN = "file.remittance_written"
FILES_DONE = "files.done"

Progress = Callable[[str, int], None]
# Audit actions of providers reading their remittance advice.
REMITTANCE_LIST = "remittance.list"
REMITTANCE_READ = "remittance.read"
REMITTANCE_PURPOSE = "remittance"
_PROVIDER_KINDS = frozenset({PrincipalKind.PROVIDER_CLIENT, PrincipalKind.PROVIDER_USER})


def quiet(_point: str, _n: int) -> None:
    return None


def bank_party(platform: Platform) -> BankParty:
    settings = platform.settings
    return BankParty(
        settings.operator_name,
        settings.operator_iban,
        settings.operator_bic,
        settings.sepa_creditor_id,
    )


# --- the run ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PaymentRunSummary:
    run_key: str
    payment_date: date
    providers: int
    transfers: int
    gross_cents: int
    net_cents: int
    out_dir: Path
    files: tuple[Path, ...]
    waiting_for_iban: tuple[str, ...]  # AM numbers of providers left unpaid: no IBAN
    # What this execution did, apart from what an earlier, interrupted or finished,
    # execution of the same run had committed: a rerun of a finished date pays nothing.
    resumed: bool = False  # an earlier execution had started this run
    already_done: bool = False  # the run had finished: nothing paid, the files rewritten
    new_payments: int = 0
    new_transfers: int = 0
    new_net_cents: int = 0
    cutoff: datetime | None = None  # lines adjudicated after this wait for a later date
    # Providers with adjudicated lines still unpaid once this execution ended: adjudicated
    # after the cutoff, or no IBAN. A later payment date pays them.
    unpaid_providers: int = 0
    # Left unpaid for their bank details: new ones in their cooling-off period, or a
    # transfer returned from the account they still have (see docs/money.md).
    held_for_bank_details: tuple[str, ...] = ()


def default_out_dir(platform: Platform, run_date: date) -> Path:
    return platform.settings.data_dir / "payments" / run_date.isoformat()


BACKDATE_REASON_LENGTH = (10, 200)


def check_payment_date(run_date: date, today: date, backdate_reason: str | None) -> str | None:
    """Refuse an execution date the bank would not take, or a past one without a reason.

    ``today`` is the day in Paris. The date must be a TARGET2 business day (never
    adjusted: the operator asked for this one); a date before today needs a backdating
    reason of 10 to 200 characters, returned cleaned for the audit event (None when the
    date is not past: nothing to override).
    """
    if not is_business_day(run_date):
        raise Unprocessable(
            PaymentCode.NOT_BUSINESS_DAY,
            f"{run_date} is not a TARGET2 business day: the next one is "
            f"{following_business_day(run_date)}",
            field="date",
        )
    if run_date >= today:
        return None
    if backdate_reason is None:
        raise Unprocessable(
            PaymentCode.DATE_PAST,
            f"{run_date} is before today ({today}, Paris): give a backdating reason to pay "
            "at a past date",
            field="date",
        )
    reason = " ".join(backdate_reason.split())
    low, high = BACKDATE_REASON_LENGTH
    if not low <= len(reason) <= high:
        raise ServiceError(
            PaymentCode.BACKDATE_REASON,
            f"a backdating reason is {low} to {high} characters",
            field="backdate_reason",
        )
    return reason


@metrics.PAYMENT_RUN_SECONDS.time()
def run_payments(
    platform: Platform,
    run_date: date,
    *,
    out_dir: Path | None = None,
    actor: str = ACTOR,
    progress: Progress = quiet,
    backdate_reason: str | None = None,
    max_transfer_cents: int | None = None,
) -> PaymentRunSummary:
    """Pay every provider what adjudication accepted and no run paid yet; rerunnable.

    A new run's date is checked by :func:`check_payment_date` (a backdated run is audited
    as ``payments.backdate`` in the transaction that starts it); a run already started is
    finished at its own date, whatever the day. A provider's payment above the run's
    maximum of one transfer is booked once and written as several transfers. That maximum
    is recorded with the run when it starts: ``max_transfer_cents`` (1 cent to the EPC
    maximum, lower only in tests; None: the EPC maximum); a run already started is
    finished, and its files rewritten, with its own (ValueError if another is given), and
    its returned transfers are matched with it (:mod:`services.payment_returns`).
    """
    if max_transfer_cents is not None:
        check_max_transfer(max_transfer_cents)
    run_key = payment_run_key(run_date)
    reason: str | None = None
    with platform.engine.connect() as conn:
        started = runs.run_exists(conn, run_key)
        if not started:
            reason = check_payment_date(run_date, paris_day(platform.now()), backdate_reason)
        if runs.period_billed(conn, period_of(run_date)):
            raise Conflict(
                PaymentCode.PERIOD_BILLED,
                f"insurers were already billed for {period_of(run_date)} or a later month: "
                "pay at a later date",
                field="date",
            )

    def audit_backdate(conn: Connection) -> None:
        if reason is None:
            return
        audit.append(
            conn,
            at=platform.now(),
            actor=actor,
            action="payments.backdate",
            decision="allow",
            detail={
                "run": run_key,
                "date": run_date.isoformat(),
                "today": paris_day(platform.now()).isoformat(),
                "reason": reason,
            },
        )

    run, owner = acquire_run(
        platform,
        run_key=run_key,
        kind="payment",
        run_date=run_date,
        period=None,
        on_create=audit_backdate,
        max_transfer_cents=max_transfer_cents,
    )
    done = False
    try:
        maximum = run.max_transfer_cents
        if max_transfer_cents is not None and max_transfer_cents != maximum:
            raise ValueError(
                f"the payment run {run_key} started with a maximum of {maximum} cents a "
                f"transfer: it is finished with it, not {max_transfer_cents}"
            )
        with platform.engine.connect() as conn:
            before = store.run_totals(conn, run_key)
        waiting: list[str] = []
        held: list[str] = []
        if run.status != "done":
            waiting, held = _remit_all(platform, run, owner, progress)
        target = out_dir or default_out_dir(platform, run_date)
        files = _write_files(platform, run_key, run_date, target, progress, maximum)
        with platform.engine.begin() as conn:
            counted, transfers, gross, net = store.run_totals(conn, run_key)
            if run.status != "done":
                renew(platform, conn, run_key, owner)
                audit.append(
                    conn,
                    at=platform.now(),
                    actor=actor,
                    action="payments.run",
                    decision="allow",
                    detail={
                        "run": run_key,
                        "providers": counted,
                        "transfers": transfers,
                        "net_cents": net,
                        "waiting_for_iban": len(waiting),
                        "held_for_bank_details": len(held),
                    },
                )
        with platform.engine.connect() as conn:
            unpaid = len(store.providers_with_work(conn, platform.now()))
        done = True
    finally:
        release_run(platform, run_key, owner, done=done)
    if counted > before[0]:  # this call paid invoices: their delays, once
        for delay, invoices in run_delays(platform, run_key, run_date).items():
            for _ in range(invoices):
                metrics.INVOICE_TO_TRANSFER_DAYS.observe(delay)
    return PaymentRunSummary(
        run_key,
        run_date,
        counted,
        transfers,
        gross,
        net,
        target,
        files,
        tuple(waiting),
        resumed=before[0] > 0 or run.status == "done",
        already_done=run.status == "done",
        new_payments=counted - before[0],
        new_transfers=transfers - before[1],
        new_net_cents=net - before[3],
        cutoff=aware(run.cutoff),
        unpaid_providers=unpaid,
        held_for_bank_details=tuple(held),
    )


def _remit_all(
    platform: Platform, run: runs.Run, owner: str, progress: Progress
) -> tuple[list[str], list[str]]:
    cutoff = aware(run.cutoff)
    with platform.engine.connect() as conn:
        provider_ids = sorted(
            set(store.providers_with_work(conn, cutoff))
            | set(returns_store.providers_with_open_returns(conn))
        )
    waiting: list[str] = []
    held: list[str] = []
    for n, provider_id in enumerate(provider_ids, start=1):
        with platform.engine.begin() as conn:
            renew(platform, conn, run.run_key, owner)
            store.lock_provider(conn, provider_id)
            if store.payment_exists(conn, run.run_key, provider_id):
                continue  # paid earlier in this run; newer lines wait for the next run
            now = platform.now()
            changing, returned = bank_store.payment_flags(conn, provider_id)
            if changing:
                # Verified bank details whose cooling-off ended by the payment date replace
                # the provider's account now, in this transaction, before anything is paid.
                bank_store.apply_due(conn, provider_id, run.run_date, now)
            payee = store.payee(conn, provider_id)
            if payee.iban_ct is None:
                waiting.append(payee.am_number)
                continue
            reissue = (
                _payable_returns(conn, provider_id, run.run_date) if changing or returned else []
            )
            if reissue is None:
                held.append(payee.am_number)
                continue
            _remit_provider(platform, conn, run, provider_id, cutoff, reissue, now)
            progress(REMITTED, n)
        progress(COMMITTED, n)
    return waiting, held


def _payable_returns(
    conn: Connection, provider_id: int, run_date: date
) -> list[returns_store.TransferReturn] | None:
    """The provider's returned transfers to pay again now, or None to hold its payment.

    Held while verified new bank details wait for the end of their cooling-off period
    (the account on file may be the closed one), or while a returned transfer went to
    the account the provider still has (paying there would come back again).
    """
    if bank_store.cooling_off(conn, provider_id, run_date) is not None:
        return None
    open_returns = returns_store.open_returns(conn, provider_id)
    if not open_returns:
        return []
    current = bank_store.account_version(conn, provider_id)
    if any(r.account_version == current for r in open_returns):
        return None
    return open_returns


def _remit_provider(
    platform: Platform,
    conn: Connection,
    run: runs.Run,
    provider_id: int,
    cutoff: datetime,
    reissue: list[returns_store.TransferReturn],
    now: datetime,
) -> None:
    remitted = store.remit_lines(
        conn,
        run_key=run.run_key,
        provider_id=provider_id,
        cutoff=cutoff,
        bill_period=period_of(run.run_date),
    )
    lines, gross = remitted.lines, remitted.gross_cents
    reissued = sum(r.cents for r in reissue)
    if lines == 0 and reissued == 0:
        return
    open_items = overpayments.open_undue(conn, provider_id, cutoff)
    netting = net_payment(gross, sum(cents for _, cents in open_items))
    allocations = list(allocate_recovery(netting.recovered_cents, open_items))
    overpayments.insert_recoveries(conn, run.run_key, provider_id, allocations)
    # One transfer per provider, netted; the postings split it by insurer so that each
    # insurer's books balance on their own (docs/money.md).
    day = run.run_date
    for insurer_id, cents in recovered_by_insurer(allocations).items():
        ledger.post(
            conn,
            accounting.recovery(run.run_key, provider_id, day, cents),
            at=now,
            insurer_id=insurer_id,
        )
    for insurer_id, cents in insurer_shares(remitted.paid_by_insurer, allocations).items():
        ledger.post(
            conn,
            accounting.payment(run.run_key, provider_id, day, cents),
            at=now,
            insurer_id=insurer_id,
        )
    if reissued:
        shares = ledger.bank_shares(
            conn,
            [accounting.Journal.TRANSFER_RETURN.value],
            [accounting.transfer_return_reference(r.end_to_end_id) for r in reissue],
        )
        # Each return was posted split by insurer: paying it again takes the same shares.
        if -sum(shares.values()) != reissued:
            raise RuntimeError(
                f"the ledger's returns of provider {provider_id} sum to "
                f"{-sum(shares.values())} cents, the returns to {reissued}"
            )
        for insurer_id, cents in shares.items():
            ledger.post(
                conn,
                accounting.transfer_reissue(run.run_key, provider_id, day, -cents),
                at=now,
                insurer_id=insurer_id,
            )
        returns_store.mark_reissued(conn, [r.end_to_end_id for r in reissue], run.run_key)
    store.insert_payment(
        conn,
        store.PaymentRow(
            run.run_key,
            provider_id,
            run.run_date,
            lines,
            gross,
            netting.recovered_cents,
            netting.net_cents,
            reissued,
        ),
        now,
    )


# --- files ------------------------------------------------------------------------------


def atomic_write(path: Path, write: Callable[[TextIO], None]) -> Path:
    """Write to a temporary name, then rename: a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    part = path.with_name(path.name + ".part")
    with part.open("w", encoding="utf-8", newline="") as handle:
        write(handle)
    os.replace(part, path)
    return path


def transfers_file(out_dir: Path, run_date: date) -> Path:
    return out_dir / f"pain001-{run_date:%Y%m%d}.xml"


def remittance_file(out_dir: Path, run_date: date, provider_id: int) -> Path:
    return out_dir / "remittances" / f"{remittance_id(run_date, provider_id)}.csv"


class _Ibans:
    """Decrypts provider IBANs inside the run only (operator keys, by key version)."""

    def __init__(self, platform: Platform, conn: Connection) -> None:
        self._platform = platform
        self._conn = conn
        self._ciphers: dict[int, FieldCipher] = {}

    def iban(self, payee: store.Payee) -> str:
        if payee.iban_ct is None or payee.key_version is None:
            raise Conflict(PaymentCode.NO_IBAN, f"provider {payee.am_number} has no IBAN")
        cipher = self._ciphers.get(payee.key_version)
        if cipher is None:
            keys = self._platform.keys.version(self._conn, OPERATOR_SCOPE, payee.key_version)
            cipher = self._ciphers[payee.key_version] = FieldCipher(keys)
        return cipher.decrypt(payee.iban_ct, row_aad(0, "providers", payee.am_number, "iban"))


def _write_files(
    platform: Platform,
    run_key: str,
    run_date: date,
    out_dir: Path,
    progress: Progress,
    max_transfer_cents: int,
) -> tuple[Path, ...]:
    written: list[Path] = []
    with platform.engine.connect() as conn:
        _, transfers, _, net = store.run_totals(conn, run_key)
        if transfers:
            parts = store.run_transfer_count(conn, run_key, max_transfer_cents)
            ibans = _Ibans(platform, conn)

            def credit_transfers(handle: TextIO) -> None:
                write_credit_transfers(
                    handle,
                    message_id=message_id(run_key),
                    created=run_date,
                    debtor=bank_party(platform),
                    execution_date=run_date,
                    count=parts,
                    control_cents=net,
                    transfers=_transfers(ibans, conn, run_key, run_date, max_transfer_cents),
                )
                handle.flush()
                progress(TRANSFERS_WRITTEN, transfers)

            written.append(atomic_write(transfers_file(out_dir, run_date), credit_transfers))
        with platform.engine.connect() as lines_conn:
            for n, (payment, payee) in enumerate(
                store.run_payees(conn, run_key, transfers_only=False), start=1
            ):
                written.append(_write_remittance(lines_conn, out_dir, payment, payee))
                progress(REMITTANCE_WRITTEN, n)
    progress(FILES_DONE, len(written))
    return tuple(written)


def _transfers(
    ibans: _Ibans, conn: Connection, run_key: str, run_date: date, max_transfer_cents: int
) -> Iterator[Transfer]:
    with conn.engine.connect() as payees_conn:
        for payment, payee in store.run_payees(payees_conn, run_key, transfers_only=True):
            payment_transfer = Transfer(
                end_to_end_id=end_to_end_id(run_date, str(payee.provider_id)),
                cents=payment.transfer_cents,
                name=payee.name,
                iban=ibans.iban(payee),
                bic=payee.bic,
                remittance_info="Tiers payant AMC avis "
                + remittance_id(run_date, payee.provider_id),
            )
            yield from split_transfer(payment_transfer, max_transfer_cents)


def remittance_header(payment: store.PaymentRow, payee: store.Payee) -> RemittanceHeader:
    return RemittanceHeader(
        remittance_id=remittance_id(payment.payment_date, payment.provider_id),
        payment_date=payment.payment_date,
        provider_am_number=payee.am_number,
        provider_name=payee.name,
        gross_cents=payment.gross_cents,
        recovered_cents=payment.recovered_cents,
        net_cents=payment.net_cents,
        lines=payment.lines,
        end_to_end_id=end_to_end_id(payment.payment_date, str(payment.provider_id))
        if payment.transfer_cents
        else "",
        reissued_cents=payment.reissued_cents,
    )


def _write_remittance(
    conn: Connection, out_dir: Path, payment: store.PaymentRow, payee: store.Payee
) -> Path:
    def write(handle: TextIO) -> None:
        write_remittance(
            handle,
            remittance_header(payment, payee),
            store.remittance_lines(conn, payment.run_key, payment.provider_id),
            store.recovered_in(conn, payment.run_key, payment.provider_id),
        )

    return atomic_write(remittance_file(out_dir, payment.payment_date, payment.provider_id), write)


# --- remittance advice for the provider (API) -------------------------------------------


def _provider_id(principal: Principal) -> int:
    if principal.kind not in _PROVIDER_KINDS or principal.provider_id is None:
        raise Forbidden(AuthCode.WRONG_PRINCIPAL, "remittance advice is open to providers only")
    return principal.provider_id


def _audit_remittance(
    platform: Platform,
    principal: Principal,
    action: str,
    decision: str,
    detail: dict[str, str | int | bool | None],
) -> None:
    """One audit event per read of remittance data (refused reads included), committed
    before anything is handed out."""
    platform.audit_writer.append(
        audit.Entry(
            at=platform.now(),
            actor=principal.id,
            structure=principal.structure,
            action=action,
            purpose=REMITTANCE_PURPOSE,
            decision=decision,
            detail=detail,
        )
    )


def list_remittances(
    platform: Platform,
    principal: Principal,
    *,
    limit: int = 50,
    search: PaymentSearch | None = None,
) -> list[RemittanceHeader]:
    """The provider's own remittance advices, newest first, among those ``search`` keeps
    (period, amount, run) (audited ``remittance.list``)."""
    provider_id = _provider_id(principal)
    with platform.engine.connect() as conn:
        payee = store.payee(conn, provider_id)
        rows = store.provider_payments(conn, provider_id, min(max(limit, 1), 200), search)
        headers = [remittance_header(row, payee) for row in rows]
    _audit_remittance(platform, principal, REMITTANCE_LIST, "allow", {"advices": len(headers)})
    return headers


@dataclass(frozen=True, slots=True)
class RemittanceAdvice:
    header: RemittanceHeader
    lines: tuple[RemittanceLine, ...]
    recovered: tuple[RecoveredUndue, ...]
    offset: int
    limit: int


def _owned_payment(
    conn: Connection, principal: Principal, advice_id: str
) -> store.PaymentRow | None:
    """The payment behind one of the principal's advices, or None (unknown or another's)."""
    provider_id = _provider_id(principal)
    parsed = parse_remittance_id(advice_id)
    if parsed is None or parsed[1] != provider_id:
        return None
    return store.provider_payment(conn, provider_id, parsed[0])


def _refuse(platform: Platform, principal: Principal, advice_id: str, form: str) -> NoReturn:
    """The same 404 for an unknown advice and another provider's, audited as refused."""
    _audit_remittance(
        platform, principal, REMITTANCE_READ, "deny", {"advice": advice_id, "format": form}
    )
    raise NotFound(PaymentCode.REMITTANCE_UNKNOWN, "no such remittance advice")


def get_remittance(
    platform: Platform, principal: Principal, advice_id: str, *, offset: int = 0, limit: int = 500
) -> RemittanceAdvice:
    """One of the provider's advices, a page of lines at a time; another's is NotFound.

    Each call is audited (``remittance.read``, format ``json``) with the page it served.
    """
    page = min(max(limit, 1), 1000)
    with platform.engine.connect() as conn:
        row = _owned_payment(conn, principal, advice_id)
        if row is None:
            _refuse(platform, principal, advice_id, "json")
        advice = RemittanceAdvice(
            header=remittance_header(row, store.payee(conn, row.provider_id)),
            lines=tuple(
                store.remittance_lines(
                    conn, row.run_key, row.provider_id, offset=max(offset, 0), limit=page
                )
            ),
            recovered=tuple(store.recovered_in(conn, row.run_key, row.provider_id)),
            offset=max(offset, 0),
            limit=page,
        )
    _audit_remittance(
        platform,
        principal,
        REMITTANCE_READ,
        "allow",
        {
            "advice": advice_id,
            "format": "json",
            "offset": advice.offset,
            "lines": len(advice.lines),
        },
    )
    return advice


DOWNLOAD_FORMATS = ("csv", "pdf")


def download_remittance(
    platform: Platform, principal: Principal, advice_id: str, form: str
) -> bytes:
    """One of the provider's advices, every line, as a file: ``csv`` (UTF-8, the bytes the
    payment run writes) or ``pdf`` (French, :mod:`tierspayant.formats.remittance_pdf`).

    Another provider's advice is NotFound. Audited once (``remittance.read`` with the
    format and the number of lines) before the file is handed out.
    """
    if form not in DOWNLOAD_FORMATS:
        raise ServiceError(
            PaymentCode.REMITTANCE_FORMAT, "a remittance advice is served as csv or pdf"
        )
    with platform.engine.connect() as conn:
        row = _owned_payment(conn, principal, advice_id)
        if row is None:
            _refuse(platform, principal, advice_id, form)
        header = remittance_header(row, store.payee(conn, row.provider_id))
        lines = list(store.remittance_lines(conn, row.run_key, row.provider_id))
        recovered = store.recovered_in(conn, row.run_key, row.provider_id)
    _audit_remittance(
        platform,
        principal,
        REMITTANCE_READ,
        "allow",
        {"advice": advice_id, "format": form, "offset": 0, "lines": len(lines)},
    )
    if form == "pdf":
        return render_remittance(
            header, lines, recovered, operator_name=platform.settings.operator_name
        )
    out = io.StringIO()
    write_remittance(out, header, lines, recovered)
    return out.getvalue().encode("utf-8")
