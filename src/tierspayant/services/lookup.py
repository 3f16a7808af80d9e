"""The one guarded path from a provider's request to a beneficiary's record.

Rights checks and calculations both go through :func:`guarded_lookup`, in this order:
authorise the principal, check the scanned card proof if there is one, ask the guard
*before* the lookup (with a valid proof: normal quotas; without: the small no-proof
quota), identify the person by exact match, check that a proof's card belongs to that
person's family, let the use case compute its answer and append its audit event in the
same transaction, tell the guard what was found, then raise any alert after the commit.

A refused proof (forged, revoked, superseded, expired, or another family's card) gets one
answer whatever the reason, ``403 card.proof_invalid``, and goes to the guard as an
attack signal. A scanned text that is not a card code at all (a misread: cut short, or
typed by a reader on another keyboard layout) is not: ``422 card.misread`` asks for a
new scan, and the guard only counts it with the misses (``docs/guard.md``).
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future
from contextlib import AbstractContextManager
from dataclasses import dataclass, field, replace
from datetime import date
from typing import Generic, NoReturn, TypeVar, cast

from sqlalchemy import Connection

from tierspayant.app.observability import REQUEST_ID_DETAIL, current_request_id
from tierspayant.app.platform import Platform
from tierspayant.domain.codes import AuthCode, CardCode, GuardCode
from tierspayant.security.audit import DISCLOSED, AuditEvent
from tierspayant.security.guard import (
    Admission,
    GuardUnavailable,
    LookupContext,
    LookupOutcome,
    ProofFault,
    Signal,
    Verdict,
    context_for,
)
from tierspayant.security.principal import AuthStrength, Principal, PrincipalKind
from tierspayant.services import containment
from tierspayant.services.alerts import raise_alerts
from tierspayant.services.card_scans import ProofRefused, VerifiedProof, check_proof, proof_covers
from tierspayant.services.errors import (
    Forbidden,
    TooManyRequests,
    Unauthenticated,
    Unavailable,
    Unprocessable,
)
from tierspayant.services.identification import CardData, Identified, identify_detailed
from tierspayant.services.insurers import Insurer
from tierspayant.store import audit
from tierspayant.store.beneficiary_reads import LookupReads
from tierspayant.store.providers import category_of
from tierspayant.store.reconnect import Attempt, once_more_if_disconnected

T = TypeVar("T")
U = TypeVar("U")
PROVIDER_KINDS = frozenset({PrincipalKind.PROVIDER_CLIENT, PrincipalKind.PROVIDER_USER})


@dataclass(frozen=True, slots=True)
class CardProof:
    """The scanned 2D code of the patient's card (``TP1:…``), when the request has one.

    It is checked inside :func:`guarded_lookup`; a lookup that reaches its answer with a
    proof present had it verified, since a refused proof ends the request first.
    """

    payload: str | None = field(default=None, repr=False)

    @property
    def present(self) -> bool:
        return self.payload is not None


NO_PROOF = CardProof()
PROOF_REFUSED = (CardCode.PROOF_INVALID, "this card cannot be accepted")
PROOF_MISREAD = (
    CardCode.MISREAD,
    "the scanned code is not a card code (cut short, or another keyboard layout): scan again",
)


def authorise_provider(principal: Principal) -> None:
    """Only health providers look beneficiaries up."""
    if principal.kind not in PROVIDER_KINDS:
        raise Forbidden(AuthCode.FORBIDDEN, "only health providers may look up beneficiaries")


def provider_category(platform: Platform, principal: Principal) -> str:
    """The profession of the principal's provider, which sets its default daily cap."""
    if principal.provider_id is None:
        return "unknown"
    if principal.provider_category:
        return principal.provider_category
    with platform.engine.connect() as conn:
        value = category_of(conn, principal.provider_id)
    return value or "unknown"


def refuse(admission: Admission) -> NoReturn:
    """Turn a guard refusal into the error the caller sees."""
    if admission.verdict is Verdict.STEP_UP:
        raise Unauthenticated(AuthCode.STEP_UP_REQUIRED, admission.message)
    if admission.code == GuardCode.UNAVAILABLE:
        raise Unavailable(admission.code, admission.message)
    if admission.throttled:
        raise TooManyRequests(admission.code, admission.message, retry_after=admission.retry_after)
    raise Forbidden(admission.code, admission.message)


