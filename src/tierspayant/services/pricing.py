"""The calculation (CLC): the AMO, AMC and patient shares of a prospective invoice.

Lines are checked before anyone is looked up, and every answer about the person is the
same (``calculation.no_rights``) whether they are unknown, mismatched, not covered or
covered without tiers payant for a domain of the lines, so a calculation cannot be used
to learn more than a rights check. A professional without the insurer's convention for a
domain of the lines is refused (``calculation.no_convention``) whoever the card designates.

The calculation reads the facts adjudication reads (the person's counters and ceilings
consumed by earlier accepted invoices, the last covered equipment, the waiting period,
the conventions, the tiers payant flags) and applies them through
:mod:`tierspayant.domain.facts`, as adjudication does: the invoice that repeats the
calculation's lines the same day is accepted for the amount calculated.

A covered answer carries an *engagement on amounts* (``ENG1-C-…``, see ``docs/money.md``):
the AMC amount it quotes is reserved against the person's ceilings (a row of
``amount_reservations``) until the invoice that carries the number consumes it, its
professional cancels it, or its validity ends. Every pricing of the same person reads
the open reservations as consumed (``PricingFacts.reserved``), so two engagements never
promise the same ceiling. The same calculation repeated by the same professional while
its engagement is open answers the same number, priced again (the retry of a lost answer).
Sent under an ``Idempotency-Key`` (:func:`start_keyed_calculation`), a covered answer is
kept with its engagement, in the same transaction, and a retry under the key answers it
again byte for byte without pricing or writing (:mod:`tierspayant.services.idempotency`).
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import date

from sqlalchemy import Connection

from tierspayant.app.platform import Platform
from tierspayant.domain.codes import CalculationCode
from tierspayant.domain.eligibility import check_care_date
from tierspayant.domain.engagements import (
    AmountPolicy,
    EngagedAmount,
    Reservation,
    open_in,
)
from tierspayant.domain.errors import PricingError
from tierspayant.domain.facts import CounterUse, held_by, pricing_request
from tierspayant.domain.pricing import PricingLine, PricingResult, check_lines, price
from tierspayant.security.audit import DISCLOSED
from tierspayant.security.guard import Admission, LookupContext, Verdict
from tierspayant.security.principal import Principal
from tierspayant.services import idempotency
from tierspayant.services.alerts import raise_alerts
from tierspayant.services.engagements import seal_amount
from tierspayant.services.errors import Unprocessable
from tierspayant.services.idempotency import IdempotencyKey, KeyTaken, StoredAnswer
from tierspayant.services.identification import CardData, Identified
from tierspayant.services.insurers import Insurer
from tierspayant.services.lookup import (
    NO_PROOF,
    CardProof,
    Deferred,
    guarded_answer,
    guarded_read,
    refuse,
    reservation_context,
)
from tierspayant.services.pricing_facts import person_facts, provider_under_convention
from tierspayant.store import audit, reservations
from tierspayant.store.adjudication import ProviderTerms, lock_beneficiaries
from tierspayant.store.db import begin_write

# Engine refusals that depend on the person, not on the lines: all look like "no rights".
PERSON_CODES = frozenset({CalculationCode.NOT_COVERED_YET, CalculationCode.DOMAIN_NOT_COVERED})


@dataclass(frozen=True, slots=True)
class Calculation:
    card: CardData
    care_date: date
    lines: tuple[PricingLine, ...]
    maternity: bool = False


def amount_policy(platform: Platform) -> AmountPolicy:
    """The engagement policy in force (``settings.engagements``, ``TIERSPAYANT_ENGAGEMENT_*``)."""
    settings = platform.settings.engagements
    return AmountPolicy(settings.equipment_days, settings.other_days, settings.max_open)


def too_many_open() -> Unprocessable:
    """The professional already holds the most open engagements allowed for this person."""
    return Unprocessable(
        CalculationCode.TOO_MANY_OPEN,
        "too many open engagements for this person and care domain: cancel one or invoice",
    )


def no_rights() -> Unprocessable:
    """The single refusal for unknown, mismatched and uncovered beneficiaries."""
    return Unprocessable(
        CalculationCode.CALCULATION_NO_RIGHTS,
        "no complementary rights for this card data on this date",
    )


def calculate(
    platform: Platform, principal: Principal, request: Calculation, proof: CardProof = NO_PROOF
) -> PricingResult:
    """Check the lines, then guard, identify, price, audit and commit."""
    return start_calculation(platform, principal, request, proof).settle()


def start_calculation(
    platform: Platform, principal: Principal, request: Calculation, proof: CardProof = NO_PROOF
) -> Deferred[PricingResult]:
    """:func:`calculate` up to the audit event's group commit (see ``Deferred``)."""
    return _start(platform, principal, request, proof, None)


