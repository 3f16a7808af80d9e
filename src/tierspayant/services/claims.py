"""Invoices (claims): received one by one or from files, stored as received, then judged.

Receiving a claim identifies the beneficiary from the card data the invoice carries. From
the API it goes through the guarded lookup path (quotas, anomaly signals, audit) like a
rights check; from a batch file imported by the operator it uses the same exact-match
identification without the provider's lookup quota, and is audited the same way. Either
way the invoice is recorded in the guard, so that lookups never followed by an invoice
stand out.

A claim whose card data match nobody is stored all the same, for ``beneficiary_id`` 0,
and rejected by adjudication with ``rights.none``: the answer then tells no more than a
rights check would. What can be refused whoever the card designates is refused at once,
with a code, and nothing is stored: a line whose AMC share asked exceeds what the AMO left
(``claim.amc_above_cost``), a domain outside the provider's conventions with the insurer
on the line's date (``claim.no_convention``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

import structlog
from sqlalchemy import Connection

from tierspayant.app.platform import Platform
from tierspayant.domain import accounting
from tierspayant.domain.claims import (
    UNKNOWN_BENEFICIARY,
    ClaimContent,
    ClaimStatus,
    check_content,
    duplicate_key,
    near_key,
    submission_digest,
)
from tierspayant.domain.codes import ClaimCode
from tierspayant.domain.eligibility import age_on, check_care_date
from tierspayant.domain.errors import DomainError
from tierspayant.domain.identifiers import parse_am_number
from tierspayant.formats import french_csv
from tierspayant.formats.claims import ClaimRecord, LineError, read_claims
from tierspayant.security.audit import DISCLOSED
from tierspayant.security.guard import GuardUnavailable, context_for
from tierspayant.security.principal import AuthStrength, Principal, PrincipalKind
from tierspayant.services.engagements import check_at_intake
from tierspayant.services.errors import Conflict, NotFound
from tierspayant.services.identification import CardData, Identified, identify
from tierspayant.services.insurers import Insurer
from tierspayant.services.lookup import NO_PROOF, CardProof, authorise_provider, guarded_lookup
from tierspayant.services.overpayments import reverse_paid_claim
from tierspayant.services.pricing_facts import provider_under_convention
from tierspayant.services.providers import Provider, get_provider
from tierspayant.store import audit, ledger, reconnect
from tierspayant.store import claims as store
from tierspayant.store.insurers import amc_number_of
from tierspayant.store.payments import claim_is_paid

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class ClaimSubmission:
    """One invoice: the card data, what it bills, and whether it corrects an earlier one."""

    card: CardData
    content: ClaimContent
    correction: bool = False


@dataclass(frozen=True, slots=True)
class ClaimReceipt:
    claim_id: int
    invoice_number: str
    version: int
    status: str
    created: bool  # False: the same invoice had already been received


@dataclass(frozen=True, slots=True)
class LineView:
    line_no: int
    act_code: str
    domain: str
    family: str
    quantity: int
    care_date: date
    billed_cents: int
    amc_requested_cents: int
    status: str
    amc_accepted_cents: int
    reason_code: str | None
    rules: tuple[str, ...]
    br_cents: int = 0
    amo_rate_bp: int = 0
    amo_paid_cents: int = 0


@dataclass(frozen=True, slots=True)
class ClaimView:
    claim_id: int
    invoice_number: str
    version: int
    status: str
    care_date: date
    agreement_number: str | None
    received_at: datetime
    adjudicated_at: datetime | None
    billed_cents: int
    amc_requested_cents: int
    amc_accepted_cents: int
    reason_code: str | None
    lines: tuple[LineView, ...]


def file_principal(provider: Provider) -> Principal:
    """The principal an operator's file import acts as: the provider that sent the file."""
    return Principal(
        id=f"provider:{provider.am_number}/file",
        kind=PrincipalKind.PROVIDER_CLIENT,
        strength=AuthStrength.AAL2,
        provider_id=provider.id,
        provider_am_number=provider.am_number,
        structure=provider.structure,
    )


