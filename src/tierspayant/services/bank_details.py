"""Changing a provider's bank details: asked, verified by someone else, applied later.

A provider's bank account is where its money goes, so a change of it is the other prize
of a stolen login. A change is therefore only a request (``pending``) until insurer or
operator staff other than the requester verify it (``verified``): either from the bank's
proof (``second_person``) or by calling the provider's known contact, the one on file
and not one given with the request (``provider_contact``). Verified, it waits a
cooling-off period of business days (``TIERSPAYANT_BANK_CHANGE_COOLING_OFF_DAYS``,
default 3) and the payment run applies it (``applied``) before the first transfer it
makes after that. Every request raises a security alert (``bank_details.change_requested``)
and the provider portal shows every change and its state.

Until a change applies, the payment run pays the account verified before; a verified
change in its cooling-off period holds the provider's payments (the old account may be
closed). A ``pending`` change never holds anything: an attacker's request alone neither
redirects nor delays a payment.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from tierspayant.app.platform import Platform
from tierspayant.domain.bank_details import VerificationMethod, first_payment_day, iban_tail
from tierspayant.domain.codes import AuthCode, DirectoryCode
from tierspayant.domain.identifiers import parse_bic, parse_iban
from tierspayant.security.crypto import FieldCipher, row_aad
from tierspayant.security.guard import Level, Signal
from tierspayant.security.principal import Principal, PrincipalKind
from tierspayant.services.alerts import raise_alert
from tierspayant.services.errors import Conflict, Forbidden, NotFound, ServiceError
from tierspayant.store import audit
from tierspayant.store import bank_details as store
from tierspayant.store import providers as providers_store
from tierspayant.store.bank_details import BankChange
from tierspayant.store.keys import OPERATOR_SCOPE
from tierspayant.store.transactions import write_transaction

ALERT_CODE = "bank_details.change_requested"
_PROVIDER_KINDS = frozenset({PrincipalKind.PROVIDER_CLIENT, PrincipalKind.PROVIDER_USER})
_STAFF_KINDS = frozenset({PrincipalKind.INSURER_STAFF, PrincipalKind.OPERATOR_STAFF})

__all__ = ["ALERT_CODE", "BankChange", "BankDetailsView", "request_change", "verify_change"]


def _provider_of(principal: Principal, am_number: str | None) -> str:
    """The AM number of the provider whose details ``principal`` may ask to change."""
    if principal.kind in _PROVIDER_KINDS and principal.provider_am_number is not None:
        return principal.provider_am_number
    if principal.kind is PrincipalKind.OPERATOR_STAFF and am_number:
        return am_number
    raise Forbidden(
        AuthCode.WRONG_PRINCIPAL,
        "bank details are changed by the provider, or by operator staff on its behalf",
    )


def request_change(
    platform: Platform,
    principal: Principal,
    iban: str,
    bic: str | None = None,
    *,
    am_number: str | None = None,
) -> BankChange:
    """Ask for new bank details: recorded ``pending``, audited, and alerted.

    Nothing is paid to them before a verification by someone else and the cooling-off
    period. A second request while one is pending is refused (``bank_details.pending``).
    """
    am = _provider_of(principal, am_number)
    compact = parse_iban(iban)
    bic_value = parse_bic(bic) if bic else None
    now = platform.now()
    with write_transaction(platform.engine) as conn:
        provider = providers_store.provider_by_am(conn, am)
        if provider is None:
            raise NotFound(DirectoryCode.PROVIDER_UNKNOWN, "no such provider", field="am_number")
        store.lock_provider_changes(conn, provider.id)
        if any(c.status == "pending" for c in store.open_changes(conn, provider.id)):
            raise Conflict(
                DirectoryCode.BANK_CHANGE_PENDING,
                "a change of bank details already awaits verification",
            )
        keys = platform.keys.active(conn, OPERATOR_SCOPE)
        # The providers row's associated data: applied, the ciphertext is copied there.
        iban_ct = FieldCipher(keys).encrypt(compact, row_aad(0, "providers", am, "iban"))
        change_id = store.insert_change(
            conn,
            provider_id=provider.id,
            iban_ct=iban_ct,
            key_version=keys.version,
            bic=bic_value,
            iban_tail=iban_tail(compact),
            requested_by=principal.id,
            at=now,
        )
        audit.append(
            conn,
            at=now,
            actor=principal.id,
            action="bank_details.request",
            decision="allow",
            structure=am,
            detail={"change": change_id, "iban_tail": iban_tail(compact)},
        )
        raise_alert(
            platform,
            conn,
            Signal(
                level=Level.SOFT,
                code=ALERT_CODE,
                message=(
                    f"bank details change {change_id} asked for provider {am}: "
                    "verify with the provider's known contact before accepting it"
                ),
                at=now,
                principal_id=None,  # an alert, not a suspension: the request may be genuine
                structure=am,
                figures={"change": change_id, "requested_by": principal.id[:60]},
            ),
        )
        change = store.change(conn, change_id)
    assert change is not None
    return change


def _method(value: str) -> VerificationMethod:
    try:
        return VerificationMethod(value)
    except ValueError:
        raise ServiceError(
            DirectoryCode.BANK_CHANGE_METHOD,
            "a verification is second_person or provider_contact",
            field="method",
        ) from None


def _staff(principal: Principal) -> None:
    if principal.kind not in _STAFF_KINDS:
        raise Forbidden(
            DirectoryCode.BANK_CHANGE_VERIFIER,
            "only insurer or operator staff verify a change of bank details",
        )


def verify_change(
    platform: Platform, principal: Principal, change_id: int, method: str
) -> BankChange:
    """Verify a pending change (staff other than the requester); it applies to the first
    payment run on or after the end of its cooling-off period."""
    _staff(principal)
    how = _method(method)
    now = platform.now()
    with platform.engine.begin() as conn:
        change = store.change(conn, change_id, lock=True)
        if change is None:
            raise NotFound(DirectoryCode.BANK_CHANGE_UNKNOWN, "no such bank details change")
        if change.requested_by == principal.id:
            raise Forbidden(
                DirectoryCode.BANK_CHANGE_SAME_PERSON,
                "the person who asked for a change cannot verify it",
            )
        effective = first_payment_day(
            now.date(), platform.settings.billing.bank_change_cooling_off_days
        )
        if not store.mark_verified(
            conn, change_id, by=principal.id, at=now, method=how.value, effective_on=effective
        ):
            raise Conflict(
                DirectoryCode.BANK_CHANGE_CLOSED, "the change no longer awaits verification"
            )
        audit.append(
            conn,
            at=now,
            actor=principal.id,
            action="bank_details.verify",
            decision="allow",
            detail={"change": change_id, "method": how.value, "effective_on": str(effective)},
        )
        verified = store.change(conn, change_id)
    assert verified is not None
    return verified


def refuse_change(platform: Platform, principal: Principal, change_id: int) -> BankChange:
    """Refuse a pending or verified change (staff); nothing is ever paid to it."""
    _staff(principal)
    now = platform.now()
    with platform.engine.begin() as conn:
        if store.change(conn, change_id, lock=True) is None:
            raise NotFound(DirectoryCode.BANK_CHANGE_UNKNOWN, "no such bank details change")
        if not store.mark_refused(conn, change_id, by=principal.id, at=now):
            raise Conflict(
                DirectoryCode.BANK_CHANGE_CLOSED, "the change no longer awaits verification"
            )
        audit.append(
            conn,
            at=now,
            actor=principal.id,
            action="bank_details.refuse",
            decision="allow",
            detail={"change": change_id},
        )
        refused = store.change(conn, change_id)
    assert refused is not None
    return refused


@dataclass(frozen=True, slots=True)
class BankDetailsView:
    """What the provider portal shows: the changes and when a verified one applies."""

    changes: tuple[BankChange, ...]
    today: date


def provider_view(platform: Platform, principal: Principal) -> BankDetailsView:
    """The principal's provider's bank details changes, newest first."""
    if principal.kind not in _PROVIDER_KINDS or principal.provider_id is None:
        raise Forbidden(AuthCode.WRONG_PRINCIPAL, "bank details: providers only")
    with platform.engine.connect() as conn:
        changes = store.changes_of(conn, principal.provider_id)
    return BankDetailsView(tuple(changes), platform.now().date())


def pending_changes(platform: Platform, principal: Principal) -> list[BankChange]:
    """Changes waiting for a verification: every one for operator staff, those of the
    providers under a convention with their insurer for insurer staff."""
    _staff(principal)
    scope = principal.insurer_id if principal.kind is PrincipalKind.INSURER_STAFF else None
    with platform.engine.connect() as conn:
        if principal.kind is PrincipalKind.INSURER_STAFF and scope is None:
            return []
        return store.pending_changes(conn, insurer_id=scope)