@dataclass(slots=True)
class Deferred(Generic[T]):
    """An answer computed but not yet releasable: its audit event may still be on its way.

    ``event`` is the group commit of the answer's audit event (None when the event was
    written in the lookup's own transaction). :meth:`settle` — once ``event`` is done, or
    blocking until it is — returns the answer, or raises the write's error after freeing
    the guard's hold; it also raises the lookup's alerts, after the commit. An async
    caller awaits ``event`` first, so no thread blocks while the batch commits.
    """

    _result: Callable[[], T]
    event: Future[AuditEvent] | None
    on_success: Callable[[], None]
    on_failure: Callable[[], None]
    # Hands the event to the writer if it is still held for the loop (a caller that
    # blocks on it would otherwise wait for a loop iteration that cannot come).
    flush: Callable[[], None] = field(default=lambda: None)

    def settle(self, timeout: float = 30.0) -> T:
        if self.event is not None:
            if not self.event.done():
                self.flush()
            try:
                self.event.result(timeout)
            except BaseException:
                self.on_failure()
                raise
        self.on_success()
        return self._result()

    def then(self, convert: Callable[[T], U]) -> Deferred[U]:
        """The same answer, converted when settled: ``convert`` may raise (a refusal is
        an answer too, so it must not leave before the event is committed either)."""
        inner = self._result
        return Deferred(
            lambda: convert(inner()), self.event, self.on_success, self.on_failure, self.flush
        )


def _nothing() -> None:
    return None


def _value(result: T) -> Callable[[], T]:
    return lambda: result


def guarded_lookup(
    platform: Platform,
    principal: Principal,
    card: CardData,
    proof: CardProof,
    answer: Callable[[Connection, Insurer, Identified | None], T],
) -> T:
    """Run ``answer`` on the beneficiary the card designates, under the guard.

    ``answer`` computes the response, writes what it writes and appends the audit event
    inside the lookup's write transaction; it must not raise for a person who is unknown
    or not covered.
    """

    def in_transaction(
        conn: Connection, insurer: Insurer, found: Identified | None
    ) -> tuple[T, audit.Entry | None]:
        return answer(conn, insurer, found), None

    return _guarded(platform, principal, card, proof, in_transaction, write=True).settle()


def guarded_read(
    platform: Platform,
    principal: Principal,
    card: CardData,
    proof: CardProof,
    answer: Callable[[Connection, Insurer, Identified | None], tuple[T, audit.Entry]],
    *,
    care_date: date | None = None,
) -> Deferred[T]:
    """:func:`guarded_lookup` for answers that only read (rights checks, calculations).

    ``answer`` returns the response and the audit event that records it. The lookup
    runs in a read-only transaction, so it never waits for the database's writer; the
    event goes to the platform's group-commit writer
    (:mod:`tierspayant.store.audit_writer`). The caller gets a :class:`Deferred`: the
    response may leave only through :meth:`Deferred.settle`, once its event is committed.
    """
    return _guarded(platform, principal, card, proof, answer, write=False, care_date=care_date)


def guarded_answer(
    platform: Platform,
    principal: Principal,
    card: CardData,
    proof: CardProof,
    answer: Callable[[Connection, Insurer, Identified | None], tuple[T, audit.Entry]],
    *,
    care_date: date | None = None,
) -> Deferred[T]:
    """:func:`guarded_read` for answers that also write (a calculation's engagement on
    amounts): ``answer`` runs in a write transaction, its audit event goes to the
    group-commit writer once that transaction is committed."""
    return _guarded(platform, principal, card, proof, answer, write=True, care_date=care_date)