def submit_claim(
    platform: Platform,
    principal: Principal,
    submission: ClaimSubmission,
    *,
    source: str = "api",
    proof: CardProof = NO_PROOF,
) -> ClaimReceipt:
    """Receive one invoice, once: replays answer the first receipt.

    ``source="api"`` identifies through the guarded lookup; ``"file"`` (operator imports)
    identifies directly. A different body under a used number is refused
    (``claim.number_reused``) unless it is a correction, which replaces the earlier
    version (reversing its adjudication, or its payment through the overpayment service).
    """
    authorise_provider(principal)
    assert principal.provider_id is not None
    card = submission.card.normalised()
    content = submission.content
    check_content(content, platform.settings.amount_ceilings)
    check_care_date(content.care_date, platform.today())
    digest = submission_digest(_card_fields(card), content)
    with platform.engine.connect() as conn:
        if content.engagement_number is not None:
            # Before the lookup: a refused number costs no quota and reads nobody.
            check_at_intake(platform, conn, content.engagement_number, principal.provider_id)
        known = _replay(conn, principal.provider_id, content.invoice_number, digest, submission)
    if known is not None:
        return known

    def answer(
        conn: Connection, insurer: Insurer, found: Identified | None
    ) -> tuple[ClaimReceipt, str | None]:
        return _store(
            platform, conn, principal, insurer, found, submission, digest, source, proof.present
        )

    if source == "api":
        receipt, subject = guarded_lookup(platform, principal, card, proof, answer)
    else:
        with platform.engine.begin() as conn:
            insurer, found = identify(platform, conn, card)
            receipt, subject = answer(conn, insurer, found)
    if subject is not None and receipt.created:
        _record_invoice(platform, principal, subject, content.care_date)
    return receipt


def _card_fields(card: CardData) -> dict[str, Any]:
    return {
        "amc_number": card.amc_number,
        "birth_date": card.birth_date.isoformat(),
        "nir": card.nir,
        "birth_rank": card.birth_rank,
        "member_number": card.member_number,
    }


def _replay(
    conn: Connection,
    provider_id: int,
    invoice_number: str,
    digest: bytes,
    submission: ClaimSubmission,
) -> ClaimReceipt | None:
    """The first answer to the same invoice; a refusal for a different one not a correction."""
    latest = store.latest_version(conn, provider_id, invoice_number)
    if latest is None:
        return None
    if latest.request_digest == digest:
        return _receipt(latest, created=False)
    if not submission.correction:
        raise Conflict(
            ClaimCode.NUMBER_REUSED,
            "this invoice number was already used for a different invoice; "
            'send "correction": true to replace it',
            field="invoice_number",
        )
    if latest.status == ClaimStatus.CANCELLED:
        raise Conflict(ClaimCode.CANCELLED, "this invoice was cancelled", field="invoice_number")
    return None


def _receipt(row: store.ClaimRow, *, created: bool) -> ClaimReceipt:
    return ClaimReceipt(row.id, row.invoice_number, row.version, row.status, created)


