"""Containment without downtime: switch a scope to card-proof-only mode or off, and back.

Two operators, audited (``docs/incident-response.md``):

- :func:`propose` records a switch (scope, mode, reason, optional expiry): not in force;
- :func:`approve`, by a *different* operator within an hour, puts it in force — or, when
  a lift waits, lifts it;
- :func:`propose_lift` asks to lift a switch in force (it stays in force until a second
  operator approves).

Each step appends an audit event in its own transaction. Every server process reads the
switches in force through a cache of :data:`REFRESH_SECONDS` (one query a second per
process at most), so a switch made anywhere — the command line, another API worker, the
console — is enforced everywhere within about a second; the process that made the
change drops its cache at once.

:func:`enforce` is the check at the start of every guarded lookup
(:mod:`tierspayant.services.lookup`): it reads only what the request says of its caller,
before anyone is identified, and refuses with ``403 containment.card_proof_required``
(no card proof in card-proof-only mode) or ``503 containment.off``.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import Connection

from tierspayant.app.caching import TtlCache
from tierspayant.app.platform import Platform
from tierspayant.domain.codes import ContainmentCode
from tierspayant.domain.containment import (
    PROPOSAL_VALIDITY,
    ContainmentMode,
    LookupScope,
    Route,
    Switch,
    SwitchState,
    binding_switch,
    check_reason,
    expiry,
    needs_category,
    parse_mode,
    parse_scope,
)
from tierspayant.security.principal import Principal
from tierspayant.services.errors import Conflict, Forbidden, NotFound, Unavailable
from tierspayant.store import audit
from tierspayant.store import containment as store
from tierspayant.store.providers import category_of
from tierspayant.store.transactions import write_transaction

REFRESH_SECONDS = 1.0
"""How old the switches a process enforces may be: the propagation delay's bound."""
PURPOSE = "containment"
CARD_PROOF_REQUIRED = (
    ContainmentCode.CARD_PROOF_REQUIRED,
    "lookups here need the card's signed code for now: scan the patient's card",
)
SWITCHED_OFF = (ContainmentCode.OFF, "lookups here are switched off for now")

# The route of a guarded lookup, by the module of the use case that asks it (FHIR and
# the portals call the same use cases, so one route covers every channel).
ROUTES_BY_MODULE = {
    "tierspayant.services.eligibility": Route.ELIGIBILITY,
    "tierspayant.services.pricing": Route.CALCULATION,
    "tierspayant.services.prior_auth": Route.PRIOR_AUTH,
    "tierspayant.services.claims": Route.CLAIMS,
}

# One cache per platform (a process may hold several: tests, the CLI). Platforms are
# not hashable, so they are found by identity, through a weak reference.
_caches: dict[int, tuple[weakref.ref[Platform], TtlCache[str, tuple[Switch, ...]]]] = {}
_caches_lock = threading.Lock()
_KEY = "in_force"


def _cache(platform: Platform) -> TtlCache[str, tuple[Switch, ...]]:
    with _caches_lock:
        held = _caches.get(id(platform))
        if held is not None and held[0]() is platform:
            return held[1]
        for key in [k for k, (ref, _) in _caches.items() if ref() is None]:
            del _caches[key]
        cache: TtlCache[str, tuple[Switch, ...]] = TtlCache(REFRESH_SECONDS, max_entries=1)
        _caches[id(platform)] = (weakref.ref(platform), cache)
        return cache


def in_force(platform: Platform) -> tuple[Switch, ...]:
    """The switches approved and not lifted, as this process sees them (at most
    :data:`REFRESH_SECONDS` old; their expiry is compared at each use)."""
    cache = _cache(platform)
    switches = cache.get(_KEY)
    if switches is None:
        with platform.engine.connect() as conn:
            switches = tuple(store.switches_in_force(conn))
        cache.put(_KEY, switches)
    return switches


def route_of(answer: Callable[..., object]) -> Route | None:
    """The route of a guarded lookup, from the use case that supplies its answer."""
    return ROUTES_BY_MODULE.get(getattr(answer, "__module__", ""))


def enforce(
    platform: Platform,
    principal: Principal,
    insurer: str,
    answer: Callable[..., object],
    *,
    with_proof: bool,
) -> None:
    """Refuse a lookup a switch in force covers, before anyone is identified.

    ``insurer`` is the AMC number the request names; ``answer`` the use case's answer
    function (it names the route). The refusal and its audit event say which switch
    refused, never anything about a person.
    """
    switches = in_force(platform)
    if not switches:
        return
    category = principal.provider_category or None
    if category is None and principal.provider_id is not None and needs_category(switches):
        with platform.engine.connect() as conn:
            category = category_of(conn, principal.provider_id)
    lookup = LookupScope(insurer, principal.structure, category, route_of(answer), with_proof)
    switch = binding_switch(switches, lookup, platform.now())
    if switch is None:
        return
    refusal = SWITCHED_OFF if switch.mode is ContainmentMode.OFF else CARD_PROOF_REQUIRED
    platform.audit_writer.append(
        audit.Entry(
            at=platform.now(),
            actor=principal.id,
            structure=principal.structure,
            action="lookup.refused",
            purpose=lookup.route.value if lookup.route is not None else "lookup",
            insurer=insurer,
            decision="deny",
            detail={"code": refusal[0].value, "switch": switch.id, "proof": with_proof},
        )
    )
    if switch.mode is ContainmentMode.OFF:
        raise Unavailable(*refusal)
    raise Forbidden(*refusal)


