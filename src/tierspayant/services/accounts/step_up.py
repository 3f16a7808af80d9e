"""Satisfying the guard's step-up with a fresh strong authentication.

When a soft limit of the guard is reached (``docs/guard.md``), a lookup answers 401
``auth.step_up_required``. The professional satisfies it by authenticating again,
strongly, within the session's life:

- a health professional logs in again through Pro Santé Connect with a CPS card or an
  e-CPS (an ``amr`` of :data:`STRONG_AMR`, ``auth_time`` less than
  :data:`FRESH_LOGIN` old, the ``acr`` the OIDC configuration requires);
- a local portal account re-enters its TOTP code (:func:`.second_factor.step_up`).

The guard then waives its soft limits for ``step_up_valid_seconds`` (15 minutes); its
hard limits, the bound on people never invoiced among them, are never waived. Each
satisfied step-up is recorded in the audit log (``guard.step_up_satisfied``). Provider
software authenticated by client credentials has no person to authenticate again: it
cannot satisfy a step-up, and scans the card instead (a lookup with card proof is not
asked for one by the no-proof rules).
"""

from __future__ import annotations

from datetime import datetime, timedelta

import structlog
from sqlalchemy import Connection

from tierspayant.app.platform import Platform
from tierspayant.security.guard import GuardUnavailable
from tierspayant.services.accounts.common import _audit
from tierspayant.store.accounts import AccountRow

log = structlog.get_logger("tierspayant.accounts")

# Authentication methods of a CPS card (proof of possession) or an e-CPS (multi-factor
# on the professional's phone): a password alone is not one.
STRONG_AMR = frozenset({"pop", "mfa", "hwk", "swk", "otp"})
FRESH_LOGIN = timedelta(minutes=5)


def strong_and_fresh(amr: tuple[str, ...], auth_time: datetime, now: datetime) -> bool:
    """Whether an OIDC authentication may satisfy a step-up."""
    return bool(set(amr) & STRONG_AMR) and timedelta(0) <= now - auth_time <= FRESH_LOGIN


def satisfy_guard_step_up(
    platform: Platform,
    conn: Connection,
    row: AccountRow,
    now: datetime,
    *,
    factor: str,
    **detail: str | None,
) -> datetime | None:
    """Tell the guard the principal authenticated strongly; audit it if the guard had
    asked for a step-up. Returns until when soft limits are waived (None if nothing was
    asked, or the guard is off or down: the lookups then keep asking)."""
    guard = platform.guard
    if guard is None:
        return None
    try:
        until = guard.record_step_up(row.principal_id, now)
    except GuardUnavailable:
        log.warning("accounts.guard_unavailable", during="step_up")
        return None
    if until is None:
        return None
    _audit(
        conn,
        at=now,
        actor=row.principal_id,
        action="guard.step_up_satisfied",
        allowed=True,
        row=row,
        factor=factor,
        until=until.isoformat(),
        **detail,
    )
    return until
