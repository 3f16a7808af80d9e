"""Insurer billing run: per insurer and month, a statement, a fund call, a detail file.

The period's amount due is what the payment runs dated in that month paid on the
insurer's behalf, minus the undue amounts found that month (credited back), plus the
operator's management fee: a rate per paid line, the insurer's own or the platform
default (setting ``operator_fee_per_line_cents``), excluding VAT. The fund call is
collected by SEPA B2B direct debit (pain.008) under the insurer's mandate.

Ledger model (one step, documented in ``docs/money.md``): the fee is charged (journal
``fees``: debit ``insurer_receivable:<amc>``, credit ``fees:operator``) and the direct
debit is posted as collected on its collection date — debit ``bank:operator``, credit
``insurer_receivable:<amc>`` — when the statement is issued. A direct debit the insurer's
bank returns (``record_returns``, read from a pain.002 status report) is posted as its
mirror (journal ``billing.return``); a negative amount due (more undue than paid) is
posted the other way round and refunded by transfer, outside this run.

Like the payment run: one transaction per insurer under the run's lease, then files
written from the database alone, renamed into place, identical on a rerun.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import TextIO

from sqlalchemy import Connection

from tierspayant.app.platform import Platform
from tierspayant.config import MAX_OPERATOR_FEE_PER_LINE_CENTS
from tierspayant.domain import accounting
from tierspayant.domain.banking_calendar import collection_date, paris_day
from tierspayant.domain.codes import BillingCode
from tierspayant.domain.identifiers import parse_bic, parse_iban
from tierspayant.domain.payments import (
    Mandate,
    Transfer,
    billing_run_key,
    end_to_end_id,
    message_id,
    parse_period,
)
from tierspayant.formats.billing import (
    Statement,
    write_detail,
    write_statement_csv,
    write_statement_json,
)
from tierspayant.formats.camt054 import parse_returns_file
from tierspayant.formats.sepa import write_direct_debit
from tierspayant.formats.sepa_status import StatusReport, TransactionStatus
from tierspayant.security.crypto import FieldCipher, row_aad
from tierspayant.services import payment_returns
from tierspayant.services.errors import Conflict, ServiceError
from tierspayant.services.insurers import get_insurer
from tierspayant.services.payments import Progress, atomic_write, bank_party, quiet
from tierspayant.services.run_leases import acquire_run, release_run, renew
from tierspayant.store import audit, ledger, runs
from tierspayant.store import billing as store
from tierspayant.store.keys import OPERATOR_SCOPE
from tierspayant.store.transactions import write_transaction

ACTOR = "job:billing"
MAX_FEE_PER_LINE = MAX_OPERATOR_FEE_PER_LINE_CENTS  # the platform default's bound too
COLLECTION_DELAY_DAYS = 10  # after the period's end: the usual fund-call date
# Progress points, reported to ``progress(point, n)`` with n the insurer's rank: what the
# command line shows, and where the crash tests kill the process.
POSTED = "insurer.posted"  # inside the insurer's transaction, before its commit
STATEMENT_WRITTEN = "insurer.billed"
FUND_CALL_WRITTEN = "file.fund_call_written"  # written, not yet renamed
FILES_WRITTEN = "file.insurer_written"
FILES_DONE = "files.done"
_MANDATE_ID = re.compile(r"[A-Za-z0-9+?/:().,' -]{1,35}")


@dataclass(frozen=True, slots=True)
class BillingRunSummary:
    run_key: str
    period: str
    insurers: int
    due_cents: int
    collection_date: date
    out_dir: Path
    files: tuple[Path, ...]
    without_mandate: tuple[str, ...]  # AMC numbers billed but not debited: no mandate


def default_out_dir(platform: Platform, period: str) -> Path:
    return platform.settings.data_dir / "billing" / period


def run_billing(
    platform: Platform,
    period: str,
    *,
    out_dir: Path | None = None,
    actor: str = ACTOR,
    progress: Progress = quiet,
) -> BillingRunSummary:
    """Bill every insurer for a closed month, months in order, each once.

    Refused: a month not over in Paris (``billing.period_open``), a month whose run has
    finished (``billing.period_billed``), a month before the latest one billed
    (``billing.period_order``), a month with payment runs still open. A run that did not
    finish (a crash) is taken up again. The collection date is a TARGET2 business day
    (:func:`~tierspayant.domain.banking_calendar.collection_date`).
    """
    first, last = parse_period(period)
    today = paris_day(platform.now())
    if today <= last:
        raise ServiceError(
            BillingCode.PERIOD_OPEN,
            f"{period} is not over: bill it from {last + timedelta(1)}",
            field="period",
        )
    run_key = billing_run_key(period)
    with platform.engine.connect() as conn:
        status = runs.run_status(conn, run_key)
        latest = runs.last_billing_period(conn)
        running = runs.open_payment_runs(conn, first, last)
    if status == "done":
        raise Conflict(BillingCode.PERIOD_BILLED, f"{period} is already billed", field="period")
    if status is None and latest is not None and latest > period:
        raise Conflict(
            BillingCode.PERIOD_ORDER,
            f"{latest} is already billed: {period} comes before it",
            field="period",
        )
    if running:
        raise Conflict(
            BillingCode.PAYMENTS_RUNNING,
            f"payment runs of {period} have not finished: {', '.join(running)}",
        )
    collection = collection_date(
        last,
        delay_days=COLLECTION_DELAY_DAYS,
        submitted_on=today,
        notice_business_days=platform.settings.billing.notice_business_days,
    )
    run, owner = acquire_run(
        platform, run_key=run_key, kind="billing", run_date=collection, period=period
    )
    done = False
    try:
        if run.status != "done":
            _bill_all(platform, run, owner, progress)
        target = out_dir or default_out_dir(platform, period)
        files, without = _write_files(platform, period, run.run_date, target, progress)
        with platform.engine.begin() as conn:
            statements = store.statements_of(conn, period)
            if run.status != "done":
                renew(platform, conn, run_key, owner)
                audit.append(
                    conn,
                    at=platform.now(),
                    actor=actor,
                    action="billing.run",
                    decision="allow",
                    detail={"run": run_key, "insurers": len(statements)},
                )
        done = True
    finally:
        release_run(platform, run_key, owner, done=done)
    return BillingRunSummary(
        run_key,
        period,
        len(statements),
        sum(s.due_cents for s in statements),
        run.run_date,
        target,
        files,
        without,
    )


def _bill_all(platform: Platform, run: runs.Run, owner: str, progress: Progress) -> None:
    period = run.period
    assert period is not None
    with platform.engine.connect() as conn:
        insurer_ids = store.insurers_to_bill(conn, period)
    for n, insurer_id in enumerate(insurer_ids, start=1):
        with platform.engine.begin() as conn:
            renew(platform, conn, run.run_key, owner)
            if not store.statement_exists(conn, insurer_id, period):
                _bill_insurer(platform, conn, run, insurer_id, period)
                progress(POSTED, n)
        progress(STATEMENT_WRITTEN, n)


def _bill_insurer(
    platform: Platform, conn: Connection, run: runs.Run, insurer_id: int, period: str
) -> None:
    lines, paid, undue = store.billed_totals(conn, insurer_id, period)
    rate = fee_per_line(platform, conn, insurer_id)
    fee = lines * rate
    due = paid - undue + fee
    amc = ledger.amc_number(conn, insurer_id)
    if fee:
        ledger.post(
            conn,
            accounting.fees(period, insurer_id, amc, fee, run.run_date, lines, rate),
            at=platform.now(),
            insurer_id=insurer_id,
        )
    if due:
        ledger.post(
            conn,
            accounting.fund_call(period, insurer_id, amc, due, run.run_date),
            at=platform.now(),
            insurer_id=insurer_id,
        )
    store.insert_statement(
        conn,
        insurer_id=insurer_id,
        period=period,
        run_key=run.run_key,
        lines=lines,
        paid_cents=paid,
        undue_cents=undue,
        fee_per_line_cents=rate,
        collection_date=run.run_date,
        at=platform.now(),
    )


def default_fee_per_line(platform: Platform) -> int:
    """The platform's fee per paid line (``TIERSPAYANT_OPERATOR_FEE_PER_LINE_CENTS``, 0)."""
    return platform.settings.billing.operator_fee_per_line_cents


