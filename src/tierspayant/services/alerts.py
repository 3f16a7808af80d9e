"""Security alerts from the guard: record, log, notify, and suspend on a hard signal.

One call, :func:`raise_alert`, does everything a signal requires, in the order that keeps
the platform safe when something fails half-way:

1. a hard signal marks the principal suspended in the guard counters first (no database
   needed: the next lookup is refused within milliseconds);
2. the alert row (``security_alerts``) and, for a hard signal, the suspension in the
   database (status, every access token revoked, audit event) are written in the caller's
   transaction;
3. whatever happened to the database, the alert is logged and posted to the security
   team's webhook, from a background thread with a 2 s timeout: a slow or dead receiver
   never delays the suspension or the answer.

Alerts carry counts, codes, the principal and the structure; never a NIR, a beneficiary's
name, a birth date or a subject pseudonym. The webhook's ``text`` reads them in French,
with the professional's and the structure's names (:func:`alert_text`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

import structlog
from sqlalchemy import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError

from tierspayant import metrics
from tierspayant.app.alerting import AlertSink
from tierspayant.app.caching import TtlCache
from tierspayant.domain import labels
from tierspayant.domain.codes import AuthCode, GuardCode, IncidentCode
from tierspayant.security.guard import (
    ActorKind,
    Guard,
    GuardUnavailable,
    Level,
    LookupContext,
    Signal,
)
from tierspayant.security.principal import Principal, PrincipalKind
from tierspayant.services.errors import Conflict, Forbidden, NotFound
from tierspayant.store import alerts as store
from tierspayant.store import audit, principals, tokens
from tierspayant.store.read_models import principal_names

log = structlog.get_logger("tierspayant.alerts")

GUARD_ACTOR = "system:guard"


class AlertingPlatform(Protocol):
    """What this module needs of :class:`tierspayant.app.platform.Platform`."""

    @property
    def engine(self) -> Engine: ...

    @property
    def guard(self) -> Guard | None: ...

    @property
    def alert_sink(self) -> AlertSink: ...

    @property
    def principals(self) -> TtlCache[bytes, tuple[Principal, datetime]]: ...

    def now(self) -> datetime: ...


@dataclass(frozen=True, slots=True)
class AlertRecord:
    """An alert raised: its row id (None if the database write failed) and what was done."""

    id: int | None
    level: Level
    code: str
    suspended: bool


def raise_alert(
    platform: AlertingPlatform,
    conn: Connection,
    signal: Signal,
    ctx: LookupContext | None = None,
    *,
    insurer: str | None = None,
) -> AlertRecord:
    """Record, log and post one signal; suspend its principal if the signal is hard.

    ``insurer`` is the AMC number the lookup named, if any. Database writes happen in
    ``conn``'s transaction; the webhook goes out even if they fail.
    """
    metrics.ALERTS_RAISED.labels(signal.code, signal.level.value).inc()
    principal = signal.principal_id or (ctx.principal_id if ctx is not None else None)
    must_suspend = signal.hard and principal is not None
    if must_suspend:
        assert principal is not None
        try:
            if platform.guard is not None:
                platform.guard.mark_suspended(principal)
        except GuardUnavailable:
            log.error("alert.guard_unavailable", code=signal.code, principal=principal)
    alert_id: int | None = None
    suspended = False
    text = labels.label(labels.Kind.ALERT, signal.code)
    try:
        alert_id = _insert_alert(conn, signal, principal, insurer)
        if must_suspend:
            assert principal is not None
            kind = _principal_kind(ctx)
            suspend_principal(
                platform, conn, principal, f"{signal.code}: {signal.message}", kind=kind
            )
            suspended = True
        text = alert_text(conn, signal, principal, insurer, suspended)
    finally:
        _log_alert(signal, principal, insurer, alert_id, suspended)
        payload = _payload(signal, principal, insurer, alert_id, suspended)
        platform.alert_sink.deliver({**payload, "text": text})
    return AlertRecord(alert_id, signal.level, signal.code, suspended)


def raise_alerts(
    platform: AlertingPlatform,
    signals: Sequence[Signal],
    ctx: LookupContext | None = None,
    *,
    insurer: str | None = None,
) -> list[AlertRecord]:
    """Raise every signal in a transaction of its own (call it after the lookup's commit).

    On SQLite, never call it while another write transaction of the process is open.
    """
    if not signals:
        return []
    with platform.engine.begin() as conn:
        return [raise_alert(platform, conn, s, ctx, insurer=insurer) for s in signals]


def _principal_kind(ctx: LookupContext | None) -> str | None:
    if ctx is None:
        return None
    if ctx.kind is ActorKind.HUMAN:
        return PrincipalKind.PROVIDER_USER.value
    return PrincipalKind.PROVIDER_CLIENT.value


def _insert_alert(
    conn: Connection, signal: Signal, principal: str | None, insurer: str | None
) -> int:
    return store.insert_alert(
        conn,
        at=signal.at,
        level=signal.level.value,
        code=signal.code,
        principal=principal,
        structure=signal.structure,
        insurer=insurer,
        message=signal.message[:300],
        figures=json.dumps(dict(signal.figures), sort_keys=True, separators=(",", ":")),
    )


def alert_text(
    conn: Connection,
    signal: Signal,
    principal: str | None,
    insurer: str | None,
    suspended: bool,
) -> str:
    """The alert as the security team reads it, in French: its label, then the account,
    the structure (name and its one number) and the insurer by name.

    The names are read in a savepoint: if that read fails, the alert and the suspension
    written before it still commit, and the text keeps the label and the raw keys.
    """
    label = labels.label(labels.Kind.ALERT, signal.code)
    try:
        with conn.begin_nested():
            people = principal_names.resolve_principals(conn, [principal])
            places = principal_names.resolve_structures(conn, [signal.structure])
            insurers = principal_names.insurer_refs(conn, [insurer])
    except SQLAlchemyError:
        log.warning("alert.names_unavailable", code=signal.code)
        people, places, insurers = {}, {}, {}
    parts = [label]
    named = people.get(principal) if principal is not None else None
    if named is not None and named.kind != "unknown":
        parts.append(f"compte : {named.text} ({principal})")
    elif principal is not None:
        parts.append(f"compte : {principal}")
    said = named.structure.number if named is not None and named.structure is not None else None
    if signal.structure and signal.structure != said:
        place = places.get(signal.structure)
        parts.append(f"structure : {place.text if place is not None else signal.structure}")
    if insurer:
        parts.append(f"organisme : {insurers[insurer].text if insurer in insurers else insurer}")
    if suspended:
        parts.append("compte suspendu")
    return " — ".join(parts)


def _payload(
    signal: Signal,
    principal: str | None,
    insurer: str | None,
    alert_id: int | None,
    suspended: bool,
) -> dict[str, object]:
    return {
        "type": "tierspayant.security_alert",
        "alert_id": alert_id,
        "at": signal.at.isoformat(),
        "level": signal.level.value,
        "code": signal.code,
        "message": signal.message,
        "principal": principal,
        "structure": signal.structure,
        "insurer": insurer,
        "figures": dict(signal.figures),
        "suspended": suspended,
    }


def _log_alert(
    signal: Signal,
    principal: str | None,
    insurer: str | None,
    alert_id: int | None,
    suspended: bool,
) -> None:
    emit = log.error if signal.hard else log.warning
    emit(
        "security.alert",
        alert_id=alert_id,
        level=signal.level.value,
        code=signal.code,
        principal=principal,
        structure=signal.structure,
        insurer=insurer,
        figures=dict(signal.figures),
        suspended=suspended,
    )


def suspend_principal(
    platform: AlertingPlatform,
    conn: Connection,
    principal_id: str,
    reason: str,
    *,
    kind: str | None = None,
) -> int:
    """Suspend a principal at once: status, every live token revoked, counters, audit.

    Idempotent. A principal missing from ``principals`` is inserted as suspended (with
    ``kind``, else ``unknown``) so the suspension holds when it next authenticates.
    Returns how many tokens were revoked.
    """
    now = platform.now()
    reason = reason[:200]
    previous = principals.principal_status(conn, principal_id)
    if previous is None:
        principals.insert_principal(
            conn, principal_id, kind or "unknown", "suspended", reason=reason, changed_at=now
        )
    elif previous != "suspended":
        principals.set_status(conn, principal_id, "suspended", reason, now)
    revoked = tokens.revoke_tokens(conn, principal_id, now)
    # Tokens this process cached must stop working now, not when the cache expires.
    platform.principals.clear()
    try:
        if platform.guard is not None:
            platform.guard.mark_suspended(principal_id)
    except GuardUnavailable:
        # The database status and the revoked tokens still refuse the principal.
        log.error("alert.guard_unavailable", action="suspend", principal=principal_id)
    if previous != "suspended" or revoked:
        audit.append(
            conn,
            at=now,
            actor=GUARD_ACTOR,
            action="principal.suspend",
            decision="allow",
            detail={"principal": principal_id, "reason": reason, "tokens_revoked": revoked},
        )
    return revoked


def reinstate_principal(
    platform: AlertingPlatform,
    principal_id: str,
    approver_1: Principal,
    approver_2: Principal,
) -> None:
    """Lift a suspension: two distinct operator staff members must approve it.

    The principal's tokens stay revoked (it authenticates again); its guard counters of
    pace and misses are forgotten, its structure's daily quotas are not.
    """
    for approver in (approver_1, approver_2):
        if approver.kind is not PrincipalKind.OPERATOR_STAFF:
            raise Forbidden(AuthCode.FORBIDDEN, "only operator staff may reinstate a principal")
    if approver_1.id == approver_2.id:
        raise Forbidden(
            GuardCode.SECOND_APPROVER_REQUIRED, "a second, different operator must approve"
        )
    now = platform.now()
    with platform.engine.begin() as conn:
        status = principals.principal_status(conn, principal_id)
        if status is None:
            raise NotFound(IncidentCode.PRINCIPAL_NOT_FOUND, "no such principal")
        if status != "suspended":
            raise Conflict(IncidentCode.PRINCIPAL_NOT_SUSPENDED, "the principal is not suspended")
        principals.set_status(
            conn,
            principal_id,
            "active",
            f"reinstated by {approver_1.id} and {approver_2.id}"[:200],
            now,
        )
        audit.append(
            conn,
            at=now,
            actor=approver_1.id,
            action="principal.reinstate",
            decision="allow",
            detail={"principal": principal_id, "second_approver": approver_2.id},
        )
    # After the commit: if the counters cannot be cleared the principal stays refused
    # (fail closed) and the operator retries.
    if platform.guard is not None:
        platform.guard.clear_suspension(principal_id)


def acknowledge_alert(platform: AlertingPlatform, alert_id: int, operator: Principal) -> None:
    """Mark an alert as handled by an operator (security console)."""
    if operator.kind is not PrincipalKind.OPERATOR_STAFF:
        raise Forbidden(AuthCode.FORBIDDEN, "only operator staff may acknowledge alerts")
    with platform.engine.begin() as conn:
        changed = store.acknowledge(conn, alert_id, platform.now(), operator.id)
        if not changed and not store.alert_exists(conn, alert_id):
            raise NotFound(IncidentCode.ALERT_NOT_FOUND, "no such alert")
