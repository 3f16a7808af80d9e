"""Insurer billing run: per insurer and month, a statement, a fund call, a detail file.

The period's amount due is what the payment runs dated in that month paid on the
insurer's behalf, minus the undue amounts found that month (credited back). The fund
call is collected by SEPA B2B direct debit (pain.008) under the insurer's mandate.

Ledger model (one step, documented in ``docs/money.md``): the direct debit is posted as
collected on its collection date — debit ``bank:operator``, credit
``insurer_receivable:<amc>`` — when the statement is issued. A returned direct debit would
be posted as its mirror; a negative amount due (more undue than paid) is posted the other
way round and refunded by transfer, outside this run.

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

from tierspayant.domain.identifiers import parse_bic, parse_iban
from tierspayant.domain.ledger import BANK, AccountKind, account, credit, debit, posting
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
from tierspayant.formats.sepa import write_direct_debit
from tierspayant.security.crypto import FieldCipher, row_aad
from tierspayant.services.errors import Conflict, ServiceError
from tierspayant.services.insurers import get_insurer
from tierspayant.services.payments import (
    Progress,
    acquire_run,
    atomic_write,
    bank_party,
    quiet,
    release_run,
    renew,
)
from tierspayant.services.platform import Platform
from tierspayant.store import audit, ledger
from tierspayant.store import payments as store
from tierspayant.store.keys import OPERATOR_SCOPE

ACTOR = "job:billing"
BILLING_JOURNAL = "billing"
COLLECTION_DELAY = timedelta(days=10)  # after the period's end: the usual fund-call date
NOTICE = timedelta(days=2)  # at least this far after the run (B2B pre-notification)
STATEMENT_WRITTEN = "insurer.billed"
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
    """Bill every insurer for a closed month; rerunnable, never bills a month twice."""
    first, last = parse_period(period)
    today = platform.today()
    if today <= last:
        raise ServiceError(
            "billing.period_open", f"{period} is not over: bill it from {last + timedelta(1)}"
        )
    run_key = billing_run_key(period)
    with platform.engine.connect() as conn:
        running = store.open_payment_runs(conn, first, last)
    if running:
        raise Conflict(
            "billing.payments_running",
            f"payment runs of {period} have not finished: {', '.join(running)}",
        )
    collection = max(last + COLLECTION_DELAY, today + NOTICE)
    run, owner = acquire_run(
        platform, run_key=run_key, kind="billing", run_date=collection, period=period
    )
    done = False
    try:
        if run.status != "done":
            _bill_all(platform, run, owner, progress)
        target = out_dir or default_out_dir(platform, period)
        files, without = _write_files(platform, period, run.run_date, target)
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


def _bill_all(platform: Platform, run: store.Run, owner: str, progress: Progress) -> None:
    period = run.period
    assert period is not None
    with platform.engine.connect() as conn:
        insurer_ids = store.insurers_to_bill(conn, period)
    for n, insurer_id in enumerate(insurer_ids, start=1):
        with platform.engine.begin() as conn:
            renew(platform, conn, run.run_key, owner)
            if not store.statement_exists(conn, insurer_id, period):
                _bill_insurer(platform, conn, run, insurer_id, period)
        progress(STATEMENT_WRITTEN, n)


def _bill_insurer(
    platform: Platform, conn: Connection, run: store.Run, insurer_id: int, period: str
) -> None:
    lines, paid, undue = store.billed_totals(conn, insurer_id, period)
    due = paid - undue
    amc = store.amc_number(conn, insurer_id)
    receivable = account(AccountKind.INSURER_RECEIVABLE, amc)
    if due:
        entries = (
            (debit(BANK, due), credit(receivable, due))
            if due > 0
            else (debit(receivable, -due), credit(BANK, -due))
        )
        ledger.post(
            conn,
            posting(
                BILLING_JOURNAL,
                f"{run.run_key}:{insurer_id}",
                run.run_date,
                *entries,
                memo=f"fund call {period}",
            ),
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
        collection_date=run.run_date,
        at=platform.now(),
    )


def statement_files(out_dir: Path, amc: str, period: str) -> dict[str, Path]:
    stem = f"{amc}-{period}"
    return {
        "statement_json": out_dir / f"statement-{stem}.json",
        "statement_csv": out_dir / f"statement-{stem}.csv",
        "detail": out_dir / f"detail-{stem}.csv",
        "fund_call": out_dir / f"pain008-{stem}.xml",
    }


def _write_files(
    platform: Platform, period: str, collection: date, out_dir: Path
) -> tuple[tuple[Path, ...], tuple[str, ...]]:
    written: list[Path] = []
    without: list[str] = []
    with platform.engine.connect() as conn:
        for row in store.statements_of(conn, period):
            paths, debited = _write_insurer_files(platform, conn, row, collection, out_dir)
            written.extend(paths)
            if row.due_cents > 0 and not debited:
                without.append(row.amc_number)
    return tuple(written), tuple(without)


def _write_insurer_files(
    platform: Platform,
    conn: Connection,
    row: store.StatementRow,
    collection: date,
    out_dir: Path,
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

    written.append(atomic_write(paths["fund_call"], fund_call))
    return written, True


def _write_detail(conn: Connection, path: Path, row: store.StatementRow) -> Path:
    def write(handle: TextIO) -> None:
        _, cents = write_detail(handle, store.detail_lines(conn, row.insurer_id, row.period))
        if cents != row.due_cents:
            raise Conflict(
                "billing.detail_mismatch",
                f"the detail of {row.amc_number} sums to {cents} cents, the statement to "
                f"{row.due_cents}",
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
            "mandate.id", "a mandate reference is 1 to 35 SEPA characters", field="mandate_id"
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