def _store(
    platform: Platform,
    conn: Connection,
    principal: Principal,
    insurer: Insurer,
    found: Identified | None,
    submission: ClaimSubmission,
    digest: bytes,
    source: str,
    with_proof: bool = False,
) -> tuple[ClaimReceipt, str | None]:
    """Store the claim (superseding the earlier version of a correction) and audit it."""
    assert principal.provider_id is not None
    content = submission.content
    # Refused at once, whoever the card designates: adjudication would reject every line.
    provider_under_convention(
        conn,
        insurer.id,
        principal.provider_id,
        ((line.domain, line.care_date) for line in content.lines),
        ClaimCode.NO_CONVENTION,
    )
    now = platform.now()
    store.lock_allocation(conn)
    # Checked again under the lock: a concurrent identical request may have won.
    latest = store.latest_version(conn, principal.provider_id, content.invoice_number)
    if latest is not None:
        replay = _replay(conn, principal.provider_id, content.invoice_number, digest, submission)
        if replay is not None:
            return replay, None
        if latest.insurer_id != insurer.id:
            raise Conflict(
                ClaimCode.INSURER_CHANGED,
                "a correction cannot move an invoice to another insurer; cancel it instead",
                field="card.amc_number",
            )
        _supersede(platform, conn, latest, principal.id, now)
    beneficiary_id = found.record.id if found is not None else UNKNOWN_BENEFICIARY
    claim_id = store.next_claim_id(conn)
    version = 1 if latest is None else latest.version + 1
    known = beneficiary_id != UNKNOWN_BENEFICIARY
    store.insert_claims(
        conn,
        [
            store.NewClaim(
                insurer_id=insurer.id,
                id=claim_id,
                provider_id=principal.provider_id,
                invoice_number=content.invoice_number,
                version=version,
                beneficiary_id=beneficiary_id,
                beneficiary_age=age_on(found.birth_date, content.care_date) if found else None,
                care_date=content.care_date,
                agreement_number=content.agreement_number,
                maternity=content.maternity,
                engagement_number=content.engagement_number,
                request_digest=digest,
                source=source,
                submitted_by=principal.id[:120],
                received_at=now,
                lines=content.lines,
                duplicate_keys=tuple(
                    duplicate_key(beneficiary_id, ln.act_code, ln.care_date, principal.provider_id)
                    if known
                    else None
                    for ln in content.lines
                ),
                near_keys=tuple(
                    near_key(beneficiary_id, ln.act_code, ln.care_date) if known else None
                    for ln in content.lines
                ),
            )
        ],
    )
    audit.append(
        conn,
        at=now,
        actor=principal.id,
        structure=principal.structure,
        action="claim.receive",
        purpose="invoice",
        subject=found.subject if found else None,
        insurer=insurer.amc_number,
        decision="hit" if found else "miss",
        detail={
            "claim": claim_id,
            "invoice": content.invoice_number,
            "version": version,
            "lines": len(content.lines),
            "source": source,
            # Whether the card's proof came with it: the guard's counters are rebuilt
            # from these events after an empty restart (``security/guard/restore.py``).
            "proof": with_proof,
            # The receipt reads the same for anyone, but the claim it opens is judged on the
            # person's contract and shown to the provider: an invoice for someone
            # identified is a disclosure (one for nobody is rejected as ``rights.none``).
            DISCLOSED: found is not None,
        },
    )
    receipt = ClaimReceipt(
        claim_id, content.invoice_number, version, ClaimStatus.RECEIVED.value, True
    )
    return receipt, found.subject if found else None


def _supersede(
    platform: Platform, conn: Connection, old: store.ClaimRow, actor: str, now: datetime
) -> None:
    """Withdraw the earlier version of a corrected invoice, and undo its money effects."""
    if old.status == ClaimStatus.ADJUDICATED and _is_paid(conn, old):
        _reverse_payment(platform, conn, old, actor, "claim.corrected")
        _reverse_engagements(platform, conn, old)
    else:
        _reverse_adjudication(platform, conn, old)
    store.withdraw(conn, old, ClaimStatus.SUPERSEDED, "claim.corrected", now)


def _is_paid(conn: Connection, claim: store.ClaimRow) -> bool:
    """Whether a payment run paid this claim."""
    return claim_is_paid(conn, claim.insurer_id, claim.id)


def _reverse_payment(
    platform: Platform, conn: Connection, claim: store.ClaimRow, actor: str, reason_code: str
) -> None:
    """The paid amount becomes an undue amount to recover (overpayment service)."""
    reverse_paid_claim(
        platform,
        conn,
        insurer_id=claim.insurer_id,
        claim_id=claim.id,
        reason_code=reason_code,
        actor=actor,
    )


def _reverse_adjudication(platform: Platform, conn: Connection, claim: store.ClaimRow) -> None:
    """Post the mirror of an adjudication posting (nothing if there was none)."""
    if claim.status != ClaimStatus.ADJUDICATED or claim.amc_accepted_cents == 0:
        return
    _reverse_engagements(platform, conn, claim)
    ledger.post(
        conn,
        accounting.adjudication_reversal(
            claim.insurer_id,
            claim.id,
            claim.version,
            amc_number_of(conn, claim.insurer_id),
            claim.provider_id,
            claim.amc_accepted_cents,
            platform.today(),
            claim.invoice_number,
        ),
        at=platform.now(),
        insurer_id=claim.insurer_id,
    )