def _guarded(
    platform: Platform,
    principal: Principal,
    card: CardData,
    proof: CardProof,
    answer: Callable[[Connection, Insurer, Identified | None], tuple[T, audit.Entry | None]],
    *,
    write: bool,
    care_date: date | None = None,
) -> Deferred[T]:
    authorise_provider(principal)
    containment.enforce(platform, principal, card.amc_number, answer, with_proof=proof.present)
    verified = _verify(platform, principal, card, proof)
    ctx = _context(platform, principal, verified is not None, care_date)
    guard = platform.guard
    if guard is None:
        try:
            result, _, _, entry = _lookup(platform, card, answer, verified, write=write)
        except ProofRefused as refused:
            _refuse_proof(platform, principal, card, refused, ctx)
        writer = platform.audit_writer
        return Deferred(_value(result), _submit(platform, entry), _nothing, _nothing, writer.flush)
    admission = guard.admit(ctx)
    raise_alerts(platform, admission.signals, ctx, insurer=card.amc_number)
    if not admission.allowed:
        _audit_refusal(platform, principal, card, admission)
        refuse(admission)
    try:
        result, insurer, signals, entry = _lookup(
            platform, card, answer, verified, ctx, write=write
        )
        event = _submit(platform, entry)
    except GuardUnavailable as exc:
        raise Unavailable(exc.code, "lookups are temporarily unavailable") from None
    except ProofRefused as refused:
        guard.abandon(ctx)
        _refuse_proof(platform, principal, card, refused, ctx)
    except BaseException:
        guard.abandon(ctx)
        raise

    def after_commit() -> None:
        # SQLite has one writer, and alerts write in their own transaction.
        raise_alerts(platform, signals, ctx, insurer=insurer.amc_number)

    return Deferred(
        _value(result),
        event,
        after_commit,
        lambda: guard.abandon(ctx),
        platform.audit_writer.flush,
    )


def _tagged(entry: audit.Entry) -> audit.Entry:
    """``entry`` with the id of the HTTP request it serves in its detail (if any), so
    that an audit event leads to the log lines of its request."""
    request_id = current_request_id()
    if request_id is None or entry.detail.get(REQUEST_ID_DETAIL) == request_id:
        return entry  # none, or tagged already by the answer that built it
    return replace(entry, detail={**entry.detail, REQUEST_ID_DETAIL: request_id})


def _submit(platform: Platform, entry: audit.Entry | None) -> Future[AuditEvent] | None:
    # Awaited on the loop by an async caller (``api/lanes.py``), else settled: see
    # ``AuditWriter.submit_from_loop``.
    return None if entry is None else platform.audit_writer.submit_from_loop(_tagged(entry))


def _append(platform: Platform, entry: audit.Entry) -> None:
    platform.audit_writer.append(_tagged(entry))


def _audit_refusal(
    platform: Platform, principal: Principal, card: CardData, admission: Admission
) -> None:
    """Every authorisation decision is audited, refusals of the guard included: the log
    then shows the whole attempt, not only what was answered."""
    _append(
        platform,
        audit.Entry(
            at=platform.now(),
            actor=principal.id,
            structure=principal.structure,
            action="lookup.refused",
            purpose="rights",
            insurer=card.amc_number,
            decision="deny" if admission.verdict is not Verdict.STEP_UP else "step_up",
            detail={"code": admission.code},
        ),
    )


def _verify(
    platform: Platform, principal: Principal, card: CardData, proof: CardProof
) -> VerifiedProof | None:
    """Check a card proof before the guard is asked (it sets which quota applies)."""
    if proof.payload is None:
        return None
    try:
        with platform.engine.connect() as conn:
            return check_proof(platform, conn, proof.payload, card.amc_number)
    except ProofRefused as refused:
        ctx = _context(platform, principal, False)
        if refused.fault is ProofFault.MISREAD:
            _misread(platform, principal, card, ctx)
        _refuse_proof(platform, principal, card, refused, ctx)


def _misread(
    platform: Platform, principal: Principal, card: CardData, ctx: LookupContext
) -> NoReturn:
    """Audit the misread, let the guard count it with the misses, answer 422: no signal.

    Nothing was signed, so nothing was forged: a reader on the wrong keyboard layout
    must not cost a professional the account. The count keeps a scraper from hiding
    its misses among misreads (``guard.misread_ratio``).
    """
    _append(
        platform,
        audit.Entry(
            at=platform.now(),
            actor=principal.id,
            structure=principal.structure,
            action="card.proof_misread",
            purpose="card_proof",
            insurer=card.amc_number,
            decision="deny",
            detail={"fault": ProofFault.MISREAD.value, DISCLOSED: False},
        ),
    )
    guard = platform.guard
    if guard is not None:
        guard.reject_proof(ctx, ProofFault.MISREAD)
    raise Unprocessable(*PROOF_MISREAD)


