"""Writes the portals make beside the capability services: the security console's
two-person reinstatement and its revocation, and the audit events of the documents staff
download (billing files, incident drafts).

Reinstating a suspended principal takes two different operators: the first one's request
is an audit event (``principal.reinstate_request``), valid one hour and only since the
suspension; a second operator confirms it and ``services.alerts.reinstate_principal``
checks both again.
"""

from __future__ import annotations

from enum import StrEnum

from tierspayant.app.platform import Platform
from tierspayant.domain.codes import IncidentCode
from tierspayant.security.principal import AuthStrength, Principal, PrincipalKind
from tierspayant.services import accounts, alerts
from tierspayant.services.errors import Conflict, NotFound
from tierspayant.store import audit
from tierspayant.store.read_models import security
from tierspayant.store.transactions import write_transaction

REINSTATE_REQUEST = security.REINSTATE_REQUEST


class ReinstateStep(StrEnum):
    """What a reinstatement step did."""

    REQUESTED = "requested"  # a first approval is recorded (or was already waiting)
    REINSTATED = "reinstated"  # a second operator confirmed: the principal is active


def _requester(platform: Platform, principal_id: str) -> Principal | None:
    """The operator who asked for a reinstatement, if still an active operator."""
    with platform.engine.connect() as conn:
        pending = security.pending_request(conn, platform.now(), principal_id)
        if pending is None:
            return None
        state = security.principal_state(conn, pending)
    if state is None or state.kind != PrincipalKind.OPERATOR_STAFF or state.status != "active":
        return None
    return Principal(pending, PrincipalKind.OPERATOR_STAFF, AuthStrength.AAL2)


def reinstate_step(platform: Platform, principal_id: str, operator: Principal) -> ReinstateStep:
    """Record a first approval, or complete a second one (only for a suspended principal:
    a request about an unknown or active one is refused, not recorded)."""
    with platform.engine.connect() as conn:
        state = security.principal_state(conn, principal_id)
    if state is None:
        raise NotFound(IncidentCode.PRINCIPAL_NOT_FOUND, "no such principal", field="principal")
    if state.status != "suspended":
        raise Conflict(
            IncidentCode.PRINCIPAL_NOT_SUSPENDED,
            "the principal is not suspended",
            field="principal",
        )
    first = _requester(platform, principal_id)
    if first is None or first.id == operator.id:
        if first is None:
            with write_transaction(platform.engine) as conn:
                audit.append(
                    conn,
                    at=platform.now(),
                    actor=operator.id,
                    action=REINSTATE_REQUEST,
                    decision="allow",
                    detail={"principal": principal_id},
                )
        return ReinstateStep.REQUESTED
    alerts.reinstate_principal(platform, principal_id, first, operator)
    return ReinstateStep.REINSTATED


def revoke(platform: Platform, principal_id: str, operator: Principal) -> None:
    """Keep the principal suspended and end every session and token it holds now."""
    now = platform.now()
    with write_transaction(platform.engine) as conn:
        alerts.suspend_principal(platform, conn, principal_id, f"revoked by {operator.id}")
        sessions = accounts.revoke_principal_sessions(conn, principal_id, now)
        audit.append(
            conn,
            at=now,
            actor=operator.id,
            action="principal.revoke",
            decision="allow",
            detail={"principal": principal_id, "sessions": sessions},
        )


def record_incident_download(platform: Platform, actor: str, document: str, people: int) -> None:
    """Audit an incident document downloaded from the console (counts, never names)."""
    with write_transaction(platform.engine) as conn:
        audit.append(
            conn,
            at=platform.now(),
            actor=actor,
            action="incident.download",
            purpose="incident_response",
            decision="allow",
            detail={"document": document, "people": people},
        )


def record_billing_download(
    platform: Platform, actor: str, amc: str, period: str, document: str
) -> None:
    """Audit a billing file downloaded by the insurer's staff."""
    with write_transaction(platform.engine) as conn:
        audit.append(
            conn,
            at=platform.now(),
            actor=actor,
            action="billing.download",
            decision="allow",
            insurer=amc,
            detail={"period": period, "document": document},
        )