def start_keyed_calculation(
    platform: Platform,
    principal: Principal,
    request: Calculation,
    proof: CardProof,
    key: IdempotencyKey,
    render: Callable[[PricingResult], StoredAnswer],
) -> Deferred[StoredAnswer]:
    """:func:`start_calculation` under a client's idempotency key.

    The first covered answer, as ``render`` writes it, is kept with its engagement in one
    transaction; the same key and body again replay it (:func:`_replay`), another body
    is ``request.idempotency_key_reused``. A refusal keeps nothing. Of two requests under
    one key at once, the one whose key row goes in first writes; the other's transaction
    is rolled back at its insert (which waited for the first's commit), and it replays.
    """
    stored = idempotency.stored_answer(platform, key)
    if stored is not None:
        return _replay(platform, principal, request, proof, stored)
    kept: list[StoredAnswer] = []

    def keep(conn: Connection, result: PricingResult) -> None:
        answer = render(result)
        idempotency.keep(platform, conn, key, answer)
        kept.append(answer)  # the last one kept is the one committed (a rerun, see reconnect)

    try:
        started = _start(platform, principal, request, proof, keep)
    except KeyTaken:
        stored = idempotency.stored_answer(platform, key, any_age=True)
        if stored is None:
            # Only the purge deletes a row, and only one past its 24 hours: the row that
            # beat this request cannot have gone since. A fault, not an answer.
            raise
        return _replay(platform, principal, request, proof, stored)
    return started.then(lambda _result: kept[-1])


def _replay(
    platform: Platform,
    principal: Principal,
    request: Calculation,
    proof: CardProof,
    stored: StoredAnswer,
) -> Deferred[StoredAnswer]:
    """The kept answer of a calculation, handed over again as a lookup of its person.

    It answers about a person, so it goes the guarded way of every such answer (the
    principal's authorisation, containment, the card proof, the guard's count) and is
    audited as a calculation (``replay`` in its detail): the first answer's own event
    may never have been written, if its connection was lost as it committed. Nothing is
    priced and nothing else is written. Its lines and care date are not checked again:
    they were, and a retry after midnight must not be refused what was answered.
    """
    card = request.card.normalised()

    def answer(
        conn: Connection, insurer: Insurer, found: Identified | None
    ) -> tuple[StoredAnswer, audit.Entry]:
        del conn
        decision = "hit" if found is not None else "miss"
        # The kept answer is a covered one: it discloses.
        detail = {"replay": True, DISCLOSED: True}
        return stored, _entry(platform, principal, insurer, found, request, proof, decision, detail)

    return guarded_read(platform, principal, card, proof, answer, care_date=request.care_date)


def _entry(
    platform: Platform,
    principal: Principal,
    insurer: Insurer,
    found: Identified | None,
    request: Calculation,
    proof: CardProof,
    decision: str,
    detail: Mapping[str, audit.DetailValue],
) -> audit.Entry:
    """The audit event of a calculation priced or replayed: what was asked, and ``detail``."""
    asked: dict[str, audit.DetailValue] = {
        "care_date": request.care_date.isoformat(),
        "lines": len(request.lines),
        "proof": proof.present,
    }
    return _event(platform, principal, insurer, found, decision, {**asked, **detail})


def _event(
    platform: Platform,
    principal: Principal,
    insurer: Insurer,
    found: Identified | None,
    decision: str,
    detail: Mapping[str, audit.DetailValue],
) -> audit.Entry:
    """The audit event of a calculation answered (priced, refused or replayed)."""
    return audit.Entry(
        at=platform.now(),
        actor=principal.id,
        structure=principal.structure,
        action="calculation",
        purpose="calculation",
        subject=found.subject if found else None,
        insurer=insurer.amc_number,
        decision=decision,
        detail=detail,
    )


def _start(
    platform: Platform,
    principal: Principal,
    request: Calculation,
    proof: CardProof,
    keep: Callable[[Connection, PricingResult], None] | None,
) -> Deferred[PricingResult]:
    card = request.card.normalised()
    check_care_date(request.care_date, platform.today())
    check_lines(request.lines, platform.reference.on(request.care_date))

    def answer(
        conn: Connection, insurer: Insurer, found: Identified | None
    ) -> tuple[PricingResult | CalculationCode | PricingError | Admission | None, audit.Entry]:
        # The provider's convention first: its refusal does not depend on the person.
        terms = provider_under_convention(
            conn,
            insurer.id,
            principal.provider_id,
            ((line.domain, request.care_date) for line in request.lines),
            CalculationCode.NO_CONVENTION,
        )
        judged = _judge_reservations(platform, conn, ctx)
        if judged is not None:
            # Before the person is priced: the refusal tells nothing about them.
            return judged, _refused_entry(platform, principal, insurer, found, judged)
        result = _price(platform, conn, principal, ctx.structure, insurer, found, request, terms)
        if keep is not None and isinstance(result, PricingResult):
            keep(conn, result)  # in the engagement's transaction: both or neither
        decision = "miss" if found is None else ("hit" if result else "hit_not_covered")
        detail: dict[str, audit.DetailValue] = {
            # Anything but ``calculation.no_rights``, the answer of an unknown person.
            DISCLOSED: result is not None,
            **({"refused": result.code} if isinstance(result, PricingError) else {}),
        }
        entry = _entry(platform, principal, insurer, found, request, proof, decision, detail)
        return result, entry

    def covered(
        result: PricingResult | CalculationCode | PricingError | Admission | None,
    ) -> PricingResult:
        if isinstance(result, PricingError):
            raise result
        if isinstance(result, Admission):
            # After the commit (SQLite has one writer): a hard signal suspends.
            raise_alerts(platform, result.signals, ctx, insurer=card.amc_number)
            refuse(result)
        return _covered(result)

    ctx = reservation_context(platform, principal)
    return guarded_answer(
        platform, principal, card, proof, answer, care_date=request.care_date
    ).then(covered)