def fee_per_line(platform: Platform, conn: Connection, insurer_id: int) -> int:
    """The rate an insurer is charged per paid line: its own, else the platform's."""
    own = store.fee_of(conn, insurer_id)
    return default_fee_per_line(platform) if own is None else own


def _fee(cents: int) -> int:
    if not 0 <= cents <= MAX_FEE_PER_LINE:
        raise ServiceError(
            BillingCode.FEE_RANGE,
            f"a fee per line is whole cents from 0 to {MAX_FEE_PER_LINE}",
            field="per_line_cents",
        )
    return cents


def set_insurer_fee(
    platform: Platform, amc_number: str, per_line_cents: int | None, *, actor: str
) -> int:
    """Set the insurer's fee per paid line (None: back to the platform default).

    Applies to the periods billed from now on; issued statements keep their rate.
    Returns the rate now in force for the insurer.
    """
    if per_line_cents is not None:
        _fee(per_line_cents)
    now = platform.now()
    with platform.engine.begin() as conn:
        insurer = get_insurer(conn, amc_number)
        store.put_fee(conn, insurer.id, per_line_cents, at=now, actor=actor)
        audit.append(
            conn,
            at=now,
            actor=actor,
            action="billing.fee_set",
            decision="allow",
            insurer=insurer.amc_number,
            detail={"per_line_cents": per_line_cents},
        )
        return fee_per_line(platform, conn, insurer.id)


