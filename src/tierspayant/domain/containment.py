"""Containment without downtime: switching a scope to card-proof-only mode, or off.

In February 2024 the attacked operator took its whole site offline. Here an operator
switches one *scope* — the whole platform, one insurer, one structure, one category of
professionals, one route — into a *mode*:

- ``card_proof_only``: lookups that carry the card's signed code go on (patients with
  their card are served at the counter); lookups without it are refused;
- ``off``: every lookup of the scope is refused.

A switch is proposed by one operator and is in force only once a second, different
operator approves it; lifting it takes the same two steps (``docs/incident-response.md``
argues why). Several switches may cover one lookup: the strictest wins (``off`` before
``card_proof_only``), then the oldest.

The decision reads only what the request says of its caller (principal's structure and
category, the insurer number typed, the route, whether a card proof is present), never
the person: it is made before identification, so a refusal tells nothing about anyone.
Nothing here does I/O.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from tierspayant.domain.codes import ContainmentCode
from tierspayant.domain.errors import DomainError
from tierspayant.domain.providers import ProviderCategory

PROPOSAL_VALIDITY = timedelta(hours=1)
"""A proposal (to switch or to lift) not approved within this time lapses."""
MAX_HOURS = 168
"""The longest expiry a switch may be given (a week); without one it lasts until lifted."""
MIN_REASON = 10
MAX_REASON = 500
VALUE_MAX_LENGTH = 40


REFUSALS_FR: dict[str, str] = {
    ContainmentCode.CARD_PROOF_REQUIRED: (
        "Consultation possible uniquement avec la carte du patient : scannez sa carte."
    ),
    ContainmentCode.OFF: "Consultations suspendues par mesure de sécurité : réessayez plus tard.",
    ContainmentCode.SCOPE: "Périmètre invalide.",
    ContainmentCode.MODE: "Mode invalide : carte obligatoire ou hors service.",
    ContainmentCode.REASON: "Motif trop court ou trop long (10 à 500 caractères).",
    ContainmentCode.DURATION: "Durée hors limites (1 à 168 heures).",
    ContainmentCode.NOT_FOUND: "Bascule inconnue.",
    ContainmentCode.NOT_WAITING: "Rien n'attend d'approbation pour cette bascule.",
    ContainmentCode.NOT_IN_FORCE: "Seule une bascule en vigueur peut être levée.",
    ContainmentCode.PROPOSAL_LAPSED: "Proposition expirée (plus d'une heure) : proposez à nouveau.",
    ContainmentCode.SECOND_OPERATOR_REQUIRED: (
        "Un second opérateur, différent de celui qui a proposé, doit approuver."
    ),
    ContainmentCode.OPERATOR_ONLY: "Réservé aux opérateurs.",
}
"""What an operator or a professional reads of each refusal (the portals and the command
line show these sentences; ``docs/error-codes.md`` gives them as the French labels)."""


class ContainmentError(DomainError):
    """A switch as written cannot exist (unknown scope or mode, bad reason or duration)."""


class ContainmentMode(StrEnum):
    """What a switch does to the lookups of its scope."""

    CARD_PROOF_ONLY = "card_proof_only"
    OFF = "off"

    @property
    def strictness(self) -> int:
        return 2 if self is ContainmentMode.OFF else 1

    @property
    def label(self) -> str:
        """French, for the console and the command line."""
        return "hors service" if self is ContainmentMode.OFF else "carte obligatoire"


class ScopeKind(StrEnum):
    """What a switch covers."""

    PLATFORM = "platform"
    INSURER = "insurer"
    STRUCTURE = "structure"
    CATEGORY = "category"
    ROUTE = "route"


class Route(StrEnum):
    """The use cases that answer about a person (each reaches the guarded lookup)."""

    ELIGIBILITY = "eligibility"
    CALCULATION = "calculation"
    PRIOR_AUTH = "prior_auth"
    CLAIMS = "claims"


class SwitchState(StrEnum):
    """Where a switch is in its two-person life."""

    PROPOSED = "proposed"  # waits for a second operator
    ACTIVE = "active"  # in force
    LIFT_PROPOSED = "lift_proposed"  # still in force; a lift waits for a second operator
    LIFTED = "lifted"  # no longer in force

    @property
    def in_force(self) -> bool:
        return self in (SwitchState.ACTIVE, SwitchState.LIFT_PROPOSED)

    @property
    def after_approval(self) -> SwitchState | None:
        """The state a second operator's approval leads to, if any waits for one."""
        if self is SwitchState.PROPOSED:
            return SwitchState.ACTIVE
        if self is SwitchState.LIFT_PROPOSED:
            return SwitchState.LIFTED
        return None


