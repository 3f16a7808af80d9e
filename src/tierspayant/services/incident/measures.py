"""What was actually done about an incident, read from the records, for the notices.

The drafts must not say « suspension immédiate » when nobody was suspended. Read when
the scope is made, from the audit log and the containment switches, since the start of
the incident's window:

- each suspension, revocation and reinstatement of the account in cause (or, for a
  structure, of every account of its professionals), with its date, who did it and why;
- each containment switch approved that covered the lookups in cause (the whole
  platform, a route, the structure, its category, or an insurer of the scope), with when
  it came into force and when it ended.

Names (« Marie Dupont, professionnel (portail) — Pharmacie des Lilas (FINESS …) ») come
from the same read model as the security console. Nothing is invented: what is not in
the records is not in the list.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection

from tierspayant.domain.containment import ScopeKind, Switch
from tierspayant.domain.structures import parse_status_reason
from tierspayant.store import containment as switches
from tierspayant.store import incidents as store
from tierspayant.store.read_models.principal_names import (
    PrincipalName,
    insurer_refs,
    resolve_principals,
    resolve_structures,
)

STATUS_ACTIONS = {
    "principal.suspend": "suspension",
    "principal.revoke": "revocation",
    "incident.revoke": "revocation",
    "principal.reinstate": "reinstatement",
}
"""Audit actions that change what an account may do, and the measure each is."""
RECENT_SWITCHES = 200


@dataclass(frozen=True, slots=True)
class Subject:
    """Whom the scope is about, named: one account, or one structure and its accounts."""

    principal: str | None
    structure: str | None
    name: str
    am_numbers: tuple[str, ...]
    structures: tuple[str, ...]
    categories: tuple[str, ...]

    def covers(self, principal_id: str) -> bool:
        if self.principal is not None:
            return principal_id == self.principal
        return any(principal_id.startswith(f"provider:{am}/") for am in self.am_numbers)


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def subject(conn: Connection, principal: str | None, structure: str | None) -> Subject:
    """The account or structure of the criteria, with its name and its professionals."""
    if principal is not None:
        named = resolve_principals(conn, [principal])[principal]
        am = principal.split("/", 1)[0].removeprefix("provider:")
        providers = store.structure_providers(conn, am) if am else []
        providers = [p for p in providers if p[0] == am]
        return Subject(
            principal,
            None,
            named.text,
            tuple(p[0] for p in providers),
            tuple(p[1] for p in providers),
            tuple(p[2] for p in providers),
        )
    assert structure is not None
    providers = store.structure_providers(conn, structure)
    ref = resolve_structures(conn, [structure])[structure]
    return Subject(
        None,
        structure,
        ref.text,
        tuple(p[0] for p in providers),
        (structure,),
        tuple(sorted({p[2] for p in providers})),
    )


def _detail(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}


def _covering(switch: Switch, who: Subject, insurers: Iterable[str]) -> bool:
    kind, value = switch.scope.kind, switch.scope.value
    if kind in (ScopeKind.PLATFORM, ScopeKind.ROUTE):
        return True
    if kind is ScopeKind.STRUCTURE:
        return value in who.structures
    if kind is ScopeKind.CATEGORY:
        return value in who.categories
    return value in set(insurers)


def measures(
    conn: Connection, who: Subject, since: datetime, insurers: Iterable[str]
) -> list[dict[str, Any]]:
    """The measures taken about ``who`` since ``since``, oldest first, JSON-ready."""
    kept: list[tuple[datetime, str, str, dict[str, Any]]] = []
    principals: set[str] = set()
    for at, actor, action, text in store.status_events_since(conn, STATUS_ACTIONS, since):
        detail = _detail(text)
        target = detail.get("principal")
        if isinstance(target, str) and who.covers(target):
            kept.append((_aware(at), actor, action, detail))
            principals.update({target, actor, str(detail.get("second_approver") or "")})
    covering = [
        s
        for s in switches.recent_switches(conn, RECENT_SWITCHES)
        if s.approved_at is not None and _covering(s, who, insurers) and _ended_after(s, since)
    ]
    for s in covering:
        principals.update({s.proposer, s.approver or ""})
    named = resolve_principals(conn, principals)
    scopes = _scope_names(conn, covering)
    found = [
        _status_measure(at, actor, action, detail, named) for at, actor, action, detail in kept
    ]
    found += [_switch_measure(s, named, scopes) for s in covering]
    return sorted(found, key=lambda m: str(m["at"]))


def _ended_after(switch: Switch, since: datetime) -> bool:
    ended = switch.lifted_at or switch.expires_at
    return ended is None or ended >= since


def _scope_names(conn: Connection, covering: list[Switch]) -> dict[str, str]:
    """``kind:value`` of each structure or insurer scope, named."""
    structures = resolve_structures(
        conn, [s.scope.value for s in covering if s.scope.kind is ScopeKind.STRUCTURE]
    )
    insurers = insurer_refs(
        conn, [s.scope.value for s in covering if s.scope.kind is ScopeKind.INSURER]
    )
    names = {f"structure:{k}": v.text for k, v in structures.items()}
    names.update({f"insurer:{k}": v.text for k, v in insurers.items()})
    return names


def _name(named: dict[str, PrincipalName], principal_id: str) -> str:
    found = named.get(principal_id)
    return found.text if found is not None else principal_id


def _status_measure(
    at: datetime,
    actor: str,
    action: str,
    detail: dict[str, Any],
    named: dict[str, PrincipalName],
) -> dict[str, Any]:
    principal = str(detail["principal"])
    measure: dict[str, Any] = {
        "kind": STATUS_ACTIONS[action],
        "at": at.astimezone(UTC).isoformat(),
        "principal": principal,
        "name": _name(named, principal),
        "by": actor,
        "by_name": _name(named, actor),
    }
    reason = parse_status_reason(detail.get("reason") if action == "principal.suspend" else None)
    if reason is not None:
        measure["reason"] = {"kind": reason.kind, "code": reason.code, "typed": reason.typed}
    if action == "principal.reinstate" and isinstance(detail.get("second_approver"), str):
        measure["second_name"] = _name(named, str(detail["second_approver"]))
    return measure


def _switch_measure(
    switch: Switch, named: dict[str, PrincipalName], scopes: dict[str, str]
) -> dict[str, Any]:
    assert switch.approved_at is not None
    return {
        "kind": "containment",
        "at": switch.approved_at.astimezone(UTC).isoformat(),
        "switch": switch.id,
        "scope_kind": switch.scope.kind.value,
        "scope_value": switch.scope.value,
        "scope_name": scopes.get(str(switch.scope), switch.scope.value),
        "mode": switch.mode.value,
        "lifted_at": switch.lifted_at.astimezone(UTC).isoformat() if switch.lifted_at else None,
        "expires_at": (
            switch.expires_at.astimezone(UTC).isoformat() if switch.expires_at else None
        ),
        "by_name": _name(named, switch.proposer),
        "second_name": _name(named, switch.approver or ""),
    }