def statement_files(out_dir: Path, amc: str, period: str) -> dict[str, Path]:
    stem = f"{amc}-{period}"
    return {
        "statement_json": out_dir / f"statement-{stem}.json",
        "statement_csv": out_dir / f"statement-{stem}.csv",
        "detail": out_dir / f"detail-{stem}.csv",
        "fund_call": out_dir / f"pain008-{stem}.xml",
    }


def _write_files(
    platform: Platform, period: str, collection: date, out_dir: Path, progress: Progress = quiet
) -> tuple[tuple[Path, ...], tuple[str, ...]]:
    written: list[Path] = []
    without: list[str] = []
    n = 0
    with platform.engine.connect() as conn:
        for n, row in enumerate(store.statements_of(conn, period), start=1):
            paths, debited = _write_insurer_files(
                platform, conn, row, collection, out_dir, progress, n
            )
            written.extend(paths)
            if row.due_cents > 0 and not debited:
                without.append(row.amc_number)
            progress(FILES_WRITTEN, n)
    progress(FILES_DONE, n)
    return tuple(written), tuple(without)


def _write_insurer_files(
    platform: Platform,
    conn: Connection,
    row: store.StatementRow,
    collection: date,
    out_dir: Path,
    progress: Progress = quiet,
    n: int = 0,
) -> tuple[list[Path], bool]:
    """Statement (JSON, CSV), detail and, when something is due under a mandate, pain.008."""
    mandate = store.mandate_of(conn, row.insurer_id)
    statement = Statement(
        amc_number=row.amc_number,
        insurer_name=row.insurer_name,
        period=row.period,
        lines=row.lines,
        paid_cents=row.paid_cents,
        undue_cents=row.undue_cents,
        due_cents=row.due_cents,
        collection_date=collection,
        mandate_id=mandate.mandate_id if mandate else None,
        by_domain=store.billed_breakdown(conn, row.insurer_id, row.period, "domain"),
        by_category=store.billed_breakdown(conn, row.insurer_id, row.period, "category"),
        fee_per_line_cents=row.fee_per_line_cents,
        fee_cents=row.fee_cents,
        engagements=tuple(store.honoured_paid(conn, row.insurer_id, row.period)),
    )
    paths = statement_files(out_dir, row.amc_number, row.period)
    written = [
        atomic_write(paths["statement_json"], lambda h: write_statement_json(h, statement)),
        atomic_write(paths["statement_csv"], lambda h: write_statement_csv(h, statement)),
        _write_detail(conn, paths["detail"], row),
    ]
    if row.due_cents <= 0 or mandate is None:
        return written, False
    debit_line = _fund_call(platform, conn, row, mandate)

    def fund_call(handle: TextIO) -> None:
        write_direct_debit(
            handle,
            message_id=f"{message_id(f'bill:{row.period}')}-{row.insurer_id}",
            created=collection,
            creditor=bank_party(platform),
            collection_date=collection,
            mandate=Mandate(mandate.mandate_id, mandate.signed_on),
            debit=debit_line,
        )
        handle.flush()
        progress(FUND_CALL_WRITTEN, n)

    written.append(atomic_write(paths["fund_call"], fund_call))
    return written, True