def _judge_reservations(
    platform: Platform, conn: Connection, ctx: LookupContext
) -> Admission | None:
    """The guard's row over the engagements on amounts the structure created today, at
    every calculation of a professional (each may create one): None lets it go on."""
    guard = platform.guard
    if guard is None:
        return None
    since = guard.day_start(ctx.at)
    admission = guard.judge_reservation(
        ctx, reservations.created_by_structure(conn, ctx.structure, since)
    )
    return None if admission.allowed else admission


def _refused_entry(
    platform: Platform,
    principal: Principal,
    insurer: Insurer,
    found: Identified | None,
    admission: Admission,
) -> audit.Entry:
    decision = "deny" if admission.verdict is not Verdict.STEP_UP else "step_up"
    return _event(
        platform, principal, insurer, found, decision, {"code": admission.code, DISCLOSED: False}
    )


def _covered(result: PricingResult | CalculationCode | None) -> PricingResult:
    if result is None:
        raise no_rights()
    if result is CalculationCode.TOO_MANY_OPEN:
        raise too_many_open()
    assert isinstance(result, PricingResult)
    return result


def request_digest(provider_id: int, request: Calculation) -> bytes:
    """What makes two calculations the same for an engagement: professional, care date,
    maternity and lines (the card is the beneficiary, compared by id)."""
    text = repr((provider_id, request.care_date.isoformat(), request.maternity, request.lines))
    return hashlib.sha256(text.encode()).digest()


def _price(
    platform: Platform,
    conn: Connection,
    principal: Principal,
    structure: str,
    insurer: Insurer,
    found: Identified | None,
    request: Calculation,
    terms: ProviderTerms,
) -> PricingResult | CalculationCode | PricingError | None:
    if found is None or principal.provider_id is None:
        return None
    person = found.record.id
    # Read what this transaction then writes: one calculation (or adjudication) of the
    # person at a time, so that two never reserve the same ceiling.
    lock_beneficiaries(conn, insurer.id, [person])
    begin_write(conn)
    today = platform.today()
    held = reservations.open_reservations(conn, insurer.id, [person], today)[person]
    digest = request_digest(principal.provider_id, request)
    again = next(
        (r for r in held if r.digest == digest and r.provider_id == principal.provider_id), None
    )
    reserved = held_by(((r.id, r.uses) for r in held), None if again is None else again.id)
    facts = person_facts(platform, conn, insurer, found, request.care_date, terms, reserved)
    if facts is None:
        return None
    if facts.refusal((line.domain for line in request.lines), request.care_date) is not None:
        return None
    try:
        result = price(
            facts.contract,
            pricing_request(facts, request.care_date, request.lines, maternity=request.maternity),
            platform.reference,
        )
    except PricingError as exc:
        if exc.code in PERSON_CODES:
            return None
        # Reached only for a person found and covered: the refusal discloses that much,
        # so it is answered after its audit event, like any answer about the person.
        return exc
    policy = amount_policy(platform)
    domains = frozenset(line.domain for line in request.lines)
    if again is None:
        for domain in sorted(domains):
            full = open_in(held, domain, today)
            if len(full) >= policy.max_open:
                # Distinct only to whoever holds one of them: it already knows the person
                # is covered. Anyone else gets the answer of no rights (docs/money.md).
                if any(r.provider_id == principal.provider_id for r in full):
                    return CalculationCode.TOO_MANY_OPEN
                return None
    reservation = Reservation(
        insurer_id=insurer.id,
        id=again.id if again is not None else secrets.randbits(62) + 1,
        provider_id=principal.provider_id,
        structure=structure,  # the guard's key: counted by the reservations row
        beneficiary_id=person,
        domains=domains,
        care_date=request.care_date,
        valid_until=policy.valid_until(request.care_date, domains),
        contract_code=facts.contract.code,
        coverage_start=facts.coverage.start,
        amc_cents=result.amc_cents,
        uses=tuple(
            CounterUse(key, request.care_date, cents, units)
            for key, (cents, units) in sorted(result.counter_consumption.items())
        ),
        lines=tuple(
            EngagedAmount(line.act_code, line.domain, priced.amc_cents)
            for line, priced in zip(request.lines, result.lines, strict=True)
        ),
        digest=digest,
    )
    if again is None:
        reservations.insert_reservation(conn, reservation, platform.now())
    else:
        reservations.replace_amounts(conn, reservation)
    return replace(
        result,
        engagement_number=seal_amount(platform, reservation.key),
        engagement_valid_until=reservation.valid_until,
    )
