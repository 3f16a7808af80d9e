"""Disputes (« contestations ») of a decided invoice line, between a provider and the
insurer that decided it.

A provider disputes a rejected or reduced line of the latest adjudicated version of one of
its own invoices, named by its invoice number; opening the same dispute again while it is
open answers the open one (idempotent on the line). After a refusal the line may be
disputed again; after an acceptance it may not (the corrected invoice is what is left).
The insurer's staff answer it: ``accepted`` or ``refused``, with a French text the
provider reads.

Accepting does not change any amount by itself: the line stays as adjudication decided it
and no posting is made. The amount is corrected only by a new adjudication, which a
corrected invoice (same number, ``correction``) triggers; the answer says so, and the
decision is recorded and audited. Both sides see only their own disputes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from tierspayant.app.platform import Platform
from tierspayant.domain.claims import ClaimStatus, LineStatus
from tierspayant.domain.codes import ClaimCode
from tierspayant.security.principal import Principal, PrincipalKind
from tierspayant.services.errors import Conflict, NotFound, Unprocessable
from tierspayant.services.lookup import authorise_provider
from tierspayant.store import audit
from tierspayant.store import claims as claims_store
from tierspayant.store import disputes as store
from tierspayant.store.disputes import DisputeRow
from tierspayant.store.insurers import amc_number_of

MAX_TEXT = 1000
DISPUTABLE = frozenset({LineStatus.REJECTED.value, LineStatus.REDUCED.value})
DECISIONS = frozenset({"accepted", "refused"})
# What the provider reads under an accepted dispute: the truth about the amount.
ACCEPTED_NOTE = (
    "Contestation acceptée : le montant de la ligne n'est pas modifié par cette réponse. "
    "Il le sera par le traitement de la facture corrigée, à renvoyer avec le même numéro."
)

__all__ = [
    "ACCEPTED_NOTE",
    "DisputeRow",
    "Opened",
    "answer_dispute",
    "insurer_disputes",
    "open_dispute",
    "provider_disputes",
]


@dataclass(frozen=True, slots=True)
class Opened:
    dispute: DisputeRow
    created: bool  # False: the line already had this open dispute


def _text(raw: str, field: str) -> str:
    text = " ".join(raw.split())
    if not text or len(text) > MAX_TEXT:
        raise Unprocessable(
            ClaimCode.DISPUTE_TEXT, f"{field}: 1 to {MAX_TEXT} characters", field=field
        )
    return text


def open_dispute(
    platform: Platform, principal: Principal, invoice_number: str, line_no: int, reason: str
) -> Opened:
    """Dispute line ``line_no`` of the provider's invoice ``invoice_number`` (audited as
    ``claim.dispute``)."""
    authorise_provider(principal)
    assert principal.provider_id is not None
    text = _text(reason, "reason")
    now = platform.now()
    with platform.engine.begin() as conn:
        claim = claims_store.latest_version(conn, principal.provider_id, invoice_number[:40])
        if claim is None:
            raise NotFound(ClaimCode.UNKNOWN, "no such claim", field="invoice_number")
        lines = claims_store.lines_of(conn, claim.insurer_id, [claim.id])[claim.id]
        line = next((s for s in lines if s.line_no == line_no), None)
        if claim.status != ClaimStatus.ADJUDICATED or line is None or line.status not in DISPUTABLE:
            raise Unprocessable(
                ClaimCode.DISPUTE_LINE,
                "only a rejected or reduced line of an adjudicated invoice can be disputed",
                field="line",
            )
        latest = store.latest_dispute_of(conn, claim.insurer_id, claim.id, line_no)
        if latest is not None and latest.state == "open":
            return Opened(latest, created=False)
        if latest is not None and latest.state == "accepted":
            # Accepted: what is left is the corrected invoice, not another dispute.
            raise Conflict(ClaimCode.DISPUTE_ANSWERED, "the line's dispute was accepted")
        dispute_id = store.insert_dispute(
            conn,
            insurer_id=claim.insurer_id,
            claim_id=claim.id,
            line_no=line_no,
            provider_id=principal.provider_id,
            invoice_number=claim.invoice_number,
            reason_text=text,
            actor=principal.id[:120],
            at=now,
        )
        found = store.latest_dispute_of(conn, claim.insurer_id, claim.id, line_no)
        assert found is not None
        if dispute_id is None:  # a concurrent request opened it first
            return Opened(found, created=False)
        audit.append(
            conn,
            at=now,
            actor=principal.id,
            structure=principal.structure,
            action="claim.dispute",
            decision="open",
            purpose="invoice",
            insurer=amc_number_of(conn, claim.insurer_id),
            detail={"claim": claim.id, "line": line_no, "dispute": dispute_id},
        )
        return Opened(found, created=True)


def provider_disputes(platform: Platform, principal: Principal) -> list[DisputeRow]:
    """The provider's own disputes, newest first, with the insurer's answers."""
    authorise_provider(principal)
    assert principal.provider_id is not None
    with platform.engine.connect() as conn:
        return store.provider_disputes(conn, principal.provider_id)


def _insurer_of(principal: Principal) -> int:
    if principal.kind is not PrincipalKind.INSURER_STAFF or principal.insurer_id is None:
        raise NotFound(ClaimCode.DISPUTE_UNKNOWN, "no such dispute")
    return principal.insurer_id


def insurer_disputes(
    platform: Platform, principal: Principal, *, answered: bool = False
) -> list[DisputeRow]:
    """The insurer's open disputes, oldest first; with ``answered``, the answered ones."""
    insurer_id = _insurer_of(principal)
    states = ("accepted", "refused") if answered else ("open",)
    with platform.engine.connect() as conn:
        return store.insurer_disputes(conn, insurer_id, states)


def answer_dispute(
    platform: Platform, principal: Principal, dispute_id: int, decision: str, answer: str
) -> DisputeRow:
    """Answer an open dispute of the caller's insurer (audited as ``claim.dispute_answer``).

    Accepting records the decision only (see the module's docstring): the pages show
    :data:`ACCEPTED_NOTE` under an accepted answer. The same answer sent again answers the
    recorded one; a different one is ``claim.dispute_answered``.
    """
    insurer_id = _insurer_of(principal)
    if decision not in DECISIONS:
        raise Unprocessable(
            ClaimCode.DISPUTE_TEXT, "decision: accepted or refused", field="decision"
        )
    text = _text(answer, "answer")
    now: datetime = platform.now()
    with platform.engine.begin() as conn:
        found = store.dispute_of_insurer(conn, insurer_id, dispute_id)
        if found is None:
            raise NotFound(ClaimCode.DISPUTE_UNKNOWN, "no such dispute")
        if found.state == decision and found.answer == text:
            return found  # the same answer sent again: answered once
        if not store.answer_dispute(
            conn,
            insurer_id,
            dispute_id,
            state=decision,
            answer=text,
            actor=principal.id[:120],
            at=now,
        ):
            raise Conflict(ClaimCode.DISPUTE_ANSWERED, "the dispute was already answered")
        audit.append(
            conn,
            at=now,
            actor=principal.id,
            action="claim.dispute_answer",
            decision=decision,
            insurer=amc_number_of(conn, insurer_id),
            detail={"claim": found.claim_id, "line": found.line_no, "dispute": dispute_id},
        )
        answered = store.dispute_of_insurer(conn, insurer_id, dispute_id)
        assert answered is not None
        return answered