def _write_detail(conn: Connection, path: Path, row: store.StatementRow) -> Path:
    def write(handle: TextIO) -> None:
        _, cents = write_detail(handle, store.detail_lines(conn, row.insurer_id, row.period))
        if cents != row.due_cents - row.fee_cents:
            raise Conflict(
                BillingCode.DETAIL_MISMATCH,
                f"the detail of {row.amc_number} sums to {cents} cents, the statement to "
                f"{row.due_cents - row.fee_cents} before fees",
            )

    return atomic_write(path, write)


def _fund_call(
    platform: Platform, conn: Connection, row: store.StatementRow, mandate: store.MandateRow
) -> Transfer:
    keys = platform.keys.version(conn, OPERATOR_SCOPE, mandate.key_version)
    iban = FieldCipher(keys).decrypt(
        mandate.iban_ct, row_aad(row.insurer_id, "insurer_mandates", mandate.mandate_id, "iban")
    )
    return Transfer(
        end_to_end_id=end_to_end_id(row.collection_date, f"{row.amc_number}-{row.period}"),
        cents=row.due_cents,
        name=row.insurer_name,
        iban=iban,
        bic=mandate.bic,
        remittance_info=f"Appel de fonds tiers payant {row.period} AMC {row.amc_number}",
    )


def set_mandate(
    platform: Platform,
    amc_number: str,
    *,
    iban: str,
    bic: str | None,
    mandate_id: str,
    signed_on: date,
    actor: str,
) -> None:
    """Record the insurer's SEPA B2B mandate; the IBAN is stored encrypted."""
    if not _MANDATE_ID.fullmatch(mandate_id):
        raise ServiceError(
            BillingCode.MANDATE_ID,
            "a mandate reference is 1 to 35 SEPA characters",
            field="mandate_id",
        )
    clean_iban = parse_iban(iban)
    clean_bic = parse_bic(bic) if bic else None
    now = platform.now()
    with platform.engine.begin() as conn:
        insurer = get_insurer(conn, amc_number)
        keys = platform.keys.active(conn, OPERATOR_SCOPE)
        blob = FieldCipher(keys).encrypt(
            clean_iban, row_aad(insurer.id, "insurer_mandates", mandate_id, "iban")
        )
        store.put_mandate(
            conn,
            insurer_id=insurer.id,
            mandate_id=mandate_id,
            signed_on=signed_on,
            iban_ct=blob,
            key_version=keys.version,
            bic=clean_bic,
            at=now,
        )
        audit.append(
            conn,
            at=now,
            actor=actor,
            action="mandate.set",
            decision="allow",
            insurer=insurer.amc_number,
            detail={"mandate": mandate_id},
        )


# --- returned direct debits -------------------------------------------------------------

_FUND_CALL_E2E = re.compile(r"TP(\d{8})-(.+)-(\d{4}-\d{2})")