def _reverse_engagements(platform: Platform, conn: Connection, claim: store.ClaimRow) -> None:
    """Post the mirror of the engagements the claim's adjudication honoured, if any
    (before :func:`store.withdraw` marks its engaged lines withdrawn)."""
    cents = store.engaged_cents(conn, claim.insurer_id, claim.id)
    if cents == 0:
        return
    ledger.post(
        conn,
        accounting.engagement_reversal(
            claim.insurer_id,
            claim.id,
            claim.version,
            amc_number_of(conn, claim.insurer_id),
            cents,
            platform.today(),
        ),
        at=platform.now(),
        insurer_id=claim.insurer_id,
    )


def _record_invoice(platform: Platform, principal: Principal, subject: str, day: date) -> None:
    """Tell the guard this structure invoiced this person (after the commit)."""
    guard = platform.guard
    if guard is None:
        return
    structure = context_for(
        principal, category="unknown", with_proof=False, at=platform.now()
    ).structure
    try:
        guard.record_invoice(structure, subject, day)
    except GuardUnavailable:
        # The invoice stands; only the lookups-without-invoice ratio misses one point.
        log.warning("claims.guard_unavailable", during="record_invoice")


def _owned(conn: Connection, principal: Principal, claim_id: int) -> store.ClaimRow:
    """The claim if this provider sent it; otherwise the same 404 as an unknown id."""
    authorise_provider(principal)
    row = store.claim_by_id(conn, claim_id)
    if row is None or row.provider_id != principal.provider_id:
        raise NotFound(ClaimCode.UNKNOWN, "no such claim")
    return row


def get_claim(platform: Platform, principal: Principal, claim_id: int) -> ClaimView:
    """A claim's state and per-line decisions, for the provider that sent it only."""
    # Read again on a new connection if the database dropped this one (a restart).
    return reconnect.read(
        platform.engine, lambda conn: _view(conn, _owned(conn, principal, claim_id))
    )


def get_claim_by_number(platform: Platform, principal: Principal, invoice_number: str) -> ClaimView:
    """The version in force of the provider's invoice ``invoice_number`` (the number the
    provider gave it, not the internal id); another provider's is unknown, the same 404."""
    authorise_provider(principal)
    assert principal.provider_id is not None
    with platform.engine.connect() as conn:
        row = store.latest_version(conn, principal.provider_id, invoice_number[:40])
        if row is None:
            raise NotFound(ClaimCode.UNKNOWN, "no such claim", field="invoice_number")
        return _view(conn, row)


def _view(conn: Connection, row: store.ClaimRow) -> ClaimView:
    stored = store.lines_of(conn, row.insurer_id, [row.id])[row.id]
    return ClaimView(
        claim_id=row.id,
        invoice_number=row.invoice_number,
        version=row.version,
        status=row.status,
        care_date=row.care_date,
        agreement_number=row.agreement_number,
        received_at=row.received_at,
        adjudicated_at=row.adjudicated_at,
        billed_cents=row.billed_cents,
        amc_requested_cents=row.amc_requested_cents,
        amc_accepted_cents=row.amc_accepted_cents,
        reason_code=row.reason_code,
        lines=tuple(
            LineView(
                line_no=s.line_no,
                act_code=s.line.act_code,
                domain=s.line.domain.value,
                family=s.line.family,
                quantity=s.line.quantity,
                care_date=s.line.care_date,
                billed_cents=s.line.billed_cents,
                amc_requested_cents=s.line.amc_requested_cents,
                status=s.status,
                amc_accepted_cents=s.amc_accepted_cents,
                reason_code=s.reason_code,
                rules=s.rules,
                br_cents=s.line.br_cents,
                amo_rate_bp=s.line.amo_rate_bp,
                amo_paid_cents=s.line.amo_paid_cents,
            )
            for s in stored
        ),
    )


