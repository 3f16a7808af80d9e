"""The guard's values: levels, verdicts, contexts, outcomes, signals and admissions.

Plain data the rest of the guard (and its callers) exchange; no counter, no policy.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum
from types import MappingProxyType

from tierspayant.domain.codes import GuardCode
from tierspayant.security import SecurityError
from tierspayant.security.principal import Principal, PrincipalKind

DAY_SECONDS = 86_400


class Level(StrEnum):
    """How serious a signal is: soft asks for step-up, hard suspends the principal."""

    SOFT = "soft"
    HARD = "hard"


class ActorKind(StrEnum):
    """Who types the lookups: a person in the portal, or provider software."""

    HUMAN = "human"
    SOFTWARE = "software"


class Verdict(StrEnum):
    ALLOW = "allow"
    STEP_UP = "step_up"
    DENY = "deny"


class OutcomeKind(StrEnum):
    HIT = "hit"
    MISS = "miss"
    CANARY = "canary"


class ProofFault(StrEnum):
    """Why a scanned card proof (signed 2D code) was refused."""

    FORGED = "forged"  # bad signature or unknown signing key
    REVOKED = "revoked"  # a genuine card that the insurer has revoked (lost, stolen, replaced)
    MISMATCH = "mismatch"  # a genuine card presented for someone outside its family
    # Not a card code at all (cut short, typed on another keyboard layout): nothing was
    # signed, so no attack signal; counted with the misses (``docs/guard.md``).
    MISREAD = "misread"


# Denials that a later retry may pass (HTTP 429 with Retry-After); every other denial is 403,
# except ``guard.unavailable`` (503).
THROTTLE_CODES = frozenset({GuardCode.RATE, GuardCode.STRUCTURE_RATE, GuardCode.GLOBAL_RATE})
UNAVAILABLE = GuardCode.UNAVAILABLE


class GuardUnavailable(SecurityError):
    """The counters could not be read or written: the lookup must not be answered."""

    def __init__(self, message: str = "the lookup guard is unavailable") -> None:
        super().__init__(UNAVAILABLE, message)


class CounterStoreUnavailable(SecurityError):
    """The counter store failed (connection, timeout, script error)."""

    def __init__(self, operation: str) -> None:
        super().__init__(UNAVAILABLE, f"counter store failed during {operation}")


@dataclass(frozen=True, slots=True)
class Signal:
    """Something the security team must hear about; ``HARD`` means suspend the principal.

    ``figures`` hold counts and thresholds only: never a NIR, a name or a subject pseudonym.
    """

    level: Level
    code: str
    message: str
    at: datetime
    principal_id: str | None
    structure: str | None
    figures: Mapping[str, int | str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "figures", MappingProxyType(dict(self.figures)))

    @property
    def hard(self) -> bool:
        return self.level is Level.HARD


@dataclass(frozen=True, slots=True)
class Admission:
    """The guard's answer before a lookup. ``message`` may be shown to the caller."""

    verdict: Verdict
    code: str
    message: str
    retry_after: int = 0
    signals: tuple[Signal, ...] = ()

    @property
    def allowed(self) -> bool:
        return self.verdict is Verdict.ALLOW

    @property
    def throttled(self) -> bool:
        """A rate denial: answer 429 with ``Retry-After`` rather than 403."""
        return self.code in THROTTLE_CODES


def _new_lookup_id() -> str:
    return secrets.token_hex(8)


@dataclass(frozen=True, slots=True)
class LookupContext:
    """One rights-check attempt, as the guard sees it.

    ``structure`` is the FINESS/SIRET (or AM number) the principal acts for; ``category``
    a :class:`ProviderCategory` value; ``stepped_up`` says the caller re-authenticated
    strongly (e.g. CPS card) recently enough for soft limits to be waived. ``lookup_id``
    ties :meth:`Guard.admit` to :meth:`Guard.observe` (pass the same context to both).
    """

    principal_id: str
    kind: ActorKind
    structure: str
    category: str
    with_proof: bool
    at: datetime
    stepped_up: bool = False
    lookup_id: str = field(default_factory=_new_lookup_id)
    # The care date asked about, when the request names one: beyond the second date asked
    # for one person in a day, each date counts as a further person.
    care_date: date | None = None

    def __post_init__(self) -> None:
        if self.at.tzinfo is None or self.at.utcoffset() is None:
            raise ValueError("LookupContext.at must be timezone-aware")
        if not self.principal_id or not self.structure:
            raise ValueError("LookupContext needs a principal id and a structure")


def context_for(
    principal: Principal,
    *,
    category: str,
    with_proof: bool,
    at: datetime,
    stepped_up: bool = False,
    care_date: date | None = None,
) -> LookupContext:
    """Build the guard's view of a lookup by an authenticated provider principal."""
    kind = ActorKind.HUMAN if principal.kind is PrincipalKind.PROVIDER_USER else ActorKind.SOFTWARE
    # A principal without a FINESS/SIRET counts alone, under its AM number or a short digest
    # of its id (structure columns are 20 characters wide).
    structure = principal.structure or principal.provider_am_number
    if not structure:
        structure = "p:" + hashlib.sha256(principal.id.encode()).hexdigest()[:16]
    return LookupContext(
        principal.id, kind, structure, category, with_proof, at, stepped_up, care_date=care_date
    )


@dataclass(frozen=True, slots=True)
class LookupOutcome:
    """What the lookup found. ``subject`` is the audit pseudonym of the beneficiary."""

    kind: OutcomeKind
    subject: str | None = None

    def __post_init__(self) -> None:
        if self.kind is not OutcomeKind.MISS and not self.subject:
            raise ValueError("a hit or canary outcome names its subject pseudonym")

    @classmethod
    def hit(cls, subject: str) -> LookupOutcome:
        return cls(OutcomeKind.HIT, subject)

    @classmethod
    def miss(cls) -> LookupOutcome:
        return cls(OutcomeKind.MISS)

    @classmethod
    def canary(cls, subject: str) -> LookupOutcome:
        return cls(OutcomeKind.CANARY, subject)


@dataclass(frozen=True, slots=True)
class Caps:
    """Daily cap of distinct beneficiaries of one structure: step-up at ``soft``.

    ``no_proof_soft``/``no_proof_hard``: its daily quota of people answered without card
    proof; ``pending``: how many such people may await an invoice at once (both
    calibrated on what the structure invoices, see :func:`~policy.calibrate`).
    """

    soft: int
    hard: int
    calibrated: bool
    no_proof_soft: int = 10
    no_proof_hard: int = 20
    pending: int = 30
    no_proof_watch: int = 2


@dataclass(frozen=True, slots=True)
class DailyFigures:
    """One structure's day, for the calibration history (table ``guard_daily``)."""

    structure: str
    category: str
    day: date
    distinct_lookups: int
    distinct_invoiced: int