_SCOPE_LABELS = {
    ScopeKind.PLATFORM: "toute la plateforme",
    ScopeKind.INSURER: "organisme",
    ScopeKind.STRUCTURE: "structure",
    ScopeKind.CATEGORY: "catégorie",
    ScopeKind.ROUTE: "route",
}


@dataclass(frozen=True, slots=True)
class ContainmentScope:
    """One scope: ``platform``, or a kind and its value (``insurer:123456789``)."""

    kind: ScopeKind
    value: str = ""

    def __str__(self) -> str:
        return self.kind.value if self.kind is ScopeKind.PLATFORM else f"{self.kind}:{self.value}"

    @property
    def label(self) -> str:
        """French, for the console and the command line."""
        if self.kind is ScopeKind.PLATFORM:
            return _SCOPE_LABELS[self.kind]
        return f"{_SCOPE_LABELS[self.kind]} {self.value}"

    def covers(self, lookup: LookupScope) -> bool:
        """Whether a lookup falls in this scope."""
        if self.kind is ScopeKind.PLATFORM:
            return True
        if self.kind is ScopeKind.INSURER:
            return lookup.insurer == self.value
        if self.kind is ScopeKind.STRUCTURE:
            return lookup.structure == self.value
        if self.kind is ScopeKind.CATEGORY:
            return lookup.category == self.value
        return lookup.route is not None and lookup.route.value == self.value


_CORSICA = ("2A", "2B")


def parse_scope(text: str) -> ContainmentScope:
    """``platform``, ``insurer:AMC``, ``structure:FINESS/SIRET/AM``, ``category:pharmacy``
    or ``route:eligibility`` (routes: eligibility, calculation, prior_auth, claims)."""
    kind_text, _, value = text.strip().partition(":")
    try:
        kind = ScopeKind(kind_text.strip().lower())
    except ValueError:
        raise _scope_error(text) from None
    value = value.strip()
    if kind is ScopeKind.PLATFORM:
        if value:
            raise _scope_error(text)
        return ContainmentScope(kind)
    if kind is ScopeKind.CATEGORY:
        value = _member(ProviderCategory, value, text)
    elif kind is ScopeKind.ROUTE:
        value = _member(Route, value, text)
    else:
        # AMC, FINESS, SIRET and AM numbers are digits, except Corsica's FINESS and AM
        # numbers, whose département is written 2A or 2B (stored upper-case); the scope
        # matches them exactly.
        if kind is ScopeKind.STRUCTURE and value[:2].upper() in _CORSICA:
            value = value[:2].upper() + value[2:]
            digits = value[2:]
        else:
            digits = value
        if not (digits.isascii() and digits.isdigit() and 1 <= len(value) <= VALUE_MAX_LENGTH):
            raise _scope_error(text)
    return ContainmentScope(kind, value)


def _member(enum: type[StrEnum], value: str, text: str) -> str:
    try:
        return enum(value.lower()).value
    except ValueError:
        raise _scope_error(text) from None


def _scope_error(text: str) -> ContainmentError:
    return ContainmentError(
        ContainmentCode.SCOPE,
        f"unknown scope {text[:60]!r}: platform, insurer:AMC, structure:NUMBER, "
        f"category:{'|'.join(c.value for c in ProviderCategory)} or "
        f"route:{'|'.join(r.value for r in Route)}",
        field="scope",
    )


