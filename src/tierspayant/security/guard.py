"""The exfiltration guard: volume limits that block a scraper holding a valid login.

The rights-check service asks :meth:`Guard.admit` before every lookup and reports the
outcome to :meth:`Guard.observe` after it. The guard counts per principal, per structure
(FINESS/SIRET) and globally, in a :class:`CounterStore` shared by every worker (Redis) or
kept in the process (one machine). It decides; it does not suspend accounts, write alerts
or answer HTTP: the service does that with the :class:`Signal` values it returns.

What it enforces (thresholds in :class:`GuardPolicy`, explained in ``docs/guard.md``):

- rate limits per principal, per structure and for the whole platform (circuit breaker);
- a daily cap of distinct beneficiaries per structure, calibrated on its profession and
  its own history; soft at 80 % (step-up), hard at the cap (suspension);
- lookups without card proof: a small daily quota of distinct beneficiaries *answered*,
  reserved at admission so that concurrent requests cannot overshoot it;
- the share of misses among lookups without proof (enumeration of guessed identifiers);
- the share of looked-up beneficiaries later invoiced (scrapers never bill);
- the pace of portal users (a person cannot type cards faster than every 2 s);
- canaries and forged or revoked card proofs: suspension at once.

When the counter store fails, the guard fails *closed*: :meth:`Guard.admit` denies with
``guard.unavailable`` and :meth:`Guard.observe` raises :class:`GuardUnavailable`, so an
outage of Redis never opens the door to an uncounted scrape.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import secrets
import statistics
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, fields
from datetime import date, datetime, timedelta
from enum import StrEnum
from types import MappingProxyType
from typing import Any, Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import redis
import structlog
from redis.commands.core import Script

from tierspayant.domain.providers import ProviderCategory
from tierspayant.security import SecurityError
from tierspayant.security.principal import Principal, PrincipalKind

log = structlog.get_logger("tierspayant.guard")

DAY_SECONDS = 86_400
_RATE_WINDOW_MS = 60_000


# --------------------------------------------------------------------------- values


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


# Denials that a later retry may pass (HTTP 429 with Retry-After); every other denial is 403,
# except ``guard.unavailable`` (503).
THROTTLE_CODES = frozenset({"guard.rate", "guard.structure_rate", "guard.global_rate"})
UNAVAILABLE = "guard.unavailable"


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
) -> LookupContext:
    """Build the guard's view of a lookup by an authenticated provider principal."""
    kind = ActorKind.HUMAN if principal.kind is PrincipalKind.PROVIDER_USER else ActorKind.SOFTWARE
    # A principal without a FINESS/SIRET counts alone, under its AM number or a short digest
    # of its id (structure columns are 20 characters wide).
    structure = principal.structure or principal.provider_am_number
    if not structure:
        structure = "p:" + hashlib.sha256(principal.id.encode()).hexdigest()[:16]
    return LookupContext(principal.id, kind, structure, category, with_proof, at, stepped_up)


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
    """Daily cap of distinct beneficiaries of one structure: step-up at ``soft``."""

    soft: int
    hard: int
    calibrated: bool


@dataclass(frozen=True, slots=True)
class DailyFigures:
    """One structure's day, for the calibration history (table ``guard_daily``)."""

    structure: str
    category: str
    day: date
    distinct_lookups: int
    distinct_invoiced: int


# --------------------------------------------------------------------------- policy

# Distinct beneficiaries answered per structure per day before suspension, for a
# structure without history. Sized on a busy site of each profession, so a normal day stays
# below the soft limit (80 %). Reasons in docs/guard.md.
DEFAULT_DAILY_CAPS: Mapping[str, int] = MappingProxyType(
    {
        ProviderCategory.PHARMACY.value: 800,
        ProviderCategory.HOSPITAL.value: 3000,
        ProviderCategory.HEALTH_CENTRE.value: 600,
        ProviderCategory.LABORATORY.value: 600,
        ProviderCategory.RADIOLOGY.value: 400,
        ProviderCategory.GP.value: 100,
        ProviderCategory.SPECIALIST.value: 100,
        ProviderCategory.DENTIST.value: 60,
        ProviderCategory.NURSE.value: 80,
        ProviderCategory.PHYSIOTHERAPIST.value: 60,
        ProviderCategory.MIDWIFE.value: 40,
        ProviderCategory.AMBULANCE.value: 120,
        ProviderCategory.OPTICIAN.value: 40,
        ProviderCategory.AUDIOLOGIST.value: 25,
    }
)


def _default_caps() -> dict[str, int]:
    return dict(DEFAULT_DAILY_CAPS)