def cancel_claim(
    platform: Platform, principal: Principal, claim_id: int, reason: str = "provider"
) -> ClaimView:
    """Cancel a claim before payment (idempotent: a cancelled claim stays cancelled)."""
    with platform.engine.begin() as conn:
        row = _owned(conn, principal, claim_id)
        if row.status == ClaimStatus.CANCELLED:
            return _view(conn, row)
        if row.status == ClaimStatus.SUPERSEDED:
            raise Conflict(ClaimCode.SUPERSEDED, "a newer version of this invoice exists")
        if row.status == ClaimStatus.ADJUDICATED and _is_paid(conn, row):
            raise Conflict(ClaimCode.ALREADY_PAID, "this invoice was already paid")
        _reverse_adjudication(platform, conn, row)
        store.withdraw(
            conn, row, ClaimStatus.CANCELLED, f"claim.cancelled.{reason}"[:60], platform.now()
        )
        audit.append(
            conn,
            at=platform.now(),
            actor=principal.id,
            structure=principal.structure,
            action="claim.cancel",
            decision="allow",
            insurer=amc_number_of(conn, row.insurer_id),
            detail={"claim": row.id, "invoice": row.invoice_number},
        )
        updated = store.claim_by_id(conn, claim_id)
        assert updated is not None
        return _view(conn, updated)


@dataclass(frozen=True, slots=True)
class ClaimImportSummary:
    lines: int
    received: int
    replayed: int  # invoices already received (a rerun of the same file)
    rejected: tuple[tuple[int, str, str], ...]  # (line, code, message)


BULK_IMPORT = 5_000  # claims received by one file that make it refresh planner statistics


def import_claims_file(
    platform: Platform,
    path: Path,
    provider_am_number: str,
    *,
    error_report: Path | None = None,
    progress: Callable[[int], None] | None = None,
) -> ClaimImportSummary:
    """Receive every invoice of a claim file sent by one provider (``docs/formats/claims.md``).

    Each invoice is its own unit of work: bad lines are listed with their number and
    reason, good ones stored; running the same file again stores nothing new.
    """
    provider = get_provider(platform, parse_am_number(provider_am_number))
    principal = file_principal(provider)
    lines = received = replayed = 0
    rejected: list[tuple[int, str, str]] = []
    for item in read_claims(path, platform.settings.amount_ceilings):
        lines += 1
        if isinstance(item, LineError):
            rejected.append((item.line_no, item.code, item.message))
        else:
            try:
                receipt = submit_claim(platform, principal, _file_submission(item), source="file")
            except DomainError as exc:
                where = f" ({exc.field})" if exc.field else ""
                rejected.append((item.line_no, exc.code, exc.message + where))
            else:
                received += receipt.created
                replayed += not receipt.created
        if progress is not None:
            progress(lines)
    if error_report is not None:
        _write_error_report(error_report, rejected)
    with platform.engine.begin() as conn:
        audit.append(
            conn,
            at=platform.now(),
            actor=principal.id,
            structure=principal.structure,
            action="claims.import",
            decision="allow",
            detail={"lines": lines, "received": received, "rejected": len(rejected)},
        )
    if received >= BULK_IMPORT:
        with platform.engine.begin() as conn:
            store.refresh_statistics(conn)  # a bulk load: let the planner see it
    return ClaimImportSummary(lines, received, replayed, tuple(rejected))


def _file_submission(record: ClaimRecord) -> ClaimSubmission:
    card = record.card
    return ClaimSubmission(
        card=CardData(
            amc_number=card.amc_number,
            birth_date=card.birth_date,
            nir=card.nir,
            birth_rank=card.birth_rank,
            member_number=card.member_number,
        ),
        content=record.content,
        correction=record.correction,
    )


def _write_error_report(path: Path, rejected: Sequence[tuple[int, str, str]]) -> None:
    """The refused lines of a claim file, for the operator's staff: a French CSV."""
    with path.open("w", encoding="utf-8", newline="") as out:
        french_csv.write(out, ("ligne", "code", "message"), rejected)
