"""The one guarded path from a provider's request to a beneficiary's record.

Rights checks and calculations both go through :func:`guarded_lookup`, in this order:
authorise the principal, ask the guard *before* the lookup, identify the person by exact
match, let the use case compute its answer and append its audit event in the same
transaction, tell the guard what was found, then raise any alert after the commit.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import NoReturn, TypeVar

from sqlalchemy import Connection, select

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
from tierspayant.services.alerts import raise_alerts
from tierspayant.services.errors import Forbidden, ServiceError, TooManyRequests, Unauthenticated
from tierspayant.services.identification import CardData, Identified, identify
from tierspayant.services.insurers import Insurer
from tierspayant.services.platform import Platform
from tierspayant.store.tables import providers

T = TypeVar("T")
PROVIDER_KINDS = frozenset({PrincipalKind.PROVIDER_CLIENT, PrincipalKind.PROVIDER_USER})


@dataclass(frozen=True, slots=True)
class CardProof:
    """The outcome of checking the scanned 2D code, when the request carried one."""

    present: bool
    fault: ProofFault | None = None

    @property
    def valid(self) -> bool:
        return self.present and self.fault is None


NO_PROOF = CardProof(present=False)


def authorise_provider(principal: Principal) -> None:
    """Only health providers look beneficiaries up."""
    if principal.kind not in PROVIDER_KINDS:
        raise Forbidden("auth.forbidden", "only health providers may look up beneficiaries")


def provider_category(platform: Platform, principal: Principal) -> str:
    """The profession of the principal's provider, which sets its default daily cap."""
    if principal.provider_id is None:
        return "unknown"
    with platform.engine.connect() as conn:
        value = conn.execute(
            select(providers.c.category).where(providers.c.id == principal.provider_id)
        ).scalar_one_or_none()
    return str(value) if value else "unknown"


def refuse(admission: Admission) -> NoReturn:
    """Turn a guard refusal into the error the caller sees."""
    if admission.verdict is Verdict.STEP_UP:
        raise Unauthenticated("auth.step_up_required", admission.message)
    if admission.code == "guard.unavailable":
        raise ServiceError(admission.code, admission.message, status=503)
    if admission.throttled:
        raise TooManyRequests(admission.code, admission.message, retry_after=admission.retry_after)
    raise Forbidden(admission.code, admission.message)


def guarded_lookup(
    platform: Platform,
    principal: Principal,
    card: CardData,
    proof: CardProof,
    answer: Callable[[Connection, Insurer, Identified | None], T],
) -> T:
    """Run ``answer`` on the beneficiary the card designates, under the guard.

    ``answer`` computes the response and appends the audit event inside the lookup's
    transaction; it must not raise for a person who is unknown or not covered.
    """
    authorise_provider(principal)
    ctx = _context(platform, principal, proof)
    if platform.guard is None:
        return _lookup(platform, card, answer)[0]
    if proof.fault is not None:
        signals = platform.guard.reject_proof(ctx, proof.fault)
        raise_alerts(platform, signals, ctx, insurer=card.amc_number)
        raise Forbidden("eligibility.card_proof_refused", "this card cannot be accepted")
    admission = platform.guard.admit(ctx)
    raise_alerts(platform, admission.signals, ctx, insurer=card.amc_number)
    if not admission.allowed:
        refuse(admission)
    try:
        result, insurer, signals = _lookup(platform, card, answer, ctx)
    except GuardUnavailable as exc:
        raise ServiceError(exc.code, "lookups are temporarily unavailable", status=503) from None
    except BaseException:
        platform.guard.abandon(ctx)
        raise
    # After the commit: SQLite has one writer, and alerts write in their own transaction.
    raise_alerts(platform, signals, ctx, insurer=insurer.amc_number)
    return result


def _context(platform: Platform, principal: Principal, proof: CardProof) -> LookupContext:
    return context_for(
        principal,
        category=provider_category(platform, principal),
        with_proof=proof.valid,
        at=platform.now(),
        stepped_up=principal.strength is AuthStrength.AAL3,
    )


def _lookup(
    platform: Platform,
    card: CardData,
    answer: Callable[[Connection, Insurer, Identified | None], T],
    ctx: LookupContext | None = None,
) -> tuple[T, Insurer, list[Signal]]:
    signals: list[Signal] = []
    with platform.engine.begin() as conn:
        insurer, found = identify(platform, conn, card)
        result = answer(conn, insurer, found)
        if ctx is not None and platform.guard is not None:
            if found is None:
                outcome = LookupOutcome.miss()
            elif found.record.is_canary:
                outcome = LookupOutcome.canary(found.subject)
            else:
                outcome = LookupOutcome.hit(found.subject)
            signals = platform.guard.observe(ctx, outcome)
    return result, insurer, signals