@dataclass(frozen=True)
class GuardPolicy:
    """Every threshold of the guard, with its documented default (``docs/guard.md``).

    Percentages are whole percents; durations are named with their unit.
    """

    daily_caps: Mapping[str, int] = field(default_factory=_default_caps)
    default_daily_cap: int = 50  # a category missing from ``daily_caps``
    soft_percent: int = 80
    calibration_days: int = 28
    calibration_min_days: int = 7
    calibration_percentile: int = 95
    calibration_factor_percent: int = 150
    no_proof_watch: int = 2  # early warning to the security team, once a day per structure
    no_proof_soft: int = 10
    no_proof_hard: int = 20
    no_proof_hold_seconds: int = 30
    miss_window: int = 30
    miss_min_lookups: int = 10
    miss_soft_percent: int = 30
    miss_hard_percent: int = 50
    invoice_min_lookups: int = 50
    invoice_min_percent: int = 10
    invoice_lag_days: int = 2
    human_speed_lookups: int = 10
    human_speed_median_ms: int = 2000
    principal_per_minute: int = 60
    structure_per_minute: int = 300
    global_per_minute: int = 30_000
    step_up_refusals_hard: int = 10
    revoked_proof_level: Level = Level.HARD
    timezone: str = "Europe/Paris"

    def __post_init__(self) -> None:
        caps = dict(self.daily_caps)
        unknown = sorted(set(caps) - {c.value for c in ProviderCategory})
        if unknown:
            raise ValueError(f"daily_caps: unknown provider categories {unknown}")
        if any(not _is_int(v) or v < 1 for v in caps.values()):
            raise ValueError("daily_caps: every cap must be a positive integer")
        object.__setattr__(self, "daily_caps", MappingProxyType(caps))
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name in ("daily_caps", "revoked_proof_level", "timezone"):
                continue
            if not _is_int(value) or value < 0:
                raise ValueError(f"{f.name} must be a non-negative integer, got {value!r}")
        for name in ("soft_percent", "miss_soft_percent", "miss_hard_percent"):
            if not 1 <= getattr(self, name) <= 100:
                raise ValueError(f"{name} must be between 1 and 100")
        if not 1 <= self.no_proof_soft <= self.no_proof_hard:
            raise ValueError("need 1 <= no_proof_soft <= no_proof_hard")
        if self.no_proof_watch < 1:  # at or above no_proof_soft it never fires
            raise ValueError("no_proof_watch must be at least 1")
        if self.miss_soft_percent > self.miss_hard_percent:
            raise ValueError("miss_soft_percent must not exceed miss_hard_percent")
        if self.miss_min_lookups > self.miss_window or self.miss_min_lookups < 1:
            raise ValueError("need 1 <= miss_min_lookups <= miss_window")
        if self.human_speed_lookups < 3:
            raise ValueError("human_speed_lookups needs at least 3 lookups")
        positive = (
            "default_daily_cap",
            "principal_per_minute",
            "structure_per_minute",
            "global_per_minute",
            "step_up_refusals_hard",
            "no_proof_hold_seconds",
            "calibration_days",
        )
        for name in positive:
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        object.__setattr__(self, "revoked_proof_level", Level(self.revoked_proof_level))
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown timezone {self.timezone!r}") from exc

    @classmethod
    def from_mapping(cls, data: Mapping[str, object]) -> GuardPolicy:
        """Defaults overridden by ``data`` (parsed JSON or env); unknown keys are refused.

        ``daily_caps`` overrides only the categories it names. Integers may be given as
        decimal strings (environment variables).
        """
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(f"unknown guard settings {unknown}")
        values: dict[str, Any] = {}
        for name, raw in data.items():
            if name == "daily_caps":
                if not isinstance(raw, Mapping):
                    raise ValueError("daily_caps must be a mapping of category to cap")
                caps = _default_caps()
                caps.update({str(k): _as_int(f"daily_caps.{k}", v) for k, v in raw.items()})
                values[name] = caps
            elif name == "revoked_proof_level":
                values[name] = Level(str(raw))
            elif name == "timezone":
                values[name] = str(raw)
            else:
                values[name] = _as_int(name, raw)
        return cls(**values)

    @classmethod
    def from_json(cls, text: str) -> GuardPolicy:
        """Parse a JSON object of overrides (see :meth:`from_mapping`)."""
        data = json.loads(text)
        if not isinstance(data, dict):
            raise ValueError("the guard policy must be a JSON object")
        return cls.from_mapping(data)

    def default_cap(self, category: str) -> int:
        """The profession's cap for a structure without enough history."""
        return self.daily_caps.get(category, self.default_daily_cap)

    def soft_of(self, cap: int) -> int:
        """The soft limit for a hard cap (``soft_percent`` of it, rounded up, at least 1)."""
        return max(1, -(-cap * self.soft_percent // 100))

    @property
    def day_set_ttl_seconds(self) -> int:
        # Day-keyed sets must outlive the invoice lag (the ratio is read that many days later).
        return (max(2, self.invoice_lag_days + 2)) * DAY_SECONDS


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _as_int(name: str, raw: object) -> int:
    if _is_int(raw):
        assert isinstance(raw, int)
        return raw
    if isinstance(raw, str) and raw.strip().lstrip("-").isdigit():
        return int(raw.strip())
    raise ValueError(f"{name} must be an integer, got {raw!r}")


def percentile_nearest_rank(values: Sequence[int], percent: int) -> int:
    """The nearest-rank percentile of ``values`` (no interpolation, integers stay integers)."""
    if not values:
        raise ValueError("no values")
    ordered = sorted(values)
    rank = max(1, -(-percent * len(ordered) // 100))
    return ordered[rank - 1]


def calibrate(policy: GuardPolicy, category: str, history: Sequence[int]) -> Caps:
    """Cap = max(profession default, factor × p95 of the structure's own daily counts).

    History counts only once it covers ``calibration_min_days`` days: a few busy days must
    not let a new account raise its own ceiling.
    """
    cap = policy.default_cap(category)
    recent = list(history)[-policy.calibration_days :]
    calibrated = len(recent) >= max(1, policy.calibration_min_days)
    if calibrated:
        p = percentile_nearest_rank(recent, policy.calibration_percentile)
        cap = max(cap, -(-p * policy.calibration_factor_percent // 100))
    return Caps(soft=policy.soft_of(cap), hard=cap, calibrated=calibrated)


class HistoryProvider(Protocol):
    """Past daily counts of distinct beneficiaries of a structure (oldest first)."""

    def daily_distinct(self, structure: str, before: date, days: int) -> Sequence[int]:
        """Counts of the ``days`` days before ``before`` that have a record."""
        ...


# --------------------------------------------------------------------------- counters


@dataclass(frozen=True, slots=True)
class AdmissionPlan:
    """The counter work of one admission, done by :meth:`CounterStore.admission`.

    In this order, atomically: stop if ``flag_key`` is set (the principal is suspended);
    count ``member`` in the sliding windows as :meth:`CounterStore.hit_windows` does and
    stop if one is full; if ``pace``, push ``pace_value`` onto ``pace_key`` as
    :meth:`CounterStore.push_recent` does; read the size of ``seen_key``; if ``no_proof``,
    read the list at ``outcomes_key`` and the size of ``answered_key``.
    """

    flag_key: str
    window_keys: tuple[str, ...]
    window_limits: tuple[int, ...]
    now_ms: int
    window_ms: int
    member: str
    pace: bool
    pace_key: str
    pace_value: str
    pace_keep: int
    pace_ttl_seconds: int
    seen_key: str
    no_proof: bool
    outcomes_key: str
    answered_key: str

    def __post_init__(self) -> None:
        if len(self.window_keys) != len(self.window_limits):
            raise ValueError("one limit per window")


@dataclass(frozen=True, slots=True)
class AdmissionCounts:
    """What :meth:`CounterStore.admission` found.

    ``suspended``: it stopped at the flag (nothing else was done or read). ``full``: the
    index of the first full window (nothing after it was done or read), or -1 when the
    lookup was counted. The rest is read only when it got that far.
    """

    suspended: bool = False
    full: int = -1
    pace: tuple[str, ...] = ()
    seen: int = 0
    outcomes: tuple[str, ...] = ()
    answered: int = 0


@dataclass(frozen=True, slots=True)
class ObservationPlan:
    """The counter work of one observed lookup, done by :meth:`CounterStore.observation`.

    In this order, atomically: set field ``structure`` of hash ``active_key`` to
    ``category``; if ``no_proof``, push ``outcome`` onto ``outcomes_key`` (kept to
    ``outcomes_keep`` items); if ``subject`` is set (a hit), add it to ``seen_key`` and, if
    ``no_proof``, to ``answered_key``; if ``no_proof``, release the hold ``token`` of
    ``holds_key``; set the once-flag ``check_key`` and, the first time only, count
    ``judged_seen_key`` and, if it holds at least ``min_looked`` members, its common
    members with ``judged_invoiced_key``; last, tell which of ``once_keys`` are set.
    Day-keyed sets and the hash get ``day_ttl_seconds``.
    """

    active_key: str
    structure: str
    category: str
    day_ttl_seconds: int
    no_proof: bool
    outcomes_key: str
    outcome: str
    outcomes_keep: int
    outcomes_ttl_seconds: int
    subject: str | None
    seen_key: str
    answered_key: str
    holds_key: str
    token: str
    check_key: str
    check_ttl_seconds: int
    judged_seen_key: str
    judged_invoiced_key: str
    min_looked: int
    once_keys: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ObservationCounts:
    """What :meth:`CounterStore.observation` found (zeros for the steps it skipped).

    ``checked`` is True for the first check of the day (``check_key`` was set now);
    ``invoiced`` is counted only when ``looked`` reaches the plan's ``min_looked``;
    ``once_set`` has one entry per ``once_keys`` of the plan.
    """

    outcomes: tuple[str, ...] = ()
    seen: int = 0
    answered: int = 0
    checked: bool = False
    looked: int = 0
    invoiced: int = 0
    once_set: tuple[bool, ...] = ()


class CounterStore(Protocol):
    """Atomic counters the guard needs; Redis and in-process implementations agree.

    Keys are logical (``seen:<structure>:<day>``); the store adds its prefix. Every write
    refreshes the key's time to live, which only collects garbage: no decision depends on
    a key expiring, decisions read the timestamps stored in the data.

    :meth:`admission`, :meth:`observation`, :meth:`step_up` and :meth:`claim` bundle
    the simple operations a guard phase needs into one atomic operation (one round trip
    to Redis) with the same effects as the simple operations made one after the other.
    """

    def admission(self, plan: AdmissionPlan) -> AdmissionCounts:
        """Do the counter work of an admission (see :class:`AdmissionPlan`)."""
        ...

    def observation(self, plan: ObservationPlan) -> ObservationCounts:
        """Do the counter work of an observed lookup (see :class:`ObservationPlan`)."""
        ...

    def step_up(
        self,
        counter_key: str,
        counter_ttl_seconds: int,
        limit: int,
        flag_key: str,
        once_key: str,
        once_ttl_seconds: int,
    ) -> tuple[int, bool]:
        """Increment the counter; at ``limit`` or more set the flag (no expiry), below it
        set ``once_key`` unless present. Return the count and whether ``once_key`` was set
        by this call (always False at the limit)."""
        ...

    def claim(self, once_keys: Sequence[str], ttl_seconds: int, flag_key: str | None) -> list[bool]:
        """:meth:`set_once` on each key, then :meth:`set_flag` on ``flag_key`` (no expiry)
        if given; return the :meth:`set_once` results."""
        ...

    def hit_windows(
        self, keys: Sequence[str], limits: Sequence[int], now_ms: int, window_ms: int, member: str
    ) -> int:
        """Count ``member`` in every sliding window if none is full, else count nothing.

        Return the index of the first full window, or -1 when the event was counted.
        """
        ...

    def push_recent(self, key: str, value: str, keep: int, ttl_seconds: int) -> list[str]:
        """Prepend ``value`` to a list capped at ``keep`` items; return it, newest first."""
        ...

    def recent(self, key: str) -> list[str]:
        """The list at ``key``, newest first (empty if absent)."""
        ...

    def add_distinct(self, key: str, member: str, ttl_seconds: int) -> int:
        """Add ``member`` to the set at ``key``; return the set's size."""
        ...

    def count_distinct(self, key: str) -> int:
        """Size of the set at ``key``."""
        ...

    def count_common(self, key_a: str, key_b: str) -> int:
        """Size of the intersection of two sets."""
        ...

    def reserve(
        self,
        quota_key: str,
        holds_key: str,
        token: str,
        limit: int,
        now_ms: int,
        hold_ms: int,
        ttl_seconds: int,
    ) -> bool:
        """Hold one slot of a quota if size(quota set) + live holds < ``limit``.

        A hold lapses ``hold_ms`` after ``now_ms`` if never released.
        """
        ...

    def release(self, holds_key: str, token: str) -> None:
        """Drop a hold (the lookup finished, either way)."""
        ...

    def set_flag(self, key: str, ttl_seconds: int | None) -> None:
        """Set a flag; ``None`` keeps it until deleted."""
        ...

    def has_flag(self, key: str) -> bool:
        """Whether the flag (or any key) exists."""
        ...

    def set_once(self, key: str, ttl_seconds: int) -> bool:
        """Set a flag unless present; True the first time only (deduplication)."""
        ...

    def incr(self, key: str, ttl_seconds: int) -> int:
        """Increment a counter and return its new value."""
        ...

    def hash_set(self, key: str, name: str, value: str, ttl_seconds: int) -> None:
        """Set one field of a hash."""
        ...

    def hash_all(self, key: str) -> dict[str, str]:
        """Every field of a hash."""
        ...

    def delete(self, *keys: str) -> None:
        """Remove keys (absent keys are ignored)."""
        ...


class MemoryCounterStore:
    """In-process counters for one machine; thread-safe, one lock for every operation.

    Times to live run on the monotonic clock, like Redis's run on its own clock. Each
    public method takes the lock once and runs the unlocked helpers (``_op``); the
    bundled operations run the same helpers in the same order, under one lock.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._zsets: dict[str, dict[str, int]] = {}
        self._lists: dict[str, list[str]] = {}
        self._sets: dict[str, set[str]] = {}
        self._hashes: dict[str, dict[str, str]] = {}
        self._ints: dict[str, int] = {}
        self._flags: set[str] = set()
        self._deadlines: dict[str, float] = {}

    # Every helper below runs with the lock held.
    def _drop(self, key: str) -> None:
        for table in (self._zsets, self._lists, self._sets, self._hashes, self._ints):
            table.pop(key, None)
        self._flags.discard(key)
        self._deadlines.pop(key, None)

    def _fresh(self, key: str) -> None:
        deadline = self._deadlines.get(key)
        if deadline is not None and self._clock() >= deadline:
            self._drop(key)

    def _touch(self, key: str, ttl_seconds: int | None) -> None:
        if ttl_seconds is None:
            self._deadlines.pop(key, None)
        else:
            self._deadlines[key] = self._clock() + ttl_seconds

    def _hit_windows(
        self, keys: Sequence[str], limits: Sequence[int], now_ms: int, window_ms: int, member: str
    ) -> int:
        for index, (key, limit) in enumerate(zip(keys, limits, strict=True)):
            self._fresh(key)
            events = self._zsets.setdefault(key, {})
            # Members are inserted in time order (dicts keep insertion order): drop
            # expired ones from the front only, so a call costs what expired, not the
            # window's size (a global window holds every lookup of the last minute).
            # A member stamped slightly out of order by a concurrent thread leaves a
            # little later, which errs on the strict side.
            cutoff = now_ms - window_ms
            while events:
                oldest = next(iter(events))
                if events[oldest] > cutoff:
                    break
                del events[oldest]
            if len(events) >= limit:
                return index
        for key in keys:
            self._zsets[key][member] = now_ms
            self._touch(key, window_ms // 1000 + 60)
        return -1

    def _push_recent(self, key: str, value: str, keep: int, ttl_seconds: int) -> list[str]:
        self._fresh(key)
        items = self._lists.setdefault(key, [])
        items.insert(0, value)
        del items[keep:]
        self._touch(key, ttl_seconds)
        return list(items)

    def _recent(self, key: str) -> list[str]:
        self._fresh(key)
        return list(self._lists.get(key, []))

    def _add_distinct(self, key: str, member: str, ttl_seconds: int) -> int:
        self._fresh(key)
        members = self._sets.setdefault(key, set())
        members.add(member)
        self._touch(key, ttl_seconds)
        return len(members)

    def _count_distinct(self, key: str) -> int:
        self._fresh(key)
        return len(self._sets.get(key, ()))

    def _count_common(self, key_a: str, key_b: str) -> int:
        self._fresh(key_a)
        self._fresh(key_b)
        return len(self._sets.get(key_a, set()) & self._sets.get(key_b, set()))

    def _release(self, holds_key: str, token: str) -> None:
        self._fresh(holds_key)
        self._zsets.get(holds_key, {}).pop(token, None)

    def _set_flag(self, key: str, ttl_seconds: int | None) -> None:
        self._fresh(key)
        self._flags.add(key)
        self._touch(key, ttl_seconds)

    def _has_flag(self, key: str) -> bool:
        self._fresh(key)
        return key in self._flags

    def _set_once(self, key: str, ttl_seconds: int) -> bool:
        self._fresh(key)
        if key in self._flags:
            return False
        self._flags.add(key)
        self._touch(key, ttl_seconds)
        return True

    def _incr(self, key: str, ttl_seconds: int) -> int:
        self._fresh(key)
        value = self._ints.get(key, 0) + 1
        self._ints[key] = value
        self._touch(key, ttl_seconds)
        return value

    def _hash_set(self, key: str, name: str, value: str, ttl_seconds: int) -> None:
        self._fresh(key)
        self._hashes.setdefault(key, {})[name] = value
        self._touch(key, ttl_seconds)

    # The operations of the protocol.
    def admission(self, plan: AdmissionPlan) -> AdmissionCounts:
        """See :meth:`CounterStore.admission`."""
        with self._lock:
            if self._has_flag(plan.flag_key):
                return AdmissionCounts(suspended=True)
            full = self._hit_windows(
                plan.window_keys, plan.window_limits, plan.now_ms, plan.window_ms, plan.member
            )
            if full >= 0:
                return AdmissionCounts(full=full)
            pace: list[str] = []
            if plan.pace:
                pace = self._push_recent(
                    plan.pace_key, plan.pace_value, plan.pace_keep, plan.pace_ttl_seconds
                )
            seen = self._count_distinct(plan.seen_key)
            outcomes: list[str] = []
            answered = 0
            if plan.no_proof:
                outcomes = self._recent(plan.outcomes_key)
                answered = self._count_distinct(plan.answered_key)
            return AdmissionCounts(False, -1, tuple(pace), seen, tuple(outcomes), answered)

    def observation(self, plan: ObservationPlan) -> ObservationCounts:
        """See :meth:`CounterStore.observation`."""
        ttl = plan.day_ttl_seconds
        with self._lock:
            self._hash_set(plan.active_key, plan.structure, plan.category, ttl)
            outcomes: list[str] = []
            if plan.no_proof:
                outcomes = self._push_recent(
                    plan.outcomes_key, plan.outcome, plan.outcomes_keep, plan.outcomes_ttl_seconds
                )
            seen = answered = 0
            if plan.subject is not None:
                seen = self._add_distinct(plan.seen_key, plan.subject, ttl)
                if plan.no_proof:
                    answered = self._add_distinct(plan.answered_key, plan.subject, ttl)
            if plan.no_proof:
                self._release(plan.holds_key, plan.token)
            checked = self._set_once(plan.check_key, plan.check_ttl_seconds)
            looked = invoiced = 0
            if checked:
                looked = self._count_distinct(plan.judged_seen_key)
                if looked >= plan.min_looked:
                    invoiced = self._count_common(plan.judged_seen_key, plan.judged_invoiced_key)
            once_set = tuple(self._has_flag(k) for k in plan.once_keys)
            return ObservationCounts(
                tuple(outcomes), seen, answered, checked, looked, invoiced, once_set
            )

    def step_up(
        self,
        counter_key: str,
        counter_ttl_seconds: int,
        limit: int,
        flag_key: str,
        once_key: str,
        once_ttl_seconds: int,
    ) -> tuple[int, bool]:
        """See :meth:`CounterStore.step_up`."""
        with self._lock:
            count = self._incr(counter_key, counter_ttl_seconds)
            if count >= limit:
                self._set_flag(flag_key, None)
                return count, False
            return count, self._set_once(once_key, once_ttl_seconds)

    def claim(self, once_keys: Sequence[str], ttl_seconds: int, flag_key: str | None) -> list[bool]:
        """See :meth:`CounterStore.claim`."""
        with self._lock:
            first = [self._set_once(k, ttl_seconds) for k in once_keys]
            if flag_key is not None:
                self._set_flag(flag_key, None)
            return first

    def hit_windows(
        self, keys: Sequence[str], limits: Sequence[int], now_ms: int, window_ms: int, member: str
    ) -> int:
        """See :meth:`CounterStore.hit_windows`."""
        with self._lock:
            return self._hit_windows(keys, limits, now_ms, window_ms, member)

    def push_recent(self, key: str, value: str, keep: int, ttl_seconds: int) -> list[str]:
        """See :meth:`CounterStore.push_recent`."""
        with self._lock:
            return self._push_recent(key, value, keep, ttl_seconds)

    def recent(self, key: str) -> list[str]:
        """See :meth:`CounterStore.recent`."""
        with self._lock:
            return self._recent(key)

    def add_distinct(self, key: str, member: str, ttl_seconds: int) -> int:
        """See :meth:`CounterStore.add_distinct`."""
        with self._lock:
            return self._add_distinct(key, member, ttl_seconds)

    def count_distinct(self, key: str) -> int:
        """See :meth:`CounterStore.count_distinct`."""
        with self._lock:
            return self._count_distinct(key)

    def count_common(self, key_a: str, key_b: str) -> int:
        """See :meth:`CounterStore.count_common`."""
        with self._lock:
            return self._count_common(key_a, key_b)

    def reserve(
        self,
        quota_key: str,
        holds_key: str,
        token: str,
        limit: int,
        now_ms: int,
        hold_ms: int,
        ttl_seconds: int,
    ) -> bool:
        """See :meth:`CounterStore.reserve`."""
        with self._lock:
            self._fresh(quota_key)
            self._fresh(holds_key)
            holds = self._zsets.setdefault(holds_key, {})
            for old in [t for t, until in holds.items() if until <= now_ms]:
                del holds[old]
            if len(self._sets.get(quota_key, ())) + len(holds) >= limit:
                return False
            holds[token] = now_ms + hold_ms
            self._touch(holds_key, ttl_seconds)
            return True

    def release(self, holds_key: str, token: str) -> None:
        """See :meth:`CounterStore.release`."""
        with self._lock:
            self._release(holds_key, token)

    def set_flag(self, key: str, ttl_seconds: int | None) -> None:
        """See :meth:`CounterStore.set_flag`."""
        with self._lock:
            self._set_flag(key, ttl_seconds)

    def has_flag(self, key: str) -> bool:
        """See :meth:`CounterStore.has_flag`."""
        with self._lock:
            return self._has_flag(key)

    def set_once(self, key: str, ttl_seconds: int) -> bool:
        """See :meth:`CounterStore.set_once`."""
        with self._lock:
            return self._set_once(key, ttl_seconds)

    def incr(self, key: str, ttl_seconds: int) -> int:
        """See :meth:`CounterStore.incr`."""
        with self._lock:
            return self._incr(key, ttl_seconds)

    def hash_set(self, key: str, name: str, value: str, ttl_seconds: int) -> None:
        """See :meth:`CounterStore.hash_set`."""
        with self._lock:
            self._hash_set(key, name, value, ttl_seconds)

    def hash_all(self, key: str) -> dict[str, str]:
        """See :meth:`CounterStore.hash_all`."""
        with self._lock:
            self._fresh(key)
            return dict(self._hashes.get(key, {}))

    def delete(self, *keys: str) -> None:
        """See :meth:`CounterStore.delete`."""
        with self._lock:
            for key in keys:
                self._drop(key)


# Lua keeps each compound decision atomic on the Redis server: no other worker can slip a
# lookup between the check and the count. The bundled scripts (admission, observation,
# step-up) issue the very commands of the simple operations they stand for, in order.
_WINDOWS_LUA = """
local now = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local member = ARGV[3]
local ttl = tonumber(ARGV[4])
for i = 1, #KEYS do
  redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', now - window)
  if redis.call('ZCARD', KEYS[i]) >= tonumber(ARGV[4 + i]) then
    return i - 1
  end
end
for i = 1, #KEYS do
  redis.call('ZADD', KEYS[i], now, member)
  redis.call('EXPIRE', KEYS[i], ttl)
end
return -1
"""

_RESERVE_LUA = """
local now = tonumber(ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
local used = redis.call('SCARD', KEYS[1]) + redis.call('ZCARD', KEYS[2])
if used >= tonumber(ARGV[3]) then
  return 0
end
redis.call('ZADD', KEYS[2], now + tonumber(ARGV[4]), ARGV[2])
redis.call('EXPIRE', KEYS[2], tonumber(ARGV[5]))
return 1
"""

_COMMON_LUA = """
return #redis.call('SINTER', KEYS[1], KEYS[2])
"""

# KEYS: flag, pace, seen, outcomes, answered, then the windows.
# ARGV: now, window, member, window ttl, pace?, pace value, pace keep, pace ttl, no proof?,
# then one limit per window.
_ADMISSION_LUA = """
if redis.call('EXISTS', KEYS[1]) == 1 then
  return {1, -1}
end
local now = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local windows = #KEYS - 5
for i = 1, windows do
  redis.call('ZREMRANGEBYSCORE', KEYS[5 + i], '-inf', now - window)
  if redis.call('ZCARD', KEYS[5 + i]) >= tonumber(ARGV[9 + i]) then
    return {0, i - 1}
  end
end
for i = 1, windows do
  redis.call('ZADD', KEYS[5 + i], now, ARGV[3])
  redis.call('EXPIRE', KEYS[5 + i], tonumber(ARGV[4]))
end
local pace = {}
if ARGV[5] == '1' then
  redis.call('LPUSH', KEYS[2], ARGV[6])
  redis.call('LTRIM', KEYS[2], 0, tonumber(ARGV[7]) - 1)
  redis.call('EXPIRE', KEYS[2], tonumber(ARGV[8]))
  pace = redis.call('LRANGE', KEYS[2], 0, -1)
end
local seen = redis.call('SCARD', KEYS[3])
local outcomes = {}
local answered = 0
if ARGV[9] == '1' then
  outcomes = redis.call('LRANGE', KEYS[4], 0, -1)
  answered = redis.call('SCARD', KEYS[5])
end
return {0, -1, pace, seen, outcomes, answered}
"""

# KEYS: active, outcomes, seen, answered, holds, check, judged seen, judged invoiced, then
# the once keys. ARGV: structure, category, day ttl, no proof?, outcome, keep, outcomes
# ttl, hit?, subject, token, check ttl, min looked.
_OBSERVATION_LUA = """
local ttl = tonumber(ARGV[3])
local no_proof = ARGV[4] == '1'
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('EXPIRE', KEYS[1], ttl)
local outcomes = {}
if no_proof then
  redis.call('LPUSH', KEYS[2], ARGV[5])
  redis.call('LTRIM', KEYS[2], 0, tonumber(ARGV[6]) - 1)
  redis.call('EXPIRE', KEYS[2], tonumber(ARGV[7]))
  outcomes = redis.call('LRANGE', KEYS[2], 0, -1)
end
local seen = 0
local answered = 0
if ARGV[8] == '1' then
  redis.call('SADD', KEYS[3], ARGV[9])
  redis.call('EXPIRE', KEYS[3], ttl)
  seen = redis.call('SCARD', KEYS[3])
  if no_proof then
    redis.call('SADD', KEYS[4], ARGV[9])
    redis.call('EXPIRE', KEYS[4], ttl)
    answered = redis.call('SCARD', KEYS[4])
  end
end
if no_proof then
  redis.call('ZREM', KEYS[5], ARGV[10])
end
local checked = 0
local looked = 0
local invoiced = 0
if redis.call('SET', KEYS[6], '1', 'EX', tonumber(ARGV[11]), 'NX') then
  checked = 1
  looked = redis.call('SCARD', KEYS[7])
  if looked >= tonumber(ARGV[12]) then
    invoiced = #redis.call('SINTER', KEYS[7], KEYS[8])
  end
end
local once_set = {}
for i = 9, #KEYS do
  once_set[#once_set + 1] = redis.call('EXISTS', KEYS[i])
end
return {outcomes, seen, answered, checked, looked, invoiced, once_set}
"""

# KEYS: counter, flag, once. ARGV: counter ttl, limit, once ttl.
_STEP_UP_LUA = """
local count = redis.call('INCR', KEYS[1])
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[1]))
if count >= tonumber(ARGV[2]) then
  redis.call('SET', KEYS[2], '1')
  return {count, 0}
end
if redis.call('SET', KEYS[3], '1', 'EX', tonumber(ARGV[3]), 'NX') then
  return {count, 1}
end
return {count, 0}
"""


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _texts(values: object) -> tuple[str, ...]:
    assert isinstance(values, list)
    return tuple(_text(v) for v in values)


def _flag(value: bool) -> str:
    return "1" if value else "0"


class RedisCounterStore:
    """Counters shared by every worker through Redis (keys prefixed ``tp:guard:``).

    Compound checks, and the bundled operations of a guard phase, run as Lua scripts;
    simple ones as MULTI/EXEC pipelines; so each operation is atomic and costs one round
    trip. Any Redis error becomes :class:`CounterStoreUnavailable`. The scripts touch
    several keys, so this needs one Redis (or a Sentinel pair), not a Cluster.
    """

    def __init__(self, client: redis.Redis, prefix: str = "tp:guard:") -> None:
        self._redis = client
        self._prefix = prefix
        self._windows = client.register_script(_WINDOWS_LUA)
        self._reserve = client.register_script(_RESERVE_LUA)
        self._common = client.register_script(_COMMON_LUA)
        self._admission = client.register_script(_ADMISSION_LUA)
        self._observation = client.register_script(_OBSERVATION_LUA)
        self._step_up = client.register_script(_STEP_UP_LUA)

    @classmethod
    def from_url(cls, url: str, *, timeout_seconds: float = 0.5) -> RedisCounterStore:
        """Connect with short timeouts: a slow Redis must fail fast (closed), not hang."""
        client = redis.Redis.from_url(
            url, socket_timeout=timeout_seconds, socket_connect_timeout=timeout_seconds
        )
        return cls(client)

    def _k(self, key: str) -> str:
        return self._prefix + key

    @contextmanager
    def _errors(self, operation: str) -> Iterator[None]:
        try:
            yield
        except redis.RedisError as exc:
            raise CounterStoreUnavailable(operation) from exc

    def _run(self, script: Script, keys: Sequence[str], args: Sequence[str | int]) -> Any:
        return script(keys=list(keys), args=list(args))

    def _multi(self, operation: str, build: Callable[[Any], None]) -> list[Any]:
        with self._errors(operation):
            pipe = self._redis.pipeline(transaction=True)
            build(pipe)
            return pipe.execute()

    def admission(self, plan: AdmissionPlan) -> AdmissionCounts:
        """See :meth:`CounterStore.admission`."""
        keys = [
            plan.flag_key,
            plan.pace_key,
            plan.seen_key,
            plan.outcomes_key,
            plan.answered_key,
            *plan.window_keys,
        ]
        args: list[str | int] = [
            plan.now_ms,
            plan.window_ms,
            plan.member,
            plan.window_ms // 1000 + 60,
            _flag(plan.pace),
            plan.pace_value,
            plan.pace_keep,
            plan.pace_ttl_seconds,
            _flag(plan.no_proof),
            *plan.window_limits,
        ]
        with self._errors("admission"):
            raw = self._run(self._admission, [self._k(k) for k in keys], args)
        if int(raw[0]) == 1:
            return AdmissionCounts(suspended=True)
        if int(raw[1]) >= 0:
            return AdmissionCounts(full=int(raw[1]))
        pace, seen, outcomes, answered = raw[2:]
        return AdmissionCounts(False, -1, _texts(pace), int(seen), _texts(outcomes), int(answered))

    def observation(self, plan: ObservationPlan) -> ObservationCounts:
        """See :meth:`CounterStore.observation`."""
        keys = [
            plan.active_key,
            plan.outcomes_key,
            plan.seen_key,
            plan.answered_key,
            plan.holds_key,
            plan.check_key,
            plan.judged_seen_key,
            plan.judged_invoiced_key,
            *plan.once_keys,
        ]
        args: list[str | int] = [
            plan.structure,
            plan.category,
            plan.day_ttl_seconds,
            _flag(plan.no_proof),
            plan.outcome,
            plan.outcomes_keep,
            plan.outcomes_ttl_seconds,
            _flag(plan.subject is not None),
            plan.subject or "",
            plan.token,
            plan.check_ttl_seconds,
            plan.min_looked,
        ]
        with self._errors("observation"):
            raw = self._run(self._observation, [self._k(k) for k in keys], args)
        outcomes, seen, answered, checked, looked, invoiced, once_set = raw
        return ObservationCounts(
            _texts(outcomes),
            int(seen),
            int(answered),
            int(checked) == 1,
            int(looked),
            int(invoiced),
            tuple(int(v) > 0 for v in once_set),
        )

    def step_up(
        self,
        counter_key: str,
        counter_ttl_seconds: int,
        limit: int,
        flag_key: str,
        once_key: str,
        once_ttl_seconds: int,
    ) -> tuple[int, bool]:
        """See :meth:`CounterStore.step_up`."""
        keys = [self._k(counter_key), self._k(flag_key), self._k(once_key)]
        with self._errors("step_up"):
            count, first = self._run(
                self._step_up, keys, [counter_ttl_seconds, limit, once_ttl_seconds]
            )
        return int(count), int(first) == 1

    def claim(self, once_keys: Sequence[str], ttl_seconds: int, flag_key: str | None) -> list[bool]:
        """See :meth:`CounterStore.claim`."""
        names = [self._k(k) for k in once_keys]
        if not names and flag_key is None:
            return []

        def build(pipe: Any) -> None:
            for name in names:
                pipe.set(name, "1", ex=ttl_seconds, nx=True)
            if flag_key is not None:
                pipe.set(self._k(flag_key), "1")

        return [bool(v) for v in self._multi("claim", build)[: len(names)]]

    def hit_windows(
        self, keys: Sequence[str], limits: Sequence[int], now_ms: int, window_ms: int, member: str
    ) -> int:
        """See :meth:`CounterStore.hit_windows`."""
        if len(keys) != len(limits):
            raise ValueError("one limit per window")
        with self._errors("hit_windows"):
            args: list[str | int] = [now_ms, window_ms, member, window_ms // 1000 + 60, *limits]
            return int(self._run(self._windows, [self._k(k) for k in keys], args))

    def push_recent(self, key: str, value: str, keep: int, ttl_seconds: int) -> list[str]:
        """See :meth:`CounterStore.push_recent`."""
        k = self._k(key)

        def build(pipe: Any) -> None:
            pipe.lpush(k, value)
            pipe.ltrim(k, 0, keep - 1)
            pipe.expire(k, ttl_seconds)
            pipe.lrange(k, 0, -1)

        return [_text(v) for v in self._multi("push_recent", build)[-1]]

    def recent(self, key: str) -> list[str]:
        """See :meth:`CounterStore.recent`."""
        k = self._k(key)
        return [_text(v) for v in self._multi("recent", lambda p: p.lrange(k, 0, -1))[0]]

    def add_distinct(self, key: str, member: str, ttl_seconds: int) -> int:
        """See :meth:`CounterStore.add_distinct`."""
        k = self._k(key)

        def build(pipe: Any) -> None:
            pipe.sadd(k, member)
            pipe.expire(k, ttl_seconds)
            pipe.scard(k)

        return int(self._multi("add_distinct", build)[-1])

    def count_distinct(self, key: str) -> int:
        """See :meth:`CounterStore.count_distinct`."""
        k = self._k(key)
        return int(self._multi("count_distinct", lambda p: p.scard(k))[0])

    def count_common(self, key_a: str, key_b: str) -> int:
        """See :meth:`CounterStore.count_common`."""
        with self._errors("count_common"):
            return int(self._run(self._common, [self._k(key_a), self._k(key_b)], []))

    def reserve(
        self,
        quota_key: str,
        holds_key: str,
        token: str,
        limit: int,
        now_ms: int,
        hold_ms: int,
        ttl_seconds: int,
    ) -> bool:
        """See :meth:`CounterStore.reserve`."""
        with self._errors("reserve"):
            keys = [self._k(quota_key), self._k(holds_key)]
            args: list[str | int] = [now_ms, token, limit, hold_ms, ttl_seconds]
            return int(self._run(self._reserve, keys, args)) == 1

    def release(self, holds_key: str, token: str) -> None:
        """See :meth:`CounterStore.release`."""
        k = self._k(holds_key)
        self._multi("release", lambda p: p.zrem(k, token))

    def set_flag(self, key: str, ttl_seconds: int | None) -> None:
        """See :meth:`CounterStore.set_flag`."""
        k = self._k(key)
        self._multi("set_flag", lambda p: p.set(k, "1", ex=ttl_seconds))

    def has_flag(self, key: str) -> bool:
        """See :meth:`CounterStore.has_flag`."""
        k = self._k(key)
        return int(self._multi("has_flag", lambda p: p.exists(k))[0]) > 0

    def set_once(self, key: str, ttl_seconds: int) -> bool:
        """See :meth:`CounterStore.set_once`."""
        k = self._k(key)
        return bool(self._multi("set_once", lambda p: p.set(k, "1", ex=ttl_seconds, nx=True))[0])

    def incr(self, key: str, ttl_seconds: int) -> int:
        """See :meth:`CounterStore.incr`."""
        k = self._k(key)

        def build(pipe: Any) -> None:
            pipe.incr(k)
            pipe.expire(k, ttl_seconds)

        return int(self._multi("incr", build)[0])

    def hash_set(self, key: str, name: str, value: str, ttl_seconds: int) -> None:
        """See :meth:`CounterStore.hash_set`."""
        k = self._k(key)

        def build(pipe: Any) -> None:
            pipe.hset(k, name, value)
            pipe.expire(k, ttl_seconds)

        self._multi("hash_set", build)

    def hash_all(self, key: str) -> dict[str, str]:
        """See :meth:`CounterStore.hash_all`."""
        k = self._k(key)
        raw = self._multi("hash_all", lambda p: p.hgetall(k))[0]
        return {_text(name): _text(value) for name, value in raw.items()}

    def delete(self, *keys: str) -> None:
        """See :meth:`CounterStore.delete`."""
        if keys:
            names = [self._k(k) for k in keys]
            self._multi("delete", lambda p: p.delete(*names))


# --------------------------------------------------------------------------- the guard


def _ms(at: datetime) -> int:
    return int(at.timestamp() * 1000)


_ONCE_TTL_SECONDS = 2 * DAY_SECONDS


def _once_key(code: str, scope: str, bucket: str) -> str:
    """The flag that lets a signal through once per (code, scope, bucket)."""
    return f"once:{code}:{scope}:{bucket}"


def median_interval_ms(stamps_ms: Sequence[int]) -> int:
    """Median gap between consecutive events (the lower middle for an even count)."""
    ordered = sorted(stamps_ms)
    gaps = [b - a for a, b in itertools.pairwise(ordered)]
    if not gaps:
        raise ValueError("need at least two events")
    return int(statistics.median_low(gaps))


_CALLER_MESSAGES = {
    "guard.suspended": "this account is suspended; contact the operator's support",
    "guard.rate": "too many lookups from this account; slow down",
    "guard.structure_rate": "too many lookups from this structure; slow down",
    "guard.global_rate": "the service is saturated; try again shortly",
    "guard.human_speed": "lookups faster than a person can type; account suspended",
    "guard.daily_cap": "daily lookup limit of this structure reached",
    "guard.miss_ratio": "too many unmatched lookups; account suspended",
    "guard.no_proof_quota": "scan the patient's card: lookups without card proof are used up",
    "guard.step_up_ignored": "authentication was not renewed; account suspended",
    UNAVAILABLE: "the rights check is temporarily unavailable",
}
_STEP_UP_MESSAGE = "renew your authentication (CPS card or e-CPS) to continue"


class Guard:
    """Admission and observation of rights-check lookups (see the module docstring)."""

    def __init__(
        self,
        counters: CounterStore,
        policy: GuardPolicy | None = None,
        history: HistoryProvider | None = None,
    ) -> None:
        self.counters = counters
        self.policy = policy or GuardPolicy()
        self.history = history
        self._zone = ZoneInfo(self.policy.timezone)
        self._caps: dict[tuple[str, str, date], Caps] = {}
        self._caps_lock = threading.Lock()

    # -- helpers ----------------------------------------------------------------------

    def day_of(self, at: datetime) -> date:
        """The local (French) calendar day of an instant: daily quotas reset at midnight."""
        return at.astimezone(self._zone).date()

    def caps(self, structure: str, category: str, day: date) -> Caps:
        """The structure's cap for ``day``, calibrated on history; cached per day."""
        key = (structure, category, day)
        with self._caps_lock:
            cached = self._caps.get(key)
        if cached is not None:
            return cached
        history: Sequence[int] = ()
        if self.history is not None:
            try:
                history = self.history.daily_distinct(structure, day, self.policy.calibration_days)
            except Exception as exc:  # noqa: BLE001 - any history failure: profession default
                # The default is never above a calibrated cap, so failing here fails safe.
                log.warning("guard.history_unavailable", error=type(exc).__name__)
                return calibrate(self.policy, category, ())
        caps = calibrate(self.policy, category, history)
        with self._caps_lock:
            if len(self._caps) > 50_000:
                self._caps.clear()
            self._caps[key] = caps
        return caps

    def _signal(
        self, ctx: LookupContext, level: Level, code: str, message: str, **figures: int | str
    ) -> Signal:
        return Signal(level, code, message, ctx.at, ctx.principal_id, ctx.structure, figures)

    def _once(self, signal: Signal, scope: str, bucket: str) -> list[Signal]:
        """The signal the first time for (code, scope, bucket), else nothing."""
        if self.counters.set_once(_once_key(signal.code, scope, bucket), _ONCE_TTL_SECONDS):
            return [signal]
        return []

    def _deny(self, code: str, *signals: Signal, retry_after: int = 0) -> Admission:
        return Admission(Verdict.DENY, code, _CALLER_MESSAGES[code], retry_after, signals)

    # -- suspension -------------------------------------------------------------------

    def suspended(self, principal_id: str) -> bool:
        """Whether the principal is marked suspended in the counters (fast path).

        Raises :class:`GuardUnavailable` if the store cannot say: treat it as suspended.
        """
        try:
            return self.counters.has_flag(f"susp:{principal_id}")
        except CounterStoreUnavailable as exc:
            raise GuardUnavailable() from exc

    def mark_suspended(self, principal_id: str) -> None:
        """Refuse every further lookup of the principal until :meth:`clear_suspension`."""
        try:
            self.counters.set_flag(f"susp:{principal_id}", None)
        except CounterStoreUnavailable as exc:
            raise GuardUnavailable() from exc

    def clear_suspension(self, principal_id: str) -> None:
        """Lift the mark and forget the principal's recent pace and misses (reinstatement)."""
        keys = (f"susp:{principal_id}", f"speed:{principal_id}", f"out:{principal_id}")
        try:
            self.counters.delete(*keys)
        except CounterStoreUnavailable as exc:
            raise GuardUnavailable() from exc

    # -- before the lookup ------------------------------------------------------------

    def admit(self, ctx: LookupContext) -> Admission:
        """Decide whether this lookup may run: ALLOW, STEP_UP (soft limit) or DENY.

        An ALLOW without card proof holds one slot of the structure's no-proof quota until
        :meth:`observe` (or :meth:`abandon`) is called with the same context.
        """
        try:
            return self._admit(ctx)
        except CounterStoreUnavailable as exc:
            log.error("guard.store_unavailable", during="admit", error=exc.message)
            return self._deny(UNAVAILABLE, retry_after=30)

    def _admit(self, ctx: LookupContext) -> Admission:
        # One bundled store operation reads and counts what every admission needs (one
        # round trip to Redis); a decision that needs a write (a signal to deduplicate,
        # a suspension, a step-up refusal, a no-proof hold) costs one more.
        p = self.policy
        now_ms = _ms(ctx.at)
        day = self.day_of(ctx.at)
        hour = ctx.at.strftime("%Y%m%d%H")
        counts = self.counters.admission(
            AdmissionPlan(
                flag_key=f"susp:{ctx.principal_id}",
                window_keys=("rate:g", f"rate:p:{ctx.principal_id}", f"rate:s:{ctx.structure}"),
                window_limits=(p.global_per_minute, p.principal_per_minute, p.structure_per_minute),
                now_ms=now_ms,
                window_ms=_RATE_WINDOW_MS,
                member=ctx.lookup_id,
                pace=ctx.kind is ActorKind.HUMAN,
                pace_key=f"speed:{ctx.principal_id}",
                pace_value=str(now_ms),
                pace_keep=p.human_speed_lookups,
                pace_ttl_seconds=3600,
                seen_key=f"seen:{ctx.structure}:{day}",
                no_proof=not ctx.with_proof,
                outcomes_key=f"out:{ctx.principal_id}",
                answered_key=f"np:{ctx.structure}:{day}",
            )
        )
        if counts.suspended:
            return self._deny("guard.suspended")
        full = counts.full
        if full >= 0:
            code, limit, scope = [
                ("guard.global_rate", p.global_per_minute, "global"),
                ("guard.rate", p.principal_per_minute, ctx.principal_id),
                ("guard.structure_rate", p.structure_per_minute, ctx.structure),
            ][full]
            signal = self._signal(
                ctx, Level.SOFT, code, "rate limit reached", per_minute=limit, scope=scope
            )
            return self._deny(code, *self._once(signal, scope, hour), retry_after=60)

        if ctx.kind is ActorKind.HUMAN:
            stamps = counts.pace
            if len(stamps) >= p.human_speed_lookups:
                median = median_interval_ms([int(s) for s in stamps])
                if median < p.human_speed_median_ms:
                    signal = self._signal(
                        ctx,
                        Level.HARD,
                        "guard.human_speed",
                        "portal lookups faster than a person can type",
                        lookups=len(stamps),
                        median_interval_ms=median,
                        threshold_ms=p.human_speed_median_ms,
                    )
                    self.counters.set_flag(f"susp:{ctx.principal_id}", None)
                    return self._deny("guard.human_speed", signal)

        caps = self.caps(ctx.structure, ctx.category, day)
        seen = counts.seen
        if seen >= caps.hard:
            return self._deny("guard.daily_cap")

        misses = answered = 0
        outcomes: tuple[str, ...] = ()
        if not ctx.with_proof:
            outcomes = counts.outcomes
            misses = outcomes.count("m")
            if _over(misses, len(outcomes), p.miss_min_lookups, p.miss_hard_percent):
                return self._deny("guard.miss_ratio")
            answered = counts.answered
            if answered >= p.no_proof_hard:
                return self._deny("guard.no_proof_quota")

        if not ctx.stepped_up:
            soft: Signal | None = None
            if seen >= caps.soft:
                soft = self._signal(
                    ctx,
                    Level.SOFT,
                    "guard.daily_cap_soft",
                    "structure near its daily cap of distinct beneficiaries",
                    distinct=seen,
                    soft=caps.soft,
                    cap=caps.hard,
                )
            elif _over(misses, len(outcomes), p.miss_min_lookups, p.miss_soft_percent):
                soft = self._signal(
                    ctx,
                    Level.SOFT,
                    "guard.miss_ratio_soft",
                    "many unmatched lookups without card proof",
                    misses=misses,
                    lookups=len(outcomes),
                    soft_percent=p.miss_soft_percent,
                )
            elif not ctx.with_proof and answered >= p.no_proof_soft:
                soft = self._signal(
                    ctx,
                    Level.SOFT,
                    "guard.no_proof_soft",
                    "structure near its quota of lookups without card proof",
                    answered=answered,
                    soft=p.no_proof_soft,
                    hard=p.no_proof_hard,
                )
            if soft is not None:
                return self._step_up(ctx, soft, day)

        if not ctx.with_proof and not self.counters.reserve(
            f"np:{ctx.structure}:{day}",
            f"nphold:{ctx.structure}:{day}",
            ctx.lookup_id,
            p.no_proof_hard,
            now_ms,
            p.no_proof_hold_seconds * 1000,
            p.day_set_ttl_seconds,
        ):
            # The remaining slots are held by lookups still running.
            return self._deny("guard.no_proof_quota", retry_after=p.no_proof_hold_seconds)
        return Admission(Verdict.ALLOW, "guard.ok", "")

    def _step_up(self, ctx: LookupContext, soft: Signal, day: date) -> Admission:
        """Ask for step-up; a caller who keeps ignoring it is a bot and gets suspended."""
        p = self.policy
        hour = ctx.at.strftime("%Y%m%d%H")
        scope = ctx.principal_id if soft.code == "guard.miss_ratio_soft" else ctx.structure
        # At the limit the store marks the principal suspended; below it, it deduplicates
        # the soft signal: both in the same operation as the count.
        refusals, first = self.counters.step_up(
            f"stepup:{ctx.principal_id}:{hour}",
            2 * 3600,
            p.step_up_refusals_hard,
            f"susp:{ctx.principal_id}",
            _once_key(soft.code, scope, day.isoformat()),
            _ONCE_TTL_SECONDS,
        )
        if refusals >= p.step_up_refusals_hard:
            hard = self._signal(
                ctx,
                Level.HARD,
                "guard.step_up_ignored",
                "step-up requests ignored; lookups kept coming",
                refusals=refusals,
                after_soft=soft.code,
            )
            return self._deny("guard.step_up_ignored", hard)
        signals = (soft,) if first else ()
        return Admission(Verdict.STEP_UP, soft.code, _STEP_UP_MESSAGE, 0, signals)

    def abandon(self, ctx: LookupContext) -> None:
        """The admitted lookup failed before an outcome: free its no-proof slot."""
        if ctx.with_proof:
            return
        try:
            day = self.day_of(ctx.at)
            self.counters.release(f"nphold:{ctx.structure}:{day}", ctx.lookup_id)
        except CounterStoreUnavailable:
            log.warning("guard.store_unavailable", during="abandon")  # the hold lapses

    # -- after the lookup -------------------------------------------------------------

    def observe(self, ctx: LookupContext, outcome: LookupOutcome) -> list[Signal]:
        """Count the outcome of an admitted lookup; return the signals it raises.

        A HARD signal also marks the principal suspended in the counters at once. Raises
        :class:`GuardUnavailable` if the counters fail (do not return the answer then),
        except for a canary, whose signal is returned whatever the store does.
        """
        if outcome.kind is OutcomeKind.CANARY:
            return [self._canary(ctx)]
        try:
            # A HARD signal marks the principal suspended inside ``_observe``.
            return self._observe(ctx, outcome)
        except CounterStoreUnavailable as exc:
            log.error("guard.store_unavailable", during="observe", error=exc.message)
            raise GuardUnavailable() from exc

    def _canary(self, ctx: LookupContext) -> Signal:
        signal = self._signal(
            ctx, Level.HARD, "guard.canary", "a canary beneficiary was looked up", canary=1
        )
        try:
            self.counters.set_flag(f"susp:{ctx.principal_id}", None)
            if not ctx.with_proof:
                self.counters.release(
                    f"nphold:{ctx.structure}:{self.day_of(ctx.at)}", ctx.lookup_id
                )
        except CounterStoreUnavailable:
            # The service still suspends the principal in the database from this signal.
            log.error("guard.store_unavailable", during="canary")
        return signal

    def _observe(self, ctx: LookupContext, outcome: LookupOutcome) -> list[Signal]:
        # One bundled store operation counts the outcome and reads what the decisions need
        # (one round trip to Redis); a new signal to deduplicate or a suspension to mark
        # costs one more.
        p = self.policy
        day = self.day_of(ctx.at)
        bucket = day.isoformat()
        no_proof = not ctx.with_proof
        hit = outcome.kind is OutcomeKind.HIT
        # The once-keys a soft signal of this lookup may need: the store tells which are
        # already set, so only a signal not yet raised costs a write.
        once_keys: list[str] = []
        if no_proof:
            once_keys.append(_once_key("guard.miss_ratio_soft", ctx.principal_id, bucket))
        if hit:
            once_keys.append(_once_key("guard.daily_cap_soft", ctx.structure, bucket))
            if no_proof:
                once_keys.append(_once_key("guard.no_proof_soft", ctx.structure, bucket))
                once_keys.append(_once_key("guard.no_proof_watch", ctx.structure, bucket))
        judged = day - timedelta(days=p.invoice_lag_days)
        counts = self.counters.observation(
            ObservationPlan(
                active_key=f"active:{day}",
                structure=ctx.structure,
                category=ctx.category,
                day_ttl_seconds=p.day_set_ttl_seconds,
                no_proof=no_proof,
                outcomes_key=f"out:{ctx.principal_id}",
                outcome="h" if hit else "m",
                outcomes_keep=p.miss_window,
                outcomes_ttl_seconds=DAY_SECONDS,
                subject=outcome.subject if hit else None,
                seen_key=f"seen:{ctx.structure}:{day}",
                answered_key=f"np:{ctx.structure}:{day}",
                # Only once the answer is counted may its slot go: releasing it first would
                # let a concurrent admission see neither the hold nor the answer.
                holds_key=f"nphold:{ctx.structure}:{day}",
                token=ctx.lookup_id,
                # Once a day per structure, an earlier day's lookups against its invoices.
                check_key=f"invchk:{ctx.structure}:{day}",
                check_ttl_seconds=2 * DAY_SECONDS,
                judged_seen_key=f"seen:{ctx.structure}:{judged}",
                judged_invoiced_key=f"inv:{ctx.structure}:{judged}",
                min_looked=p.invoice_min_lookups,
                once_keys=tuple(once_keys),
            )
        )
        already = dict(zip(once_keys, counts.once_set, strict=True))
        # In order: a signal, or a soft one raised only if its once-key is claimed now.
        raised: list[Signal | tuple[Signal, str]] = []

        def once(signal: Signal, scope: str) -> None:
            key = _once_key(signal.code, scope, bucket)
            if not already[key]:
                raised.append((signal, key))

        if no_proof:
            window = counts.outcomes
            misses = window.count("m")
            figures: dict[str, int | str] = {"misses": misses, "lookups": len(window)}
            if _over(misses, len(window), p.miss_min_lookups, p.miss_hard_percent):
                raised.append(
                    self._signal(
                        ctx,
                        Level.HARD,
                        "guard.miss_ratio",
                        "most lookups without card proof match nobody (enumeration)",
                        hard_percent=p.miss_hard_percent,
                        **figures,
                    )
                )
            elif _over(misses, len(window), p.miss_min_lookups, p.miss_soft_percent):
                soft = self._signal(
                    ctx,
                    Level.SOFT,
                    "guard.miss_ratio_soft",
                    "many unmatched lookups without card proof",
                    soft_percent=p.miss_soft_percent,
                    **figures,
                )
                once(soft, ctx.principal_id)
        if hit:
            caps = self.caps(ctx.structure, ctx.category, day)
            seen = counts.seen
            cap_figures: dict[str, int | str] = {"distinct": seen, "cap": caps.hard}
            if seen >= caps.hard:
                raised.append(
                    self._signal(
                        ctx,
                        Level.HARD,
                        "guard.daily_cap",
                        "structure reached its daily cap of distinct beneficiaries",
                        **cap_figures,
                    )
                )
            elif seen >= caps.soft:
                soft = self._signal(
                    ctx,
                    Level.SOFT,
                    "guard.daily_cap_soft",
                    "structure near its daily cap of distinct beneficiaries",
                    soft=caps.soft,
                    **cap_figures,
                )
                once(soft, ctx.structure)
            if no_proof:
                answered = counts.answered
                np_figures: dict[str, int | str] = {"answered": answered, "hard": p.no_proof_hard}
                if answered >= p.no_proof_hard:
                    raised.append(
                        self._signal(
                            ctx,
                            Level.HARD,
                            "guard.no_proof_quota",
                            "quota of beneficiaries answered without card proof used up",
                            **np_figures,
                        )
                    )
                elif answered >= p.no_proof_soft:
                    soft = self._signal(
                        ctx,
                        Level.SOFT,
                        "guard.no_proof_soft",
                        "structure near its quota of lookups without card proof",
                        soft=p.no_proof_soft,
                        **np_figures,
                    )
                    once(soft, ctx.structure)
                elif answered >= p.no_proof_watch:
                    # Nothing is refused yet: the security team hears of a structure that
                    # answers people without their card while a scraper at human pace has
                    # read only a couple of them (the step-up comes at ``no_proof_soft``).
                    watch = self._signal(
                        ctx,
                        Level.SOFT,
                        "guard.no_proof_watch",
                        "beneficiaries answered without card proof today",
                        watch=p.no_proof_watch,
                        **np_figures,
                    )
                    once(watch, ctx.structure)
        invoice = self._invoice_signal(ctx, judged, counts)
        if invoice is not None:
            raised.append(invoice)
        # Claim the once-keys, and mark the principal suspended on a HARD signal, at once.
        claims = [item[1] for item in raised if isinstance(item, tuple)]
        hard = any(isinstance(item, Signal) and item.hard for item in raised)
        flag_key = f"susp:{ctx.principal_id}" if hard else None
        first = self.counters.claim(claims, _ONCE_TTL_SECONDS, flag_key)
        claimed = dict(zip(claims, first, strict=True))
        signals: list[Signal] = []
        for item in raised:
            if isinstance(item, Signal):
                signals.append(item)
            elif claimed[item[1]]:
                signals.append(item[0])
        return signals

    def _invoice_signal(
        self, ctx: LookupContext, judged: date, counts: ObservationCounts
    ) -> Signal | None:
        """The share of ``judged``'s lookups that were invoiced, if this is the day's check.

        Invoices arrive late (batches, teletransmission delays), so the day judged is
        ``invoice_lag_days`` back, never today.
        """
        p = self.policy
        if not counts.checked or counts.looked < p.invoice_min_lookups:
            return None
        looked, invoiced = counts.looked, counts.invoiced
        if invoiced * 100 >= p.invoice_min_percent * looked:
            return None
        return self._signal(
            ctx,
            Level.SOFT,
            "guard.invoice_ratio",
            "few of the beneficiaries looked up were invoiced",
            day=judged.isoformat(),
            looked_up=looked,
            invoiced=invoiced,
            min_percent=p.invoice_min_percent,
        )

    def reject_proof(self, ctx: LookupContext, fault: ProofFault) -> list[Signal]:
        """A forged or revoked card proof was presented: refuse it and raise the signal.

        The caller refuses the lookup (403) and handles the signal like any other. The
        signal is returned even if the counter store is down.
        """
        level = Level.HARD if fault is ProofFault.FORGED else self.policy.revoked_proof_level
        signal = self._signal(
            ctx, level, f"guard.proof_{fault.value}", f"card proof {fault.value}", proof=fault.value
        )
        if signal.hard:
            try:
                self.counters.set_flag(f"susp:{ctx.principal_id}", None)
            except CounterStoreUnavailable:
                log.error("guard.store_unavailable", during="reject_proof")
        return [signal]

    # -- invoices and history ---------------------------------------------------------

    def record_invoice(self, structure: str, subject: str, day: date) -> None:
        """An invoice for ``subject`` with care on ``day`` came from ``structure``."""
        try:
            self.counters.add_distinct(
                f"inv:{structure}:{day}", subject, self.policy.day_set_ttl_seconds
            )
        except CounterStoreUnavailable as exc:
            raise GuardUnavailable() from exc

    def day_summary(self, day: date) -> list[DailyFigures]:
        """Figures of every structure active on ``day`` (for the nightly ``guard_daily`` job)."""
        try:
            active = self.counters.hash_all(f"active:{day}")
            figures = []
            for structure, category in sorted(active.items()):
                seen_key, inv_key = f"seen:{structure}:{day}", f"inv:{structure}:{day}"
                figures.append(
                    DailyFigures(
                        structure,
                        category,
                        day,
                        self.counters.count_distinct(seen_key),
                        self.counters.count_common(seen_key, inv_key),
                    )
                )
            return figures
        except CounterStoreUnavailable as exc:
            raise GuardUnavailable() from exc


def _over(part: int, whole: int, min_whole: int, percent: int) -> bool:
    """``part / whole > percent %`` once ``whole`` reaches ``min_whole`` (integer maths)."""
    return whole >= min_whole and part * 100 > percent * whole