def _refuse_proof(
    platform: Platform,
    principal: Principal,
    card: CardData,
    refused: ProofRefused,
    ctx: LookupContext,
) -> NoReturn:
    """Audit the refusal, hand it to the guard as an attack signal, answer 403.

    A proof that led to a canary also raises the canary signal. The caller learns
    nothing of which check failed.
    """
    _append(
        platform,
        audit.Entry(
            at=platform.now(),
            actor=principal.id,
            structure=principal.structure,
            action="card.proof_refused",
            purpose="card_proof",
            subject=refused.canary_subject,
            insurer=card.amc_number,
            decision="deny",
            # The same 403 whoever the card designates: a canary named here was touched,
            # not disclosed.
            detail={"fault": refused.fault.value, "serial": refused.serial, DISCLOSED: False},
        ),
    )
    guard = platform.guard
    if guard is not None:
        signals = guard.reject_proof(ctx, refused.fault)
        if refused.canary_subject is not None:
            signals += guard.observe(ctx, LookupOutcome.canary(refused.canary_subject))
        raise_alerts(platform, signals, ctx, insurer=card.amc_number)
    raise Forbidden(*PROOF_REFUSED)


def reservation_context(platform: Platform, principal: Principal) -> LookupContext:
    """The guard's view of a calculation that may reserve (its category is not read: the
    reservations row reads no calibrated cap)."""
    return context_for(
        principal,
        category="",
        with_proof=True,
        at=platform.now(),
        stepped_up=principal.strength is AuthStrength.AAL3,
    )


def _context(
    platform: Platform, principal: Principal, with_proof: bool, care_date: date | None = None
) -> LookupContext:
    # A step-up satisfied within its validity (``services.accounts.step_up``) is read by
    # the guard itself; an AAL3 session is strong on its own.
    return context_for(
        principal,
        category=provider_category(platform, principal),
        with_proof=with_proof,
        at=platform.now(),
        stepped_up=principal.strength is AuthStrength.AAL3,
        care_date=care_date,
    )


def _lookup(
    platform: Platform,
    card: CardData,
    answer: Callable[[Connection, Insurer, Identified | None], tuple[T, audit.Entry | None]],
    verified: VerifiedProof | None,
    ctx: LookupContext | None = None,
    *,
    write: bool,
) -> tuple[T, Insurer, list[Signal], audit.Entry | None]:
    # Run again on a new connection if the database dropped this one (a restart) before
    # the guard was told: a read changed nothing, a transaction not committed was undone.
    def attempt(step: Attempt) -> tuple[T, Insurer, list[Signal], audit.Entry | None]:
        return _lookup_once(platform, card, answer, verified, ctx, write=write, step=step)

    return once_more_if_disconnected(platform.engine, attempt)


def _lookup_once(
    platform: Platform,
    card: CardData,
    answer: Callable[[Connection, Insurer, Identified | None], tuple[T, audit.Entry | None]],
    verified: VerifiedProof | None,
    ctx: LookupContext | None,
    *,
    write: bool,
    step: Attempt,
) -> tuple[T, Insurer, list[Signal], audit.Entry | None]:
    signals: list[Signal] = []
    # A read-only lookup checks a connection out only if a read needs one (the index read
    # on SQLite runs on the thread's own); its transaction is rolled back when it closes.
    reads = cast(AbstractContextManager[Connection], LookupReads(platform.engine))
    with platform.engine.begin() if write else reads as conn:
        outcome_of = identify_detailed(platform, conn, card)
        insurer, found = outcome_of.insurer, outcome_of.found
        if verified is not None and (
            found is None or not proof_covers(platform, conn, verified, insurer, found.record)
        ):
            # Unknown person or another family: the same refusal, nothing answered.
            raise ProofRefused(ProofFault.MISMATCH, verified.serial, outcome_of.canary_subject)
        result, entry = answer(conn, insurer, found)
        if entry is not None and entry.subject is not None and DISCLOSED not in entry.detail:
            # The incident scope reads this field; an answer without it would be guessed.
            raise ValueError(f"{entry.action}: an answer about a person must say if it disclosed")
        # The guard counts this lookup now, and a write transaction commits at the end of
        # this block: from here on, no second run.
        step.committing()
        if ctx is not None and platform.guard is not None:
            if outcome_of.canary_subject is not None:
                outcome = LookupOutcome.canary(outcome_of.canary_subject)
            elif found is None:
                outcome = LookupOutcome.miss()
            else:
                outcome = LookupOutcome.hit(found.subject)
            signals = platform.guard.observe(ctx, outcome)
    return result, insurer, signals, entry