def _check_operator(actor: str) -> None:
    if not actor.startswith(("operator:", "operator/")) or len(actor) > 120:
        raise Forbidden(ContainmentCode.OPERATOR_ONLY, "only operator staff switch containment")


def _load(conn: Connection, switch_id: int) -> Switch:
    switch = store.switch_by_id(conn, switch_id)
    if switch is None:
        raise NotFound(ContainmentCode.NOT_FOUND, f"no containment switch {switch_id}")
    return switch


def _detail(switch: Switch, reason: str) -> dict[str, str | int | bool | None]:
    return {
        "switch": switch.id,
        "scope": str(switch.scope),
        "mode": switch.mode.value,
        "reason": reason,
        "expires_at": switch.expires_at.isoformat() if switch.expires_at else None,
    }


def propose(
    platform: Platform,
    actor: str,
    scope: str,
    mode: str,
    reason: str,
    *,
    hours: int | None = None,
) -> Switch:
    """Record a proposed switch; it is in force only once another operator approves it."""
    _check_operator(actor)
    parsed_scope, parsed_mode = parse_scope(scope), parse_mode(mode)
    stated = check_reason(reason)
    now = platform.now()
    expires_at = expiry(now, hours)
    with write_transaction(platform.engine) as conn:
        switch_id = store.insert_proposal(
            conn,
            scope=parsed_scope,
            mode=parsed_mode,
            reason=stated,
            proposer=actor,
            at=now,
            expires_at=expires_at,
        )
        switch = _load(conn, switch_id)
        audit.append(
            conn,
            at=now,
            actor=actor,
            action="containment.propose",
            purpose=PURPOSE,
            decision="pending",
            detail=_detail(switch, stated),
        )
    return switch


def propose_lift(platform: Platform, actor: str, switch_id: int, reason: str) -> Switch:
    """Ask to lift a switch in force; it stays in force until another operator approves."""
    _check_operator(actor)
    stated = check_reason(reason)
    now = platform.now()
    with write_transaction(platform.engine) as conn:
        switch = _load(conn, switch_id)
        lapsed = (
            switch.state is SwitchState.LIFT_PROPOSED
            and switch.lift_proposed_at is not None
            and now - switch.lift_proposed_at > PROPOSAL_VALIDITY
        )
        if lapsed:
            changed = store.renew_lift(conn, switch_id, actor, stated, now)
        else:
            changed = store.propose_lift(conn, switch_id, actor, stated, now)
        if not changed:
            raise Conflict(
                ContainmentCode.NOT_IN_FORCE,
                "only a switch in force, with no lift waiting, can be lifted",
            )
        switch = _load(conn, switch_id)
        audit.append(
            conn,
            at=now,
            actor=actor,
            action="containment.lift_propose",
            purpose=PURPOSE,
            decision="pending",
            detail=_detail(switch, stated),
        )
    return switch


def approve(platform: Platform, actor: str, switch_id: int) -> Switch:
    """The second operator's approval: a proposed switch comes into force, or a switch
    whose lift was proposed is lifted. Never by the operator who proposed that step."""
    _check_operator(actor)
    now = platform.now()
    with write_transaction(platform.engine) as conn:
        switch = _load(conn, switch_id)
        target = switch.state.after_approval
        since = switch.waiting_since()
        if target is None or since is None:
            raise Conflict(ContainmentCode.NOT_WAITING, "nothing of this switch waits for approval")
        if now - since > PROPOSAL_VALIDITY:
            raise Conflict(
                ContainmentCode.PROPOSAL_LAPSED,
                "the proposal is more than an hour old: propose again",
            )
        if actor == switch.waiting_for():
            raise Forbidden(
                ContainmentCode.SECOND_OPERATOR_REQUIRED,
                "a second operator, not the one who proposed, must approve",
            )
        if target is SwitchState.ACTIVE:
            changed, action = store.approve(conn, switch_id, actor, now), "containment.approve"
        else:
            changed, action = store.lift(conn, switch_id, actor, now), "containment.lift"
        if not changed:
            raise Conflict(ContainmentCode.NOT_WAITING, "another operator approved it first")
        switch = _load(conn, switch_id)
        audit.append(
            conn,
            at=now,
            actor=actor,
            action=action,
            purpose=PURPOSE,
            decision="allow",
            detail={**_detail(switch, switch.reason), "proposer": switch.proposer},
        )
    # This process enforces the change at once; the others within REFRESH_SECONDS.
    _cache(platform).clear()
    return switch


@dataclass(frozen=True, slots=True)
class SwitchView:
    """A switch as the console and ``containment status`` show it."""

    switch: Switch
    in_force: bool
    waiting: str | None  # "activation" | "levée" | None
    lapsed: bool  # the waiting proposal is over an hour old


def status(platform: Platform, *, limit: int = 50) -> list[SwitchView]:
    """The latest switches, newest first, with what is in force and what waits."""
    now = platform.now()
    with platform.engine.connect() as conn:
        switches = store.recent_switches(conn, limit)
    views = []
    for switch in switches:
        since = switch.waiting_since()
        waiting = {SwitchState.PROPOSED: "activation", SwitchState.LIFT_PROPOSED: "levée"}.get(
            switch.state
        )
        views.append(
            SwitchView(
                switch,
                switch.in_force_at(now),
                waiting,
                since is not None and now - since > PROPOSAL_VALIDITY,
            )
        )
    return views


__all__ = [
    "REFRESH_SECONDS",
    "SwitchView",
    "approve",
    "enforce",
    "in_force",
    "propose",
    "propose_lift",
    "route_of",
    "status",
]
