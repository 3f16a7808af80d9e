"""Cutting an account off: suspend a principal, revoke its tokens, end its sessions."""

from __future__ import annotations

from dataclasses import dataclass

from tierspayant.app.platform import Platform
from tierspayant.domain.codes import IncidentCode
from tierspayant.services.accounts import revoke_principal_sessions
from tierspayant.services.alerts import suspend_principal
from tierspayant.services.errors import ServiceError
from tierspayant.store import audit


@dataclass(frozen=True, slots=True)
class Revocation:
    principal: str
    tokens: int
    sessions: int


def revoke(platform: Platform, principal_id: str, actor: str, reason: str) -> Revocation:
    """Suspend ``principal_id``, revoke every token and end every session, in one commit."""
    if not principal_id or len(principal_id) > 120:
        raise ServiceError(IncidentCode.PRINCIPAL, "name the principal to revoke")
    now = platform.now()
    with platform.engine.begin() as conn:
        tokens = suspend_principal(platform, conn, principal_id, reason or "incident response")
        sessions = revoke_principal_sessions(conn, principal_id, now)
        audit.append(
            conn,
            at=now,
            actor=actor,
            action="incident.revoke",
            purpose="incident_response",
            decision="allow",
            detail={"principal": principal_id, "tokens": tokens, "sessions": sessions},
        )
    return Revocation(principal_id, tokens, sessions)