def parse_mode(text: str) -> ContainmentMode:
    """``card_proof_only`` or ``off``."""
    try:
        return ContainmentMode(text.strip().lower())
    except ValueError:
        raise ContainmentError(
            ContainmentCode.MODE, "the mode is card_proof_only or off", field="mode"
        ) from None


def check_reason(reason: str) -> str:
    """The reason, stripped, if it says enough (it is kept with the switch and audited)."""
    stripped = reason.strip()
    if not MIN_REASON <= len(stripped) <= MAX_REASON:
        raise ContainmentError(
            ContainmentCode.REASON,
            f"state the reason in {MIN_REASON} to {MAX_REASON} characters",
            field="reason",
        )
    return stripped


def expiry(now: datetime, hours: int | None) -> datetime | None:
    """When a switch proposed now would lapse by itself (None: when lifted)."""
    if hours is None:
        return None
    if not 1 <= hours <= MAX_HOURS:
        raise ContainmentError(
            ContainmentCode.DURATION, f"a switch lasts 1 to {MAX_HOURS} hours", field="hours"
        )
    return now + timedelta(hours=hours)


@dataclass(frozen=True, slots=True)
class Switch:
    """A containment switch as stored."""

    id: int
    scope: ContainmentScope
    mode: ContainmentMode
    state: SwitchState
    reason: str
    proposer: str
    proposed_at: datetime
    approver: str | None = None
    approved_at: datetime | None = None
    expires_at: datetime | None = None
    lift_proposer: str | None = None
    lift_proposed_at: datetime | None = None
    lifter: str | None = None
    lifted_at: datetime | None = None

    def in_force_at(self, now: datetime) -> bool:
        return self.state.in_force and (self.expires_at is None or now < self.expires_at)

    def waiting_since(self) -> datetime | None:
        """When the step now waiting for a second operator was proposed."""
        if self.state is SwitchState.PROPOSED:
            return self.proposed_at
        if self.state is SwitchState.LIFT_PROPOSED:
            return self.lift_proposed_at
        return None

    def waiting_for(self) -> str | None:
        """Who proposed the step now waiting (that operator may not approve it)."""
        if self.state is SwitchState.PROPOSED:
            return self.proposer
        if self.state is SwitchState.LIFT_PROPOSED:
            return self.lift_proposer
        return None


@dataclass(frozen=True, slots=True)
class LookupScope:
    """What a lookup says of itself before anyone is identified."""

    insurer: str
    structure: str | None
    category: str | None
    route: Route | None
    with_proof: bool


def binding_switch(switches: Iterable[Switch], lookup: LookupScope, now: datetime) -> Switch | None:
    """The switch that refuses ``lookup``, or None when it may go on.

    A switch in force covering the lookup refuses it if its mode is ``off``, or if it is
    ``card_proof_only`` and the lookup carries no card proof. Of several, the strictest
    mode wins, then the oldest switch: the answer names one switch, always the same.
    """
    refusing = [
        s
        for s in switches
        if s.in_force_at(now)
        and s.scope.covers(lookup)
        and (s.mode is ContainmentMode.OFF or not lookup.with_proof)
    ]
    if not refusing:
        return None
    return min(refusing, key=lambda s: (-s.mode.strictness, s.id))


def needs_category(switches: Iterable[Switch]) -> bool:
    """Whether any switch is scoped by category (the caller's category is then read)."""
    return any(s.scope.kind is ScopeKind.CATEGORY for s in switches)


__all__ = [
    "MAX_HOURS",
    "PROPOSAL_VALIDITY",
    "REFUSALS_FR",
    "ContainmentError",
    "ContainmentMode",
    "ContainmentScope",
    "LookupScope",
    "Route",
    "ScopeKind",
    "Switch",
    "SwitchState",
    "binding_switch",
    "check_reason",
    "expiry",
    "needs_category",
    "parse_mode",
    "parse_scope",
]
