"""Prior authorisation (PEC, demande de prise en charge): a quote in, an agreement out.

For optics, dental prostheses, hearing aids and hospital stays the provider sends the
quote before the care. The beneficiary is identified through the guarded lookup path (so
a prior authorisation costs what a rights check costs under the guard, and is audited);
the quote is priced by the calculation engine; the answer is an agreement number with the
AMC amount guaranteed per line and a validity, a refusal with a coded reason, or
``pending`` when a person at the insurer must look at it (large amounts, hospital stays).
The later invoice names the agreement and may not exceed it (see adjudication).

Unknown person, identifiers that do not match, and a person without rights all get the
same refusal, ``rights.none``, like a rights check.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
from dataclasses import dataclass, replace
from datetime import date, timedelta
from typing import Any

from sqlalchemy import Connection

from tierspayant.app.platform import Platform
from tierspayant.config import Settings
from tierspayant.domain.care import CareDomain
from tierspayant.domain.claims import UNKNOWN_BENEFICIARY
from tierspayant.domain.codes import PriorAuthCode
from tierspayant.domain.eligibility import Coverage, check_care_date
from tierspayant.domain.engagements import carried_by
from tierspayant.domain.facts import held_by, pricing_request
from tierspayant.domain.pricing import PricingLine, check_lines
from tierspayant.domain.prior_auth import (
    PRIOR_AUTH_DOMAINS,
    GuaranteedLine,
    PriorAuthDecision,
    PriorAuthPolicy,
    PriorAuthStatus,
    decide,
    no_rights,
    refusal_before_pricing,
)
from tierspayant.security.audit import DISCLOSED
from tierspayant.security.principal import Principal
from tierspayant.services.errors import Conflict, NotFound, ServiceError
from tierspayant.services.identification import CardData, Identified
from tierspayant.services.insurers import Insurer
from tierspayant.services.lookup import NO_PROOF, CardProof, authorise_provider, guarded_lookup
from tierspayant.services.pricing_facts import person_facts, provider_under_convention
from tierspayant.store import audit, reservations
from tierspayant.store import prior_auth as store
from tierspayant.store.claims import lock_allocation
from tierspayant.store.insurers import amc_number_of
from tierspayant.store.prior_auth import AgreementRow

REQUEST_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/-]{0,79}$")


def prior_auth_policy(settings: Settings) -> PriorAuthPolicy:
    """The policy in force: ``settings.prior_auth`` (``TIERSPAYANT_PRIOR_AUTH_*``, checked
    at start-up; the defaults are the domain's)."""
    return PriorAuthPolicy(
        review_above_cents=settings.prior_auth.review_above_cents,
        validity_days=settings.prior_auth.validity_days,
    )


@dataclass(frozen=True, slots=True)
class PriorAuthRequest:
    card: CardData
    care_date: date
    request_key: str
    lines: tuple[PricingLine, ...]


@dataclass(frozen=True, slots=True)
class PriorAuthAnswer:
    agreement_number: str
    status: PriorAuthStatus
    domain: str
    care_date: date
    reason_code: str | None
    reason: str | None
    valid_until: date | None
    guaranteed_cents: int
    lines: tuple[GuaranteedLine, ...]


def _digest(card: CardData, request: PriorAuthRequest) -> bytes:
    document = {
        "card": [card.amc_number, card.birth_date.isoformat(), card.nir, card.birth_rank],
        "member": card.member_number,
        "care_date": request.care_date.isoformat(),
        "lines": [repr(line) for line in request.lines],
    }
    text = json.dumps(document, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).digest()


def _domain(lines: tuple[PricingLine, ...]) -> CareDomain:
    domains = {line.domain for line in lines}
    if len(domains) != 1:
        raise ServiceError(
            PriorAuthCode.ONE_DOMAIN, "a prior authorisation covers one care domain", field="lines"
        )
    domain = domains.pop()
    if domain not in PRIOR_AUTH_DOMAINS:
        raise ServiceError(
            PriorAuthCode.DOMAIN,
            "prior authorisation is for optics, dental, hearing aids and hospital stays",
            field="lines",
        )
    return domain


def request_prior_auth(
    platform: Platform,
    principal: Principal,
    request: PriorAuthRequest,
    proof: CardProof = NO_PROOF,
    policy: PriorAuthPolicy | None = None,
) -> tuple[PriorAuthAnswer, bool]:
    """Check the quote, then guard, identify, price, decide, audit and commit.

    Returns the answer and whether it is new (False: the same ``request_key`` had been
    answered before; a different body under that key is ``prior_auth.key_reused``).
    Without ``policy``, the one the platform's settings give.
    """
    authorise_provider(principal)
    in_force = policy if policy is not None else prior_auth_policy(platform.settings)
    assert principal.provider_id is not None
    provider_id = principal.provider_id
    if not REQUEST_KEY.match(request.request_key):
        raise ServiceError(
            PriorAuthCode.REQUEST_KEY, "request_key: 1 to 80 letters, digits, . _ : / -"
        )
    card = request.card.normalised()
    check_care_date(request.care_date, platform.today())
    check_lines(request.lines, platform.reference.on(request.care_date))
    domain = _domain(request.lines)
    digest = _digest(card, request)

    def answer(
        conn: Connection, insurer: Insurer, found: Identified | None
    ) -> tuple[PriorAuthAnswer, bool]:
        lock_allocation(conn)
        again = _by_key(conn, provider_id, request.request_key, digest)
        if again is not None:
            # A retry (perhaps by another account of the same professional) is an answer
            # about the person like the first: guarded above, and audited here.
            _audit_replay(conn, platform, principal, insurer, found, again, proof.present)
            return again, False
        decision = _assess(platform, conn, insurer, found, request, in_force, provider_id)
        status, lines = decision.status, decision.lines
        # Every outcome but the refusal an unknown person gets tells about the person.
        disclosed = found is not None and decision != no_rights(request.lines)
        total = sum(line.guaranteed_cents for line in lines)
        now = platform.now()
        agreement_id = store.next_agreement_id(conn)
        number = f"PA{agreement_id:010d}{secrets.token_hex(3).upper()}"
        valid_until = (
            request.care_date + timedelta(days=in_force.validity_days)
            if status == PriorAuthStatus.GRANTED
            else None
        )
        store.insert_agreement(
            conn,
            AgreementRow(
                insurer_id=insurer.id,
                id=agreement_id,
                agreement_number=number,
                provider_id=provider_id,
                beneficiary_id=found.record.id if found else UNKNOWN_BENEFICIARY,
                request_key=request.request_key,
                request_digest=digest,
                domain=domain.value,
                care_date=request.care_date,
                status=status.value,
                reason_code=decision.reason_code,
                reason=decision.reason,
                valid_until=valid_until,
                guaranteed_cents=total,
                lines=json.dumps([_line_json(line) for line in lines], sort_keys=True),
                requested_at=now,
                decided_at=None if status == PriorAuthStatus.PENDING else now,
                decided_by=None if status == PriorAuthStatus.PENDING else "rules",
            ),
        )
        audit.append(
            conn,
            at=now,
            actor=principal.id,
            structure=principal.structure,
            action="prior_auth.request",
            purpose="prior_authorisation",
            subject=found.subject if found else None,
            insurer=insurer.amc_number,
            decision="miss" if found is None else status.value,
            detail={
                "agreement": number,
                "domain": domain.value,
                "lines": len(lines),
                "reason": decision.reason_code,
                # Read back when the guard's counters are rebuilt (``guard/restore.py``).
                "proof": proof.present,
                DISCLOSED: disclosed,
            },
        )
        return (
            PriorAuthAnswer(
                number,
                status,
                domain.value,
                request.care_date,
                decision.reason_code,
                decision.reason,
                valid_until,
                total,
                lines,
            ),
            True,
        )

    return guarded_lookup(platform, principal, card, proof, answer)


def _audit_replay(
    conn: Connection,
    platform: Platform,
    principal: Principal,
    insurer: Insurer,
    found: Identified | None,
    stored: PriorAuthAnswer,
    with_proof: bool,
) -> None:
    unknown = stored.status == PriorAuthStatus.REFUSED and stored.reason_code == "rights.none"
    audit.append(
        conn,
        at=platform.now(),
        actor=principal.id,
        structure=principal.structure,
        action="prior_auth.request",
        purpose="prior_authorisation",
        subject=found.subject if found else None,
        insurer=insurer.amc_number,
        decision="miss" if found is None else "replay",
        detail={
            "agreement": stored.agreement_number,
            "domain": stored.domain,
            "replay": True,
            "proof": with_proof,
            DISCLOSED: found is not None and not unknown,
        },
    )


def _assess(
    platform: Platform,
    conn: Connection,
    insurer: Insurer,
    found: Identified | None,
    request: PriorAuthRequest,
    policy: PriorAuthPolicy,
    provider_id: int,
) -> PriorAuthDecision:
    """Read the facts the decision needs, then let the domain decide.

    The provider's convention for the domain is checked before the person: a refusal
    (``prior_auth.no_convention``, nothing stored) that tells nothing about them.
    """
    terms = provider_under_convention(
        conn,
        insurer.id,
        provider_id,
        ((line.domain, request.care_date) for line in request.lines),
        PriorAuthCode.NO_CONVENTION,
    )
    if found is None:
        return no_rights(request.lines)
    record = found.record
    coverage = Coverage(record.contract_code, record.coverage_start, record.coverage_end)
    contract = platform.catalogues.contract(conn, insurer.id, record.contract_code)
    refusal = refusal_before_pricing(request.lines, contract, coverage, request.care_date)
    if refusal is not None:
        return refusal
    # Open engagements on amounts count as consumed, but for the one of this professional
    # for these very lines: the agreement then guarantees what the calculation promised.
    held = reservations.open_reservations(conn, insurer.id, [record.id], platform.today())
    mine = held[record.id]
    own = carried_by(
        mine, provider_id, request.care_date, ((ln.act_code, ln.domain) for ln in request.lines)
    )
    reserved = held_by(((r.id, r.uses) for r in mine), None if own is None else own.id)
    facts = person_facts(platform, conn, insurer, found, request.care_date, terms, reserved)
    assert facts is not None  # refusal_before_pricing refuses no coverage and no contract
    quote = pricing_request(facts, request.care_date, request.lines)
    return decide(facts.contract, quote, platform.reference, policy)


def _line_json(line: GuaranteedLine) -> dict[str, Any]:
    stored: dict[str, Any] = {
        "act_code": line.act_code,
        "family": line.family,
        "quantity": line.quantity,
        "billed_cents": line.billed_cents,
        "guaranteed_cents": line.guaranteed_cents,
    }
    # The base and AMO share are kept for the insurer's view of the quote (rows written
    # before they were kept, and agreements taken over, have neither).
    if line.br_cents is not None:
        stored["br_cents"] = line.br_cents
    if line.amo_cents is not None:
        stored["amo_cents"] = line.amo_cents
    return stored


def stored_lines(document: str) -> tuple[GuaranteedLine, ...]:
    """The quote lines of an agreement row's ``lines`` JSON."""
    return tuple(
        GuaranteedLine(
            str(x["act_code"]),
            str(x["family"]),
            int(x["quantity"]),
            int(x["billed_cents"]),
            int(x["guaranteed_cents"]),
            None if x.get("br_cents") is None else int(x["br_cents"]),
            None if x.get("amo_cents") is None else int(x["amo_cents"]),
        )
        for x in json.loads(document)
    )


def _answer(row: AgreementRow) -> PriorAuthAnswer:
    return PriorAuthAnswer(
        agreement_number=row.agreement_number,
        status=PriorAuthStatus(row.status),
        domain=row.domain,
        care_date=row.care_date,
        reason_code=row.reason_code,
        reason=row.reason,
        valid_until=row.valid_until,
        guaranteed_cents=int(row.guaranteed_cents),
        lines=stored_lines(row.lines),
    )


def _by_key(
    conn: Connection, provider_id: int, request_key: str, digest: bytes
) -> PriorAuthAnswer | None:
    row = store.agreement_by_request_key(conn, provider_id, request_key)
    if row is None:
        return None
    if row.request_digest is not None and bytes(row.request_digest) != digest:
        raise Conflict(
            PriorAuthCode.KEY_REUSED,
            "this request_key was already used for a different request",
            field="request_key",
        )
    return _answer(row)


def get_prior_auth(platform: Platform, principal: Principal, number: str) -> PriorAuthAnswer:
    """An agreement, for the provider that asked for it only (others: the 404 of unknown)."""
    authorise_provider(principal)
    with platform.engine.connect() as conn:
        row = _row(conn, number)
        if row is None or row.provider_id != principal.provider_id:
            raise NotFound(PriorAuthCode.UNKNOWN, "no such agreement")
        answer = _answer(row)
    # A granted agreement past its validity reads as expired (nothing is rewritten).
    granted = answer.status == PriorAuthStatus.GRANTED
    if granted and answer.valid_until and answer.valid_until < platform.today():
        return replace(answer, status=PriorAuthStatus.EXPIRED)
    return answer


def _row(conn: Connection, number: str) -> AgreementRow | None:
    return store.agreement_by_number(conn, number)


def _already_decided(row: AgreementRow, wanted: PriorAuthStatus) -> PriorAuthAnswer:
    """Deciding again the same way answers the same; the other way is a conflict."""
    if row.status == wanted and row.decided_by not in (None, "rules"):
        return _answer(row)
    raise Conflict(PriorAuthCode.DECIDED, f"this request is already {row.status}")


def decide_prior_auth(
    platform: Platform,
    number: str,
    *,
    accept: bool,
    reason: str,
    actor: str,
    insurer_id: int | None = None,
    policy: PriorAuthPolicy | None = None,
) -> PriorAuthAnswer:
    """Accept or refuse a pending request (insurer staff: only their insurer's, else 404).

    Deciding again the same way answers the same; the other way is ``prior_auth.decided``.
    An accepted request is valid ``validity_days`` of ``policy`` (default: the settings').
    """
    in_force = policy if policy is not None else prior_auth_policy(platform.settings)
    wanted = PriorAuthStatus.GRANTED if accept else PriorAuthStatus.REFUSED
    reason = reason.strip()[:500]
    if not accept and not reason:
        raise ServiceError(PriorAuthCode.REASON_REQUIRED, "say why the request is refused")
    now = platform.now()
    with platform.engine.begin() as conn:
        row = _row(conn, number)
        if row is None or (insurer_id is not None and row.insurer_id != insurer_id):
            raise NotFound(PriorAuthCode.UNKNOWN, "no such agreement")
        if row.status != PriorAuthStatus.PENDING:
            return _already_decided(row, wanted)
        if not store.record_decision(
            conn,
            row.insurer_id,
            row.id,
            status=wanted.value,
            decided_at=now,
            decided_by=actor[:120],
            reason=reason or None,
            reason_code=None if accept else "prior_auth.refused_by_insurer",
            valid_until=platform.today() + timedelta(days=in_force.validity_days)
            if accept
            else None,
            guaranteed_cents=None if accept else 0,
        ):
            # Another decision landed between the read and this write (nothing written
            # here): answer as if it had been read first, after this transaction.
            decided = None
        else:
            amc = amc_number_of(conn, row.insurer_id)
            audit.append(
                conn,
                at=now,
                actor=actor,
                action="prior_auth.decide",
                decision=wanted.value,
                insurer=str(amc),
                detail={"agreement": number},
            )
            decided = _row(conn, number)
            assert decided is not None  # updated above, in this transaction
    if decided is None:
        with platform.engine.connect() as conn:
            decided = _row(conn, number)
        assert decided is not None  # agreements are never deleted
        return _already_decided(decided, wanted)
    return _answer(decided)