@dataclass(frozen=True, slots=True)
class ReturnedCall:
    amc_number: str
    period: str
    end_to_end_id: str
    cents: int
    reason_code: str


@dataclass(frozen=True, slots=True)
class ReturnProblem:
    end_to_end_id: str
    code: str
    message: str  # English, for the audit and the logs
    detail: str = ""  # French, what the operator reads after the code's label


@dataclass(frozen=True, slots=True)
class ReturnsSummary:
    report_id: str
    recorded: tuple[ReturnedCall, ...]  # posted by this call
    already: tuple[ReturnedCall, ...]  # recorded before (the same report read again)
    errors: tuple[ReturnProblem, ...]  # any error: nothing of the report was recorded
    not_rejected: int  # transactions of the report with another status (accepted…)
    # Credit transfers to providers the report returns (services/payment_returns.py).
    transfers: tuple[payment_returns.ReturnedTransfer, ...] = ()
    transfers_already: tuple[payment_returns.ReturnedTransfer, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.errors


# Progress points of ``record_returns`` (where the crash tests kill it).
RETURN_POSTED = "return.posted"  # inside the file's transaction, after the n-th return
RETURNS_COMMITTED = "returns.committed"


def record_returns(
    platform: Platform,
    data: bytes,
    *,
    actor: str = ACTOR,
    source: str = "",
    progress: Progress = quiet,
) -> ReturnsSummary:
    """Record what a bank file returns, all or nothing: fund calls and provider transfers.

    The file is a pain.002 status report (``RJCT`` transactions) or a camt.054
    notification (transactions with return information). A rejected fund call gets the
    mirror of its posting (journal ``billing.return``: debit ``insurer_receivable:<amc>``,
    credit ``bank:operator``) and a ``fund_call_returns`` row with the reason code; a
    returned credit transfer to a provider is recorded by
    :func:`tierspayant.services.payment_returns.post_transfer_return`. Anything already
    returned is reported, not posted again; an end-to-end id that names nothing we sent,
    or a return whose amount differs, is an error and then nothing of the file is
    recorded. A payment above its run's maximum of one transfer was sent, and is
    returned, transfer by transfer, each matched with the maximum that run recorded.
    """
    report = parse_returns_file(data)
    rejected: dict[str, TransactionStatus] = {}
    for tx in report.transactions:
        if tx.rejected:
            rejected.setdefault(tx.end_to_end_id, tx)
    not_rejected = sum(1 for tx in report.transactions if not tx.rejected)
    now = platform.now()
    recorded: list[ReturnedCall] = []
    already: list[ReturnedCall] = []
    errors: list[ReturnProblem] = []
    transfers: list[payment_returns.ReturnedTransfer] = []
    transfers_already: list[payment_returns.ReturnedTransfer] = []
    # The write lock from the first read (SQLite; PostgreSQL locks the rows it reads):
    # two operators reading the same file at once record it once.
    with write_transaction(platform.engine) as conn:
        found: list[tuple[store.StatementRow, TransactionStatus]] = []
        sent: list[tuple[payment_returns.MatchedTransfer, TransactionStatus]] = []
        for e2e, tx in sorted(rejected.items()):
            if payment_returns.is_transfer_id(e2e):
                # The payment row is locked first (PostgreSQL): two operators reading the
                # same file record it once, the second finding the first's return.
                transfer = payment_returns.match_transfer(conn, tx)
                if isinstance(transfer, payment_returns.TransferProblem):
                    errors.append(
                        ReturnProblem(e2e, transfer.code, transfer.message, transfer.detail)
                    )
                    continue
                previous_transfer = payment_returns.already_returned(conn, e2e)
                if previous_transfer is not None:
                    transfers_already.append(previous_transfer)
                else:
                    sent.append((transfer, tx))
                continue
            match = _returned_statement(conn, tx)
            if isinstance(match, ReturnProblem):
                errors.append(match)
                continue
            previous = store.return_of(conn, match.insurer_id, match.period)
            if previous is not None:
                already.append(
                    ReturnedCall(
                        match.amc_number, match.period, e2e, previous.cents, previous.reason_code
                    )
                )
            else:
                found.append((match, tx))
        if not errors:
            for row, tx in found:
                recorded.append(_post_return(platform, conn, row, tx, report, actor))
                progress(RETURN_POSTED, len(recorded))
            for transfer, tx in sent:
                transfers.append(
                    payment_returns.post_transfer_return(
                        platform, conn, transfer, tx, report, actor
                    )
                )
                progress(RETURN_POSTED, len(recorded) + len(transfers))
        audit.append(
            conn,
            at=now,
            actor=actor,
            action="billing.returns",
            decision="deny" if errors else "allow",
            detail={
                "report": report.message_id,
                "source": source[:200] or None,
                "recorded": len(recorded),
                "already": len(already),
                "transfers": len(transfers),
                "transfers_already": len(transfers_already),
                "errors": len(errors),
            },
        )
    progress(RETURNS_COMMITTED, len(recorded) + len(transfers))
    return ReturnsSummary(
        report.message_id,
        tuple(recorded),
        tuple(already),
        tuple(errors),
        not_rejected,
        tuple(transfers),
        tuple(transfers_already),
    )


def _returned_statement(
    conn: Connection, tx: TransactionStatus
) -> store.StatementRow | ReturnProblem:
    """The statement whose fund call ``tx`` names, or why there is none."""
    e2e = tx.end_to_end_id
    parsed = _FUND_CALL_E2E.fullmatch(e2e)
    row = None if parsed is None else store.statement_of(conn, parsed[2], parsed[3], lock=True)
    if row is None or end_to_end_id(row.collection_date, f"{row.amc_number}-{row.period}") != e2e:
        return ReturnProblem(e2e, "returns.unknown", "no fund call has this end-to-end id")
    if row.due_cents <= 0:
        return ReturnProblem(e2e, "returns.no_fund_call", "nothing was called for this period")
    if tx.cents is not None and tx.cents != row.due_cents:
        return ReturnProblem(
            e2e,
            "returns.amount_mismatch",
            f"the report returns {tx.cents} cents, the fund call was {row.due_cents}",
        )
    return row


def _post_return(
    platform: Platform,
    conn: Connection,
    row: store.StatementRow,
    tx: TransactionStatus,
    report: StatusReport,
    actor: str,
) -> ReturnedCall:
    assert tx.reason_code is not None  # the reader refuses a rejection without a reason
    now = platform.now()
    # The bank's date, read from the report: the same file posts the same movement.
    value_date = max(report.created, row.collection_date)
    ledger.post(
        conn,
        accounting.fund_call_return(
            row.period, row.insurer_id, row.amc_number, row.due_cents, value_date, tx.reason_code
        ),
        at=now,
        insurer_id=row.insurer_id,
    )
    store.insert_return(
        conn,
        store.ReturnRow(
            insurer_id=row.insurer_id,
            period=row.period,
            end_to_end_id=tx.end_to_end_id,
            cents=row.due_cents,
            reason_code=tx.reason_code,
            report_id=report.message_id[:35],
            value_date=value_date,
        ),
        at=now,
        actor=actor,
    )
    audit.append(
        conn,
        at=now,
        actor=actor,
        action="billing.return",
        decision="allow",
        insurer=row.amc_number,
        detail={"period": row.period, "reason": tx.reason_code, "cents": row.due_cents},
    )
    return ReturnedCall(row.amc_number, row.period, tx.end_to_end_id, row.due_cents, tx.reason_code)


def returned_fund_calls(platform: Platform, insurer_id: int) -> dict[str, store.ReturnRow]:
    """An insurer's returned fund calls by period (for its statements page)."""
    with platform.engine.connect() as conn:
        return {r.period: r for r in store.returns_of(conn, insurer_id)}
